"""Stage 2, self-edits: every recipient writes notes on each new document.

k candidates per document in the agent's style (or a policy's), from its adapter or the base
(``self_edit.writer``). With ``content`` ``passage`` or ``oracle`` the note is the passage or the gold
facts instead (no generation); with ``shuffled`` the copies that travel are distractor notes
(:mod:`multiseal.sim.controls`). Adversaries write their own notes (:mod:`multiseal.sim.adversary`).
"""

from __future__ import annotations

from multiseal.learning.self_edit import STYLES, parse_completion, passage_sequence, sample_self_edits
from multiseal.sim import controls as C
from multiseal.sim.adversary import false_note, noise_note, note_rng
from multiseal.sim.setup import Setup
from multiseal.sim.state import RoundState
from multiseal.types import AgentAction, Note


def write_notes(
    setup: Setup, state: RoundState, r: int, arrived: list[tuple[int, str]], actions: dict[int, AgentAction]
) -> list[Note]:
    """Round ``r``'s notes on the ``arrived`` documents, logged in ``state.notes_log``."""
    model, world = setup.model, setup.world
    hostile = [(a, d) for a, d in arrived if a in setup.adversaries]
    arrived = [(a, d) for a, d in arrived if a not in setup.adversaries]
    if setup.content in ("passage", "oracle"):  # the control writes the note: no generation
        docs = [(a, world.doc(d)) for a, d in arrived]
        notes = C.control_notes(setup.content, docs, r, model.count_tokens) + hostile_notes(setup, state, r, hostile)
        state.notes_log.extend(notes)
        return notes
    styles = [(actions.get(a) and actions[a].style) or setup.agents[a].style for a, _ in arrived]
    writers = [setup.agents[a].adapter if setup.self_edit.writer == "adapter" else None for a, _ in arrived]
    requests = [(world.doc(d), w, s) for (_, d), w, s in zip(arrived, writers, styles)]
    samples = sample_self_edits(
        model,
        requests,
        setup.self_edit,
        seed=setup.seed * 7919 + r,
        progress=f"round {r + 1}: writing notes" if setup.progress else None,
    )
    notes = []
    for (a, doc_id), style, cands in zip(arrived, styles, samples):
        doc = world.doc(doc_id)
        for k, text in enumerate(cands):
            if STYLES.get(style).instruction is None:  # a style that writes no note carries the passage
                text, seqs = doc.context, [passage_sequence(doc)]
            else:
                seqs = parse_completion(text, doc, style)
            notes.append(
                Note(f"r{r}.a{a}.{doc_id}.{k}", a, doc_id, r, style, text, tuple(seqs), model.count_tokens(text))
            )
    notes += hostile_notes(setup, state, r, hostile)
    state.notes_log.extend(notes)
    if setup.content == "shuffled" and setup.sharing == "notes" and setup.distractors is not None:
        state.travelling = C.travelling_copies(notes, setup.distractors, setup.doc_index, model.count_tokens)
        state.notes_log.extend(state.travelling.values())
    return notes


def hostile_notes(setup: Setup, state: RoundState, r: int, arrived: list[tuple[int, str]]) -> list[Note]:
    """Adversaries' notes on their ``arrived`` documents, recording what they plant."""
    notes = []
    for a, doc_id in arrived:
        doc, adv = setup.world.doc(doc_id), setup.adversaries[a]
        if adv.attack == "noise":
            assert setup.distractors is not None
            xs = setup.distractors.documents
            notes.append(noise_note(doc, a, r, xs[setup.doc_index[doc_id] % len(xs)], setup.model.count_tokens))
        else:
            note, planted = false_note(
                doc, a, r, adv.rate, setup.facts, note_rng(setup.seed, r, a, doc_id), setup.model.count_tokens
            )
            notes.append(note)
            for fid, value in planted.items():
                state.planted.setdefault(fid, {}).setdefault(a, set()).add(value)
        state.written.setdefault(doc_id, set()).add(a)
    return notes


def generated_tokens(setup: Setup, notes: list[Note]) -> int:
    """Tokens the round generated for its notes (controls and adversaries write without generating)."""
    if setup.content in ("passage", "oracle"):
        return 0
    return sum(n.tokens for n in notes if n.style not in ("adversary", "noise"))
