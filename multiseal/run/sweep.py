"""Running a sweep: one MLflow run per point, in parallel processes, resumable.

Points whose MLflow run FINISHED are skipped, so re-running a sweep resumes it. Each run is tagged
``multiseal.sweep``, ``multiseal.point`` and ``multiseal.point.<key>`` (one per varying key), and
``multiseal.reference.<key>`` when the sweep file names a ``reference:`` point. The
sweep file format is in ``docs/sweeps.md`` and :mod:`multiseal.run.sweep_file`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from multiseal.run.rundir import RunDir, find_runs
from multiseal.run.sweep_file import (
    POINT_TAG,
    SWEEP_TAG,
    Point,
    Sweep,
    tag_value,
    yaml_value,
)
from multiseal.run.tracking import client, runs_root


@dataclass
class PointResult:
    point: Point
    status: str  # "finished", "failed" or "skipped"
    seconds: float = 0.0
    output: str = ""


@dataclass
class SweepResult:
    results: list[PointResult] = field(default_factory=list)

    @property
    def failed(self) -> list[PointResult]:
        return [r for r in self.results if r.status == "failed"]


# --------------------------------------------------------------------------- resuming


def finished_points(sweep: Sweep) -> set[str]:
    """Ids of the points that already have a FINISHED run in the sweep's experiment."""
    if _missing_sqlite(sweep.tracking_uri):
        return set()  # nothing logged yet; do not create an empty store just to look
    mlflow = client(sweep.tracking_uri)
    exp = mlflow.get_experiment_by_name(sweep.experiment)
    if exp is None:
        return set()
    query = f"tags.`{SWEEP_TAG}` = '{sweep.name}' and attributes.status = 'FINISHED'"
    done, token = set(), None
    while True:
        page = mlflow.search_runs([exp.experiment_id], query, max_results=1000, page_token=token)
        done.update(r.data.tags.get(POINT_TAG, "") for r in page)
        token = page.token
        if not token:
            return done


def prepare_store(sweep: Sweep) -> None:
    """Create the store and the experiment once, before parallel points start: two processes
    migrating a new SQLite store at the same time collide (``duplicate column name``)."""
    mlflow = client(sweep.tracking_uri)
    if mlflow.get_experiment_by_name(sweep.experiment) is None:
        mlflow.create_experiment(sweep.experiment)


def _missing_sqlite(uri: str) -> bool:
    if not uri.startswith("sqlite:///"):
        return False
    return not Path(uri.removeprefix("sqlite:///")).exists()


# --------------------------------------------------------------------------- running


def point_command(sweep: Sweep, point: Point, progress: bool = False) -> list[str]:
    """The ``python -m multiseal run`` command line of one point."""
    cmd = [sys.executable, "-m", "multiseal", "run", str(sweep.base)]
    for key, value in sweep.settings(point).items():
        cmd += ["--set", f"{key}={yaml_value(value)}"]
    for key, value in {**point.tags(sweep.name), **sweep.reference_tags()}.items():
        cmd += ["--tag", f"{key}={value}"]
    if not progress:
        cmd.append("--no-progress")
    return cmd


def describe(sweep: Sweep, done: set[str] | None = None) -> str:
    """The points as a table (what ``--dry-run`` prints)."""
    done = finished_points(sweep) if done is None else done
    lines = [
        f"sweep '{sweep.name}': {len(sweep.points)} point(s) of {sweep.base} -> experiment "
        f"'{sweep.experiment}' at {sweep.tracking_uri}",
        f"{'point':<10}  {'status':<8}  overrides",
    ]
    for p in sweep.points:
        lines.append(f"{p.id:<10}  {'finished' if p.id in done else 'to run':<8}  {p.label}")
    if sweep.reference:
        lines.append(
            "reference (paired comparisons in the report): "
            + " ".join(f"{k}={tag_value(v)}" for k, v in sweep.reference.items())
        )
    if sweep.fixed:
        lines.append("every point also sets: " + " ".join(f"{k}={tag_value(v)}" for k, v in sweep.fixed.items()))
    return "\n".join(lines)


