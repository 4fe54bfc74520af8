"""Notes: self-edits as they travel between agents."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Note:
    """A self-edit written by ``author`` about document ``doc_id`` in round ``round``.

    ``sequences`` are the training sequences parsed from ``text`` (title-prefixed lines or QA pairs);
    they never include the raw passage: only an agent that received the document itself trains on it.
    ``tokens`` is the tokenizer length of ``text``, used for communication accounting.
    """

    note_id: str
    author: int
    doc_id: str
    round: int
    style: str
    text: str
    sequences: tuple[str, ...]
    tokens: int


@dataclass(frozen=True)
class InboxItem:
    """A note as it sits in one agent's inbox: who sent it, when it arrived, how far it travelled."""

    note: Note
    sender: int
    received_round: int
    weight: float = 1.0  # trust weight of the edge it arrived on (1.0 for one's own notes)
    hops: int = 0  # 0 = own note, 1 = from a neighbour, 2+ = relayed
