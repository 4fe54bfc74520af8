"""Which continuous forgetting measure tracks the accuracy-based ones (issue 14).

Every (run, agent, round) of an experiment is one observation of the continuous measures — the
perplexity ratio on general text and the KL to the base (:mod:`multiseal.learning.drift`) — and of the
accuracy-based ones: the retention drop (1 − retention on the probe the base answered right) and
``forgetting`` (Chaudhry et al.: mean over learnt documents of best earlier accuracy − current). The
table gives Spearman's rank correlation of each pair over all observations (scipy), with its p-value
and the number of observations; a measure *tracks* forgetting when its correlation is positive.
"""

from __future__ import annotations

import math
from typing import Any

from scipy.stats import spearmanr

from multiseal.analysis.load import ExperimentData

CONTINUOUS = ("ppl_ratio", "kl_base")
ACCURACY_BASED = {"retention drop": ("retention", lambda v: 1.0 - v), "forgetting": ("forgetting", lambda v: v)}


def observations(data: ExperimentData) -> list[dict[str, float]]:
    """One row per (run, agent, round) with every measure the run logged for that agent."""
    rows = []
    for run in data.runs:
        series: dict[str, dict[int, dict[int, float]]] = {}
        for name in {*CONTINUOUS, *(m for m, _ in ACCURACY_BASED.values())}:
            series[name] = {a: dict(s) for a, s in data.agent_history(run, name).items()}
        agents = sorted({a for s in series.values() for a in s})
        for a in agents:
            steps = sorted({t for s in series.values() for t in s.get(a, {})})
            for t in steps:
                row: dict[str, float] = {}
                for name in CONTINUOUS:
                    row[name] = series[name].get(a, {}).get(t, math.nan)
                for label, (name, f) in ACCURACY_BASED.items():
                    v = series[name].get(a, {}).get(t, math.nan)
                    row[label] = f(v) if math.isfinite(v) else math.nan
                rows.append(row)
    return rows


def agreement(rows: list[dict[str, float]]) -> list[dict[str, Any]]:
    """Spearman's rho of each continuous measure against each accuracy-based one."""
    out = []
    for c in CONTINUOUS:
        for label in ACCURACY_BASED:
            pairs = [(r[c], r[label]) for r in rows if math.isfinite(r[c]) and math.isfinite(r[label])]
            if len(pairs) < 3 or len({x for x, _ in pairs}) < 2 or len({y for _, y in pairs}) < 2:
                out.append({"measure": c, "against": label, "rho": math.nan, "p": math.nan, "n": len(pairs)})
                continue
            res = spearmanr([x for x, _ in pairs], [y for _, y in pairs])
            out.append(
                {"measure": c, "against": label, "rho": float(res.statistic), "p": float(res.pvalue), "n": len(pairs)}
            )
    return out


def agreement_section(data: ExperimentData) -> list[str]:
    """The report's markdown section (empty when no run logged a continuous measure)."""
    rows = observations(data)
    if not any(math.isfinite(r[c]) for r in rows for c in CONTINUOUS):
        return []
    lines = [
        "## Continuous forgetting measures against accuracy-based forgetting",
        "",
        ("Spearman's rank correlation over every (run, agent, round); positive: the measure rises with forgetting."),
        "",
        "| measure | against | rho | p | observations |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for r in agreement(rows):
        lines.append(f"| {r['measure']} | {r['against']} | {r['rho']:+.3f} | {r['p']:.3g} | {r['n']} |")
    return lines + [""]
