"""Mirroring a run directory to an MLflow tracking store: live during a run, or later by ``sync``.

The run directory (:mod:`multiseal.run.rundir`) is the source of truth; a :class:`Mirror` copies what
is new in it — params and tags once, journal entries as they come, artifacts and the final status at
the end — and remembers in ``mirror.json`` how far it got for each store, so copying again is
idempotent. The MLflow run is found again by its tag ``multiseal.run_uid``.

When the store fails during a run (a server that went away), the mirror warns once and goes
offline: the run keeps computing into its directory, and ``multiseal sync RUN_DIR`` uploads it later.
A failure to write ``mirror.json`` (a full disk) is not the store's: the mirror goes on from what it
holds in memory, and the run's own writes report the disk.

Artifacts are uploaded file by file, and a symbolic link among them (to a file or a folder, inside
the run directory or out of it) is never followed: it is skipped, with a warning naming it.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from multiseal.run.rundir import RunDir
from multiseal.run.tracking import (
    client,
    flatten_scenario,
    metric_key,
    param_value,
    tracking_uri,
)

UID_TAG = "multiseal.run_uid"


class Mirror:
    """Copies ``run`` to the store at ``uri`` (see the module docstring)."""

    def __init__(self, run: RunDir, uri: str | None = None, *, live: bool = True, out: TextIO | None = None):
        self.run, self.uri, self.live = run, tracking_uri(uri), live
        self.out = out if out is not None else sys.stderr
        self.offline = False
        self._client = None
        self._state = dict(run.mirrors().get(self.uri, {}))  # this store's entry of mirror.json, kept here too
        if not isinstance(self._state.get("entries"), int) or self._state["entries"] < 0:
            self._state["entries"] = 0
        run_id = self._state.get("run_id")
        self.run_id: str | None = run_id if isinstance(run_id, str) else None

    def _note(self, **info: Any) -> None:
        """Record how far this store is mirrored: here, and in ``mirror.json`` when it can be written (a
        later sync that finds it stale finds the MLflow run again by its uid tag, and MLflow keeps one copy
        of a metric sent twice)."""
        self._state.update(info)
        try:
            self.run.set_mirror(self.uri, **self._state)
        except OSError:
            pass

    # ------------------------------------------------------------------ guarded calls
    def _guard(self, what: str, fn, *args, **kwargs) -> Any:
        """Run one store call; on failure during a live run, warn once and go offline."""
        if self.offline:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - any store failure must not lose the run
            if not self.live:
                raise
            self.offline = True
            reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            print(
                f"multiseal: warning: the tracking store {self.uri} failed ({what}: {reason}); the run goes on "
                f"into {self.run.path}. Upload it later with: multiseal sync {self.run.path} --tracking-uri "
                f"{self.uri}",
                file=self.out,
                flush=True,
            )
            return None

    # ------------------------------------------------------------------ the MLflow run
    def open(self) -> str | None:
        """Find (by ``mirror.json`` or the uid tag) or create this run in the store; returns its id."""
        return self._guard("open the run", self._open)

    def _open(self) -> str:
        self._client = client(self.uri)
        meta = self.run.meta
        exp = self._client.get_experiment_by_name(meta["experiment"])
        exp_id = exp.experiment_id if exp else self._client.create_experiment(meta["experiment"])
        run_id = self.run_id
        if run_id is not None:
            try:
                self._client.get_run(run_id)
            except Exception:  # noqa: BLE001 - recorded for another store with the same URI string
                run_id = None
        if run_id is None:
            found = self._client.search_runs([exp_id], f"tags.`{UID_TAG}` = '{meta['uid']}'", max_results=1)
            run_id = found[0].info.run_id if found else None
        if run_id is None:
            tags = {**meta.get("tags", {}), UID_TAG: meta["uid"], "multiseal.run_dir": str(self.run.path.resolve())}
            run_id = self._client.create_run(exp_id, run_name=meta["name"], tags=tags).info.run_id
            self._log_params(run_id)
            self._note(run_id=run_id, entries=0, status=None)
        elif self.live:
            self._client.update_run(run_id, status="RUNNING")
        self.run_id = run_id
        self._note(run_id=run_id)
        return run_id

    def _log_params(self, run_id: str) -> None:
        from mlflow.entities import Param

        items = [Param(k, param_value(v)) for k, v in flatten_scenario(self.run.scenario).items()]
        for i in range(0, len(items), 100):
            self._client.log_batch(run_id, params=items[i : i + 100])

    # ------------------------------------------------------------------ copying
    def push(self) -> None:
        """Upload the journal entries the store does not have yet."""
        if self.run_id is None or self.offline:
            return
        self._guard("log metrics", self._push)

    def _push(self) -> None:
        from mlflow.entities import Metric

        journal = self.run.journal()
        done = self._state["entries"]
        for n, entry in enumerate(journal[done:], start=done):
            stamp = int(entry.get("time", 0) * 1000)
            items = [
                Metric(metric_key(k), float(v), stamp, int(entry["step"]))
                for k, v in entry["metrics"].items()
                if v is not None and math.isfinite(float(v))
            ]
            for i in range(0, len(items), 1000):
                self._client.log_batch(self.run_id, metrics=items[i : i + 1000])
            self._note(entries=n + 1)

    def forget_after(self, entries: int) -> None:
        """The journal was cut back to ``entries`` lines: mirror from there again."""
        for uri, info in self.run.mirrors().items():
            if info.get("entries", 0) > entries:
                self.run.set_mirror(uri, entries=entries)
        self._state["entries"] = min(self._state["entries"], entries)

    def close(self, status: str | None = None) -> bool:
        """Upload what is left, the artifacts and the final status (the run directory's when None).
        True when the store has everything."""
        if self.run_id is None and not self.offline:
            self.open()
        if self.run_id is None or self.offline:
            return False
        status = status or self.run.meta["status"]
        self.push()
        self._guard("log artifacts", self._artifacts)
        if status != "RUNNING":
            self._guard("set the status", self._client.set_terminated, self.run_id, status=status)
        if not self.offline:
            self._note(status=status)
        return not self.offline

    def _artifacts(self) -> None:
        """Upload the artifacts folder file by file, never through a symbolic link (see the module docstring)."""
        folder = self.run.path / "artifacts"
        if folder.is_symlink():
            self._skip_link(folder)
            return
        for here, folders, files in os.walk(folder):  # not into a linked folder (followlinks=False) ...
            here_ = Path(here)
            for name in sorted(folders):
                if (here_ / name).is_symlink():  # ... and not even listed: skipped, with a warning
                    folders.remove(name)
                    self._skip_link(here_ / name)
            below = here_.relative_to(folder).as_posix()
            for name in sorted(files):
                path = here_ / name
                if path.is_symlink():
                    self._skip_link(path)
                elif path.is_file():
                    self._client.log_artifact(self.run_id, str(path), None if below == "." else below)

    def _skip_link(self, path: Path) -> None:
        print(
            f"multiseal: warning: {path} is a symbolic link, not uploaded (links in a run directory are "
            "never followed)",
            file=self.out,
            flush=True,
        )
