"""Paths inside a scenario (data files, adjacency files) are relative to the scenario file."""
from __future__ import annotations

from pathlib import Path


def resolve_relative(path: str | None, source: str | Path | None) -> Path:
    """``path`` relative to the folder of ``source`` (the scenario file) when it exists there, or
    when it does not exist as given either; an absolute path is kept."""
    p = Path(path or "")
    if not p.is_absolute() and source is not None:
        candidate = Path(source).parent / p
        if candidate.exists() or not p.exists():
            return candidate
    return p
