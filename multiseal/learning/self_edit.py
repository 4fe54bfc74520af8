"""Self-edits: SEAL's prompt styles, batched sampling of candidates, parsing into training sequences.

A self-edit is the model's own fine-tuning data for a passage. As in SEAL's knowledge-incorporation
code, a completion is split into lines (or question–answer pairs), each prefixed by the passage's
title; the raw passage is appended as one more sequence by whoever has the passage.

A *retold* note (``sharing.retell``) is written closed book: the style's ``recall`` instruction and the
document's title, never its passage (:func:`retell_request`); the completion is parsed as the style's
notes are.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from multiseal.registry import Registry
from multiseal.types import Document, SelfEditSettings


@dataclass(frozen=True)
class PromptStyle:
    """How to ask for a self-edit and how to cut its completion into training sequences."""

    instruction: str | None  # None: no self-edit is written (the passage-only baseline)
    parse: Callable[[str, str], list[str]]  # (completion, title) -> sequences
    recall: str = (  # closed book: how to ask for this style's note from memory, given only the title
        "Write a short passage about the following subject from what you know about it, stating every fact you know."
    )


_BULLET = re.compile(r"^\s*(?:[-*•]+|\d+[.)](?=\s|$)|\(\d+\))\s*")


def split_lines(completion: str, title: str) -> list[str]:
    """One sequence per non-empty line, bullets and numbering stripped, prefixed by the title."""
    out = []
    for line in completion.splitlines():
        line = _BULLET.sub("", line).strip()
        if len(line) >= 3 and not line.endswith(":"):
            out.append(f"{title}\n{line}")
    return out


def split_paragraphs(completion: str, title: str) -> list[str]:
    """One sequence per rewrite: paragraphs separated by blank lines (or lines if there are none)."""
    parts = [p.strip() for p in re.split(r"\n\s*\n", completion) if p.strip()]
    if len(parts) <= 1:
        return split_lines(completion, title)
    return [f"{title}\n{_BULLET.sub('', p)}" for p in parts]


_Q = r"(?:(?i:question)|Q)\s*\d*\s*:"
_A = r"(?:(?i:answer)|A)\s*\d*\s*:"
_QA = re.compile(
    rf"(?<!\S)(?:\d+[.)]\s*)?{_Q}\s*(?P<q>.+?)\s*(?<!\S){_A}\s*(?P<a>.+?)(?=\s+(?:\d+[.)]\s*)?{_Q}|\Z)",
    re.DOTALL,
)


def split_qa(completion: str, title: str) -> list[str]:
    """One sequence per question–answer pair (``Question: … Answer: …``); falls back to lines."""
    pairs = [(m["q"].strip(), " ".join(m["a"].split())) for m in _QA.finditer(completion)]
    pairs = [(q, a) for q, a in pairs if q and a]
    if not pairs:
        return split_lines(completion, title)
    return [f"{title}\nQuestion: {q}\nAnswer: {a}" for q, a in pairs]


STYLES: Registry[PromptStyle] = Registry("prompt style")
# The instructions follow SEAL's knowledge-incorporation prompts (knowledge-incorporation/src/utils.py).
STYLES.register(
    "implications",
    PromptStyle(
        "Read the following passage and produce a list of implications derived directly or indirectly "
        "from the content. Write one implication per line.",
        split_lines,
        "From what you know about the following subject, produce a list of implications about it. "
        "Write one implication per line.",
    ),
)
STYLES.register(
    "implications-long",
    PromptStyle(
        "Read the following passage and produce a long list of implications derived directly or "
        "indirectly from the content. Write one implication per line, and restate every fact of the "
        "passage in at least one of them.",
        split_lines,
        "From what you know about the following subject, produce a long list of implications about it. "
        "Write one implication per line, and state every fact you know about it in at least one of them.",
    ),
)
STYLES.register(
    "rewrite",
    PromptStyle(
        "Read the following passage and rewrite it in a few different ways, each one separated by a blank line.",
        split_paragraphs,
        "From what you know about the following subject, write a few short passages about it, each one "
        "separated by a blank line.",
    ),
)
STYLES.register(
    "self-qa",
    PromptStyle(
        "Read the following passage and rewrite it in a question-answer format. Write each pair as "
        "'Question: ...' on one line and 'Answer: ...' on the next.",
        split_qa,
        "From what you know about the following subject, write questions about it with their answers. "
        "Write each pair as 'Question: ...' on one line and 'Answer: ...' on the next.",
    ),
)
STYLES.register("passage-only", PromptStyle(None, lambda completion, title: []))


def self_edit_request(doc: Document, style: str) -> str | None:
    """The user message that asks for a self-edit of ``doc`` (None for ``passage-only``)."""
    instruction = STYLES.get(style).instruction
    if instruction is None:
        return None
    return f"{instruction}\n\nPassage:\n{doc.title}\n{doc.context}"


def retell_request(doc: Document, style: str) -> str:
    """The user message that asks for a note about ``doc`` from memory: the style's ``recall``
    instruction and the document's title only (its passage is never shown)."""
    return f"{STYLES.get(style).recall}\n\nSubject:\n{doc.title}"


