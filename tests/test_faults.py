"""Fault injection (marked ``faults``): runs killed with SIGKILL, a tracking server that dies, starts
that race on a fresh store. Real processes, a real ``mlflow server`` on 127.0.0.1, tiny-random."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from multiseal.run.rundir import RunDir, find_runs

pytestmark = pytest.mark.faults

SCENARIO = """\
name: durable
seed: 3
rounds: 3
model: {base: tiny-random, lora: {rank: 4, alpha: 8}}
world: {documents: 9, questions_per_doc: [3, 3]}
agents: 3
topology: {kind: ring}
self_edit: {style: implications, max_new_tokens: 24}
inner_loop: {epochs: 2, batch_size: 1}
evaluation: {max_new_tokens: 8, retention_probe: 2}
replay: {fraction: 0.5}
tracking: {experiment: durable}
"""


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "MULTISEAL_RUNS": str(tmp / "runs"), "MULTISEAL_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _cli(tmp: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "multiseal", *args],
        cwd=tmp,
        env=_env(tmp),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _start(tmp: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "multiseal", *args],
        cwd=tmp,
        env=_env(tmp),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _only_run(tmp: Path) -> RunDir:
    (run,) = list(find_runs(tmp / "runs"))
    return run


def _wait_for_round(tmp: Path, proc: subprocess.Popen, k: int, timeout: float = 300) -> RunDir:
    end = time.time() + timeout
    while time.time() < end:
        runs = list(find_runs(tmp / "runs"))
        if runs and runs[0].last_complete_round() >= k:
            return runs[0]
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before round {k}: {proc.stderr.read()[-2000:]}")
        time.sleep(0.02)
    raise AssertionError(f"round {k} did not complete within {timeout} s")


def _result(uri: str) -> dict:
    """Every metric history (timings left out) and the notes and answers of the store's only run."""
    client = mlflow.MlflowClient(uri)
    (exp,) = [e for e in client.search_experiments() if e.name == "durable"]
    (run,) = client.search_runs([exp.experiment_id])
    metrics = {
        k: [(m.step, m.value) for m in sorted(client.get_metric_history(run.info.run_id, k), key=lambda m: m.step)]
        for k in run.data.metrics
        if "seconds" not in k and not k.startswith("checkpoint.")
    }
    art = Path(client.download_artifacts(run.info.run_id, "", str(Path(uri.removeprefix("sqlite:///")).parent / "a")))
    return {
        "status": run.info.status,
        "run_id": run.info.run_id,
        "metrics": metrics,
        "notes": (art / "notes.jsonl").read_text(),
        "answers": (art / "answers.jsonl").read_text(),
    }


# A policy-driven run: the random policy's own sampler state must survive the checkpoint too.
POLICY = SCENARIO + "scheduler: {kind: policy, params: {policy: random}}\n"
_WHOLE: dict[str, dict] = {}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    def result(text: str) -> dict:
        if text not in _WHOLE:
            tmp = tmp_path_factory.mktemp("whole")
            (tmp / "s.yaml").write_text(text)
            done = _cli(tmp, "run", "s.yaml", "--no-progress", "--tracking-uri", f"sqlite:///{tmp}/m.db")
            assert done.returncode == 0, done.stderr
            _WHOLE[text] = _result(f"sqlite:///{tmp}/m.db")
        return _WHOLE[text]

    return result


@pytest.mark.parametrize(
    "scenario, kill_after",
    [(SCENARIO, 1), (SCENARIO, 2), (POLICY, 1)],
    ids=["synchronous-after-1", "synchronous-after-2", "random-policy-after-1"],
)
def test_sigkill_then_resume_gives_the_uninterrupted_result(tmp_path, uninterrupted, scenario, kill_after):
    expected = uninterrupted(scenario)
    (tmp_path / "s.yaml").write_text(scenario)
    uri = f"sqlite:///{tmp_path}/m.db"
    proc = _start(tmp_path, "run", "s.yaml", "--no-progress", "--tracking-uri", uri)
    run = _wait_for_round(tmp_path, proc, kill_after)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert run.meta["status"] == "RUNNING" and not run.process_alive()
    killed_at = run.last_complete_round()
    assert kill_after <= killed_at < 3, "the run must be cut before its end"

    listed = _cli(tmp_path, "runs")
    assert listed.returncode == 0 and "gone" in listed.stdout and str(run.path) in listed.stdout

    resumed = _cli(tmp_path, "run", "--resume", str(run.path), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert run.meta["status"] == "FINISHED" and run.last_complete_round() == 3
    got = _result(uri)  # the same MLflow run, continued: one run in the store
    assert got["run_id"] == run.mirrors()[uri]["run_id"]
    assert got["status"] == "FINISHED"
    assert got["metrics"] == expected["metrics"], "metrics differ from the uninterrupted run (or repeat a step)"
    assert got["notes"] == expected["notes"]
    assert got["answers"] == expected["answers"]


def test_resume_refuses_a_finished_or_unknown_run(tmp_path):
    (tmp_path / "s.yaml").write_text(SCENARIO.replace("rounds: 3", "rounds: 1"))
    assert (
        _cli(tmp_path, "run", "s.yaml", "--no-progress", "--tracking-uri", f"sqlite:///{tmp_path}/m.db").returncode == 0
    )
    again = _cli(tmp_path, "run", "--resume", str(_only_run(tmp_path).path))
    assert again.returncode == 2 and "already FINISHED" in again.stderr
    unknown = _cli(tmp_path, "run", "--resume", "nosuchrun")
    assert unknown.returncode == 2 and "no run directory" in unknown.stderr and "Traceback" not in unknown.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server(tmp: Path, port: int) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{tmp}/server.db",
        "--default-artifact-root",
        str(tmp / "server-art"),
    ]
    proc = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    end = time.time() + 120
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                import urllib.request

                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
                return proc
        except OSError:
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError("mlflow server did not start")


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_an_unreachable_server_is_refused_before_the_model_loads(tmp_path):
    (tmp_path / "s.yaml").write_text(SCENARIO)
    t0 = time.time()
    done = _cli(tmp_path, "run", "s.yaml", "--tracking-uri", f"http://127.0.0.1:{_free_port()}")
    assert done.returncode == 2
    assert "cannot reach the MLflow server" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert time.time() - t0 < 60
    assert not (tmp_path / "runs").exists(), "nothing is written for a run that never started"


