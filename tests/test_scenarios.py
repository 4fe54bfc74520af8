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


SWEEPS = [p for p in sorted((ROOT / "scenarios" / "sweeps").glob("*.yaml")) if "base" not in p.name]


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_sweep_is_valid_at_every_point(path, tmp_path):
    from multiseal.run.sweep_file import load_sweep

    sweep = load_sweep(path, tracking_uri=f"sqlite:///{tmp_path}/m.db")  # validates every point's scenario
    assert sweep.points


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
        validate_scenario(
            {
                "agents": 4,
                "topology": {"kind": "ring", "params": {"k": 2}},
                "scheduler": {"kind": "budgeted", "params": {"budget": 2, "rank_by": "age"}},
            }
        )
    problems = {p.path: p.message for p in e.value.problems}
    assert problems == {
        "topology.params.k": "unknown parameter for topology ring; allowed: none",
        "scheduler.params.rank_by": "'age' is not one of 'trust', 'recency' or 'novelty'",
    }


def test_cli_set_with_bad_topology_params_exits_2_naming_the_key(capsys):
    quickstart = str(ROOT / "scenarios" / "quickstart.yaml")
    assert main(["validate", quickstart, "--set", "topology.kind=small-world", "--set", "topology.params.k=5"]) == 2
    assert "topology.params.k: must be an even int >= 2, got 5" in capsys.readouterr().err


# ------------------------------------------------ the model and the run's size (config/checks.py, config/estimate.py)


def test_alias_layers_shortcut_matches_the_built_architectures():
    from multiseal.config.checks import ALIAS_LAYERS, ALIASES, model_shape

    for alias in ALIASES:
        shape = model_shape(alias)
        assert {p.rsplit(".", 1)[-1] for p in (*shape.linear, *shape.embedding)} == ALIAS_LAYERS
    assert model_shape("tiny-random").parameters < 5e6 < 1e8 < model_shape("smollm2-135m").parameters


def test_lora_target_is_checked_against_the_models_layers():
    with pytest.raises(ScenarioError) as e:
        validate_scenario(
            {
                "model": {"base": "tiny-random", "lora": {"target_modules": ["q_proj", "qproj", "mlp"]}},
                "agents": [{"rank": 4}, {}],
            }
        )
    problems = {p.path: p.message for p in e.value.problems}
    assert set(problems) == {"model.lora.target_modules[1]", "model.lora.target_modules[2]"}
    assert problems["model.lora.target_modules[1]"].startswith(
        "'qproj' is not a linear module of tiny-random; its linear modules: down_proj, gate_proj, k_proj"
    )
    # a dotted tail of a module path is what peft matches too
    validate_scenario({"model": {"base": "tiny-random", "lora": {"target_modules": ["self_attn.q_proj", "lm_head"]}}})


def test_local_model_folder_needs_a_config_and_its_own_layers(tmp_path):
    from multiseal.learning.weights import tiny_random_config

    folder = tmp_path / "my-model"
    tiny_random_config().save_pretrained(folder)
    with pytest.raises(
        ScenarioError, match=r"model\.base: '.*my-model' is a local folder with a config\.json but no weights"
    ):
        validate_scenario({"model": {"base": str(folder)}})
    (folder / "model.safetensors").write_bytes(b"")
    assert validate_scenario({"model": {"base": str(folder)}}).model.base == str(folder)
    with pytest.raises(ScenarioError, match=r"target_modules\[0\]: 'c_attn' is not a linear module of .*my-model"):
        validate_scenario({"model": {"base": str(folder), "lora": {"target_modules": ["c_attn"]}}})
    (folder / "config.json").unlink()
    with pytest.raises(
        ScenarioError, match=r"model\.base: '.*my-model' is a local path, but .*config\.json does not exist"
    ):
        validate_scenario({"model": {"base": str(folder)}})


