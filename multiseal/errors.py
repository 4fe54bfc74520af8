"""Errors that mean *the user's input is wrong* (exit status 2), kept apart from bugs.

Every message names the file and the key path (or item index) so the user can fix it
without reading a traceback.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ValidationError


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


class ParamsError(InputError, ValueError):
    """Bad parameters of a registered kind (a topology, a scheduler, a policy), all problems at once.

    ``problems`` are ``(dotted key, message)`` pairs relative to the kind's section
    (``params.k``, ``weights.random``, ``kind``); ``key`` and ``message`` are the first one's.
    """

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = list(problems)
        self.key, self.message = self.problems[0] if self.problems else ("", "")
        super().__init__("; ".join(f"{k}: {m}" if k else m for k, m in self.problems))


class FieldProblems(ValueError):
    """Raised inside a pydantic validator to report problems at keys *below* what it validates.

    Each problem is ``(sub key, message)``; the sub key is relative to the validated value: a field
    name (``"rows"``) for a model validator, an index (``"[1]"``) for a list field's validator.
    :func:`pydantic_problems` puts them at their full dotted path.
    """

    def __init__(self, *problems: tuple[str, str]):
        self.problems = list(problems)
        super().__init__("; ".join(f"{k}: {m}" if k else m for k, m in self.problems))


# ---------------------------------------------------------------- pydantic errors as problems

def join_path(base: str, sub: str) -> str:
    """``params`` + ``k`` → ``params.k``; ``params.edges`` + ``[1]`` → ``params.edges[1]``."""
    if not base or not sub:
        return base or sub
    return base + sub if sub.startswith("[") else f"{base}.{sub}"


def loc_path(loc: tuple) -> str:
    """A pydantic error location as a dotted key path (``agents.overrides.1.lr``, ``styles[0]``)."""
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]" if parts else str(p))
        elif p in ("function-after", "function-before") or str(p).startswith(("function-", "tagged-union")):
            continue
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts)


_OWN_MESSAGE = ("value_error", "assertion_error")


def pydantic_problems(error: ValidationError, *, prefix: str = "", model: type[BaseModel] | None = None,
                      owner: str | None = None) -> list[Problem]:
    """Every error of a pydantic validation as a :class:`Problem` at its dotted key path under ``prefix``.

    Scenario sections pass no ``model``: an unknown key reads ``unknown key``. The parameters of a
    registered kind pass their ``model`` (and ``owner``, e.g. ``topology ring``), which makes the
    messages say more: an unknown key lists the allowed ones, a missing one gives the field's
    description, and a type or range error shows the value it got.
    """
    out = []
    for e in error.errors():
        path = join_path(prefix, loc_path(e["loc"]))
        raised = (e.get("ctx") or {}).get("error")
        if isinstance(raised, FieldProblems):
            out += [Problem(join_path(path, k), m) for k, m in raised.problems]
            continue
        kind, msg = e["type"], e["msg"]
        top = model.model_fields.get(str(e["loc"][0])) if model is not None and len(e["loc"]) == 1 else None
        if kind == "extra_forbidden":
            msg = "unknown key"
            if model is not None and len(e["loc"]) == 1:
                what = f"unknown parameter for {owner}" if owner else "unknown key"
                msg = f"{what}; allowed: {', '.join(model.model_fields) or 'none'}"
        elif kind == "literal_error":
            msg = f"{e.get('input')!r} is not one of {e['ctx']['expected']}"
        elif kind == "missing" and model is not None:
            msg = "is required" + (f" ({top.description})" if top is not None and top.description else "")
        elif model is not None and kind not in _OWN_MESSAGE:
            msg = f"{msg}, got {e.get('input')!r}"
        out.append(Problem(path, msg.removeprefix("Value error, ")))
    return out
