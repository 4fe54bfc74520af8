"""Paths a scenario names: data files relative to the scenario file, and the folders a run writes to
(the tracking store's and the run directories'), resolved with their defaults and checked by writing."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEFAULT_URI = "sqlite:///mlflow.db"
DEFAULT_RUNS = "runs"


def resolve_relative(path: str | None, source: str | Path | None) -> Path:
    """``path`` relative to the folder of ``source`` (the scenario file) when it exists there, or
    when it does not exist as given either; an absolute path is kept."""
    p = Path(path or "")
    if not p.is_absolute() and source is not None:
        candidate = Path(source).parent / p
        if candidate.exists() or not p.exists():
            return candidate
    return p


def topology_params(params: Mapping[str, Any], source: str | Path | None) -> dict[str, Any]:
    """A topology's ``params`` with its ``file`` (an edge list or adjacency matrix) resolved against
    the scenario's folder (:func:`resolve_relative`): the one place validation, the estimate and the
    builders get it from."""
    out = dict(params)
    if "file" in out:
        out["file"] = str(resolve_relative(out["file"], source))
    return out


def tracking_uri(configured: str | None = None) -> str:
    """Scenario setting, else ``$MLFLOW_TRACKING_URI``, else the local SQLite store."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def runs_root(configured: str | Path | None = None) -> Path:
    """Where run directories go: the scenario's ``tracking.run_dir``, else ``$MULTISEAL_RUNS``, else ``runs``."""
    return Path(configured or os.environ.get("MULTISEAL_RUNS") or DEFAULT_RUNS)


def local_store(uri: str) -> tuple[Path, Path] | None:
    """For a store on this machine, ``(path, folder it is written in)``: a SQLite database file and its
    folder, or a file store's folder (twice); None for a server or an in-memory database."""
    if uri == "databricks":
        return None
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else "file"
    if scheme == "sqlite":
        name = uri.split("://", 1)[1].removeprefix("/")
        if name in ("", ":memory:"):
            return None
        path = Path(name)
        return path, path.parent
    if scheme == "file":
        path = Path(uri.removeprefix("file://").removeprefix("file:"))
        return path, path
    return None


def probe_folder(folder: str | Path) -> str | None:
    """None when files can be created in ``folder``, else why not (a sentence naming the path).

    Checked by doing it, not by permission bits (which root passes, and which say nothing of
    ``/proc`` or a read-only mount): the missing folders are made, a probe file is created and
    removed, and the folders made are removed again, so nothing is left behind.
    """
    folder = Path(folder)
    missing, existing = [], folder
    while not existing.exists() and existing != existing.parent:
        missing.append(existing)
        existing = existing.parent
    if not existing.is_dir():
        return "a file, not a folder" if existing == folder else f"{existing} is a file, not a folder"
    made: list[Path] = []
    try:
        for path in reversed(missing):
            try:
                path.mkdir()
            except FileExistsError:
                continue  # made meanwhile by someone else: theirs to keep
            except OSError as e:
                return f"cannot create the folder {path}: {e.strerror}"
            made.append(path)
        try:
            fd, name = tempfile.mkstemp(prefix=".multiseal-probe-", dir=folder)
            os.close(fd)
            os.unlink(name)
        except OSError as e:
            return f"cannot write in the folder {folder}: {e.strerror}"
    finally:
        for path in reversed(made):
            try:
                path.rmdir()
            except OSError:
                pass  # something was written into it meanwhile (a run starting): keep it
    return None


def store_problem(uri: str) -> str | None:
    """None when a local tracking store at ``uri`` can be written (or it is not local), else why not."""
    local = local_store(uri)
    if local is None:
        return None
    path, folder = local
    if path != folder and path.exists():
        if not path.is_file():
            return f"{path} is not a file"
        if not os.access(path, os.R_OK | os.W_OK):
            return f"{path} cannot be written"
    return probe_folder(folder)
