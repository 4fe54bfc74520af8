"""Sweeps on Ray (issue 12): on a local Ray instance started here (2 CPUs, shut down after), a two-point
tiny-random sweep lands in MLflow, finished points are skipped, a failing point is reported and retried
as the sweep file asks, and a tracking store on one machine's disk is refused for a multi-node cluster."""

from __future__ import annotations

import subprocess
import sys

import pytest
from mlflow import MlflowClient
from test_sweep import write_sweep  # noqa: E402  (tests/ is on the path)

from multiseal.errors import InputError
from multiseal.run import ray_sweep
from multiseal.run import sweep_file as swf
from multiseal.run.executors import execute

ray = pytest.importorskip("ray")


def test_a_two_point_sweep_runs_on_ray_into_mlflow_and_resumes(tmp_path, local_ray, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = write_sweep(
        tmp_path,
        """
        name: onray
        base: base.yaml
        grid: {topology.kind: [ring, complete]}
        executor: ray
        resources: {cpus: 1}
    """,
    )
    sweep = swf.load_sweep(path, tracking_uri=store)
    assert sweep.executor == "ray" and sweep.resources.cpus == 1.0
    result = execute(sweep)
    assert not result.failed and [r.status for r in result.results] == ["finished", "finished"]
    out = capsys.readouterr().out
    assert "on Ray (1 node(s), 2 CPU" in out
    runs = MlflowClient(store).search_runs([MlflowClient(store).get_experiment_by_name("onray").experiment_id])
    assert {r.data.tags[swf.POINT_TAG] for r in runs} == {p.id for p in sweep.points}
    assert all(r.info.status == "FINISHED" and "pop.acc_all.mean" in r.data.metrics for r in runs)
    again = execute(sweep)  # everything finished: nothing runs
    assert [r.status for r in again.results] == ["skipped", "skipped"]


def test_a_failing_point_is_reported_retried_and_does_not_stop_the_others(tmp_path, local_ray, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = write_sweep(tmp_path, "name: fails\nbase: base.yaml\ngrid: {seed: [0, 1]}\nexecutor: ray\nretries: 1\n")
    sweep = swf.load_sweep(path, tracking_uri=store)
    bad = sweep.points[0].id
    monkeypatch.setattr(
        ray_sweep,
        "_point_args",
        lambda s, p: ["-c", f"import sys; print('boom {p.id}'); sys.exit({3 if p.id == bad else 0})"],
    )
    result = execute(sweep)
    assert [r.point.id for r in result.failed] == [bad]
    out = capsys.readouterr().out
    assert out.count(f"{bad} FAILED (exit 3)") == 2, "run once, retried once"
    assert f"{bad}: retry 1 of 1" in out and f"boom {bad}" in out and "1 failed" in out


def test_a_local_store_is_refused_for_several_nodes():
    with pytest.raises(InputError, match="mlflow server"):
        ray_sweep.check_tracking("sqlite:///mlflow.db", nodes=2)
    with pytest.raises(InputError, match="mlflow server"):
        ray_sweep.check_tracking("/tmp/mlruns", nodes=3)
    ray_sweep.check_tracking("sqlite:///mlflow.db", nodes=1)  # one machine: its disk is everyone's
    ray_sweep.check_tracking("http://10.0.0.5:5000", nodes=4)


def test_resources_are_validated_in_the_sweep_file(tmp_path):
    path = write_sweep(tmp_path, "name: r\nbase: base.yaml\nexecutor: ray\nresources: {cpus: 0, gpu: 1}\n")
    with pytest.raises(swf.ScenarioError) as e:
        swf.load_sweep(path)
    paths = {p.path for p in e.value.problems}
    assert {"resources.cpus", "resources.gpu"} <= paths


def test_a_local_run_never_imports_ray(tmp_path):
    """Ray stays out of the import path of everything local."""
    code = (
        "import sys, multiseal.cli, multiseal.run.sweep, multiseal.run.executors, multiseal.run.recipes.simulation, "
        "multiseal.analysis.report;"
        "print('ray' in sys.modules)"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )


def test_a_worker_that_dies_mid_point_fails_that_point_only(tmp_path, local_ray, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = write_sweep(tmp_path, "name: dies\nbase: base.yaml\ngrid: {seed: [0, 1]}\nexecutor: ray\n")
    sweep = swf.load_sweep(path, tracking_uri=store)
    bad = sweep.points[0].id
    # the bad point's process kills the Ray worker running it (its parent), as a node or OOM kill would
    monkeypatch.setattr(
        ray_sweep,
        "_point_args",
        lambda s, p: [
            "-c",
            "import os, signal, time; os.kill(os.getppid(), signal.SIGKILL); time.sleep(5)"
            if p.id == bad
            else "print('fine')",
        ],
    )
    result = execute(sweep)
    assert [r.point.id for r in result.failed] == [bad]
    assert [r.status for r in result.results if r.point.id != bad] == ["finished"]
    out = capsys.readouterr().out
    assert f"{bad} FAILED (worker lost)" in out
