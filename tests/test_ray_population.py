"""A population sharded over Ray actors (issue 12): on a local Ray instance started here (2 CPUs, shut down
after), a tiny-random run on two workers equals the in-process run with the same grouping to the last
bit (notes, answers, every metric, adapter weights), logs seconds by worker, and a worker killed
mid-round fails the run cleanly: a message naming it and its agents, the run FAILED, no half round."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch
import yaml
from mlflow import MlflowClient

from multiseal.config.builders import build_simulation
from multiseal.config.load import validate_scenario
from multiseal.errors import ScenarioError
from multiseal.run.rundir import RunDir
from multiseal.run.runs import resumable
from multiseal.sim import loop
from multiseal.sim.loop import Simulation
from multiseal.sim.stages import adapt as adapt_stage

ray = pytest.importorskip("ray")
from multiseal.run import ray_population  # noqa: E402
from multiseal.run.recipes.simulation import run_simulation  # noqa: E402

BASE = {
    "name": "sharded",
    "seed": 3,
    "rounds": 2,
    "agents": 4,
    "model": {"base": "tiny-random", "lora": {"rank": 4, "alpha": 8, "dropout": 0.0}},
    "world": {"kind": "synthetic", "documents": 8, "questions_per_doc": [2, 2]},
    "arrivals": {"kind": "disjoint", "docs_per_round": 1},
    # sampled notes (temperature 1) and a KL term: random streams and the reference go through the workers
    "self_edit": {"style": "rewrite", "max_new_tokens": 12, "temperature": 1.0},
    "inner_loop": {"epochs": 1, "lr": 2e-3, "batch_size": 1, "batching": "together"},
    "topology": {"kind": "ring"},
    "evaluation": {"max_new_tokens": 4, "retention_probe": 4, "drift_passages": 2},
    "mitigations": [{"kind": "kl", "params": {"passages": 2, "max_length": 16}}],
}


def scenario(**execution):
    return validate_scenario({**BASE, "execution": execution})


def _plain(x):
    """``x`` with NaN written 'nan', so that == compares it (NaN != NaN) and still compares floats exactly."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    return "nan" if isinstance(x, float) and x != x else x


def _transcript(sim: Simulation):
    metrics = [
        ({a: _plain(m) for a, m in r.agents.items()}, _plain(r.population), r.trained_sequences) for r in sim.records
    ]
    notes = [(n.note_id, n.text, n.sequences) for n in sim.state.notes_log]
    answers = [(o["row"], o["agent"], o["qid"], o["answer"]) for o in sim.state.outcomes]
    return metrics, notes, answers


def test_a_run_on_two_ray_workers_equals_the_in_process_run(local_ray, tiny_model):
    sc = scenario(kind="ray", workers=2)
    population = ray_population.start(sc.model, sc.execution, progress=False)
    try:
        sharded = build_simulation(sc, population, progress=False)
        sharded.run()
        local = build_simulation(scenario(kind="local", workers=2), tiny_model, progress=False)
        local.run()
        try:
            assert population.groups == [[0, 1], [2, 3]]
            assert _transcript(sharded) == _transcript(local)  # exact: == on every float
            assert np.array_equal(sharded.state.acc, local.state.acc, equal_nan=True)
            assert any(r.agents[a]["kl_base"] > 0 for r in sharded.records for a in r.agents)  # not trivially equal
            for spec, twin in zip(sharded.setup.agents, local.setup.agents):
                remote, here = population.adapter_state(spec.adapter), tiny_model.adapter_state(twin.adapter)
                assert here
                assert remote.keys() == here.keys()
                assert all(torch.equal(remote[k], here[k]) for k in here)
            seconds = sharded.records[-1].seconds
            assert {"worker.0.adapt", "worker.1.adapt", "worker.0.evaluate", "worker.1.self_edit"} <= set(seconds)
        finally:
            local.close()
    finally:
        population.shutdown()


