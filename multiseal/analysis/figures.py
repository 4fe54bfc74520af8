"""Figures from what a run logged (metric histories, ``accuracy.npz``, ``graph.graphml``), as PNG files.

Each ``plot_*`` function takes plain data and a path, writes one PNG and returns the path, so it can
be used on data from anywhere. :func:`run_figures` and :func:`comparison_figures` draw every figure
of one run / of a whole experiment from an :class:`~analysis.load.ExperimentData`.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from multiseal.analysis.compare import (  # noqa: E402
    Summary,
    compare,
    curves,
    diffusion_by_distance,
    distance_by_round,
)
from multiseal.analysis.load import UNREACHABLE, ExperimentData, RunRecord, Series  # noqa: E402
from multiseal.run.artifacts import plot_graph  # noqa: E402

DPI = 100
CI = tuple[float, float, float]  # mean, lo, hi


def _save(fig, path: str | Path, rect: tuple[float, float, float, float] | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout(rect=rect)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _integer_axis(ax) -> None:
    """Rounds are whole numbers: integer ticks, and at least one unit of room around a lone point."""
    ax.xaxis.get_major_locator().set_params(integer=True)
    lo, hi = ax.get_xlim()
    if hi - lo < 1.5:
        mid = (lo + hi) / 2
        ax.set_xlim(mid - 1, mid + 1)


def _distance_label(d: int) -> str:
    return "unreachable" if d == UNREACHABLE else f"{d} hop{'s' if d != 1 else ''}"


# --------------------------------------------------------------------------- one run


def plot_agent_accuracy(
    series: Mapping[int, Series],
    path: str | Path,
    metric: str = "acc_all",
    population: Series | None = None,
    title: str = "",
) -> Path:
    """Per-agent ``metric`` over rounds (one line per agent, the population mean dashed)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for agent, s in series.items():
        if s:
            ax.plot(*zip(*s), marker="o", label=f"agent {agent}")
    if population:
        ax.plot(*zip(*population), color="black", linestyle="--", linewidth=2, label="population mean")
    ax.set(xlabel="round", ylabel=metric, ylim=(-0.02, 1.02), title=title or f"{metric} per agent")
    _integer_axis(ax)
    ax.legend(fontsize="small")
    return _save(fig, path)


def plot_accuracy_heatmaps(
    acc: np.ndarray,
    path: str | Path,
    doc_ids: Sequence[str] | None = None,
    learnt_round: np.ndarray | None = None,
    title: str = "",
) -> Path:
    """One heatmap per agent of ``acc[row, agent, doc]`` (row 0 = base model); a white dot marks the
    row at which the agent learnt the document."""
    rows, agents, docs = acc.shape
    cols = min(agents, 4)
    nrows = math.ceil(agents / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(0.35 * docs * cols + 2.5, 0.45 * rows * nrows + 1.6), squeeze=False)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="lightgrey")  # NaN = not measured
    image = None
    for a in range(nrows * cols):
        ax = axes[a // cols][a % cols]
        if a >= agents:
            ax.set_axis_off()
            continue
        image = ax.imshow(
            np.ma.masked_invalid(acc[:, a, :]), cmap=cmap, vmin=0, vmax=1, aspect="auto", interpolation="nearest"
        )
        if learnt_round is not None:
            js = np.flatnonzero(learnt_round[a] >= 0)
            ax.scatter(js, learnt_round[a, js], s=12, color="white", edgecolors="black", linewidths=0.5)
        ax.set_title(f"agent {a}", fontsize="small")
        if a % cols == 0:
            ax.set_ylabel("round (0 = base)")
        ax.set_yticks(range(rows))
        if doc_ids is not None and docs <= 24:
            ax.set_xticks(range(docs), [str(d) for d in doc_ids], rotation=90, fontsize="x-small")
        else:
            ax.set_xlabel("document")
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), label="accuracy", shrink=0.8)
    fig.suptitle(title or "accuracy by round and document (dot: learnt)", fontsize="medium")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")  # colorbar over several axes: no tight_layout
    plt.close(fig)
    return path


