"""Paired comparisons of sweep points against a reference point: cluster bootstrap, Holm, power.

Every point is compared with its *reference counterpart*: the same settings with the reference's keys
set to the reference's values (``topology.kind=ring scheduler.kind=budgeted`` against
``topology.kind=none scheduler.kind=budgeted`` for the reference ``topology.kind=none``); a point that
has no such counterpart (a control listed under ``points:`` with keys of its own, such as
``sharing.content=passage``) is compared with the reference point itself. Runs of the
two points are paired by seed (same seed = same world, arrivals and questions), and outcomes are
paired *per cell* at the final round:

* ``acc_all``: the (agent, document) cells of the documents introduced in both arms;
* ``acc_own``: the cells where the agent owns the document (it came from the world) in both arms;
* ``acc_received``: the introduced cells the agent does not own in either arm; the set comes from
  ownership, which the seed fixes, not from what the treatment made reach the agent;
* ``acc_composition``: one cell per agent (the final row of ``composition`` in ``accuracy.npz``);
* ``retention``, ``forgetting``, ``bwt``, ``ppl_ratio``, ``kl_base``: one cell per agent, the final-round
  ``agent.<i>.<metric>`` (runs that did not log a metric are not compared on it).

A cell missing (NaN) in either arm is left out of both. The cluster of a document metric is the
document (all its agents' cells together), of an agent metric the agent. ``Δ`` is the mean over all
paired cells of (point − reference); its 95% interval is a percentile cluster bootstrap (resample
seeds, then clusters within each drawn seed); its two-sided p-value ``min(1, 2 (k + 1) / (B + 1))``
with ``k`` the resamples on the other side of zero (all of them when ``Δ = 0``). p-values are Holm-
adjusted over the points compared on one metric; the verdict is *higher* or *lower* when the
adjusted p is below α, else *not distinguishable*. Power comes from the between-seed standard
deviation of the per-seed mean difference (:func:`multiseal.stats.mdd`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from multiseal.analysis.load import ExperimentData, RunRecord
from multiseal.errors import InputError
from multiseal.metric_table import metric as metric_row
from multiseal.metric_table import select
from multiseal.run.sweep_file import REFERENCE_TAG
from multiseal.stats import (
    RESAMPLES,
    cluster_bootstrap,
    holm,
    mdd,
    seeds_needed,
    verdict,
)

DOC_METRICS: tuple[str, ...] = select(cells="documents")  # compared per (agent, document) cell
AGENT_METRICS: tuple[str, ...] = select(cells="agent")  # compared per agent
PAIRED_METRICS: tuple[str, ...] = DOC_METRICS + AGENT_METRICS
SEEDS_CAP = 1000


# --------------------------------------------------------------------------- the reference


def label(point: Mapping[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in point.items()) or "(base)"


def parse_reference(items: Iterable[str], source: str = "--reference") -> dict[str, str]:
    """``["topology.kind=none"]`` → ``{"topology.kind": "none"}``; a missing ``=`` is an InputError."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError(f"{source}: expected KEY=VALUE (e.g. topology.kind=none), got '{item}'")
        out[key.strip()] = value.strip()
    return out


def reference_from_tags(runs: Iterable[RunRecord]) -> dict[str, str]:
    """The reference a sweep recorded on its runs (tags ``multiseal.reference.<key>``), or ``{}``."""
    prefix = REFERENCE_TAG + "."
    found: dict[str, dict[str, str]] = {}
    for run in runs:
        ref = {k[len(prefix) :]: v for k, v in run.tags.items() if k.startswith(prefix)}
        if ref:
            found.setdefault(label(ref), ref)
    if len(found) > 1:
        raise InputError(
            f"the runs name different references ({'; '.join(found)}): pick one with --reference "
            "or keep one sweep's runs with --sweep"
        )
    return next(iter(found.values()), {})


def check_reference(runs: Sequence[RunRecord], reference: Mapping[str, str], source: str = "--reference") -> None:
    """Raise InputError unless ``reference`` names keys the runs vary, with values one run has together."""
    varying: dict[str, list[str]] = {}
    for run in runs:
        for k, v in run.point.items():
            if k != "seed" and v not in varying.setdefault(k, []):
                varying[k].append(v)
    if "seed" in reference:
        raise InputError(f"{source}: runs are paired by seed; name the other keys of the reference point")
    for k, v in reference.items():
        if k not in varying:
            raise InputError(
                f"{source}: '{k}' is not a key the runs vary (they vary: {', '.join(varying) or 'nothing'})"
            )
        if v not in varying[k]:
            raise InputError(f"{source}: no run has {k}={v} (values of {k} in the runs: {', '.join(varying[k])})")
    if not any(_matches(run.point, reference) for run in runs):
        raise InputError(f"{source}: no run has {label(reference)}")


