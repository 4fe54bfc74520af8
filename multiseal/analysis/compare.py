"""Comparing sweep points: a metric's final value per run, mean and 95% confidence interval over seeds.

Runs that differ only in their seed form one *group* (``RunRecord.group``). For each group and
metric: ``mean ± t_{n-1} · s / sqrt(n)`` over the runs' final values (:func:`multiseal.stats.mean_ci`);
one run gives a mean without an interval.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from multiseal.analysis.load import ExperimentData, RunRecord
from multiseal.stats import mean_ci

# The population metrics a report compares by default (those a run lacks are left out).
DEFAULT_METRICS: tuple[str, ...] = (
    "pop.acc_all.mean",
    "pop.acc_own.mean",
    "pop.acc_received.mean",
    "pop.forgetting.mean",
    "pop.bwt.mean",
    "pop.retention.mean",
    "pop.diffusion",
)


@dataclass(frozen=True)
class Summary:
    """A metric over the seeds of one group: mean and confidence interval (NaN when undefined)."""

    group: str
    metric: str
    n: int
    mean: float
    lo: float
    hi: float
    values: tuple[float, ...]

    def text(self, digits: int = 3) -> str:
        """``0.412 [0.350, 0.474]``; ``0.412`` for a single run; ``—`` for no value."""
        if self.n == 0 or math.isnan(self.mean):
            return "—"
        if math.isnan(self.lo):
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} [{self.lo:.{digits}f}, {self.hi:.{digits}f}]"


def groups(runs: Iterable[RunRecord], over: Sequence[str] = ("seed",)) -> dict[str, list[RunRecord]]:
    """Runs by group label (the runs differing only in the keys ``over``), in first-seen order."""
    out: dict[str, list[RunRecord]] = {}
    for run in runs:
        out.setdefault(run.group(over), []).append(run)
    return out


def compare(
    runs: Iterable[RunRecord], metric: str, over: Sequence[str] = ("seed",), confidence: float = 0.95
) -> list[Summary]:
    """One :class:`Summary` per group of the final value of ``metric`` (runs without it are left out)."""
    out = []
    for label, members in groups(runs, over).items():
        values = tuple(r.metrics[metric] for r in members if metric in r.metrics and math.isfinite(r.metrics[metric]))
        mean, lo, hi = mean_ci(values, confidence)
        out.append(Summary(label, metric, len(values), mean, lo, hi, values))
    return out


def available(runs: Iterable[RunRecord], metrics: Iterable[str] = DEFAULT_METRICS) -> list[str]:
    """The metrics of ``metrics`` that at least one run logged."""
    runs = list(runs)
    return [m for m in metrics if any(m in r.metrics for r in runs)]


def comparison_table(
    runs: Iterable[RunRecord],
    metrics: Sequence[str] = DEFAULT_METRICS,
    over: Sequence[str] = ("seed",),
    confidence: float = 0.95,
) -> list[dict[str, object]]:
    """Rows ``{"group", "n", <metric>: Summary, ...}``, one per group, for the metrics some run has."""
    runs = list(runs)
    metrics = available(runs, metrics)
    rows: dict[str, dict[str, object]] = {}
    for metric in metrics:
        for s in compare(runs, metric, over, confidence):
            row = rows.setdefault(s.group, {"group": s.group, "n": 0})
            row[metric] = s
            row["n"] = max(int(row["n"]), s.n)  # type: ignore[call-overload]
    return list(rows.values())


def format_markdown(rows: list[dict[str, object]], confidence: float = 0.95) -> str:
    """A Markdown table of :func:`comparison_table` rows: mean [CI] per metric."""
    if not rows:
        return "_no runs_"
    metrics = [k for k in rows[0] if k not in ("group", "n")]
    for row in rows[1:]:
        metrics += [k for k in row if k not in ("group", "n") and k not in metrics]
    head = "| point | seeds | " + " | ".join(f"{m} (mean [{confidence:.0%} CI])" for m in metrics) + " |"
    lines = [head, "| --- | ---: |" + " ---: |" * len(metrics)]
    for row in rows:
        cells = [row[m].text() if isinstance(row.get(m), Summary) else "—" for m in metrics]  # type: ignore[union-attr]
        lines.append(f"| {row['group']} | {row['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def curves(
    data: ExperimentData, key: str, over: Sequence[str] = ("seed",), confidence: float = 0.95
) -> dict[str, dict[int, tuple[float, float, float]]]:
    """``{group: {step: (mean, lo, hi)}}`` of metric ``key`` by round, over the seeds of each group."""
    out: dict[str, dict[int, tuple[float, float, float]]] = {}
    for label, members in groups(data.runs, over).items():
        by_step: dict[int, list[float]] = {}
        for run in members:
            for step, value in data.history(run, key):
                by_step.setdefault(step, []).append(value)
        if by_step:
            out[label] = {s: mean_ci(v, confidence) for s, v in sorted(by_step.items())}
    return out


def distance_by_round(
    data: ExperimentData, over: Sequence[str] = ("seed",)
) -> dict[str, dict[int, list[tuple[int, float]]]]:
    """``{group: {distance: [(round, mean over seeds of pop.acc.d<k>)]}}``: the distance × round table of
    each sweep point, averaged over its seeds."""
    out: dict[str, dict[int, list[tuple[int, float]]]] = {}
    for label, members in groups(data.runs, over).items():
        cells: dict[int, dict[int, list[float]]] = {}
        for run in members:
            for d, series in data.diffusion_history(run, "acc").items():
                for step, value in series:
                    cells.setdefault(d, {}).setdefault(step, []).append(value)
        if cells:
            out[label] = {
                d: [(s, _finite_mean(v)) for s, v in sorted(by_step.items())] for d, by_step in sorted(cells.items())
            }
    return out


def _finite_mean(values: Sequence[float]) -> float:
    kept = [v for v in values if math.isfinite(v)]
    return sum(kept) / len(kept) if kept else math.nan


def diffusion_by_distance(
    data: ExperimentData, over: Sequence[str] = ("seed",), confidence: float = 0.95, family: str = "diffusion"
) -> dict[str, dict[int, tuple[float, float, float]]]:
    """``{group: {distance: (mean, lo, hi)}}`` of the final ``pop.diffusion.d<k>`` over seeds (``family``
    ``"acc"``: of the mean accuracy by distance, ``pop.acc.d<k>``)."""
    out: dict[str, dict[int, tuple[float, float, float]]] = {}
    for label, members in groups(data.runs, over).items():
        by_distance: dict[int, list[float]] = {}
        for run in members:
            for d, series in data.diffusion_history(run, family).items():
                if series:
                    by_distance.setdefault(d, []).append(series[-1][1])
        if by_distance:
            out[label] = {d: mean_ci(v, confidence) for d, v in sorted(by_distance.items())}
    return out