def retention_curve(acc: np.ndarray, learnt_round: np.ndarray) -> dict[int, Series]:
    """``{agent: [(k, mean accuracy k rounds after learning)]}`` over the documents the agent learnt
    (k = 0 is the row at which it learnt them) — a forgetting curve in Ebbinghaus's sense."""
    rows = acc.shape[0]
    out: dict[int, Series] = {}
    for a in range(acc.shape[1]):
        points = []
        for k in range(rows):
            vals = [acc[t + k, a, j] for j, t in enumerate(learnt_round[a]) if 0 <= t and t + k < rows]
            vals = [v for v in vals if np.isfinite(v)]
            if vals:
                points.append((k, float(np.mean(vals))))
        out[a] = points
    return out


def plot_forgetting(
    forgetting: Mapping[int, Series], path: str | Path, retention: Mapping[int, Series] | None = None, title: str = ""
) -> Path:
    """Left: forgetting (Chaudhry et al.) per agent by round. Right, when given: accuracy on learnt
    documents against rounds since learning (:func:`retention_curve`)."""
    panels = 2 if retention else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4), squeeze=False)
    ax = axes[0][0]
    for agent, s in forgetting.items():
        if s:
            ax.plot(*zip(*s), marker="o", label=f"agent {agent}")
    ax.set(xlabel="round", ylabel="forgetting (max earlier − now)", title="forgetting by round")
    ax.axhline(0, color="grey", linewidth=0.8)
    if any(forgetting.values()):
        ax.legend(fontsize="small")
    if retention:
        ax = axes[0][1]
        for agent, s in retention.items():
            if s:
                ax.plot(*zip(*s), marker="o", label=f"agent {agent}")
        ax.set(xlabel="rounds since learnt", ylabel="accuracy", ylim=(-0.02, 1.02), title="accuracy after learning")
        if any(retention.values()):
            ax.legend(fontsize="small")
    for ax in axes[0]:
        _integer_axis(ax)
    if title:
        fig.suptitle(title, fontsize="medium")
    return _save(fig, path)


def plot_diffusion(
    series: Mapping[int, Series], path: str | Path, title: str = "", ylabel: str = "diffusion (share known)"
) -> Path:
    """Share of (agent, document) pairs known (or another measure of them, named by ``ylabel``), by
    round, one line per graph distance from the document's first recipient."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for d, s in series.items():
        if s:
            ax.plot(*zip(*s), marker="o", label=_distance_label(d))
    ax.set(
        xlabel="round",
        ylabel=ylabel,
        ylim=(-0.02, 1.02),
        title=title or "diffusion by graph distance",
    )
    _integer_axis(ax)
    if series:
        ax.legend(fontsize="small", title="distance")
    return _save(fig, path)


# --------------------------------------------------------------------------- across sweep points


def plot_comparison_bars(summaries: Sequence[Summary], path: str | Path, title: str = "") -> Path:
    """One bar per group: mean of the metric over seeds, the confidence interval as an error bar and
    every seed's value as a dot."""
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(summaries) + 2), 4))
    xs = np.arange(len(summaries))
    means = [s.mean for s in summaries]
    lower = [s.mean - s.lo if math.isfinite(s.lo) else 0 for s in summaries]
    upper = [s.hi - s.mean if math.isfinite(s.hi) else 0 for s in summaries]
    ax.bar(xs, means, yerr=[lower, upper], capsize=4, color="tab:blue", alpha=0.7)
    for x, s in zip(xs, summaries):
        ax.scatter([x] * len(s.values), s.values, color="black", s=12, zorder=3)
    tilt = len(summaries) > 4 or max((len(s.group) for s in summaries), default=0) > 16
    ax.set_xticks(
        xs,
        [f"{s.group}\n(n={s.n})" for s in summaries],
        rotation=30 if tilt else 0,
        ha="right" if tilt else "center",
        fontsize="small",
    )
    metric = summaries[0].metric if summaries else ""
    ax.set_ylabel(metric)
    ax.set_title(title or f"{metric}\nmean and 95% CI over seeds", fontsize="medium")
    return _save(fig, path)