def resolve_reference(
    runs: Sequence[RunRecord], given: Mapping[str, str] | None = None, source: str = "--reference"
) -> dict[str, str]:
    """``given`` (the command line) if any, else the sweep's tags; checked against the runs; ``{}`` if none."""
    ref, source = (dict(given), source) if given else (reference_from_tags(runs), "the runs' sweep reference")
    if ref:
        check_reference(runs, ref, source)
    return ref


def _matches(point: Mapping[str, str], reference: Mapping[str, str]) -> bool:
    return all(point.get(k) == v for k, v in reference.items())


# --------------------------------------------------------------------------- pairing runs and cells


@dataclass(frozen=True)
class Pairing:
    """A point and its reference counterpart: ``(seed, reference run, point run)`` for each shared seed."""

    point: str
    reference: str
    runs: tuple[tuple[int, RunRecord, RunRecord], ...]


def pairings(runs: Iterable[RunRecord], reference: Mapping[str, str]) -> tuple[list[Pairing], list[str]]:
    """Every non-reference point paired with its counterpart by seed, and notes on points left out.
    Of several runs of one point and seed, the latest counts."""
    index: dict[frozenset, dict[int, RunRecord]] = {}
    for run in runs:
        if run.seed is None:
            continue
        by_seed = index.setdefault(frozenset((k, v) for k, v in run.point.items() if k != "seed"), {})
        if run.seed not in by_seed or run.start_time > by_seed[run.seed].start_time:
            by_seed[run.seed] = run
    out, notes = [], []
    for key, by_seed in index.items():
        point = dict(key)
        if _matches(point, reference):
            continue
        name = next(iter(by_seed.values())).group()
        ref = index.get(frozenset({**point, **reference}.items()), {})
        if not ref:  # a point listed on its own (a control): compare it with the reference point itself
            ref = index.get(frozenset(reference.items()), {})
            if ref:
                notes.append(
                    f"{name}: no point with its other settings and {label(reference)}; compared with "
                    f"{label(reference)} itself"
                )
        seeds = sorted(by_seed.keys() & ref.keys())
        if not seeds:
            notes.append(f"{name}: no run of its reference point with the same seed")
            continue
        out.append(Pairing(name, ref[seeds[0]].group(), tuple((s, ref[s], by_seed[s]) for s in seeds)))
    return out, notes


@dataclass(frozen=True)
class PairedCells:
    """One metric of one pairing: per seed, ``[clusters, cells]`` outcomes of both arms (NaN = no cell)."""

    point: str
    reference: str
    metric: str
    seeds: tuple[int, ...]
    ref: tuple[np.ndarray, ...]
    pt: tuple[np.ndarray, ...]
    notes: tuple[str, ...] = ()

    @property
    def diffs(self) -> tuple[np.ndarray, ...]:
        return tuple(p - r for p, r in zip(self.pt, self.ref))

    @property
    def cells(self) -> tuple[int, ...]:
        return tuple(int(np.isfinite(d).sum()) for d in self.diffs)

    def seed_means(self) -> np.ndarray:
        """The per-seed mean difference (point − reference) over the seed's cells."""
        return np.array([float(np.nanmean(d)) for d in self.diffs])


def paired_cells(data: ExperimentData, pairing: Pairing, metric: str) -> PairedCells | None:
    """The cells of ``metric`` for every seed of ``pairing`` (see the module doc); None if no seed has one."""
    seeds, refs, pts, notes = [], [], [], []
    for seed, ref_run, pt_run in pairing.runs:
        got = _cells(data, ref_run, pt_run, metric)
        if got is None:
            continue
        r, p, same = got
        both = np.isfinite(r) & np.isfinite(p)
        if not both.any():
            continue
        if not same:
            notes.append(
                f"seed {seed}: the arms' documents or ownership differ; the cells common to both were compared"
            )
        seeds.append(seed)
        refs.append(np.where(both, r, np.nan))
        pts.append(np.where(both, p, np.nan))
    if not seeds:
        return None
    return PairedCells(pairing.point, pairing.reference, metric, tuple(seeds), tuple(refs), tuple(pts), tuple(notes))


