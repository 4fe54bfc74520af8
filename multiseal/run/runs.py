"""Commands over run directories: ``multiseal run --resume``, ``multiseal sync`` and ``multiseal runs``.

A run directory whose run.json cannot be read is listed as ``corrupt`` (with the reason) and left as it
is: never resumed, marked or uploaded. ``sync`` never follows a symbolic link in a run directory: a
linked artifact is skipped with a warning naming it (see :mod:`multiseal.run.mirror`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from multiseal.config.load import validate_scenario
from multiseal.config.schema import Scenario
from multiseal.errors import InputError
from multiseal.run.mirror import Mirror
from multiseal.run.rundir import ACTIVE, CorruptRun, RunDir, find_runs, resolve_run
from multiseal.run.tracking import runs_root, tracking_uri


def resumable(ref: str, uri: str | None = None, root: str | Path | None = None) -> tuple[RunDir, Scenario, str | None]:
    """The run directory named by ``ref``, its scenario and source, checked to be resumable: a
    simulation run that did not finish and whose process is gone."""
    run = resolve_run(ref, runs_root(root))
    try:
        meta = run.meta
    except CorruptRun as e:
        raise InputError(f"--resume {ref}: cannot resume: {e}") from None
    if meta.get("kind") != "simulation":
        raise InputError(
            f"--resume {ref}: only simulation runs checkpoint their rounds (this one is '{meta.get('kind')}')"
        )
    if meta["status"] == "FINISHED":
        raise InputError(f"--resume {ref}: the run in {run.path} has already FINISHED")
    if meta["status"] == ACTIVE and run.process_alive():
        raise InputError(f"--resume {ref}: the run in {run.path} is still running (pid {meta.get('pid')})")
    run.refuse_pickles()  # before anything else of the directory is read, and before the model loads
    try:
        raw = run.scenario
    except (OSError, ValueError) as e:
        raise InputError(
            f"--resume {ref}: cannot resume: {run.path / 'scenario.json'}: unreadable ({str(e)[:80]})"
        ) from None
    if not isinstance(raw, dict):
        raise InputError(f"--resume {ref}: cannot resume: {run.path / 'scenario.json'} is not a JSON object")
    if uri:
        raw = {**raw, "tracking": {**raw.get("tracking", {}), "uri": uri}}
    source = meta.get("source")  # relative paths in the scenario (data files) are relative to it
    scenario = validate_scenario(raw, source or run.path / "scenario.json")
    return run, scenario, source


def sync_runs(paths: Sequence[str], uri: str | None = None, out=None) -> int:
    """Upload each run directory to the store at ``uri`` (idempotent); exit status 0 when all are there."""
    out = out or sys.stdout
    failed = 0
    for path in paths:
        run = RunDir.open(path)
        mirror = Mirror(run, uri, live=False)
        try:
            mirror.open()
            mirror.close(run.meta["status"])
        except Exception as e:  # noqa: BLE001 - report each run and go on
            failed += 1
            print(f"{path}: not uploaded to {mirror.uri}: {e}", file=out)
            continue
        print(
            f"{path}: in {mirror.uri} as run {mirror.run_id} ({run.meta['status']}, "
            f"{len(run.journal())} journal entries)",
            file=out,
        )
    return 1 if failed else 0


def list_runs(
    root: str | Path | None = None, *, mark_killed: bool = False, resume: bool = False, uri: str | None = None, out=None
) -> int:
    """Print every run directory with its status; a RUNNING one whose process is gone is 'gone'.
    ``mark_killed`` marks gone runs KILLED (in the directory and in MLflow); ``resume`` resumes
    gone simulation runs instead."""
    out = out or sys.stdout
    runs = list(find_runs(runs_root(root)))
    if not runs:
        print(f"no run directories under {runs_root(root)}/", file=out)
        return 0
    gone: list[RunDir] = []
    corrupt = 0
    print(f"{'status':<9} {'rounds':>7}  {'experiment':<18} run directory", file=out)
    for run in runs:
        try:
            meta = run.meta
        except CorruptRun as e:
            corrupt += 1
            print(f"{'corrupt':<9} {'-':>7}  {run.path.parent.name[:18]:<18} {run.path}  ({e.reason})", file=out)
            continue
        status = meta["status"]
        if status == ACTIVE and not run.process_alive():
            status = "gone"
            gone.append(run)
        total = meta.get("rounds_total")
        done = run.last_complete_round()
        rounds = f"{done}/{total}" if meta.get("kind") == "simulation" and total else "-"
        print(f"{status:<9} {rounds:>7}  {meta['experiment'][:18]:<18} {run.path}", file=out)
    if resume:
        from multiseal.run.recipes import run_recipe

        for run in gone:
            if run.meta.get("kind") != "simulation":
                continue
            run_, scenario, source = resumable(str(run.path), uri)
            print(f"resuming {run.path} from round {run.last_complete_round()}", file=out, flush=True)
            print(run_recipe(scenario, source, progress=False, run=run_), file=out)
    elif mark_killed:
        for run in gone:
            run.finish("KILLED")
            for store in [uri] if uri else list(run.mirrors()) or [tracking_uri(None)]:
                Mirror(run, store, live=True, out=out).close("KILLED")
            print(f"marked KILLED: {run.path}", file=out)
    elif gone:
        print(
            f"{len(gone)} run(s) gone: resume with `multiseal run --resume DIR`, or mark them with "
            "`multiseal runs --mark-killed`",
            file=out,
        )
    if corrupt:
        print(f"{corrupt} run(s) corrupt: their run.json cannot be read; left as they are", file=out)
    return 0