def plot_comparison_curves(
    data: Mapping[str, Mapping[int, CI]], path: str | Path, ylabel: str, title: str = ""
) -> Path:
    """A metric by round per group: the mean over seeds with its confidence band."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for label, by_step in data.items():
        steps = list(by_step)
        mean = np.array([by_step[s][0] for s in steps])
        (line,) = ax.plot(steps, mean, marker="o", label=label)
        lo = np.array([by_step[s][1] for s in steps])
        hi = np.array([by_step[s][2] for s in steps])
        ok = np.isfinite(lo) & np.isfinite(hi)
        if ok.any():
            ax.fill_between(np.array(steps)[ok], lo[ok], hi[ok], color=line.get_color(), alpha=0.15)
    ax.set(xlabel="round", ylabel=ylabel, title=title or f"{ylabel} by round (mean, 95% CI over seeds)")
    _integer_axis(ax)
    if data:
        ax.legend(fontsize="small")
    return _save(fig, path)


def plot_comparison_diffusion(data: Mapping[str, Mapping[int, CI]], path: str | Path, title: str = "") -> Path:
    """Final diffusion by graph distance: grouped bars, one group per distance, one bar per sweep point."""
    distances = sorted({d for by_d in data.values() for d in by_d}, key=lambda d: (d == UNREACHABLE, d))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(distances) + 2.5), 4))
    width = 0.8 / max(len(data), 1)
    for i, (label, by_d) in enumerate(data.items()):
        xs = [k + i * width for k, d in enumerate(distances) if d in by_d]
        ci = [by_d[d] for d in distances if d in by_d]
        err = [
            [m - lo if math.isfinite(lo) else 0 for m, lo, _ in ci],
            [hi - m if math.isfinite(hi) else 0 for m, _, hi in ci],
        ]
        ax.bar(xs, [m for m, _, _ in ci], width, yerr=err, capsize=3, label=label)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(distances))], [_distance_label(d) for d in distances])
    ax.set(
        xlabel="distance from the document's first recipient",
        ylabel="diffusion (share known)",
        ylim=(0, 1.05),
        title=title or "final diffusion by graph distance (mean, 95% CI)",
    )
    if data:
        ax.legend(fontsize="small")
    return _save(fig, path)


def plot_distance_by_round(data: Mapping[str, Mapping[int, Series]], path: str | Path, title: str = "") -> Path:
    """The distance × round table of each sweep point (mean over seeds): one panel per point, one line per
    graph distance from the document's first recipient (the same colour for a distance in every panel),
    mean accuracy by round."""
    labels = list(data)
    distances = sorted({d for by_d in data.values() for d in by_d}, key=lambda d: (d == UNREACHABLE, d))
    colour = {d: f"C{i % 10}" for i, d in enumerate(distances)}
    cols = min(4, max(len(labels), 1))
    rows = math.ceil(max(len(labels), 1) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.0 * rows + 0.6), sharey=True, squeeze=False)
    for ax, label in zip(axes.flat, labels):
        for d, s in data[label].items():
            if s:
                ax.plot(*zip(*s), marker="o", color=colour[d], label=_distance_label(d))
        ax.set_title(textwrap.fill(label, 38), fontsize="small")
        ax.set(xlabel="round", ylim=(-0.02, 1.02))
        _integer_axis(ax)
    for ax in axes.flat[len(labels) :]:
        ax.set_axis_off()
    for ax in axes[:, 0]:
        ax.set_ylabel("mean accuracy")
    handles = [plt.Line2D([], [], color=colour[d], marker="o", label=_distance_label(d)) for d in distances]
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize="small", title="distance")
    fig.suptitle(title or "accuracy by graph distance and round (mean over seeds)", fontsize="medium")
    return _save(fig, path, rect=(0, 0.12 / rows if handles else 0, 1, 1))


# --------------------------------------------------------------------------- from an experiment


def slug(text: str) -> str:
    """A file-name-safe version of a label."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:80] or "run"