def _cells(data: ExperimentData, ref_run: RunRecord, pt_run: RunRecord, metric: str):
    a, b = data.accuracy(ref_run), data.accuracy(pt_run)
    if metric in DOC_METRICS:
        return _doc_cells(a, b, metric) if a is not None and b is not None else None
    if metric == "acc_composition" and a is not None and b is not None and "composition" in a and "composition" in b:
        x, y = a["composition"][-1], b["composition"][-1]
        return (x[:, None], y[:, None], True) if x.shape == y.shape else None
    x = _agent_finals(data, ref_run, metric, a)
    y = _agent_finals(data, pt_run, metric, b)
    agents = max(len(x), len(y))
    if agents == 0:
        return None
    x, y = (np.pad(v, (0, agents - len(v)), constant_values=np.nan) for v in (x, y))
    return x[:, None], y[:, None], True


def _doc_cells(a: dict, b: dict, metric: str):
    """``[documents, agents]`` at the final row, documents matched by id, NaN outside the cell set."""
    ids_a, ids_b = [str(d) for d in a["doc_ids"]], [str(d) for d in b["doc_ids"]]
    where_b = {d: j for j, d in enumerate(ids_b)}
    ia = [j for j, d in enumerate(ids_a) if d in where_b]
    ib = [where_b[ids_a[j]] for j in ia]
    if not ia or a["acc"].shape[1] != b["acc"].shape[1]:
        return None
    intro_a, intro_b = a["introduced"][-1][ia], b["introduced"][-1][ib]
    own_a, own_b = a["own"][:, ia].astype(bool), b["own"][:, ib].astype(bool)
    same = ids_a == ids_b and np.array_equal(intro_a, intro_b) and np.array_equal(own_a, own_b)
    cells = np.broadcast_to(intro_a & intro_b, own_a.shape)
    if metric == "acc_own":
        cells = cells & own_a & own_b
    elif metric == "acc_received":
        cells = cells & ~own_a & ~own_b
    x = np.where(cells, a["acc"][-1][:, ia], np.nan)
    y = np.where(cells, b["acc"][-1][:, ib], np.nan)
    return x.T, y.T, same


def _agent_finals(data: ExperimentData, run: RunRecord, metric: str, tensor: dict | None) -> np.ndarray:
    """``agent.<i>.<metric>`` at the run's final round (the tensor's last row; else its last logged step)."""
    series = data.agent_history(run, metric)
    if not series:
        return np.zeros(0)
    final = tensor["acc"].shape[0] - 1 if tensor is not None else None
    out = np.full(max(series) + 1, np.nan)
    for agent, values in series.items():
        by_step = dict(values)
        step = final if final is not None else max(by_step, default=None)
        out[agent] = by_step.get(step, np.nan)
    return out


# --------------------------------------------------------------------------- comparisons


@dataclass(frozen=True)
class Comparison:
    """One row of the paired table."""

    point: str
    reference: str
    metric: str
    seeds: int
    cells: tuple[int, ...]  # paired cells per seed
    reference_mean: float
    point_mean: float
    delta: float
    lo: float
    hi: float
    p: float
    p_holm: float
    verdict: str
    sd: float  # between-seed standard deviation of the per-seed mean difference
    mdd: float  # minimum detectable difference at the given power with these seeds
    seeds_needed: int | None  # seeds for |delta| to reach that power; None when delta = 0

    @property
    def outcome(self) -> str:
        """``better`` or ``worse`` when the verdict decides and the metric has a better direction
        (:mod:`multiseal.metric_table`); empty otherwise."""
        try:
            return metric_row(self.metric).outcome(self.verdict)
        except KeyError:  # a metric outside the table
            return ""