def test_a_worker_killed_mid_round_fails_the_run_cleanly_and_it_resumes(local_ray, tiny_model, tmp_path, monkeypatch):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    raw = {
        **BASE,
        "execution": {"kind": "ray", "workers": 2},
        "tracking": {"uri": store, "experiment": "dies", "run_dir": str(tmp_path / "runs")},
    }
    path = tmp_path / "sc.yaml"
    path.write_text(yaml.safe_dump(raw))
    started = {}
    real_start = ray_population.start

    def start(*args, **kwargs):
        started["pop"] = real_start(*args, **kwargs)
        return started["pop"]

    real_adapt = adapt_stage.adapt

    def adapt(setup, state, r, plan, targets=None):
        if r == 1 and not started.get("killed"):  # round 2, its notes written on the workers: worker 1 dies
            started["killed"] = True
            os.kill(started["pop"].actors_info[1]["pid"], signal.SIGKILL)
        return real_adapt(setup, state, r, plan, targets)

    monkeypatch.setattr(ray_population, "start", start)
    monkeypatch.setattr(loop, "adapt", adapt)
    with pytest.raises(ray_population.WorkerLost, match=r"worker 1 \(agents 2, 3; pid \d+ on .+\) died during adapt"):
        run_simulation(validate_scenario(raw, path), path, progress=False)
    [run_dir] = [p for p in (tmp_path / "runs" / "dies").iterdir()]
    run = RunDir.open(run_dir)
    assert run.meta["status"] == "FAILED", run.meta
    assert [e["step"] for e in run.journal()] == [0, 1]  # round 2 never logged
    client = MlflowClient(store)
    [mlrun] = client.search_runs([client.get_experiment_by_name("dies").experiment_id])
    assert mlrun.info.status == "FAILED"
    assert max(m.step for m in client.get_metric_history(mlrun.info.run_id, "notes.written")) == 1
    with pytest.raises(ray.exceptions.RayActorError):  # the surviving worker was stopped with the run
        ray.get(started["pop"].shards[0].where.remote(), timeout=60)
    # resumed on fresh workers from round 1's checkpoint, it ends as the uninterrupted in-process run does
    _, again, source = resumable(str(run_dir))
    run_simulation(again, source, progress=False, run=RunDir.open(run_dir))
    assert [e["step"] for e in RunDir.open(run_dir).journal()] == [0, 1, 2]
    uninterrupted = build_simulation(scenario(kind="local", workers=2), tiny_model, progress=False)
    uninterrupted.run()
    last = RunDir.open(run_dir).journal()[-1]["metrics"]
    try:
        for a, m in uninterrupted.records[-1].agents.items():
            for k in ("kl_base", "ppl_ratio", "note_fidelity"):
                assert last[f"agent.{a}.{k}"] == m[k], (a, k)
    finally:
        uninterrupted.close()


@pytest.mark.parametrize(
    ("execution", "key", "words"),
    [
        ({"kind": "ray", "workers": 5}, "execution.workers", "5 workers for 4 agent(s)"),
        ({"kind": "local", "workers": 0}, "execution.workers", "greater than or equal to 1"),
        ({"kind": "ray", "resources_per_worker": {"gpus": -1}}, "execution.resources_per_worker.gpus", "greater than"),
        ({"kind": "dask"}, "execution.kind", "'local' or 'ray'"),
    ],
)
def test_bad_execution_settings_name_their_key(execution, key, words):
    with pytest.raises(ScenarioError) as e:
        validate_scenario({**BASE, "execution": execution})
    assert any(p.path == key and words in p.message for p in e.value.problems), e.value.problems


def test_sharding_belongs_to_the_round_loop_and_needs_ray_installed(monkeypatch):
    with pytest.raises(ScenarioError, match="execution: sharding agents over workers applies to kind: simulation"):
        validate_scenario({"kind": "knowledge", "model": {"base": "tiny-random"}, "execution": {"workers": 2}})
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(ScenarioError, match=r"execution.kind: Ray is not installed; pip install 'multiseal\[ray\]'"):
        validate_scenario({**BASE, "execution": {"kind": "ray", "workers": 2}})
