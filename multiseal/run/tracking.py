"""MLflow tracking: one run per simulation or experiment, params, stepped metrics, artifacts.

The default store is embedded and local (``sqlite:///mlflow.db`` in the working directory);
``tracking.uri`` in the scenario or ``$MLFLOW_TRACKING_URI`` points elsewhere (a real server). A run
that raises is marked FAILED, one interrupted by Ctrl-C is marked KILLED: never FINISHED.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

from multiseal.config.load import flatten
from multiseal.config.schema import Scenario

DEFAULT_URI = "sqlite:///mlflow.db"


def tracking_uri(configured: str | None = None) -> str:
    """Scenario setting, else ``$MLFLOW_TRACKING_URI``, else the local SQLite store."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def client(uri: str | None = None):  # -> mlflow.MlflowClient
    """The one way multiseal talks to MLflow: a client on ``tracking_uri(uri)``, with MLflow's and
    alembic's chatter turned down (every part that reads or writes runs goes through here)."""
    import logging

    import mlflow

    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    return mlflow.MlflowClient(tracking_uri(uri))


class Tracker:
    """A thin wrapper over one MLflow run; use as a context manager.

    ``with Tracker(uri, experiment, run_name, params) as t: t.metrics({...}, step=1)``
    """

    def __init__(
        self,
        uri: str | None,
        experiment: str,
        run_name: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ):
        self.uri = tracking_uri(uri)
        self._client = client(self.uri)
        exp = self._client.get_experiment_by_name(experiment)
        self.experiment_id = exp.experiment_id if exp else self._client.create_experiment(experiment)
        self._run = self._client.create_run(self.experiment_id, run_name=run_name, tags=dict(tags or {}))
        self.run_id = self._run.info.run_id
        self._tmp = tempfile.TemporaryDirectory(prefix="multiseal-artifacts-")
        if params:
            self.params(params)

    # -- logging --------------------------------------------------------------
    def params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, _param_value(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self._client.log_batch(self.run_id, params=items[i : i + 100])

    def metrics(self, values: Mapping[str, float], step: int) -> None:
        """Log finite values at ``step`` (NaN means undefined and is skipped)."""
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(_metric_key(k), float(v), now, step)
            for k, v in values.items()
            if v is not None and math.isfinite(float(v))
        ]
        for i in range(0, len(items), 1000):
            self._client.log_batch(self.run_id, metrics=items[i : i + 1000])

    def tags(self, tags: Mapping[str, str]) -> None:
        for k, v in tags.items():
            self._client.set_tag(self.run_id, k, str(v))

    def artifact_file(self, path: str | Path, folder: str | None = None) -> None:
        self._client.log_artifact(self.run_id, str(path), folder)

    def artifact_text(self, name: str, text: str, folder: str | None = None) -> None:
        local = Path(self._tmp.name) / name
        local.write_text(text)
        self.artifact_file(local, folder)

    def artifact_jsonl(self, name: str, rows: Iterable[Mapping[str, Any]], folder: str | None = None) -> None:
        self.artifact_text(name, "".join(json.dumps(r, default=str) + "\n" for r in rows), folder)

    def artifact_dir(self) -> Path:
        """A scratch folder for files that will be logged with ``artifact_file``."""
        return Path(self._tmp.name)

    # -- lifecycle ------------------------------------------------------------
    def end(self, status: str = "FINISHED") -> None:
        self._client.set_terminated(self.run_id, status=status)
        self._tmp.cleanup()

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.end("FINISHED")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.end("KILLED")
        else:
            self.end("FAILED")
        return False


def _param_value(v: Any) -> str:
    s = json.dumps(v) if isinstance(v, (list, dict)) else str(v)
    return s if len(s) <= 6000 else s[:5997] + "..."


def _metric_key(k: str) -> str:
    # MLflow allows alphanumerics, _ - . space / ; anything else becomes '_'
    return "".join(c if c.isalnum() or c in "_-. /" else "_" for c in k)


def open_tracker(scenario: Scenario, source: str | Path | None, tags: Mapping[str, str] | None = None) -> Tracker:
    tracker = Tracker(
        scenario.tracking.uri, scenario.tracking.experiment, scenario.tracking.run_name or scenario.name,
        params=flatten(scenario),
        tags={"multiseal.kind": scenario.kind, "multiseal.scenario": scenario.name, **(tags or {})},
    )
    if source is not None and Path(source).exists():
        tracker.artifact_file(source, "scenario")
    tracker.artifact_text("scenario.resolved.json", json.dumps(scenario.model_dump(mode="json"), indent=2), "scenario")
    return tracker
