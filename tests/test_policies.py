"""Policies: conformance of every registered policy, the ``policy`` scheduler kind, scenario
validation (import paths only on explicit opt-in) and a policy-driven run logged to MLflow."""

from __future__ import annotations

import textwrap
import warnings

import numpy as np
import pytest

from multiseal.config.builders import build_simulation
from multiseal.config.load import validate_scenario
from multiseal.errors import ParamsError, ScenarioError
from multiseal.rl.interface import Interface
from multiseal.rl.policies import (
    POLICIES,
    build_policy,
    check_policy,
    policy_driver,
    validate_policy_params,
)
from multiseal.run.pettingzoo import parallel_env
from multiseal.sim.schedulers import (
    PolicyScheduler,
    build_scheduler,
    check_scheduler,
    validate_scheduler_params,
)

SMALL = {
    "rounds": 2,
    "seed": 0,
    "model": {"base": "tiny-random", "lora": {"rank": 4, "alpha": 8}},
    "world": {"documents": 4, "questions_per_doc": [2, 2]},
    "agents": 3,
    "arrivals": {"kind": "overlapping", "copies": 2},
    "topology": {"kind": "ring"},
    "self_edit": {"max_new_tokens": 8},
    "inner_loop": {"epochs": 1, "max_length": 32},
    "evaluation": {"max_new_tokens": 4, "retention_probe": 0},
}


def scenario(**changes):
    return validate_scenario({**SMALL, **changes})


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def problems(params: dict) -> dict[str, str]:
    return dict(validate_policy_params(params))


# ---------------------------------------------------------------- conformance


@pytest.mark.parametrize("name", POLICIES.names())
def test_every_registered_policy_conforms(tiny_model, name):
    e = parallel_env(scenario(), model=tiny_model)
    policy = build_policy(name, e.interface, seed=0)
    returns = check_policy(policy, e, seed=0)
    assert set(returns) == set(e.possible_agents)
    e.close()


def test_check_policy_catches_masked_out_bits(tiny_model):
    e = parallel_env(scenario(topology={"kind": "line", "directed": True}), model=tiny_model)

    def reckless(obs, infos):
        return {
            a: {"style": 0, "adapt": np.ones(8, np.int8), "adapt_new": np.ones(3, np.int8), "send": np.ones(3, np.int8)}
            for a in obs
        }

    with pytest.raises(AssertionError, match="masked-out bits"):
        check_policy(reckless, e)
    e.close()


def test_random_policy_is_reproducible_from_its_seed():
    interface = Interface(3, ["implications"] * 3, rounds=2, note_tokens=8)
    infos = {
        n: {
            "action_mask": {
                "style": np.ones(len(interface.styles), np.int8),
                "adapt": np.full(8, 2, np.int8),
                "adapt_new": np.full(3, 2, np.int8),
                "send": np.full(3, 2, np.int8),
            }
        }
        for n in interface.names
    }
    obs = {n: np.zeros(interface.size, np.float32) for n in interface.names}
    first = build_policy("random", interface, seed=4)(obs, infos)
    again = build_policy("random", interface, seed=4)(obs, infos)
    assert all(
        np.array_equal(first[n]["adapt"], again[n]["adapt"]) and first[n]["style"] == again[n]["style"]
        for n in interface.names
    )


def test_greedy_behaves_like_synchronous_when_nothing_is_left_pending(tiny_model):
    """Greedy takes every delivery and sends to every neighbour in the configured style: the same
    rounds as the synchronous scheduler, so the same accuracy tensor."""
    sync = build_simulation(scenario(), tiny_model, progress=False)
    sync.rename_adapters([f"gs{i}x" for i in range(len(sync.setup.agents))])
    sync.run()
    sc = scenario(scheduler={"kind": "policy", "params": {"policy": "greedy"}})
    driven = build_simulation(sc, tiny_model, progress=False)
    driven.rename_adapters([f"gp{i}x" for i in range(len(driven.setup.agents))])
    assert isinstance(driven.setup.scheduler, PolicyScheduler)
    driven.run(actions_fn=policy_driver(driven, sc.scheduler.params, seed=sc.seed))
    assert [r.trained_sequences for r in driven.records] == [r.trained_sequences for r in sync.records]
    np.testing.assert_array_equal(driven.state.acc, sync.state.acc)
    sync.close()
    driven.close()


def test_greedy_budget_limits_pending_notes(tiny_model):
    e = parallel_env(scenario(), model=tiny_model)
    _, infos = e.reset(seed=0)
    zero = {
        a: {
            "style": 0,
            "adapt": np.zeros(8, np.int8),
            "adapt_new": np.zeros(3, np.int8),
            "send": (infos[a]["action_mask"]["send"] != 0).astype(np.int8),
        }
        for a in e.agents
    }
    obs, _, _, _, infos = e.step(zero)  # nobody adapts: notes pile up in the inboxes
    acts = build_policy("greedy", e.interface, params={"budget": 1})(obs, infos)
    assert all(int(a["adapt"].sum()) <= 1 for a in acts.values())
    assert any(int(a["adapt"].sum()) == 1 for a in acts.values())
    e.close()


