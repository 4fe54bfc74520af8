"""Failure paths of run directories and the tracking store (issue 24): a full disk, a corrupt or
incomplete run.json, a pid reused by another process, a symbolic link among the artifacts, a server
whose /health answers while its API hangs. Each must end with one clear line, never a traceback, and
never leave a run RUNNING where its end could be written. Real MLflow stores, tiny-random."""

from __future__ import annotations

import errno
import http.server
import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlflow
import pytest

from multiseal.cli import main
from multiseal.config.load import load_scenario
from multiseal.run.rundir import RunDir, find_runs, process_started
from multiseal.run.runs import list_runs, resumable, sync_runs

SCENARIO = """\
name: paths
seed: 3
rounds: {rounds}
model: {{base: tiny-random, lora: {{rank: 4, alpha: 8}}}}
world: {{documents: 9, questions_per_doc: [3, 3]}}
agents: 3
topology: {{kind: ring}}
self_edit: {{style: implications, max_new_tokens: 8}}
inner_loop: {{epochs: 1, batch_size: 1}}
evaluation: {{max_new_tokens: 4, retention_probe: 2}}
tracking: {{experiment: paths}}
"""


def _scenario_file(tmp: Path, rounds: int = 1) -> Path:
    path = tmp / "s.yaml"
    path.write_text(SCENARIO.format(rounds=rounds))
    return path


def _cli(tmp: Path, *args: str, runs: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "MULTISEAL_RUNS": str(runs or tmp / "runs"), "MULTISEAL_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "multiseal", *args], cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout
    )


def _make_run(root: Path, tmp: Path, **changes) -> RunDir:
    """A simulation run directory as `multiseal run` makes one (its scenario resolved), then ``changes``
    applied to its run.json."""
    scenario = load_scenario(_scenario_file(tmp)).model_dump(mode="json")
    run = RunDir.create(root, "paths", "paths", scenario, kind="simulation")
    if changes:
        run.update(**changes)
    return run


def _listing(root: Path, **kwargs) -> tuple[int, dict[str, str]]:
    """``multiseal runs``: its exit status and, per run directory, the line that lists it."""
    out = io.StringIO()
    rc = list_runs(root, out=out, **kwargs)
    lines = {}
    for line in out.getvalue().splitlines():
        for run in root.glob("*/*"):
            if f" {run}" in line:
                lines[run.name] = line
    return rc, lines


def _status(line: str) -> str:
    return line.split()[0]


# ---------------------------------------------------------------- 1. a full disk


