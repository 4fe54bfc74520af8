"""``multiseal report``: a self-contained Markdown report (with PNG figures) of an experiment's runs.

The report folder holds ``report.md`` and ``figures/``: a comparison of the sweep points (final
values, mean and 95% CI over seeds; a bar chart of one chosen metric; accuracy and forgetting by
round; diffusion by graph distance), with a reference point (``--reference`` or the sweep file's
``reference:``) a paired comparison of every point against it (:mod:`multiseal.analysis.paired`),
then every run's own figures. Each figure is also logged as an
MLflow artifact of the run(s) it describes: a run's figures under ``report/``, the comparison
figures under ``report/comparison/`` of every run compared.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from pathlib import Path

from multiseal.analysis.compare import comparison_table, format_markdown, groups
from multiseal.analysis.drift import agreement_section
from multiseal.analysis.figures import (
    comparison_figures,
    plot_paired,
    run_figures,
    slug,
)
from multiseal.analysis.load import ExperimentData, RunRecord, load_experiment
from multiseal.analysis.paired import (
    PairedResult,
    format_paired,
    label,
    paired_comparisons,
    resolve_reference,
)
from multiseal.errors import InputError
from multiseal.metric_table import select

RUN_FIGURES = {
    "accuracy": "accuracy per agent by round",
    "heatmaps": "accuracy matrix (round × document) per agent",
    "forgetting": "forgetting by round, and accuracy by rounds since learning",
    "diffusion": "diffusion by graph distance",
    "distance": "mean accuracy by graph distance and round (the distance × round table)",
    "graph": "graph, nodes coloured by final accuracy",
}
PAIRED_FIGURE_METRICS = select(figure=True)
COMPARISON_FIGURES = {
    "paired": "paired Δ against the reference with 95% intervals (filled: distinguishable after Holm)",
    "bars": "the chosen metric per sweep point (mean, 95% CI, one dot per seed)",
    "accuracy": "population accuracy by round",
    "forgetting": "population forgetting by round",
    "diffusion": "final diffusion by graph distance",
    "distance": "mean accuracy by graph distance and round, per point (mean over seeds)",
}
GLOSSARY = """\
- **acc_all**: mean accuracy over the documents introduced so far; **acc_own**: on the documents an agent
  received from the world; **acc_received**: on those it knows only from neighbours' notes.
- **forgetting** (Chaudhry et al. 2018): per document, best earlier accuracy minus current, averaged over
  learnt documents; **bwt** (GEM): current minus just-after-learning accuracy.
- **retention**: share of a fixed probe (questions the base model answered right) still answered right.
- **diffusion**: share of (agent, introduced document) pairs answered at ≥ 0.5 accuracy; by distance: split
  by hops from the document's first recipient.
