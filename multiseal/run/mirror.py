"""Mirroring a run directory to an MLflow tracking store: live during a run, or later by ``sync``.

The run directory (:mod:`multiseal.run.rundir`) is the source of truth; a :class:`Mirror` copies what
is new in it — params and tags once, journal entries as they come, artifacts and the final status at
the end — and remembers in ``mirror.json`` how far it got for each store, so copying again is
idempotent. The MLflow run is found again by its tag ``multiseal.run_uid``.

When the store fails during a run (a server that went away), the mirror warns once and goes
offline: the run keeps computing into its directory, and ``multiseal sync RUN_DIR`` uploads it later.
"""
from __future__ import annotations

import math
import sys
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
        self.run_id: str | None = run.mirrors().get(self.uri, {}).get("run_id")

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
            print(f"multiseal: warning: the tracking store {self.uri} failed ({what}: {reason}); the run goes on "
                  f"into {self.run.path}. Upload it later with: multiseal sync {self.run.path} --tracking-uri "
                  f"{self.uri}", file=self.out, flush=True)
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
            self.run.set_mirror(self.uri, run_id=run_id, entries=0, status=None)
        elif self.live:
            self._client.update_run(run_id, status="RUNNING")
        self.run_id = run_id
        self.run.set_mirror(self.uri, run_id=run_id)
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
        done = self.run.mirrors().get(self.uri, {}).get("entries", 0)
        for n, entry in enumerate(journal[done:], start=done):
            stamp = int(entry.get("time", 0) * 1000)
            items = [Metric(metric_key(k), float(v), stamp, int(entry["step"]))
                     for k, v in entry["metrics"].items() if v is not None and math.isfinite(float(v))]
            for i in range(0, len(items), 1000):
                self._client.log_batch(self.run_id, metrics=items[i : i + 1000])
            self.run.set_mirror(self.uri, entries=n + 1)

    def forget_after(self, entries: int) -> None:
        """The journal was cut back to ``entries`` lines: mirror from there again."""
        for uri, info in self.run.mirrors().items():
            if info.get("entries", 0) > entries:
                self.run.set_mirror(uri, entries=entries)

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
            self.run.set_mirror(self.uri, status=status)
        return not self.offline

    def _artifacts(self) -> None:
        folder = self.run.path / "artifacts"
        if folder.exists() and any(folder.iterdir()):
            self._client.log_artifacts(self.run_id, str(folder))
