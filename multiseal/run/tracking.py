"""The tracking store: where it is, whether it answers, and the one MLflow client helper.

The default store is embedded and local (``sqlite:///mlflow.db`` in the working directory);
``tracking.uri`` in the scenario or ``$MLFLOW_TRACKING_URI`` points elsewhere (a real server).
:func:`client` is the one way any part of multiseal talks to MLflow. A run's own record is its run
directory (:mod:`multiseal.run.rundir`), mirrored to the store (:mod:`multiseal.run.mirror`) by its
:class:`~multiseal.run.tracker.Tracker`.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from multiseal.config.paths import DEFAULT_URI, local_store, runs_root, store_problem, tracking_uri  # noqa: F401 - defined with the scenario's paths
from multiseal.errors import InputError

# A tracking server that stops answering must not freeze a run for minutes: MLflow's own defaults
# retry 7 times with exponential backoff and wait 120 s per request. The user's settings win.
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """For a local SQLite store: one process at a time creates and migrates it (two at once collide in
    alembic's migration), under an exclusive file lock beside the database file."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    db = Path(uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def client(uri: str | None = None, create: bool = True):  # -> mlflow.MlflowClient
    """The one way multiseal talks to MLflow: a client on ``tracking_uri(uri)``, with MLflow's and
    alembic's chatter turned down and a local SQLite store created once, under a lock. With
    ``create=False`` (reading, as a report does) a local store that does not exist is an InputError,
    and nothing is created."""
    import logging

    local = local_store(tracking_uri(uri))
    if not create and local is not None and not local[0].exists():
        raise InputError(
            f"tracking store {tracking_uri(uri)}: {local[0]} does not exist (nothing was ever logged "
            "there); give the store your runs are in with --tracking-uri or $MLFLOW_TRACKING_URI"
        )

    for key, value in _HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    import mlflow

    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    uri = tracking_uri(uri)
    with _store_lock(uri):
        c = mlflow.MlflowClient(uri)
        if uri.startswith("sqlite:///"):
            c.search_experiments(max_results=1)  # creates and migrates the store now, inside the lock
    return c


def check_reachable(uri: str | None, timeout: float = 5.0) -> None:
    """Fail fast, before any model loads, when the tracking store cannot be used: an HTTP server whose
    ``/health`` or whose REST API (a one-result experiment search) does not answer within ``timeout``
    seconds each, or a local store whose folder cannot be written. Any HTTP reply of the API counts as an
    answer (an error status too: a server that asks for credentials answers)."""
    uri = tracking_uri(uri)
    scheme = uri.split(":", 1)[0] if ":" in uri else "file"
    if scheme in ("http", "https"):
        base = uri.rstrip("/")
        try:
            with urllib.request.urlopen(base + "/health", timeout=timeout) as reply:
                reply.read(64)
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise InputError(
                f"tracking.uri: cannot reach the MLflow server at {uri} within {timeout:g} s "
                f"({reason}); start it (mlflow server --host 127.0.0.1 --port 5000) or set "
                "--tracking-uri"
            ) from None
        try:  # /health can answer while the API hangs (a stuck backend store)
            with urllib.request.urlopen(
                base + "/api/2.0/mlflow/experiments/search?max_results=1", timeout=timeout
            ) as reply:
                reply.read(64)
        except urllib.error.HTTPError:
            pass
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise InputError(
                f"tracking.uri: the MLflow server at {uri} answers /health but its API did not "
                f"answer within {timeout:g} s ({reason}); check the server and its backend store, "
                "or set --tracking-uri"
            ) from None
    elif problem := store_problem(uri):  # a local store: written to, not judged by permission bits
        raise InputError(f"tracking.uri: {uri}: {problem}")


def flatten_scenario(tree: Mapping[str, Any]) -> dict[str, Any]:
    """A nested settings tree as ``{"topology.kind": "ring", ...}``, for MLflow params."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            out[prefix] = value

    walk("", dict(tree))
    return out


def param_value(v: Any) -> str:
    s = json.dumps(v) if isinstance(v, (list, dict)) else str(v)
    return s if len(s) <= 6000 else s[:5997] + "..."


def metric_key(k: str) -> str:
    # MLflow allows alphanumerics, _ - . space / ; anything else becomes '_'
    return "".join(c if c.isalnum() or c in "_-. /" else "_" for c in k)