def run_sweep(sweep: Sweep, progress: bool = True, out: TextIO | None = None) -> SweepResult:
    """Run every point not finished yet, ``sweep.jobs`` at a time, each in its own process.

    With one job the point's output streams to the terminal; with several it is collected and the
    point's summary (or, for a failed point, the end of its output) is printed when it ends. A
    failed point does not stop the others; with ``retries: N`` it runs again up to N times first.
    ``executor: ray`` runs the points as Ray tasks instead (:func:`multiseal.run.executors.execute` chooses).
    """
    out = out or sys.stdout
    done = finished_points(sweep)
    todo = [p for p in sweep.points if p.id not in done]
    result = SweepResult([PointResult(p, "skipped") for p in sweep.points if p.id in done])
    print(
        f"sweep '{sweep.name}': {len(sweep.points)} point(s), {len(result.results)} finished already, "
        f"{len(todo)} to run, {min(sweep.jobs, max(len(todo), 1))} at a time "
        f"(experiment '{sweep.experiment}' at {sweep.tracking_uri})",
        file=out,
        flush=True,
    )
    if todo and sweep.jobs > 1:
        prepare_store(sweep)
    env = _child_env(sweep.jobs)
    stream = sweep.jobs == 1
    running: dict[subprocess.Popen, tuple[Point, float, Any]] = {}
    queue = list(todo)
    started = 0
    attempts: dict[str, int] = {}
    try:
        while queue or running:
            while queue and len(running) < sweep.jobs:
                point = queue.pop(0)
                started += 1
                print(f"[{started}/{len(todo)}] {point.id} {point.label}", file=out, flush=True)
                log = None if stream else tempfile.TemporaryFile("w+")
                command = point_command(sweep, point, progress and stream)
                interrupted = interrupted_run(sweep, point)
                if interrupted is not None:  # continue it from its last round instead of starting over
                    print(
                        f"  resuming {interrupted.path} from round {interrupted.last_complete_round()}",
                        file=out,
                        flush=True,
                    )
                    command = [sys.executable, "-m", "multiseal", "run", "--resume", str(interrupted.path)]
                    command += [] if progress and stream else ["--no-progress"]
                proc = subprocess.Popen(
                    command,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT if log else None,
                    text=True,
                    preexec_fn=_die_with_parent,
                )
                running[proc] = (point, time.monotonic(), log)
            for proc in [p for p in running if p.poll() is not None]:
                point, t0, log = running.pop(proc)
                done_point = _finish(proc, point, time.monotonic() - t0, log, out)
                attempts[point.id] = attempts.get(point.id, 0) + 1
                if done_point.status == "failed" and attempts[point.id] <= sweep.retries:
                    print(f"  {point.id}: retry {attempts[point.id]} of {sweep.retries}", file=out, flush=True)
                    queue.insert(0, point)
                    started -= 1
                    continue
                result.results.append(done_point)
            time.sleep(0.2)
    except KeyboardInterrupt:
        _stop(list(running))
        raise
    failed = result.failed
    print(
        f"sweep '{sweep.name}': {len(result.results) - len(failed)} of {len(sweep.points)} point(s) finished"
        + (f", {len(failed)} failed: {', '.join(r.point.id for r in failed)}" if failed else ""),
        file=out,
        flush=True,
    )
    return result


def _finish(proc: subprocess.Popen, point: Point, seconds: float, log: Any, out: TextIO) -> PointResult:
    text = ""
    if log is not None:
        log.seek(0)
        text = log.read()
        log.close()
    ok = proc.returncode == 0
    print(f"  {point.id} {'finished' if ok else f'FAILED (exit {proc.returncode})'} in {seconds:.0f} s", file=out)
    if text:
        tail = text.strip().splitlines()[-40:] if not ok else text.strip().splitlines()
        print("\n".join("    " + line for line in tail), file=out)
    out.flush()
    return PointResult(point, "finished" if ok else "failed", seconds, text)


def _child_env(jobs: int) -> dict[str, str]:
    """With several points at once, share the cores out instead of every process taking them all:
    more torch threads than free cores make every OpenMP region wait for descheduled threads."""
    env = dict(os.environ)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if jobs > 1:
        threads = str(max(1, (os.cpu_count() or 1) // jobs))
        for var in ("MULTISEAL_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, threads)
    return env


def interrupted_run(sweep: Sweep, point: Point) -> RunDir | None:
    """The point's run directory that stopped part-way (its process gone, some rounds checkpointed),
    if any: a re-run of the sweep resumes it instead of starting the point over.

    It is looked for where the point's scenario puts its runs (``tracking.run_dir``), and adopted
    only if its resolved scenario is the point's, to the last key: tags alone (which anyone can
    write) never make a folder part of the sweep. A run whose checkpoints are pickles from an older
    multiseal is never adopted (the point starts over)."""
    found = None
    for run in point_runs(sweep, point):
        try:
            meta = run.meta
            if meta.get("kind") != "simulation" or meta.get("status") == "FINISHED":
                continue
            if meta.get("status") == "RUNNING" and run.process_alive():
                continue
            if run.last_complete_round() == 0:
                continue
            run.refuse_pickles()
        except Exception:  # noqa: BLE001 - a damaged or foreign folder is simply not this point's run
            continue
        found = run  # the newest one wins
    return found


def point_runs(sweep: Sweep, point: Point) -> list[RunDir]:
    """The point's run directories on this machine, oldest first (see :func:`sweep_runs`)."""
    return sweep_runs(sweep, [point]).get(point.id, [])


def sweep_runs(sweep: Sweep, points: list[Point] | None = None) -> dict[str, list[RunDir]]:
    """``{point id: run directories}`` on this machine, oldest first: those under each point's
    ``tracking.run_dir`` tagged with the sweep and the point whose resolved scenario is the point's, to
    the last key (tags alone, which anyone can write, never make a folder part of the sweep). Each run
    folder is read once."""
    from multiseal.config.load import load_scenario

    points = sweep.points if points is None else points
    wanted: dict[str, dict] = {}
    roots: dict[Path, list[str]] = {}
    for point in points:
        scenario = load_scenario(sweep.base, sweep.settings(point))
        wanted[point.id] = scenario.model_dump(mode="json")
        roots.setdefault(runs_root(scenario.tracking.run_dir).resolve(), []).append(point.id)
    out: dict[str, list[RunDir]] = {}
    for root, ids in roots.items():
        for run in find_runs(root):
            try:
                tags = run.meta.get("tags", {})
                pid = tags.get(POINT_TAG)
                if tags.get(SWEEP_TAG) == sweep.name and pid in ids and run.scenario == wanted[pid]:
                    out.setdefault(pid, []).append(run)
            except Exception:  # noqa: BLE001 - a damaged or foreign folder is simply not this point's run
                continue
    return out


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM it when the sweep process dies, however it dies (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _stop(procs: list[subprocess.Popen]) -> None:
    """Ctrl-C or SIGTERM on the sweep: SIGTERM each point, which marks its run KILLED, then make
    sure it is gone."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
