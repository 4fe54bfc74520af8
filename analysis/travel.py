"""The knowledge-that-travels study (issue 25), regenerated from its runs through the public API.

    python analysis/travel.py scenarios/sweeps/travel.yaml            # runs what is missing, then reports
    python analysis/travel.py scenarios/sweeps/travel.yaml --no-run   # report the runs there are

It prints, in Markdown:

1. every arm against isolated agents, paired by seed (``multiseal.compare``: cluster bootstrap over seeds
   then cells, Holm over the arms): acc_received at the final round, retention and kl_base (the cost in
   forgetting), with the minimum detectable difference and the seeds each difference needs;
2. retelling against forwarding on each topology, paired the same way;
3. acc_received at the final round **by graph distance** from each document's source: per arm and
   distance, the paired Δ against isolated agents over the same (agent, document) cells;
4. facts surviving per hop (``pop.hop.facts.h<k>`` at the final round, mean over seeds);

and draws the distance × round table of every arm (mean accuracy by distance and round, mean over
seeds) into ``--figure`` (default ``docs/figures/travel-distance.png``).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import networkx as nx
import numpy as np

import multiseal as ms
from multiseal.analysis.figures import plot_distance_by_round
from multiseal.stats import cluster_bootstrap, holm, verdict

HEADLINE = ("acc_received", "retention", "kl_base")
HOP_KEY = re.compile(r"^pop\.hop\.facts\.h(\d+)$")
DISTANCE_KEY = re.compile(r"^pop\.acc\.d(\d+)$")


def groups_of(path: str | Path, run: bool) -> tuple[dict[str, list[ms.RunResult]], str]:
    """The sweep's finished runs by arm (seed left out) and the reference arm's label."""
    if run:
        done = ms.sweep(path, progress=False)
    else:
        from multiseal.run.sweep import SweepResult
        from multiseal.run.sweep_file import load_sweep

        done = ms.SweepRuns(load_sweep(path), SweepResult([]))
    if not done.groups or done.reference not in done.groups:
        raise SystemExit(f"{path}: no finished runs of the reference arm yet")
    return done.groups, done.reference


def short(label: str) -> str:
    """``topology.kind=ring sharing.relay=true sharing.retell=false`` (or a paired row's
    ``group=<that>``) -> ``ring, forwarding``."""
    kind = re.search(r"topology\.kind=(\S+)", label)
    if "scheduler.kind=isolated" in label or (kind and kind.group(1) == "none"):
        return "isolated"
    how = "retelling" if "sharing.retell=true" in label else "forwarding"
    return f"{kind.group(1) if kind else '?'}, {how}"


def distance_of(run: ms.RunResult) -> np.ndarray:
    """(agents, documents) hops from each document's source in the run's last graph (-1: none)."""
    tensor = run.accuracy or {}
    if "distance" in tensor:
        return np.asarray(tensor["distance"])
    own = tensor["own"]
    graph = nx.read_graphml(run.artifact("graph.graphml"), node_type=int)
    dist = np.full(own.shape, -1, dtype=int)
    for j in range(own.shape[1]):
        holders = np.flatnonzero(own[:, j])
        if len(holders):
            for a, h in nx.single_source_shortest_path_length(graph, int(holders[0])).items():
                dist[a, j] = h
    return dist


def by_distance(groups: Mapping[str, Sequence[ms.RunResult]], reference: str) -> list[dict]:
    """acc_received at the final round by graph distance: per arm and distance, the paired Δ against the
    reference over the (agent, document) cells at that distance in the arm's graph that the agent does not
    hold (agents are the clusters, seeds the outer level); Holm over the arms at each distance."""
    ref = {r.seed: r for r in groups[reference]}
    rows = []
    for label, runs in groups.items():
        if label == reference:
            continue
        per_k: dict[int, list[np.ndarray]] = {}
        for run in runs:
            if run.seed not in ref:
                continue
            a, b = run.accuracy, ref[run.seed].accuracy
            if a is None or b is None:
                continue
            final, base = a["acc"][-1], b["acc"][-1]
            dist, own = distance_of(run), a["own"]
            for k in sorted(set(dist[dist > 0].ravel())):
                cells = (dist == k) & ~own & a["introduced"][-1][None, :]
                per_k.setdefault(int(k), []).append(np.where(cells, final - base, np.nan))
        for k, diffs in sorted(per_k.items()):
            boot = cluster_bootstrap(diffs)
            rows.append({"arm": label, "distance": k, "delta": boot.delta, "lo": boot.lo, "hi": boot.hi, "p": boot.p})
    for k in {r["distance"] for r in rows}:
        same = [r for r in rows if r["distance"] == k]
        for r, p in zip(same, holm([r["p"] for r in same])):
            r["p_holm"], r["verdict"] = float(p), verdict(r["delta"], float(p))
    return sorted(rows, key=lambda r: (r["distance"], r["arm"]))


def final_means(groups: Mapping[str, Sequence[ms.RunResult]], pattern: re.Pattern) -> dict[str, dict[int, float]]:
    """Per arm, ``{k: mean over seeds of the final value of the metrics matching pattern (group 1 = k)}``."""
    out: dict[str, dict[int, float]] = {}
    for label, runs in groups.items():
        cells: dict[int, list[float]] = {}
        for run in runs:
            for key in run.metric_names:
                if (m := pattern.match(key)) and math.isfinite(v := run.final(key)):
                    cells.setdefault(int(m.group(1)), []).append(v)
        out[label] = {k: float(np.mean(v)) for k, v in sorted(cells.items())}
    return out


def distance_rounds(groups: Mapping[str, Sequence[ms.RunResult]]) -> dict[str, dict[int, list[tuple[int, float]]]]:
    """Per arm, ``{distance: [(round, mean over seeds of pop.acc.d<k>)]}``: the distance × round table."""
    out: dict[str, dict[int, list[tuple[int, float]]]] = {}
    for label, runs in groups.items():
        cells: dict[int, dict[int, list[float]]] = {}
        for run in runs:
            for key in run.metric_names:
                if m := DISTANCE_KEY.match(key):
                    for step, v in run.history(key):
                        if math.isfinite(v):
                            cells.setdefault(int(m.group(1)), {}).setdefault(step, []).append(v)
        out[short(label)] = {
            k: [(s, float(np.mean(v))) for s, v in sorted(by_step.items())] for k, by_step in sorted(cells.items())
        }
    return out


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _f(x: float, sign: bool = False) -> str:
    return "—" if not math.isfinite(x) else (f"{x:+.3f}" if sign else f"{x:.3f}")


def _ci(delta: float, lo: float, hi: float) -> str:
    return f"{_f(delta, True)} [{_f(lo, True)}, {_f(hi, True)}]"


def report(groups: Mapping[str, Sequence[ms.RunResult]], reference: str, figure: Path | None) -> str:
    """The study's tables in Markdown (the module's docstring), and its figure drawn into ``figure``."""
    seeds = sorted({r.seed for runs in groups.values() for r in runs})
    out = [f"Seeds: {', '.join(map(str, seeds))}; arms: {len(groups)} (reference: {short(reference)}).", ""]
    against = ms.compare(groups, reference, HEADLINE)
    out += ["**Against isolated agents** (final round, paired by seed, Holm over the arms):", ""]
    out.append(
        _table(
            ["arm", "metric", "isolated", "arm", "Δ [95% CI]", "Holm p", "verdict", "MDD", "seeds needed"],
            [
                [short(r.point), r.metric, _f(r.reference_mean), _f(r.point_mean), _ci(r.delta, r.lo, r.hi)]
                + [f"{r.p_holm:.3g}", r.verdict, _f(r.mdd), r.seeds_needed]
                for r in against.rows
            ],
        )
    )
    pairs = []
    for label in groups:
        if short(label).endswith("retelling"):
            fwd = next((g for g in groups if short(g) == short(label).replace("retelling", "forwarding")), None)
            if fwd is not None:
                c = ms.compare({"forwarding": groups[fwd], "retelling": groups[label]}, "forwarding", HEADLINE)
                topology = short(label).split(",")[0]
                pairs += [[topology, r.metric, _ci(r.delta, r.lo, r.hi), r.verdict, _f(r.mdd)] for r in c.rows]
    if pairs:
        out += ["", "**Retelling against forwarding**, per topology (paired by seed):", ""]
        out.append(_table(["topology", "metric", "Δ [95% CI]", "verdict", "MDD"], pairs))
    dist_rows = by_distance(groups, reference)
    if dist_rows:
        out += ["", "**acc_received at the final round by graph distance** from the source, against isolation:", ""]
        out.append(
            _table(
                ["distance", "arm", "Δ [95% CI]", "Holm p", "verdict"],
                [
                    [r["distance"], short(r["arm"]), _ci(r["delta"], r["lo"], r["hi"])]
                    + [f"{r.get('p_holm', math.nan):.3g}", r.get("verdict", "")]
                    for r in dist_rows
                ],
            )
        )
    hops = final_means({g: r for g, r in groups.items() if g != reference}, HOP_KEY)
    ks = sorted({k for v in hops.values() for k in v})
    if ks:
        out += ["", "**Facts surviving per hop**: share of a document's facts stated correctly by the notes"]
        out += ["received k hops from its source (final round, mean over seeds):", ""]
        out.append(
            _table(
                ["arm", *(f"hop {k}" for k in ks)],
                [[short(g), *(_f(v.get(k, math.nan)) for k in ks)] for g, v in hops.items()],
            )
        )
    if figure is not None:
        figure.parent.mkdir(parents=True, exist_ok=True)
        plot_distance_by_round(
            distance_rounds(groups), figure, "accuracy by graph distance and round (mean over seeds)"
        )
        out += ["", f"Figure: {figure}"]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("sweep", help="the study's sweep file (scenarios/sweeps/travel.yaml)")
    p.add_argument("--no-run", action="store_true", help="report the finished runs only")
    p.add_argument("--figure", type=Path, default=Path("docs/figures/travel-distance.png"))
    args = p.parse_args(argv)
    groups, reference = groups_of(args.sweep, run=not args.no_run)
    print(report(groups, reference, args.figure))
    return 0


if __name__ == "__main__":
    sys.exit(main())
