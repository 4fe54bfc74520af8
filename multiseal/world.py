"""Documents and questions: the world the agents learn about.

(Helper: fill in the synthetic generator and the SQuAD/SEAL JSON loader below.)
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Question:
    """A closed-book question with a short gold answer span.

    ``doc_ids`` are the documents whose facts are needed: one for an ordinary question, two for a
    composition question (``kind == "composition"``).
    """

    qid: str
    question: str
    answer: str
    doc_ids: tuple[str, ...]
    kind: str = "single"


@dataclass(frozen=True)
class Document:
    """A passage (SEAL's ``title`` + ``context``) with the questions about it."""

    doc_id: str
    title: str
    context: str
    questions: tuple[Question, ...]


@dataclass(frozen=True)
class World:
    """All documents of a run, plus questions that need two documents at once."""

    documents: tuple[Document, ...]
    composition: tuple[Question, ...] = field(default=())

    def doc(self, doc_id: str) -> Document:
        for d in self.documents:
            if d.doc_id == doc_id:
                return d
        raise KeyError(doc_id)

    @property
    def doc_ids(self) -> list[str]:
        return [d.doc_id for d in self.documents]