def parse_retold(completion: str, doc: Document, style: str) -> list[str]:
    """Training sequences from a retold note: the style's parser; a style that writes no note of its
    own (``passage-only``) retells a passage, which is one sequence."""
    st = STYLES.get(style)
    if st.instruction is None:
        text = completion.strip()
        return [f"{doc.title}\n{text}"] if text else []
    return st.parse(completion, doc.title)


def passage_sequence(doc: Document) -> str:
    """The raw passage as one training sequence (title, newline, context), as SEAL appends it."""
    return f"{doc.title}\n{doc.context}"


def parse_completion(completion: str, doc: Document, style: str) -> list[str]:
    """Training sequences from one completion, without the passage (appended by the caller)."""
    return STYLES.get(style).parse(completion, doc.title)


def training_sequences(completion: str, doc: Document, style: str, include_passage: bool = True) -> list[str]:
    """SEAL's training set for one self-edit: the parsed completion, then the raw passage."""
    seqs = parse_completion(completion, doc, style)
    if include_passage:
        seqs.append(passage_sequence(doc))
    return seqs


def sample_self_edits(
    model,  # multiseal.learning.model.SharedModel
    requests: Sequence[tuple[Document, str | None, str]],
    settings: SelfEditSettings,
    seed: int | None = None,
    progress: str | None = "writing self-edits",
    closed_book: bool = False,
) -> list[list[str]]:
    """``settings.candidates`` completions per (document, adapter, style) request, in one batched pass.

    Returns, for each request, the list of candidate completions (empty strings for
    ``passage-only``). Every prompt is repeated k times in the same ``generate`` call, so all
    candidates of all documents and agents share the batches. ``closed_book``: retold notes, asked
    for by title alone (:func:`retell_request`; every style writes one, ``passage-only`` a passage).
    """
    prompts, adapters, owners = [], [], []
    for r, (doc, adapter, style) in enumerate(requests):
        text = retell_request(doc, style) if closed_book else self_edit_request(doc, style)
        if text is None:
            continue
        for _ in range(settings.candidates):
            prompts.append(model.prompt(text))
            adapters.append(adapter)
            owners.append(r)
    results: list[list[str]] = [[] for _ in requests]
    if prompts:
        completions = model.generate(
            prompts,
            adapters,
            max_new_tokens=settings.max_new_tokens,
            temperature=settings.temperature,
            top_p=settings.top_p,
            seed=seed,
            progress=progress,
        )
        for r, c in zip(owners, completions):
            results[r].append(c)
    for r, (_, _, style) in enumerate(requests):
        if STYLES.get(style).instruction is None and not closed_book:
            results[r] = [""] * settings.candidates
    return results


def check_style(name: str) -> None:
    """Conformance check for a registered prompt style (raises AssertionError naming what is wrong):
    its request shows the passage and its title, its closed-book request the title and not the
    passage, and its parser turns a completion into title-prefixed sequences (none for a style that
    writes no note)."""
    from multiseal.types import Document

    st = STYLES.get(name)
    doc = Document("x0", "Check Title", "Check passage about the check title, with one fact.", ())
    assert isinstance(st.recall, str) and st.recall, f"style {name!r}: no recall instruction"
    asked = self_edit_request(doc, name)
    if st.instruction is None:
        assert asked is None, f"style {name!r} writes no note but asks for one"
    else:
        assert asked is not None and doc.context in asked and doc.title in asked, f"style {name!r}: request"
    recall = retell_request(doc, name)
    assert doc.title in recall and doc.context not in recall, (
        f"style {name!r}: the closed-book request shows the passage"
    )
    completion = "Question: What is it? Answer: a check.\nThe check title is a check.\n\nAnother line."
    for seqs in (st.parse(completion, doc.title), parse_retold(completion, doc, name)):
        assert isinstance(seqs, list) and all(isinstance(s, str) for s in seqs), f"style {name!r}: parse"
        assert all(s.startswith(doc.title + "\n") for s in seqs), f"style {name!r}: sequences lack the title"
    assert parse_retold(completion, doc, name), f"style {name!r}: a retold note gives no sequence"