def test_a_server_that_dies_mid_run_loses_nothing_and_sync_uploads_the_rest(tmp_path):
    (tmp_path / "s.yaml").write_text(SCENARIO)
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    server = _server(tmp_path, port)
    try:
        proc = _start(tmp_path, "run", "s.yaml", "--no-progress", "--tracking-uri", uri)
        _wait_for_round(tmp_path, proc, 1)
    finally:
        _stop(server)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert "multiseal sync" in err and "Traceback" not in err
    run = _only_run(tmp_path)
    assert run.meta["status"] == "FINISHED" and run.last_complete_round() == 3
    assert len([e for e in run.journal() if "round" in e]) == 3

    server = _server(tmp_path, port)  # the same store comes back
    try:
        for _ in range(2):  # idempotent: the second sync sends nothing twice
            synced = _cli(tmp_path, "sync", str(run.path), "--tracking-uri", uri)
            assert synced.returncode == 0, synced.stdout + synced.stderr
        client = mlflow.MlflowClient(uri)
        (found,) = client.search_runs([client.get_experiment_by_name("durable").experiment_id])
        assert found.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(found.info.run_id, "pop.acc_all.mean")]
        assert steps == [1, 2, 3]
        names = {f.path for f in client.list_artifacts(found.info.run_id)}
        assert {"notes.jsonl", "answers.jsonl", "accuracy.npz"} <= names
    finally:
        _stop(server)


def test_simultaneous_starts_on_a_fresh_store_all_finish(tmp_path):
    (tmp_path / "s.yaml").write_text(SCENARIO.replace("rounds: 3", "rounds: 1"))
    uri = f"sqlite:///{tmp_path}/fresh.db"
    procs = [_start(tmp_path, "run", "s.yaml", "--no-progress", "--tracking-uri", uri) for _ in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("durable").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 3
    assert all(
        json.loads((r.path / "run.json").read_text())["status"] == "FINISHED" for r in find_runs(tmp_path / "runs")
    )


def test_a_killed_sweep_leaves_no_orphan_and_its_rerun_resumes_the_point(tmp_path):
    (tmp_path / "base.yaml").write_text(SCENARIO)
    (tmp_path / "sw.yaml").write_text("name: sw\nbase: base.yaml\ngrid: {topology.kind: [ring]}\n")
    uri = f"sqlite:///{tmp_path}/m.db"
    sweep = _start(tmp_path, "sweep", "sw.yaml", "--no-progress", "--tracking-uri", uri)
    run = _wait_for_round(tmp_path, sweep, 1)
    child = int(run.meta["pid"])
    sweep.send_signal(signal.SIGKILL)
    sweep.wait(timeout=30)
    end = time.time() + 60
    while time.time() < end and run.process_alive():
        time.sleep(0.1)
    assert not run.process_alive(), f"the point's process {child} outlived its sweep"
    assert run.meta["status"] == "KILLED"  # the child was told (SIGTERM) and marked its run
    at = run.last_complete_round()
    assert 1 <= at < 3

    again = _cli(tmp_path, "sweep", "sw.yaml", "--no-progress", "--tracking-uri", uri)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"resuming {run.path} from round {at}" in again.stdout
    assert run.meta["status"] == "FINISHED" and run.last_complete_round() == 3
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("sw").experiment_id])
    assert [r.info.status for r in runs] == ["FINISHED"], "the point is one run, continued"
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "pop.acc_all.mean")] == [1, 2, 3]
