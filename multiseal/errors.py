"""Errors that mean *the user's input is wrong* (exit status 2), kept apart from bugs.

Every message names the file and the key path (or item index) so the user can fix it
without reading a traceback.
"""

from __future__ import annotations

import errno
import json
import os
import reprlib
import stat
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ValidationError

# ---------------------------------------------------------------- limits on what input may be

MiB = 1024 * 1024
SCENARIO_MAX_BYTES = 1 * MiB  # a scenario or sweep file
SQUAD_MAX_BYTES = 64 * MiB  # a SQuAD-style JSON file (SQuAD v1.1's whole training set is 30 MB)
ADJACENCY_MAX_BYTES = 4 * MiB  # an adjacency-matrix file (256 agents: 65,536 entries)
SHOWN_CHARS = 80  # a value echoed in a message is cut to this many characters
MESSAGE_CHARS = 1000  # one problem's message is cut to this many characters
MAX_PROBLEMS = 50  # problems listed per file (the rest are counted)

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict, _REPR.maxset = 2, 6, 6, 4, 6
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = SHOWN_CHARS


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """``repr(value)`` for a message, never longer than ``limit`` characters however large the value
    (reprlib looks at a few items of a few levels, not the whole input)."""
    try:
        return _cut(_REPR.repr(value), limit)
    except ValueError:  # an int too long for repr
        return f"<a {type(value).__name__}>"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class InputError(Exception):
    """Bad user input: a scenario, a data file, a CLI flag. The CLI turns it into exit status 2."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, at a dotted key path (``topology.params.k``)."""

    path: str
    message: str

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        return _cut(text, MESSAGE_CHARS)


class ScenarioError(InputError):
    """All problems found in one scenario file, reported together (the first ``MAX_PROBLEMS``
    listed, each cut to ``MESSAGE_CHARS``: bad input never makes an unbounded message)."""

    def __init__(self, source: str | Path | None, problems: list[Problem]):
        self.source = str(source) if source is not None else "<scenario>"
        self.problems = list(problems)
        lines = [f"  {p}" for p in self.problems[:MAX_PROBLEMS]]
        n = len(self.problems)
        if n > MAX_PROBLEMS:
            lines.append(f"  ... and {n - MAX_PROBLEMS} more")
        super().__init__(f"{self.source}: {n} problem{'s' if n != 1 else ''}\n" + "\n".join(lines))


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


class FileReadError(InputError):
    """An input file that cannot be read within its limits: ``reason`` says why, without the path."""

    def __init__(self, source: str | Path, reason: str):
        self.source, self.reason = str(source), reason
        super().__init__(f"{source}: {reason}")


def _size(n: int) -> str:
    return f"{n / MiB:g} MiB" if n >= MiB else f"{n:,} bytes"


def read_bytes(path: str | Path, limit: int, what: str = "the file", *, follow_links: bool = True) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; raises :class:`FileReadError`.

    The one way multiseal reads an input file (and a run directory's checkpoint files, with
    ``follow_links=False``: a symbolic link is refused). A device, FIFO, socket or folder is refused
    before a byte is read (opening does not wait on a FIFO), and at most ``limit + 1`` bytes are read,
    so a file that grows or lies about its size (``/proc``) cannot exhaust memory either.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_links:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise FileReadError(path, "file not found") from None
    except OSError as e:
        if e.errno == errno.ELOOP and not follow_links:
            raise FileReadError(path, "a symbolic link, not followed") from None
        raise FileReadError(path, f"cannot read file: {e.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = (
                "a folder"
                if stat.S_ISDIR(mode)
                else "a device"
                if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "a FIFO"
                if stat.S_ISFIFO(mode)
                else "a socket"
                if stat.S_ISSOCK(mode)
                else "a special file"
            )
            raise FileReadError(path, f"{kind}, not a regular file: {what} must be a file")
        os.set_blocking(fd, True)
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, MiB))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        if left <= 0:
            raise FileReadError(path, f"larger than {_size(limit)}, the most {what} may be")
        return b"".join(chunks)
    except OSError as e:
        raise FileReadError(path, f"cannot read file: {e.strerror}") from None
    finally:
        os.close(fd)


def read_text(path: str | Path, limit: int, what: str = "the file", fmt: str = "text") -> str:
    """:func:`read_bytes`, then UTF-8 text: a binary file (a NUL byte) and one that is not UTF-8 are
    refused (:class:`FileReadError`), the latter naming the byte and its line."""
    data = read_bytes(path, limit, what)
    if b"\x00" in data:
        raise FileReadError(path, f"a binary file, not {fmt}: {what} must be a UTF-8 text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise FileReadError(
            path, f"not UTF-8 text (byte 0x{data[e.start]:02x} on line {line}); save the file as UTF-8"
        ) from None


def read_json(path: str | Path, limit: int, what: str = "the file") -> object:
    """:func:`read_text`, then JSON: every failure a :class:`FileReadError` saying why — not JSON (with
    the line and column), nested past the parser's recursion limit (the C parser stops there: bounded),
    or a number too long to convert."""
    text = read_text(path, limit, what, "JSON")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise FileReadError(path, f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise FileReadError(path, "nested too deeply: the JSON parser gave up") from None
    except ValueError as e:  # a number too long to convert (sys.get_int_max_str_digits)
        raise FileReadError(path, f"not valid JSON: {str(e).split(';')[0]}") from None


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


def pydantic_problems(
    error: ValidationError, *, prefix: str = "", model: type[BaseModel] | None = None, owner: str | None = None
) -> list[Problem]:
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
            msg = f"{shown(e.get('input'))} is not one of {e['ctx']['expected']}"
        elif kind == "missing" and model is not None:
            msg = "is required" + (f" ({top.description})" if top is not None and top.description else "")
        elif model is not None and kind not in _OWN_MESSAGE:
            msg = f"{msg}, got {shown(e.get('input'))}"
        out.append(Problem(path, msg.removeprefix("Value error, ")))
    return out
