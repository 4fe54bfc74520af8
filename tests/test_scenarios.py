"""Every shipped scenario validates; bad scenarios fail with every problem named by key path."""
from __future__ import annotations

from pathlib import Path

import pytest

from multiseal.cli import main
from multiseal.config.load import load_scenario, validate_scenario
from multiseal.errors import ScenarioError

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").rglob("*.yaml"))
SCENARIOS = [p for p in SCENARIOS if "sweeps" not in p.parts or "base" in p.name]


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_scenario_is_valid(path):
    load_scenario(path)


def test_every_problem_is_reported_in_one_pass():
    raw = {
        "kind": "simulaton",
        "model": {"bse": "x"},
        "agents": 4,
        "topology": {"kind": "small-world", "params": {"k": 6}},
        "scheduler": {"kind": "budgeted", "params": {}},
        "inner_loop": {"epochs": -1},
    }
    with pytest.raises(ScenarioError) as e:
        validate_scenario(raw, "bad.yaml")
    paths = {p.path for p in e.value.problems}
    assert {"kind", "model.bse", "topology.params.k", "scheduler.params.budget", "inner_loop.epochs"} <= paths
    assert "bad.yaml" in str(e.value)


def test_topology_k_must_be_below_agent_count():
    with pytest.raises(ScenarioError, match=r"topology\.params\.k: .*< .*4"):
        validate_scenario({"agents": 4, "topology": {"kind": "small-world", "params": {"k": 4}}})


def test_unknown_agent_in_edge_list_is_an_error():
    with pytest.raises(ScenarioError, match=r"topology\.params\.edges.*agent 9 does not exist"):
        validate_scenario({"agents": 3, "topology": {"kind": "edges", "params": {"edges": [[0, 9]]}}})


def test_agent_override_for_missing_agent():
    with pytest.raises(ScenarioError, match=r"agents\.overrides\.5: no such agent"):
        validate_scenario({"agents": {"count": 2, "overrides": {5: {"lr": 0.1}}}})


def test_per_agent_list_form():
    sc = validate_scenario({"agents": [{}, {"style": "self-qa", "rank": 8}]})
    assert sc.agents.count == 2 and sc.agents.overrides[1].style == "self-qa"


def test_unknown_style_is_named():
    with pytest.raises(ScenarioError, match=r"self_edit\.style: 'poem' is not one of"):
        validate_scenario({"self_edit": {"style": "poem"}})


def test_not_enough_documents_for_the_arrivals():
    with pytest.raises(ScenarioError, match=r"arrivals: arrival schedule needs 12 documents"):
        validate_scenario({"agents": 3, "rounds": 4, "world": {"documents": 5}})


def test_cli_validate_exit_status_2_and_message(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: simulation\ntopology: {kind: rng}\nmodel: [1, 2\n")
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "not valid YAML" in err


def test_cli_run_bad_data_file_fails_before_loading_a_model(tmp_path, capsys):
    data = tmp_path / "docs.json"
    data.write_text('[{"title": "A", "context": "", "questions": []}]')
    sc = tmp_path / "s.yaml"
    sc.write_text(f"kind: knowledge\nworld: {{kind: squad, path: {data.name}}}\nmodel: {{base: no-such-model}}\n")
    assert main(["run", str(sc), "--tracking-uri", f"sqlite:///{tmp_path}/m.db"]) == 2
    err = capsys.readouterr().err
    assert "docs.json" in err and "item 0" in err and "context" in err
    assert not (tmp_path / "m.db").exists(), "nothing is logged for a run that never started"


def test_cli_set_with_unknown_key(tmp_path, capsys):
    assert main(["validate", str(ROOT / "scenarios" / "quickstart.yaml"), "--set", "topology.knd=ring"]) == 2
    assert "topology.knd" in capsys.readouterr().err


def test_headline_must_be_a_registered_grader():
    from multiseal.learning.grading import GRADERS

    with pytest.raises(ScenarioError, match=r"evaluation\.headline: 'judge' is not one of em, f1, strict"):
        validate_scenario({"evaluation": {"headline": "judge"}})
    GRADERS.register("judge", lambda prediction, gold, question: 1.0)
    try:
        assert validate_scenario({"evaluation": {"headline": "judge"}}).evaluation.headline == "judge"
    finally:
        GRADERS.unregister("judge")


def test_kind_params_are_checked_against_the_kinds_model():
    with pytest.raises(ScenarioError) as e:
        validate_scenario({"agents": 4, "topology": {"kind": "ring", "params": {"k": 2}},
                           "scheduler": {"kind": "budgeted", "params": {"budget": 2, "rank_by": "age"}}})
    problems = {p.path: p.message for p in e.value.problems}
    assert problems == {
        "topology.params.k": "unknown parameter for topology ring; allowed: none",
        "scheduler.params.rank_by": "'age' is not one of 'trust', 'recency' or 'novelty'"}


def test_cli_set_with_bad_topology_params_exits_2_naming_the_key(capsys):
    quickstart = str(ROOT / "scenarios" / "quickstart.yaml")
    assert main(["validate", quickstart, "--set", "topology.kind=small-world", "--set", "topology.params.k=5"]) == 2
    assert "topology.params.k: must be an even int >= 2, got 5" in capsys.readouterr().err