def run_figures(data: ExperimentData, run: RunRecord, out: str | Path) -> dict[str, Path]:
    """Every figure of one run that its logged data allows: ``{name: png}`` with names
    ``accuracy``, ``heatmaps``, ``forgetting``, ``diffusion``, ``distance``, ``graph``."""
    out = Path(out)
    stem = f"{slug(run.name)}-{run.run_id[:8]}"
    title = f"{run.name}"
    figs: dict[str, Path] = {}
    accuracy = data.agent_history(run, "acc_all")
    if accuracy:
        figs["accuracy"] = plot_agent_accuracy(
            accuracy,
            out / f"{stem}-accuracy.png",
            "acc_all",
            data.history(run, "pop.acc_all.mean"),
            title=f"{title}: acc_all per agent",
        )
    tensor = data.accuracy(run)
    if tensor is not None and "acc" in tensor:
        learnt = tensor.get("learnt_round")
        figs["heatmaps"] = plot_accuracy_heatmaps(
            tensor["acc"],
            out / f"{stem}-heatmaps.png",
            tensor.get("doc_ids"),
            learnt,
            title=f"{title}: accuracy by round × document",
        )
    forgetting = data.agent_history(run, "forgetting")
    if forgetting or tensor is not None:
        retention = (
            retention_curve(tensor["acc"], tensor["learnt_round"])
            if tensor is not None and "learnt_round" in tensor
            else None
        )
        figs["forgetting"] = plot_forgetting(forgetting, out / f"{stem}-forgetting.png", retention, title=title)
    diffusion = data.diffusion_history(run)
    if diffusion:
        figs["diffusion"] = plot_diffusion(diffusion, out / f"{stem}-diffusion.png", title=f"{title}: diffusion")
    by_distance = data.diffusion_history(run, "acc")
    if by_distance:
        figs["distance"] = plot_diffusion(
            by_distance,
            out / f"{stem}-distance.png",
            title=f"{title}: accuracy by graph distance",
            ylabel="mean accuracy",
        )
    graph = data.graph(run)
    if graph is not None:
        figs["graph"] = plot_graph(graph, out / f"{stem}-graph.png", title=title)
    return figs


def comparison_figures(data: ExperimentData, out: str | Path, metric: str = "pop.acc_all.mean") -> dict[str, Path]:
    """Figures comparing the groups of runs (sweep points over seeds): ``{name: png}`` with names
    ``bars`` (``metric``), ``accuracy`` and ``forgetting`` curves by round, ``diffusion`` by distance, and
    ``distance``: each point's distance × round table of mean accuracy."""
    out = Path(out)
    figs: dict[str, Path] = {}
    summaries = [s for s in compare(data.runs, metric) if s.n]
    if summaries:
        figs["bars"] = plot_comparison_bars(summaries, out / f"compare-{slug(metric)}.png")
    for name, key in (("accuracy", "pop.acc_all.mean"), ("forgetting", "pop.forgetting.mean")):
        by_group = curves(data, key)
        if by_group:
            figs[name] = plot_comparison_curves(by_group, out / f"compare-{name}-by-round.png", key)
    diffusion = diffusion_by_distance(data)
    if diffusion:
        figs["diffusion"] = plot_comparison_diffusion(diffusion, out / "compare-diffusion-by-distance.png")
    table = distance_by_round(data)
    if table:
        figs["distance"] = plot_distance_by_round(table, out / "compare-accuracy-by-distance-and-round.png")
    return figs


def plot_paired(rows: Sequence, path: str | Path, metrics: Sequence[str], reference: str = "") -> Path:
    """The paired comparison as a forest plot: per metric, one row per point with its Δ against the
    reference and the 95% interval (filled: the verdict is higher or lower after Holm)."""
    metrics = [m for m in metrics if any(r.metric == m for r in rows)]
    points = list(dict.fromkeys(r.point for r in rows))
    fig, axes = plt.subplots(
        1,
        max(len(metrics), 1),
        figsize=(3.2 * max(len(metrics), 1) + 2.5, 0.45 * len(points) + 1.6),
        sharey=True,
        squeeze=False,
    )
    for ax, metric in zip(axes[0], metrics):
        for y, point in enumerate(points):
            row = next((r for r in rows if r.metric == metric and r.point == point), None)
            if row is None or not math.isfinite(row.delta):
                continue
            decided = row.verdict in ("higher", "lower")
            ax.errorbar(
                [row.delta],
                [y],
                xerr=[[row.delta - row.lo], [row.hi - row.delta]],
                fmt="o",
                capsize=3,
                color="tab:blue" if decided else "tab:gray",
                markerfacecolor="tab:blue" if decided else "white",
            )
        ax.axvline(0, color="black", lw=0.8)
        ax.set_title(f"Δ {metric}", fontsize="medium")
        ax.set_yticks(range(len(points)), points, fontsize="small")
        ax.invert_yaxis() if ax is axes[0][0] else None
    fig.suptitle(f"paired against {reference} (filled: distinguishable after Holm)", fontsize="medium")
    return _save(fig, path)