def test_hf_id_must_be_in_the_local_cache_unless_downloads_are_allowed(tmp_path, monkeypatch):
    import socket
    import uuid

    from multiseal.learning.weights import tiny_random_config

    def no_network(*args, **kwargs):
        raise AssertionError("validation touched the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = f"someone/tiny-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ScenarioError) as e:
        validate_scenario({"model": {"base": repo}})
    message = str(e.value)
    assert f"model.base: '{repo}' is not an alias" in message and str(tmp_path / "hub") in message
    assert "model.allow_download: true" in message
    assert validate_scenario({"model": {"base": repo, "allow_download": True}}).model.allow_download
    snapshot = tmp_path / "hub" / f"models--{repo.replace('/', '--')}" / "snapshots" / "abc123"
    tiny_random_config().save_pretrained(snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc123")
    with pytest.raises(ScenarioError, match="not in the local Hugging Face cache"):  # a config but no weights
        validate_scenario({"model": {"base": repo}})
    (snapshot / "model.safetensors").write_bytes(b"")
    validate_scenario({"model": {"base": repo}})
    with pytest.raises(ScenarioError, match=r"target_modules\[0\]: 'nope' is not a linear module"):
        validate_scenario({"model": {"base": repo, "lora": {"target_modules": ["nope"]}}})


def test_estimate_of_the_quickstart():
    from multiseal.config.estimate import estimate

    e = estimate(load_scenario(ROOT / "scenarios" / "quickstart.yaml"))
    assert e.generated_tokens == 3 * 2 * 128  # 3 agents x 2 rounds x 1 note of up to 128 tokens
    assert e.answers == (18 + 2 * 6) + 2 * 3 * (18 + 6)  # base row with probe candidates, then 3 agents x 2 rounds
    assert 5_000 < e.trained_tokens < 20_000
    if e.device == "cpu":
        assert 1 / 60 < e.hours < 0.5 and 0.8 < e.memory_gb < 4
    assert "generated tokens" in e.summary() and "answers" in e.summary()


def test_a_sharded_run_is_estimated_per_worker():
    from multiseal.config.estimate import estimate

    raw = {"model": {"base": "smollm2-135m"}, "agents": 8, "world": {"documents": 16}}
    one = estimate(validate_scenario(raw))
    four = estimate(validate_scenario({**raw, "execution": {"kind": "ray", "workers": 4}}))
    assert four.trained_tokens == one.trained_tokens and four.answers == one.answers  # the same work ...
    assert four.hours == pytest.approx(one.hours / 4)  # ... in four places at once
    assert four.memory["adapters"] == pytest.approx(one.memory["adapters"] / 4)
    assert "per worker, 4 Ray workers" in four.summary()
    local = estimate(validate_scenario({**raw, "execution": {"kind": "local", "workers": 4}}))
    assert local.hours == one.hours  # groups in one process run one after another


def test_limits_turn_a_run_that_would_not_end_into_a_named_problem():
    big = {
        "model": {"base": "tiny-random"},
        "agents": 4,
        "rounds": 100,
        "world": {"documents": 400},
        "inner_loop": {"epochs": 10_000},
    }
    with pytest.raises(ScenarioError) as e:
        validate_scenario(big)
    problems = {p.path: p.message for p in e.value.problems}
    assert set(problems) == {"limits.max_hours"}
    assert problems["limits.max_hours"].startswith("the estimated run time is ")
    assert "training dominates" in problems["limits.max_hours"]
    assert problems["limits.max_hours"].endswith("> 72 h; lower inner_loop.epochs (10000) or raise limits.max_hours")
    sc = validate_scenario({**big, "limits": {"max_hours": 1e6}})
    assert sc.limits.max_hours == 1e6
    with pytest.raises(ScenarioError, match=r"limits\.max_memory_gb: the estimated memory is .* > 10 MB"):
        validate_scenario({"model": {"base": "tiny-random"}, "limits": {"max_memory_gb": 0.01}})


def test_validation_allocates_nothing_in_proportion_to_the_sizes_asked_for():
    import tracemalloc

    from multiseal.config.checks import model_shape

    model_shape("tiny-random")  # the imports and the meta build are not what is measured
    raw = {
        "model": {"base": "tiny-random"},
        "agents": 256,
        "rounds": 100_000,
        "world": {"documents": 100_000},
        "arrivals": {"kind": "broadcast", "docs_per_round": 1},
        "evaluation": {"retention_probe": 10_000},
        "topology": {"kind": "ring"},
    }  # (a complete graph of 256 agents alone takes some 40 MB)
    tracemalloc.start()
    try:
        with pytest.raises(ScenarioError) as e:
            validate_scenario(raw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert {p.path for p in e.value.problems} == {"limits.max_hours", "limits.max_memory_gb"}
    assert peak < 20e6, f"validation peaked at {peak / 1e6:.0f} MB"


def test_the_estimate_asks_the_scheduler_kind_how_many_notes_an_agent_adapts_on():
    """No name is tested: ``budgeted`` caps the notes at its budget, ``isolated`` takes none of others', a
    policy its policy's budget, and a plugin kind with a cost hook of its own is heard the same way."""
    from multiseal.config.estimate import estimate
    from multiseal.registry import Params
    from multiseal.sim.schedulers import SCHEDULERS, build_scheduler

    raw = {
        "model": {"base": "smollm2-135m"},
        "agents": 6,
        "topology": {"kind": "complete"},
        "world": {"documents": 12},
        "rounds": 2,
    }

    def trained(scheduler: dict) -> float:
        return estimate(validate_scenario({**raw, "scheduler": scheduler})).trained_tokens

    everything = trained({"kind": "synchronous"})
    one = trained({"kind": "budgeted", "params": {"budget": 1}})
    own = trained({"kind": "isolated"})
    assert own < one < everything
    assert trained({"kind": "policy", "params": {"policy": "greedy", "policy_params": {"budget": 1}}}) == one
    assert trained({"kind": "policy", "params": {"policy": "greedy"}}) == everything

    class HalfParams(Params):
        pass

    SCHEDULERS.register(
        "test-half", lambda p: build_scheduler("synchronous", {}), params=HalfParams, cost=lambda p, n: n / 2
    )
    try:
        half = trained({"kind": "test-half"})
    finally:
        SCHEDULERS.unregister("test-half")
    assert one < half < everything