@dataclass
class PairedResult:
    reference: dict[str, str]
    rows: list[Comparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def paired_comparisons(
    data: ExperimentData,
    reference: Mapping[str, str],
    metrics: Sequence[str] = PAIRED_METRICS,
    resamples: int = RESAMPLES,
    seed: int = 0,
    confidence: float = 0.95,
    alpha: float = 0.05,
    power: float = 0.8,
) -> PairedResult:
    """Every point against its reference counterpart on each metric (rows by point, then metric);
    p-values Holm-adjusted over the points compared on one metric."""
    check_reference(data.runs, reference)
    found, notes = pairings(data.runs, reference)
    result = PairedResult(dict(reference), notes=notes)
    for metric in metrics:
        rows = []
        for pairing in found:
            cells = paired_cells(data, pairing, metric)
            if cells is None:
                continue
            result.notes += [f"{pairing.point}, {metric}, {n}" for n in cells.notes]
            boot = cluster_bootstrap(cells.diffs, resamples, seed, confidence)
            seed_means = cells.seed_means()
            sd = float(np.std(seed_means, ddof=1)) if len(seed_means) > 1 else math.nan
            rows.append(
                Comparison(
                    pairing.point,
                    pairing.reference,
                    metric,
                    len(cells.seeds),
                    cells.cells,
                    float(np.nanmean(np.concatenate([r.ravel() for r in cells.ref]))),
                    float(np.nanmean(np.concatenate([p.ravel() for p in cells.pt]))),
                    boot.delta,
                    boot.lo,
                    boot.hi,
                    boot.p,
                    math.nan,
                    "",
                    sd,
                    mdd(sd, len(seed_means), alpha, power),
                    None if boot.delta == 0 else seeds_needed(sd, boot.delta, alpha, power, SEEDS_CAP),
                )
            )
        for row, adjusted in zip(rows, holm([r.p for r in rows])):
            result.rows.append(replace(row, p_holm=float(adjusted), verdict=verdict(row.delta, adjusted, alpha)))
    order = {p.point: i for i, p in enumerate(found)}
    result.rows.sort(key=lambda r: (order[r.point], list(metrics).index(r.metric)))
    return result


def format_paired(result: PairedResult, confidence: float = 0.95, power: float = 0.8) -> str:
    """The Markdown table of :func:`paired_comparisons`."""
    if not result.rows:
        return "_no point could be paired with the reference_"
    head = (
        f"| point | metric | reference mean | point mean | Δ [{confidence:.0%} CI] | Holm p | verdict | "
        f"MDD ({power:.0%}) | seeds needed | seeds × cells |"
    )
    lines = [head, "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |"]
    for r in result.rows:
        lines.append(
            f"| {r.point} | {r.metric} | {_num(r.reference_mean)} | {_num(r.point_mean)} | "
            f"{_num(r.delta, True)} [{_num(r.lo, True)}, {_num(r.hi, True)}] | {_p(r.p_holm)} | "
            f"{r.verdict} | {_num(r.mdd)} | {_needed(r.seeds_needed)} | {r.seeds} × {_span(r.cells)} |"
        )
    return "\n".join(lines)


def _num(x: float, sign: bool = False) -> str:
    return "—" if not math.isfinite(x) else f"{x:+.3f}" if sign else f"{x:.3f}"


def _p(p: float) -> str:
    return "—" if not math.isfinite(p) else "<0.001" if p < 0.001 else f"{p:.3f}"


def _needed(n: int | None) -> str:
    return "—" if n is None else f">{SEEDS_CAP}" if n > SEEDS_CAP else str(n)


def _span(cells: tuple[int, ...]) -> str:
    return str(cells[0]) if min(cells) == max(cells) else f"{min(cells)}–{max(cells)}"


# --------------------------------------------------------------------------- sizing a sweep


def power_table(
    data: ExperimentData,
    reference: Mapping[str, str],
    target: float,
    seeds: int,
    metrics: Sequence[str] = PAIRED_METRICS,
    alpha: float = 0.05,
    power: float = 0.8,
) -> str:
    """From a pilot experiment: per metric, the largest between-seed sd of the per-seed paired mean
    difference over its comparisons, the MDD with ``seeds`` seeds, and the seeds ``target`` needs."""
    check_reference(data.runs, reference)
    found, _ = pairings(data.runs, reference)
    pilot_seeds = sorted({len(p.runs) for p in found})
    lines = [
        f"power from experiment '{data.name}' (reference {label(reference)}; {len(found)} point(s) compared, "
        f"{'/'.join(map(str, pilot_seeds)) or 0} seed(s) each); two-sided alpha {alpha}, power {power:.0%}",
        f"{'metric':<16}  {'sd of seed Δ':>12}  {f'MDD @ {seeds} seeds':>16}  {f'seeds for Δ={target:g}':>16}",
    ]
    for metric in metrics:
        sds = []
        for pairing in found:
            cells = paired_cells(data, pairing, metric)
            if cells is not None and len(cells.seeds) > 1:
                sds.append(float(np.std(cells.seed_means(), ddof=1)))
        if not sds:
            lines.append(f"{metric:<16}  {'—':>12}  {'—':>16}  {'—':>16}  (needs a pilot with 2+ paired seeds)")
            continue
        sd = max(sds)
        lines.append(
            f"{metric:<16}  {sd:>12.4f}  {_num(mdd(sd, seeds, alpha, power)):>16}  "
            f"{_needed(seeds_needed(sd, target, alpha, power, SEEDS_CAP)):>16}"
        )
    lines.append("sd: the largest over the pilot's comparisons; MDD = (t_{1-α/2,n-1} + t_{power,n-1}) · sd / √n")
    return "\n".join(lines)
