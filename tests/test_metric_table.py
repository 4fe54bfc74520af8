"""The one metric table (multiseal/metric_table.py): complete, read by every part that lists metrics."""

from __future__ import annotations

import importlib.util
import re

import pytest

from multiseal.analysis import paired, report
from multiseal.config.load import validate_scenario
from multiseal.metric_table import METRICS, metric, select
from multiseal.rl import interface
from multiseal.run.recipes import simulation as recipe
from multiseal.sim import facts, metrics
from multiseal.sim.stages import measure

# Names a round builds from a pattern (the table's docstring lists them).
PATTERNED = re.compile(r"^trust_from_\d+$|_ci95$")

FULL = {
    "model": {"base": "tiny-random", "lora": {"rank": 4, "alpha": 8}},
    "world": {"documents": 6, "questions_per_doc": [2, 2]},
    "agents": 3,
    "rounds": 2,
    "topology": {"kind": "ring"},
    "self_edit": {"style": "implications", "max_new_tokens": 8},
    "inner_loop": {"epochs": 1, "batch_size": 2},
    "evaluation": {"max_new_tokens": 4, "retention_probe": 2, "drift_passages": 2, "sample_documents": 2},
    "mitigations": [{"kind": "gate"}, {"kind": "combine"}],
    "trust": {"learn": True},
}


def test_every_metric_a_round_reports_per_agent_has_a_row(run_sim):
    """A round with facts, drift, a gate, combined deltas, learnt trust and the evaluation budget: each
    per-agent name it reports is a row of the table or one of the documented patterns."""
    sim = run_sim(validate_scenario(FULL))
    reported = {k for r in sim.records for m in r.agents.values() for k in m}
    unknown = {k for k in reported if k not in select(level="agent") and not PATTERNED.search(k)}
    assert not unknown
    assert set(select(level="agent")) <= reported  # and every row is reported by such a round
    population = {k for r in sim.records for k in r.population}
    assert {f"pop.{n}.{s}" for n in select(level="agent", aggregate="mean_std") for s in ("mean", "std")} <= population


def test_the_parts_that_list_metrics_read_the_table():
    assert metrics.METRIC_NAMES == select(group="round")
    assert facts.FACT_METRIC_NAMES == select(group="facts")
    assert measure.FORGETTING_NAMES == frozenset(select(group="forgetting", aggregate="mean_std"))
    assert interface.HISTORY_METRICS == select(observed=True)
    assert recipe.SUMMARY_METRICS == select(summary=True)
    assert paired.PAIRED_METRICS == select(cells="documents") + select(cells="agent")
    assert report.PAIRED_FIGURE_METRICS == select(figure=True)


def test_rows_are_complete_and_name_a_real_home():
    assert len({m.name for m in METRICS}) == len(METRICS)
    for m in METRICS:
        assert importlib.util.find_spec(m.home) is not None, m.name
        assert m.description and m.level in ("agent", "population")
        assert not (m.level == "population" and m.aggregate != "none"), m.name


def test_which_way_is_better():
    assert metric("acc_received").outcome("higher") == "better"
    assert metric("forgetting").outcome("higher") == "worse"
    assert metric("kl_base").outcome("lower") == "better"
    assert metric("gated_out").outcome("higher") == ""  # a count: neither
    assert metric("acc_all").outcome("not distinguishable") == ""
    assert metric("pop.forgetting.mean") is metric("forgetting")
    with pytest.raises(KeyError, match="unknown metric 'acc_al'; known: acc_own"):
        metric("acc_al")
    with pytest.raises(TypeError, match="no metric field colour"):
        select(colour="red")