- Intervals are Student-t 95% confidence intervals over seeds (none with a single seed)."""
PAIRED_METHOD = """\
Each point against the reference point with the same other settings, runs paired by seed, outcomes
paired per cell at the final round: (agent, document) cells of the introduced documents for acc_all,
the agent's own documents for acc_own, the introduced documents it does not own for acc_received
(the same cells in both arms), one cell per agent for acc_composition, retention, forgetting, bwt, ppl_ratio and kl_base.
Δ is the mean over cells of point − reference; its 95% interval a cluster bootstrap (2,000 resamples:
seeds, then documents — agents for agent metrics — within seeds). Holm p: the two-sided bootstrap p,
Holm-adjusted over the points compared on a metric; the verdict says whether the point's value is
*higher* or *lower* (for forgetting too: not better or worse) only when Holm p < 0.05. MDD: the
smallest difference detectable at 80% power with these seeds, from the between-seed spread of the
per-seed mean difference; seeds needed: seeds for the observed Δ to reach 80% power."""


def write_report(
    experiment: str,
    tracking_uri: str | None = None,
    out: str | Path | None = None,
    metric: str = "pop.acc_all.mean",
    sweep: str | None = None,
    log_artifacts: bool = True,
    reference: Mapping[str, str] | None = None,
) -> Path:
    """Write the report of ``experiment``'s FINISHED runs into ``out`` (default
    ``reports/<experiment>``); returns the path of ``report.md``.

    ``reference`` (point key -> value, e.g. ``{"topology.kind": "none"}``) adds the paired comparison
    of every point against it; without it, the reference the sweep tagged its runs with, if any."""
    with load_experiment(experiment, tracking_uri, sweep) as data:
        if data.runs and all(r.tags.get("multiseal.kind") == "skills" for r in data.runs):
            return _skills_report(data, Path(out) if out is not None else Path("reports") / slug(experiment))
        _check(data, metric, sweep)
        ref = resolve_reference(data.runs, reference)
        paired = paired_comparisons(data, ref) if ref else None
        folder = Path(out) if out is not None else Path("reports") / slug(experiment)
        figures = folder / "figures"
        figures.mkdir(parents=True, exist_ok=True)
        comparison = comparison_figures(data, figures, metric)
        per_run = {run.run_id: run_figures(data, run, figures) for run in data.runs}
        if paired is not None and paired.rows:
            comparison["paired"] = plot_paired(
                paired.rows, figures / "paired.png", PAIRED_FIGURE_METRICS, label(paired.reference)
            )
        report = folder / "report.md"
        report.write_text(_markdown(data, metric, folder, comparison, per_run, paired))
        if log_artifacts:
            _log(data, comparison, per_run)
    return report


SKILLS_METHOD = """\
Each run scores its arms on its held-out tasks (success = every test output exact); the run's own
table pairs every arm with its reference by task (cluster bootstrap over tasks within families,
Holm-corrected). Across runs: the mean [95% CI] over seeds of each arm's success and share of invalid
configurations."""


def _skills_report(data: ExperimentData, folder: Path) -> Path:
    """The report of ``kind: skills`` runs: each arm's success across runs, then every run's table."""
    folder.mkdir(parents=True, exist_ok=True)
    keys = sorted(
        {
            k
            for r in data.runs
            for k in r.metrics
            if k.startswith("skills.") and k.endswith((".success", ".config_invalid"))
        }
    )
    lines = [
        f"# Report: experiment `{data.name}` (skills)",
        "",
        f"- tracking URI: `{data.tracking_uri}`",
        f"- generated: {_dt.datetime.now().isoformat(timespec='seconds')}",
        f"- runs: {len(data.runs)} finished",
        "",
        "## Arms across runs",
        "",
        SKILLS_METHOD,
        "",
        format_markdown(comparison_table(data.runs, keys)),
        "",
        "## Runs",
        "",
    ]
    for run in data.runs:
        point = ", ".join(f"`{k}={v}`" for k, v in run.point.items()) or "—"
        table = data.artifact(run, "skills/table.md")
        lines += [
            f"### {run.name}",
            "",
            f"run `{run.run_id}`, point {point}",
            "",
            table.read_text().strip() if table is not None else "_no table: the run logged none_",
            "",
        ]
    report = folder / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report


def _check(data: ExperimentData, metric: str, sweep: str | None) -> None:
    if not data.runs:
        others = {}
        for r in data.all_runs:
            others[r.status] = others.get(r.status, 0) + 1
        seen = ", ".join(f"{n} {s}" for s, n in others.items()) or "none"
        where = f" of sweep '{sweep}'" if sweep else ""
        raise InputError(f"experiment '{data.name}' has no FINISHED runs{where} (runs: {seen})")
    if not any(metric in r.metrics for r in data.runs):
        logged = sorted({k for r in data.runs for k in r.metrics if k.startswith("pop.")})
        raise InputError(
            f"--metric: no run of '{data.name}' logged '{metric}' (population metrics: {', '.join(logged) or 'none'})"
        )


def _markdown(
    data: ExperimentData,
    metric: str,
    folder: Path,
    comparison: dict[str, Path],
    per_run: dict[str, dict[str, Path]],
    paired: PairedResult | None = None,
) -> str:
    by_group = groups(data.runs)
    sweeps = sorted({r.tags["multiseal.sweep"] for r in data.runs if "multiseal.sweep" in r.tags})
    others = len(data.all_runs) - len(data.runs)
    lines = [
        f"# Report: experiment `{data.name}`",
        "",
        f"- tracking URI: `{data.tracking_uri}`",
        f"- generated: {_dt.datetime.now().isoformat(timespec='seconds')}",
        f"- runs: {len(data.runs)} finished"
        + (
            f"; {others} other run{'s' if others != 1 else ''} (failed, killed or still running) left out"
            if others
            else ""
        ),
    ]
    if sweeps:
        lines.append(f"- sweep(s): {', '.join(f'`{s}`' for s in sweeps)}")
    if data.duplicates:
        lines.append(
            f"- {len(data.duplicates)} duplicate run(s) of a (point, seed) already counted, left out: "
            + ", ".join(f"`{r.run_id}` ({r.name})" for r in data.duplicates)
        )
    lines += [
        f"- points: {len(by_group)}, seeds per point: " + ", ".join(sorted({str(len(m)) for m in by_group.values()})),
        "",
    ]
    lines += [
        "## Comparison",
        "",
        "Final-round values, mean [95% CI] over seeds.",
        "",
        format_markdown(comparison_table(data.runs)),
        "",
    ]
    if paired is not None:
        lines += _paired_section(paired)
    lines += agreement_section(data)
    for name, caption in COMPARISON_FIGURES.items():
        if name in comparison:
            text = caption if name != "bars" else f"{metric}: {caption}"
            lines += [f"![{text}]({_rel(comparison[name], folder)})", "", f"*{text}*", ""]
    lines += ["### Metrics", "", GLOSSARY, "", "## Runs", ""]
    for run in data.runs:
        lines += _run_section(run, per_run.get(run.run_id, {}), folder)
    return "\n".join(lines) + "\n"


def _paired_section(paired: PairedResult) -> list[str]:
    lines = [
        f"## Paired comparison against {label(paired.reference)}",
        "",
        PAIRED_METHOD,
        "",
        format_paired(paired),
        "",
    ]
    if paired.notes:
        lines += ["Left out or adjusted:", ""] + [f"- {n}" for n in paired.notes] + [""]
    return lines


def _run_section(run: RunRecord, figures: dict[str, Path], folder: Path) -> list[str]:
    point = ", ".join(f"`{k}={v}`" for k, v in run.point.items()) or "—"
    finals = [
        (k, run.metrics[k]) for k in ("pop.acc_all.mean", "pop.forgetting.mean", "pop.diffusion") if k in run.metrics
    ]
    lines = [
        f"### {run.name}",
        "",
        f"run `{run.run_id}`, point {point}"
        + (", final " + ", ".join(f"{k} {v:.3f}" for k, v in finals) if finals else ""),
        "",
    ]
    for name, caption in RUN_FIGURES.items():
        if name in figures:
            lines += [f"![{caption}]({_rel(figures[name], folder)})", ""]
    if not figures:
        lines += ["_no figures: the run logged no per-agent metrics or artifacts_", ""]
    return lines


def _rel(path: Path, folder: Path) -> str:
    return path.relative_to(folder).as_posix()


def _log(data: ExperimentData, comparison: dict[str, Path], per_run: dict[str, dict[str, Path]]) -> None:
    """Each run gets its own figures under ``report/`` and the comparison under ``report/comparison/``."""
    for run in data.runs:
        for path in per_run.get(run.run_id, {}).values():
            data.client.log_artifact(run.run_id, str(path), "report")
        if len(data.runs) > 1:
            for path in comparison.values():
                data.client.log_artifact(run.run_id, str(path), "report/comparison")
