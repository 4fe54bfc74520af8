"""The one table of multiseal's metrics: what each is, where its formula lives, which way is better.

Every per-agent metric a simulation reports has one row here. The parts that list metrics read this
table instead of keeping their own lists: the round's metrics (:mod:`multiseal.sim.metrics`, the
fact metrics of :mod:`multiseal.sim.facts`, the forgetting measures of the measure stage), the
PettingZoo observation's history (:mod:`multiseal.rl.interface`), the run's summary table, the paired
comparisons and their verdicts (:mod:`multiseal.analysis.paired`) and the report's figure.

A row's ``aggregate`` says how the population sees it: ``mean_std`` gives ``pop.<name>.mean`` and
``pop.<name>.std`` over agents (NaN ignored). Names built from a pattern are not rows: per-edge trust
``trust_from_<u>``, the evaluation budget's half-widths ``<name>_ci95``, diffusion and mean accuracy by
graph distance from a document's first recipient ``pop.diffusion.d<k>`` and ``pop.acc.d<k>`` (the
distance × round table of a run), the adversaries' ``pop.adv.*`` and the fact metrics' population
figures: ``pop.fact_diffusion.d<k>``, ``pop.misinformation`` and ``.spread``, and by hop of a received
note ``pop.hop.{facts,wrong,introduced,notes}.h<k>`` (:func:`multiseal.sim.facts.hop_metrics`).
The order of the rows is the order metrics are reported in (and the observation's layout).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

Level = Literal["agent", "population"]
Cells = Literal["documents", "agent"]


@dataclass(frozen=True)
class Metric:
    """One metric (see the module's docstring)."""

    name: str
    level: Level
    group: str  # which code produces it: round | composition | facts | forgetting | population
    home: str  # the module holding its formula
    higher_is_better: bool | None  # None: a count or a size, neither better nor worse
    description: str
    aggregate: Literal["mean_std", "none"] = "mean_std"  # the population's view of an agent metric
    cells: Cells | None = None  # paired comparisons: per (agent, document) cell, per agent, or not compared
    observed: bool = False  # in the PettingZoo observation's history block
    summary: bool = False  # in the run's summary table
    figure: bool = False  # in the report's paired-comparison figure

    def outcome(self, verdict: str) -> str:
        """``better`` / ``worse`` for a paired verdict ``higher`` / ``lower``; empty when the verdict
        decides nothing or the metric has no better direction."""
        if self.higher_is_better is None or verdict not in ("higher", "lower"):
            return ""
        return "better" if (verdict == "higher") == self.higher_is_better else "worse"


_ACC, _CONT, _FACTS = "multiseal.sim.accuracy", "multiseal.sim.continual", "multiseal.sim.facts"

METRICS: tuple[Metric, ...] = (
    Metric(
        "acc_own",
        "agent",
        "round",
        _ACC,
        True,
        "accuracy on the documents the agent received itself",
        cells="documents",
        observed=True,
        summary=True,
        figure=True,
    ),
    Metric(
        "acc_received",
        "agent",
        "round",
        _ACC,
        True,
        "accuracy on documents it learnt of only through notes",
        cells="documents",
        observed=True,
        summary=True,
        figure=True,
    ),
    Metric(
        "acc_all",
        "agent",
        "round",
        _ACC,
        True,
        "accuracy on every document introduced so far",
        cells="documents",
        observed=True,
        summary=True,
    ),
    Metric(
        "acc_unreached",
        "agent",
        "round",
        _ACC,
        True,
        "accuracy on introduced documents that have not reached it",
        summary=True,
    ),
    Metric("acc_future", "agent", "round", _ACC, True, "accuracy on documents not yet introduced"),
    Metric(
        "forgetting",
        "agent",
        "round",
        _CONT,
        False,
        "per learnt document, best earlier accuracy minus current",
        cells="agent",
        observed=True,
        summary=True,
    ),
    Metric("forgetting_max", "agent", "round", _CONT, False, "the largest forgetting over its learnt documents"),
    Metric(
        "bwt",
        "agent",
        "round",
        _CONT,
        True,
        "backward transfer: current minus just-after-learning accuracy",
        cells="agent",
    ),
    Metric(
        "fwt",
        "agent",
        "round",
        _CONT,
        True,
        "forward transfer: accuracy just before learning a document minus the base's",
    ),
    Metric(
        "retention",
        "agent",
        "round",
        _ACC,
        True,
        "share of the probe (questions the base answered right) kept",
        cells="agent",
        observed=True,
        summary=True,
        figure=True,
    ),
    Metric("churn_lost", "agent", "round", _CONT, False, "share of questions right at the last row and wrong now"),
    Metric("churn_gained", "agent", "round", _CONT, True, "share of questions wrong at the last row and right now"),
    Metric(
        "acc_composition",
        "agent",
        "composition",
        _ACC,
        True,
        "accuracy on questions combining two documents",
        cells="agent",
    ),
    Metric(
        "note_fidelity", "agent", "facts", _FACTS, True, "share of the facts in its notes this round stated correctly"
    ),
    Metric(
        "note_hallucination",
        "agent",
        "facts",
        _FACTS,
        False,
        "share of the facts in its notes this round stated wrongly",
    ),
    Metric(
        "transfer_efficiency",
        "agent",
        "facts",
        _FACTS,
        True,
        "received facts it answers, of those a note it trained on stated",
    ),
    Metric(
        "writer_miss",
        "agent",
        "facts",
        _FACTS,
        False,
        "received facts no note it trained on stated (unanswered), per received fact",
    ),
    Metric(
        "learner_miss",
        "agent",
        "facts",
        _FACTS,
        False,
        "received facts a note stated that it still cannot answer, per received fact",
    ),
    Metric(
        "ppl_ratio",
        "agent",
        "forgetting",
        "multiseal.learning.drift",
        False,
        "perplexity on general text, relative to the base",
        cells="agent",
    ),
    Metric(
        "kl_base",
        "agent",
        "forgetting",
        "multiseal.learning.drift",
        False,
        "KL divergence from the base's next-token distribution on general text",
        cells="agent",
    ),
    Metric("gated_out", "agent", "forgetting", "multiseal.sim.stages.adapt", None, "updates the gate rejected"),
    Metric("combine_bytes", "agent", "forgetting", "multiseal.sim.mitigations", None, "bytes of stored deltas"),
    Metric("adapter_rank", "agent", "forgetting", "multiseal.sim.mitigations", None, "rank of the combined adapter"),
    Metric("trust_rejected", "agent", "forgetting", "multiseal.sim.trust", None, "inbox notes dropped for low trust"),
    Metric(
        "pop.diffusion",
        "population",
        "population",
        "multiseal.sim.diffusion",
        True,
        "share of (agent, introduced document) pairs answered at or above the threshold",
        aggregate="none",
    ),
)

_BY_NAME = {m.name: m for m in METRICS}


def metric(name: str) -> Metric:
    """The row of ``name``; a population name ``pop.<name>.mean`` / ``.std`` finds its agent metric's row."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    parts = name.split(".")
    if len(parts) == 3 and parts[0] == "pop" and parts[2] in ("mean", "std") and parts[1] in _BY_NAME:
        return _BY_NAME[parts[1]]
    raise KeyError(f"unknown metric '{name}'; known: {', '.join(_BY_NAME)}")


def select(**where: object) -> tuple[str, ...]:
    """The names of the rows whose fields equal ``where``, in the table's order
    (``select(group="facts")``, ``select(observed=True)``)."""
    known = {f.name for f in fields(Metric)}
    if unknown := set(where) - known:
        raise TypeError(f"no metric field {', '.join(sorted(unknown))}; fields: {', '.join(sorted(known))}")
    return tuple(m.name for m in METRICS if all(getattr(m, k) == v for k, v in where.items()))