# ---------------------------------------------------------------- the scheduler kind


def test_policy_scheduler_falls_back_to_synchronous_and_conforms():
    sched = build_scheduler("policy", {"policy": "greedy"})
    assert isinstance(sched, PolicyScheduler)
    for n in (1, 2, 4):
        check_scheduler(sched, n=n)


def test_policy_name_is_required_and_must_be_known():
    # the scheduler kind's model reports a missing or mistyped key; the policy check skips those
    assert "params.policy" in dict(validate_scheduler_params("policy", {}))
    assert problems({}) == {} and problems({"policy": 3}) == {}
    assert "is not one of random, greedy" in problems({"policy": "smart"})["params.policy"]
    assert problems({"policy": "greedy", "policy_params": {"budget": 0}}) == {
        "params.policy_params.budget": "Input should be greater than or equal to 1, got 0"
    }
    assert problems({"policy": "random", "policy_params": {"budget": 2}}) == {
        "params.policy_params.budget": "unknown parameter for policy random; allowed: none"
    }
    assert problems({"policy": "greedy", "policy_params": {"budget": 2}}) == {}
    bad = dict(
        validate_scheduler_params(
            "policy", {"policy": "greedy", "inbox_slots": 0, "styles": ["poetry"], "visible_neighbour_metrics": "yes"}
        )
    )
    assert set(bad) == {"params.inbox_slots", "params.styles[0]", "params.visible_neighbour_metrics"}


def test_build_policy_hands_a_registered_factory_its_parsed_params():
    interface = Interface(2, ["rewrite"] * 2, rounds=1, note_tokens=8)
    assert build_policy("greedy", interface, params={"budget": 3}).budget == 3
    assert build_policy("greedy", interface).budget is None
    with pytest.raises(ParamsError, match=r"params\.policy_params\.budget: Input should be a valid integer, got '3'"):
        build_policy("greedy", interface, params={"budget": "3"})


def test_every_policy_declares_a_params_model():
    for name in POLICIES.names():
        model = POLICIES.get(name).params
        assert model.model_config.get("extra") == "forbid", name
        assert POLICIES.validate(name, {"no_such_param": 1})[1][0][0] == "params.no_such_param"


def test_an_import_path_needs_an_explicit_opt_in(tmp_path, monkeypatch):
    (tmp_path / "my_policies.py").write_text(
        textwrap.dedent("""
        import numpy as np

        def make(interface, *, seed=0, style=0):
            def policy(obs, infos):
                return {n: {"style": style, "adapt": np.zeros(interface.inbox_slots, np.int8),
                            "adapt_new": (infos[n]["action_mask"]["adapt_new"] != 0).astype(np.int8),
                            "send": np.zeros(interface.n_agents, np.int8)} for n in obs}
            return policy
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    refused = problems({"policy": "my_policies:make"})
    assert "needs scheduler.params.allow_import: true" in refused["params.policy"]
    assert problems({"policy": "my_policies:make", "allow_import": True}) == {}
    assert "cannot load" in problems({"policy": "my_policies:nothing", "allow_import": True})["params.policy"]
    assert "cannot load" in problems({"policy": "no_such_module_xyz:make", "allow_import": True})["params.policy"]
    interface = Interface(2, ["rewrite"] * 2, rounds=1, note_tokens=8)
    with pytest.raises(ParamsError, match="allow_import"):
        build_policy("my_policies:make", interface)
    policy = build_policy("my_policies:make", interface, params={"style": 1}, allow_import=True)
    mask = {"adapt_new": np.array([2, 0], np.int8)}
    assert policy({"agent_0": None}, {"agent_0": {"action_mask": mask}})["agent_0"]["style"] == 1


def test_scenario_errors_name_the_scheduler_key():
    with pytest.raises(ScenarioError) as err:
        validate_scenario({**SMALL, "scheduler": {"kind": "policy", "params": {"policy": "os:system"}}})
    assert "scheduler.params.policy: 'os:system' is an import path" in str(err.value)
    with pytest.raises(ScenarioError, match="scheduler.params.policy: is required"):
        validate_scenario({**SMALL, "scheduler": {"kind": "policy"}})


def test_shipped_policy_scenario_validates():
    from pathlib import Path

    from multiseal.config.load import load_scenario

    sc = load_scenario(Path(__file__).parent.parent / "scenarios" / "policy-greedy.yaml")
    assert sc.scheduler.kind == "policy" and sc.scheduler.params["policy"] == "greedy"


# ---------------------------------------------------------------- a policy-driven run under MLflow


def test_a_policy_run_logs_to_mlflow_like_any_other(tmp_path):
    import mlflow

    from multiseal.run.recipes.simulation import run_simulation

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sc = scenario(
        scheduler={"kind": "policy", "params": {"policy": "random"}}, tracking={"uri": uri, "experiment": "policy-test"}
    )
    summary = run_simulation(sc, progress=False).text
    assert "MLflow run" in summary
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("policy-test")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.data.params["scheduler.kind"] == "policy"
    history = client.get_metric_history(run.info.run_id, "agent.0.acc_own")
    assert [m.step for m in history] == [1, 2]
