"""Controls as ordinary settings: what a note carries (``sharing.content``) and compute matching.

``sharing.content`` (see ``docs/controls.md``):

* ``notes`` — agents' own self-edits travel (the default);
* ``passage`` — passage forwarding: a recipient's note *is* the passage (text = the context, one
  sequence = :func:`multiseal.learning.self_edit.passage_sequence`); no self-edit is written;
* ``oracle`` — oracle notes: one plain sentence per gold fact of the document
  (:func:`multiseal.world.vocabulary.fact_sentence`), each a title-prefixed sequence; no self-edit is
  written; synthetic worlds only;
* ``shuffled`` — self-edits are written and kept by their authors, but each copy that travels is a
  distractor note: the same number of sequences and about the same number of tokens, made of
  oracle sentences about a distractor document (:func:`multiseal.world.synthetic.generate_distractors`)
  that no question asks about. Real document ``j`` always maps to distractor document ``j``.

Compute matching is a scheduler's business (the ``isolated`` scheduler's ``match`` parameter): a
scheduler with a ``reference(view) -> Plan`` method has every agent's training set repeated to the
number of sequences the reference plan would have given it (:func:`pad_to`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import networkx as nx

from multiseal.learning.self_edit import passage_sequence
from multiseal.sim.sharing import Postbox
from multiseal.types import Document, InboxItem, Note, World
from multiseal.world.vocabulary import fact_sentence

CONTENTS: tuple[str, ...] = ("notes", "passage", "oracle", "shuffled")
# Schedulers a content control cannot run with, and why.
_UNSUPPORTED = {
    "shuffled": {
        "policy": "a policy's observation looks distractor documents up in the world",
        "oracle": "the oracle scheduler hands every agent the real notes, bypassing the control",
    },
}
Problems = list[tuple[str, str]]
CountTokens = Callable[[str], int]


def validate_content(content: str, *, world_has_facts: bool | None, scheduler: str | None = None) -> Problems:
    """Problems with ``sharing.content`` as ``(key, message)`` pairs: an unknown value, ``oracle`` on a
    world without facts (``world_has_facts=False``: a SQuAD world), a scheduler it cannot run with."""
    if content not in CONTENTS:
        return [("sharing.content", f"{content!r} is not one of {', '.join(CONTENTS)}")]
    problems: Problems = []
    if content == "oracle" and world_has_facts is False:
        problems.append(
            (
                "sharing.content",
                "'oracle' writes notes from the world's gold facts, and this world "
                "(world.kind: squad) has none; use a synthetic world",
            )
        )
    why = _UNSUPPORTED.get(content, {}).get(scheduler or "")
    if why:
        problems.append(("sharing.content", f"{content!r} cannot run with scheduler.kind '{scheduler}': {why}"))
    return problems


def passage_note(doc: Document, author: int, round: int, count_tokens: CountTokens) -> Note:
    """Passage forwarding: the note is the raw passage."""
    return Note(
        f"r{round}.a{author}.{doc.doc_id}.0",
        author,
        doc.doc_id,
        round,
        "passage",
        doc.context,
        (passage_sequence(doc),),
        count_tokens(doc.context),
    )


def oracle_lines(doc: Document) -> list[str]:
    """One plain sentence per gold fact of ``doc``."""
    return [fact_sentence(f.entity, f.relation, f.value) for f in doc.facts]


def oracle_note(doc: Document, author: int, round: int, count_tokens: CountTokens) -> Note:
    """An oracle note: one sentence per gold fact, each its own title-prefixed sequence."""
    if not doc.facts:
        raise ValueError(f"document {doc.doc_id} has no facts to write an oracle note from")
    lines = oracle_lines(doc)
    text = "\n".join(lines)
    return Note(
        f"r{round}.a{author}.{doc.doc_id}.0",
        author,
        doc.doc_id,
        round,
        "oracle",
        text,
        tuple(f"{doc.title}\n{line}" for line in lines),
        count_tokens(text),
    )


def distractor_note(note: Note, distractor: Document, count_tokens: CountTokens) -> Note:
    """The copy of ``note`` that travels under ``shuffled``: about ``distractor`` instead, with as many
    sequences as ``note`` and the number of words whose token count is closest to ``note.tokens``
    (at least one word per sequence), cut into that many lines of about equal length."""
    sentences = " ".join(oracle_lines(distractor) or [distractor.context]).split()
    n_seq = len(note.sequences)
    target = max(note.tokens, n_seq, 1)
    words = [sentences[i % len(sentences)] for i in range(target)]  # every word is >= 1 token
    lo, hi = max(n_seq, 1), len(words)
    while lo < hi:  # the fewest words with at least ``target`` tokens
        mid = (lo + hi) // 2
        if count_tokens(" ".join(words[:mid])) >= target:
            hi = mid
        else:
            lo = mid + 1
    n = lo
    if n > max(n_seq, 1) and abs(count_tokens(" ".join(words[: n - 1])) - target) <= abs(
        count_tokens(" ".join(words[:n])) - target
    ):
        n -= 1
    words = words[:n]
    k = max(n_seq, 1)
    lines = [" ".join(words[i * len(words) // k : (i + 1) * len(words) // k]) for i in range(k)]
    text = "\n".join(lines)
    head, _, rest = note.note_id.partition(f".{note.doc_id}.")
    return Note(
        f"{head}.{distractor.doc_id}.{rest}",
        note.author,
        distractor.doc_id,
        note.round,
        "shuffled",
        text,
        tuple(f"{distractor.title}\n{line}" for line in lines) if n_seq else (),
        count_tokens(text),
    )


def control_notes(
    content: str, arrived: Sequence[tuple[int, Document]], round: int, count_tokens: CountTokens
) -> list[Note]:
    """The notes of content ``passage`` or ``oracle``: one per (author, document) that arrived."""
    make = {"passage": passage_note, "oracle": oracle_note}[content]
    return [make(doc, a, round, count_tokens) for a, doc in arrived]


def travelling_copies(
    notes: Sequence[Note], distractors: World, doc_index: Mapping[str, int], count_tokens: CountTokens
) -> dict[str, Note]:
    """``shuffled``: per note id, the distractor copy that travels instead (real document j -> distractor
    document j, modulo the number of distractors)."""
    xs = distractors.documents
    return {n.note_id: distractor_note(n, xs[doc_index[n.doc_id] % len(xs)], count_tokens) for n in notes}


def post_copies(
    postbox: Postbox,
    round: int,
    graph: nx.DiGraph,
    outbox: Mapping[int, list[Note]],
    copies: Mapping[str, Note],
    send_to: Mapping[int, set[int]],
) -> None:
    """``shuffled``: each author's notes go to itself only, their copies (``copies[note_id]``) to
    ``send_to``; the author's own inbox entry of a copy is consumed at once (never trained on)."""
    postbox.post(round, graph, dict(outbox), {a: set() for a in outbox})
    travelling = {a: [copies[n.note_id] for n in ns if n.note_id in copies] for a, ns in outbox.items()}
    postbox.post(round, graph, travelling, dict(send_to))
    for a, xs in travelling.items():
        postbox.consume(a, [InboxItem(x, a, round) for x in xs])


def pad_to(sequences: Sequence[str], target: int, earlier: Sequence[str] = ()) -> list[str]:
    """``sequences`` repeated in order until there are ``target`` of them (never fewer than given);
    with no sequences this round, the agent's ``earlier`` ones are repeated instead (none: [])."""
    pool = list(sequences) or list(earlier)
    if not pool or target <= len(sequences):
        return list(sequences)
    return [pool[i % len(pool)] for i in range(target)]
