"""A run's tracker: its run directory (the source of truth) and the live mirror to MLflow.

A run that raises is marked FAILED, one interrupted by Ctrl-C, ``kill`` or a closed terminal KILLED:
never FINISHED. A store that fails mid-run does not stop the run (see :mod:`multiseal.run.mirror`).
A full disk does: the run is marked FAILED wherever that can still be written (run.json, else at
least the store), and the error raised names the path that could not be written.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from multiseal.run.mirror import Mirror
from multiseal.run.rundir import CorruptRun, RunDir, write_error
from multiseal.run.tracking import runs_root


class Tracker:
    """One run: its directory (the source of truth) and the live mirror to MLflow; a context manager.

    ``with Tracker(uri, experiment, run_name, params) as t: t.metrics({...}, step=1)``. Pass ``run``
    to continue an existing run directory (``--resume``); otherwise one is created under ``root``.
    """

    def __init__(
        self,
        uri: str | None,
        experiment: str,
        run_name: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        *,
        run: Any = None,
        root: str | Path | None = None,
        kind: str = "simulation",
        source: str | Path | None = None,
    ):
        if run is None:
            run = RunDir.create(
                runs_root(root),
                experiment,
                run_name or experiment,
                dict(params or {}),
                tags=dict(tags or {}),
                kind=kind,
                source=source,
            )
        else:
            run.claim()
        self.run = run
        self.mirror = Mirror(run, uri, live=True)
        self.uri = self.mirror.uri
        self.mirror.open()
        self.mirror.push()
        run.start_heartbeat()

    @property
    def run_id(self) -> str | None:
        return self.mirror.run_id

    # -- logging --------------------------------------------------------------
    def metrics(self, values: Mapping[str, float], step: int, round: int | None = None) -> None:
        """Journal finite values at ``step`` (NaN means undefined and is skipped), then mirror them.
        ``round``: this entry completes a checkpointed round."""
        entry: dict[str, Any] = {
            "step": int(step),
            "time": time.time(),
            "metrics": {k: float(v) for k, v in values.items() if v is not None and math.isfinite(float(v))},
        }
        if round is not None:
            entry["round"] = round
        self.run.append(entry)
        self.mirror.push()

    def tags(self, tags: Mapping[str, str]) -> None:
        self.run.update(tags={**self.run.meta.get("tags", {}), **{k: str(v) for k, v in tags.items()}})
        if self.mirror.run_id and not self.mirror.offline:
            for k, v in tags.items():
                self.mirror._guard("set a tag", self.mirror._client.set_tag, self.mirror.run_id, k, str(v))

    def artifact_file(self, path: str | Path, folder: str | None = None) -> None:
        target = self.run.artifacts / (folder or "") / Path(path).name
        if Path(path).resolve() != target.resolve():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)

    def artifact_text(self, name: str, text: str, folder: str | None = None) -> None:
        (self.run.artifacts / (folder or "")).mkdir(parents=True, exist_ok=True)
        self.run.artifact_text(str(Path(folder or "") / name), text)

    def artifact_jsonl(self, name: str, rows: Iterable[Mapping[str, Any]], folder: str | None = None) -> None:
        self.artifact_text(name, "".join(json.dumps(r, default=str) + "\n" for r in rows), folder)

    def artifact_dir(self) -> Path:
        """The folder whose files are the run's artifacts (files written here are logged as they are)."""
        return self.run.artifacts

    # -- lifecycle ------------------------------------------------------------
    def end(self, status: str = "FINISHED") -> None:
        """Mark the run ``status`` in its directory, then in the store. When run.json cannot be written (a
        full disk) the store is still told (FAILED for a run that could not record its end) and the write
        error is raised after."""
        error = None
        try:
            self.run.finish(status)
        except (OSError, CorruptRun) as e:
            error, status = e, "FAILED" if status == "FINISHED" else status
        if not self.mirror.close(status):
            print(
                f"multiseal: the run is complete in {self.run.path} but not in {self.uri}; upload it with: "
                f"multiseal sync {self.run.path} --tracking-uri {self.uri}",
                file=sys.stderr,
                flush=True,
            )
        if error is not None:
            raise error

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.end("FINISHED")
            return False
        try:
            self.end("KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED")
        except (OSError, CorruptRun):
            pass  # the run's own error is the one to report, not that run.json could not record it
        disk = write_error(exc, self.run.path)  # a full disk: the error names the path it could not write
        if disk is not None and disk is not exc:
            raise disk from exc
        return False


def open_tracker(
    scenario: Any, source: str | Path | None, tags: Mapping[str, str] | None = None, run: Any = None
) -> Tracker:
    """The tracker of a scenario's run (``scenario``: a :class:`multiseal.config.schema.Scenario`);
    ``run`` continues an existing run directory."""
    resolved = scenario.model_dump(mode="json")
    tracker = Tracker(
        scenario.tracking.uri,
        scenario.tracking.experiment,
        scenario.tracking.run_name or scenario.name,
        params=resolved,
        tags={"multiseal.kind": scenario.kind, "multiseal.scenario": scenario.name, **(tags or {})},
        run=run,
        root=scenario.tracking.run_dir,
        kind=scenario.kind,
        source=source if source is not None and Path(source).exists() else None,
    )
    if run is None:
        if source is not None and Path(source).exists():
            tracker.artifact_file(source, "scenario")
        tracker.artifact_text("scenario.resolved.json", json.dumps(resolved, indent=2), "scenario")
    return tracker
