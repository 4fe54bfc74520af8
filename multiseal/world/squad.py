"""Documents from a SEAL/SQuAD-style JSON file (``title``, ``context``, ``questions``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from multiseal.errors import SQUAD_MAX_BYTES, DataError, FileReadError, read_json
from multiseal.types import Document, Question, World

# --------------------------------------------------------------------------------------------
# SEAL / SQuAD-style JSON: [{"title": str, "context": str, "questions": [{"question", "answer"}]}]
# --------------------------------------------------------------------------------------------

_ITEM_KEYS = ("title", "context", "questions")
_QUESTION_KEYS = ("question", "answer")


def _text(src: Path, obj: dict[str, Any], key: str, index: int, path: str) -> str:
    """``obj[key]`` as a non-empty string, or a DataError naming ``path``."""
    if key not in obj:
        raise DataError(src, "missing key", index=index, key=path)
    value = obj[key]
    if not isinstance(value, str):
        raise DataError(src, f"expected a string, got {type(value).__name__}", index=index, key=path)
    if not value.strip():
        raise DataError(src, "must not be empty", index=index, key=path)
    return value


def _unknown(src: Path, obj: dict[str, Any], allowed: tuple[str, ...], index: int, where: str) -> None:
    extra = sorted(set(obj) - set(allowed))
    if extra:
        raise DataError(
            src,
            f"unknown key(s) {', '.join(map(repr, extra))}; allowed: {', '.join(allowed)}",
            index=index,
            key=where + extra[0],
        )


def _load_item(src: Path, item: Any, i: int) -> Document:
    if not isinstance(item, dict):
        raise DataError(
            src, f"expected an object with keys {', '.join(_ITEM_KEYS)}, got {type(item).__name__}", index=i
        )
    _unknown(src, item, _ITEM_KEYS, i, "")
    doc_id = f"d{i:03d}"
    title = _text(src, item, "title", i, "title")
    context = _text(src, item, "context", i, "context")
    if "questions" not in item:
        raise DataError(src, "missing key", index=i, key="questions")
    raw = item["questions"]
    if not isinstance(raw, list):
        raise DataError(src, f"expected a list, got {type(raw).__name__}", index=i, key="questions")
    if not raw:
        raise DataError(src, "must contain at least one question", index=i, key="questions")
    questions = []
    for k, q in enumerate(raw):
        at = f"questions[{k}]"
        if not isinstance(q, dict):
            raise DataError(
                src, f"expected an object with keys question, answer, got {type(q).__name__}", index=i, key=at
            )
        _unknown(src, q, _QUESTION_KEYS, i, at + ".")
        text = _text(src, q, "question", i, at + ".question")
        answer = _text(src, q, "answer", i, at + ".answer")
        questions.append(Question(f"{doc_id}.q{k}", text, answer, (doc_id,)))
    return Document(doc_id, title, context, tuple(questions))


def load_squad_json(path: str | Path) -> World:
    """Load a SEAL/SQuAD-style JSON list of passages; doc ids ``d000``... follow file order.

    Any malformed part raises ``DataError`` naming the file, the item index and the key
    (``questions[2].answer``); unknown keys fail rather than being silently ignored. The file is read
    within ``SQUAD_MAX_BYTES`` by :func:`multiseal.errors.read_json` (JSON nested past the parser's
    limit is refused as it is met; the format is four levels deep).
    """
    src = Path(path)
    try:
        data = read_json(src, SQUAD_MAX_BYTES, "a SQuAD-style JSON file")
    except FileReadError as e:
        raise DataError(src, e.reason) from None
    if isinstance(data, dict):
        keys = ", ".join(map(repr, list(data)[:5]))
        raise DataError(
            src,
            "top level must be a list of {title, context, questions} items, "
            f"got an object (keys {keys}); put the items in a top-level list",
        )
    if not isinstance(data, list):
        raise DataError(src, f"top level must be a list of items, got {type(data).__name__}")
    if not data:
        raise DataError(src, "contains no items")
    return World(tuple(_load_item(src, item, i) for i, item in enumerate(data)))
