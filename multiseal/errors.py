"""Errors that mean *the user's input is wrong* (exit status 2), kept apart from bugs.

Every message names the file and the key path (or item index) so the user can fix it
without reading a traceback.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class InputError(Exception):
    """Bad user input: a scenario, a data file, a CLI flag. The CLI turns it into exit status 2."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, at a dotted key path (``topology.params.k``)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ScenarioError(InputError):
    """All problems found in one scenario file, reported together."""

    def __init__(self, source: str | Path | None, problems: list[Problem]):
        self.source = str(source) if source is not None else "<scenario>"
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        n = len(self.problems)
        super().__init__(f"{self.source}: {n} problem{'s' if n != 1 else ''}\n{lines}")


class DataError(InputError):
    """A malformed data file: names the file, the item index and the key."""

    def __init__(self, source: str | Path, message: str, index: int | None = None, key: str | None = None):
        self.source = str(source)
        self.index = index
        self.key = key
        where = self.source
        if index is not None:
            where += f": item {index}"
        if key is not None:
            where += f": key '{key}'"
        super().__init__(f"{where}: {message}")


class ModelUnavailableError(InputError):
    """The named base model cannot be found locally (and downloads are off)."""