@pytest.mark.faults
def test_a_full_disk_fails_the_run_with_one_line_and_marks_it_failed(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        _scenario_file(tmp_path, rounds=3)  # a checkpoint of tiny-random is larger than the disk's free space
        uri = f"sqlite:///{tmp_path}/m.db"  # the store has room: it must not be blamed
        done = _cli(tmp_path, "run", "s.yaml", "--no-progress", "--tracking-uri", uri, runs=disk / "runs")
        assert done.returncode == 1, f"the run was meant to fill the 256k disk: {done.stdout[-500:]}{done.stderr}"
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
        prefix = "multiseal: error: no space left on device writing "
        assert lines[0].startswith(prefix), lines[0]
        (run,) = list(find_runs(disk / "runs"))
        written = Path(lines[0].removeprefix(prefix))
        assert written == run.path or run.path in written.parents, "the line names a path of the run directory"

        client = mlflow.MlflowClient(uri)
        (stored,) = client.search_runs([client.get_experiment_by_name("paths").experiment_id])
        assert stored.info.status == "FAILED"
        assert run.meta["status"] in ("FAILED", "RUNNING")
        if run.meta["status"] == "RUNNING":  # a stale RUNNING only where nothing could be written
            with pytest.raises(OSError) as full:
                (disk / "probe").write_bytes(b"x" * 8192)
            assert full.value.errno == errno.ENOSPC
            (disk / "probe").unlink(missing_ok=True)
            rc, listed = _listing(disk / "runs")
            assert rc == 0 and _status(listed[run.path.name]) == "gone"
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


# ---------------------------------------------------------------- 2. and 3. a corrupt or incomplete run.json


def test_a_corrupt_run_json_is_listed_and_skipped(tmp_path, capsys):
    root = tmp_path / "runs"
    good = _make_run(root, tmp_path, host="elsewhere", heartbeat=0)  # RUNNING on another host, long silent
    broken = {}
    for name, text in {"notjson": "{ not json", "alist": "[1, 2]", "nostatus": None, "badexperiment": None}.items():
        run = _make_run(root, tmp_path)
        meta = run.meta
        if name == "nostatus":
            meta.pop("status")
            text = json.dumps(meta)
        elif name == "badexperiment":
            text = json.dumps({**meta, "experiment": ["x"]})
        (run.path / "run.json").write_text(text)
        broken[name] = run

    rc, listed = _listing(root)
    assert rc == 0
    assert _status(listed[good.path.name]) == "gone"
    reasons = {
        "notjson": "not JSON",
        "alist": "a JSON list, not an object",
        "nostatus": "'status' missing",
        "badexperiment": "'experiment' is not a string",
    }
    for name, run in broken.items():
        line = listed[run.path.name]
        assert _status(line) == "corrupt" and reasons[name] in line and len(line) < 400, line

    before = {name: (run.path / "run.json").read_bytes() for name, run in broken.items()}
    rc, _ = _listing(root, mark_killed=True, uri=f"sqlite:///{tmp_path}/m.db")
    assert rc == 0
    assert good.meta["status"] == "KILLED"
    assert {name: (run.path / "run.json").read_bytes() for name, run in broken.items()} == before

    capsys.readouterr()
    assert main(["run", "--resume", str(broken["notjson"].path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("multiseal: error: --resume ") and "corrupt (not JSON" in err
    assert len(err.splitlines()) == 1


def test_a_running_run_json_with_missing_or_ill_typed_fields_is_gone_and_can_be_marked(tmp_path):
    root = tmp_path / "runs"
    variants = {
        "nopid": {"pid": None},
        "strpid": {"pid": "123"},
        "badhost": {"host": 5},
        "badbeat": {"host": "elsewhere", "heartbeat": "soon"},
        "badstart": {"pid": 1, "started": "x"},
    }
    runs = {}
    for name, changes in variants.items():
        run = _make_run(root, tmp_path)
        meta = {k: v for k, v in {**run.meta, **changes}.items() if v is not None}
        if name != "badstart":
            meta["heartbeat"] = meta["heartbeat"] if name == "badbeat" else 0  # silent for long
        else:
            meta["heartbeat"] = 0
        (run.path / "run.json").write_text(json.dumps(meta))
        runs[name] = run
    assert "pid" not in runs["nopid"].meta

    rc, listed = _listing(root)
    assert rc == 0
    assert {name: _status(listed[run.path.name]) for name, run in runs.items()} == {name: "gone" for name in runs}
    rc, _ = _listing(root, mark_killed=True, uri=f"sqlite:///{tmp_path}/m.db")
    assert rc == 0
    assert {name: run.meta["status"] for name, run in runs.items()} == {name: "KILLED" for name in runs}


# ---------------------------------------------------------------- 4. a pid reused by another process


def test_a_dead_run_whose_pid_was_reused_is_gone_and_resumable(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/m.db")  # --resume takes no --tracking-uri
    root = tmp_path / "runs"
    other = subprocess.Popen(["sleep", "120"])  # a live process that is not the run's
    try:
        its_start = process_started(other.pid)
        assert its_start is not None
        run = _make_run(root, tmp_path, pid=other.pid, started=its_start - 1000, heartbeat=time.time())
        rc, listed = _listing(root)
        assert rc == 0 and _status(listed[run.path.name]) == "gone", "the heartbeat is fresh: the start time decides"
        assert resumable(str(run.path))[0].path == run.path

        run.update(started=its_start)  # the same pid and start time: the run's own process
        rc, listed = _listing(root)
        assert _status(listed[run.path.name]) == "RUNNING"
        with pytest.raises(Exception, match="still running"):
            resumable(str(run.path))

        meta = run.meta  # an older run.json, without the start time: by heartbeat
        meta.pop("started")
        (run.path / "run.json").write_text(json.dumps(meta))
        assert run.process_alive()
        run.update(heartbeat=time.time() - 3600)
        assert not run.process_alive()

        run.update(started=its_start - 1000, heartbeat=time.time())  # reused again: resume it for real
        capsys.readouterr()
        assert main(["run", "--resume", str(run.path), "--no-progress"]) == 0, capsys.readouterr().err
        meta = run.meta
        assert meta["status"] == "FINISHED" and meta["pid"] == os.getpid()
        assert meta["started"] == pytest.approx(process_started(os.getpid()))
    finally:
        other.kill()
        other.wait(timeout=30)


# ---------------------------------------------------------------- 5. a symbolic link among the artifacts


def test_sync_never_follows_a_symbolic_link_out_of_the_run_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the store's artifacts go to ./mlruns here
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = "secret-" + os.urandom(8).hex()
    (outside / "passwd").write_text(secret + "\n")
    (outside / "folder").mkdir()
    (outside / "folder" / "inside.txt").write_text(secret + "\n")
    (outside / "params.json").write_text(json.dumps({"stolen": secret}))

    run = _make_run(tmp_path / "runs", tmp_path, status="FINISHED")
    (run.artifacts / "notes.txt").write_text("kept\n")
    (run.artifacts / "sub").mkdir()
    (run.artifacts / "sub" / "kept.txt").write_text("kept too\n")
    (run.artifacts / "passwd").symlink_to(outside / "passwd")
    (run.artifacts / "sub" / "linked").symlink_to(outside / "folder", target_is_directory=True)
    (run.artifacts / "inner").symlink_to(run.path / "run.json")  # even a link inside the run directory
    linked = _make_run(tmp_path / "runs", tmp_path, status="FINISHED")
    (linked.path / "scenario.json").unlink()
    (linked.path / "scenario.json").symlink_to(outside / "params.json")

    uri = f"sqlite:///{tmp_path}/m.db"
    out = io.StringIO()
    assert sync_runs([str(run.path)], uri, out=out) == 0
    assert f"{run.path}: in {uri} as run" in out.getvalue()
    warned = capsys.readouterr().err
    for link in ("passwd", "sub/linked", "inner"):
        assert f"multiseal: warning: {run.artifacts / link} is a symbolic link, not uploaded" in warned

    client = mlflow.MlflowClient(uri)
    (stored,) = client.search_runs([client.get_experiment_by_name("paths").experiment_id])

    def listing(path=None):
        for f in client.list_artifacts(stored.info.run_id, path):
            yield from listing(f.path) if f.is_dir else [f.path]

    assert sorted(listing()) == ["notes.txt", "sub/kept.txt"]

    assert sync_runs([str(linked.path)], uri, out=out) == 1
    assert f"{linked.path}: not uploaded" in out.getvalue()
    stores = [p for p in tmp_path.rglob("*") if p.is_file() and outside not in p.parents and "runs" not in p.parts]
    assert stores and not [p for p in stores if secret.encode() in p.read_bytes()], "a file from outside was uploaded"


# ---------------------------------------------------------------- 6. /health answers, the API hangs


@pytest.mark.faults
def test_a_server_whose_api_hangs_is_refused_before_the_model_loads(tmp_path):
    release = threading.Event()
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            asked.append(self.path)
            if self.path == "/health":
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")
            else:
                release.wait(120)  # the API hangs

        do_POST = do_GET  # noqa: N815

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    uri = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        _scenario_file(tmp_path)
        t0 = time.time()
        done = _cli(tmp_path, "run", "s.yaml", "--tracking-uri", uri, timeout=120)
        took = time.time() - t0
    finally:
        release.set()
        server.shutdown()
        server.server_close()
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("multiseal: error: tracking.uri: ") and uri in line and "API" in line
    assert "/health" in asked and any(p.startswith("/api/") for p in asked)
    assert took < 60
    assert not (tmp_path / "runs").exists(), "nothing is written for a run that never started"
