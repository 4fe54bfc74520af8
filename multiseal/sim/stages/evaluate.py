"""Stage 6, evaluation: agents answer every question of every document (introduced or not), the
composition questions and the retention probe, in shared batches over the base model, filling a row
of the accuracy tensor. Under an evaluation budget a changed agent answers its own, received and
reached documents and a stratified sample of the rest (:mod:`multiseal.sim.sampling`).

:func:`measure_base` is the row-0 version, played once before the first round: the base model
answers, and the retention probe is fixed among the questions it answers right.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from multiseal.learning.evaluate import answer_and_grade
from multiseal.sim.sampling import Sample, draw, impute
from multiseal.sim.setup import Setup
from multiseal.sim.stages.measure import distance_matrix
from multiseal.sim.state import RoundState
from multiseal.sim.trust import update_trust
from multiseal.world.probe import probe_questions, select_probe


def measure_base(setup: Setup, state: RoundState) -> None:
    """Row 0 (the base model; every fresh LoRA adapter equals it, since its B matrix starts at zero),
    and the retention probe: ``probe_size`` general questions the base model answers right."""
    pool = probe_questions()
    candidates = pool[: 2 * setup.probe_size]  # enough spares for wrong answers
    graded = answer_and_grade(
        setup.model,
        [(None, q) for q in setup.questions + candidates],
        setup.evaluation,
        progress="base answers" if setup.progress else None,
    )
    head = setup.evaluation.headline
    by_qid = {g.qid: g for g in graded}
    right = [by_qid[q.qid].scores[head] >= 0.5 for q in candidates]
    if sum(right) < setup.probe_size and len(pool) > len(candidates):  # too few right: ask more (up to 8×)
        rest = pool[len(candidates) : 8 * setup.probe_size]
        more = answer_and_grade(
            setup.model,
            [(None, q) for q in rest],
            setup.evaluation,
            progress="base answers (probe)" if setup.progress else None,
        )
        candidates, right = candidates + rest, right + [g.scores[head] >= 0.5 for g in more]
    state.probe = select_probe(candidates, right, setup.probe_size)
    scored = {q.qid for q in setup.questions} | {q.qid for q in state.probe}
    for a in range(len(setup.agents)):
        store(setup, state, 0, a, [g for g in graded if g.qid in scored])


def evaluate(setup: Setup, state: RoundState, row: int, g) -> None:
    """Fill ``acc[row]``: changed agents answer in shared batches; unchanged ones keep the last row.
    The final round answers in full whatever the budget. With learnt trust, each agent's trust in the
    authors it adapted on then moves with its accuracy change (:mod:`multiseal.sim.trust`)."""
    changed = sorted(state.dirty)
    for a in range(len(setup.agents)):
        if a not in changed:
            state.acc[row, a] = state.acc[row - 1, a]
            state.asked[row, a] = state.asked[row - 1, a]
            state.composition[row, a] = state.composition[row - 1, a]
            state.items[(row, a)] = state.items[(row - 1, a)]
            if (row - 1, a) in state.samples:
                state.samples[(row, a)] = state.samples[(row - 1, a)]
    if changed:
        samples: dict[int, Sample | None] = dict.fromkeys(changed)
        if setup.sample_documents is not None and row < setup.rounds:  # the budget: a sample of the rest
            distance, inboxes = distance_matrix(setup, g), state.postbox.inboxes()
            for a in changed:
                samples[a] = sample_documents(
                    setup, state, row, a, setup.sample_documents, distance[a], inboxes.get(a, [])
                )
        questions = setup.questions
        pairs = []
        for a in changed:
            sample = samples[a]
            docs = None if sample is None else sample.documents
            qs = (
                questions
                if docs is None
                else [q for j, d in enumerate(setup.world.documents) if j in docs for q in d.questions]
                + list(setup.world.composition)
            )
            pairs += [(setup.agents[a].adapter, q) for q in qs + state.probe]
        graded = answer_and_grade(
            setup.model, pairs, setup.evaluation, progress=f"round {row}: answering" if setup.progress else None
        )
        state.answered[row] += len(pairs)
        by_adapter: dict[str | None, list] = {}
        for gr in graded:
            by_adapter.setdefault(gr.adapter, []).append(gr)
        for a in changed:
            store(setup, state, row, a, by_adapter[setup.agents[a].adapter], samples[a])
        measure_drift(setup, state, changed)
    state.dirty.clear()
    if setup.trust.learn:
        update_trust(
            state.trust,
            setup.trust,
            authors=state.round_authors,
            before=state.acc[row - 1],
            after=state.acc[row],
            held=state.held_prev,
        )


def sample_documents(
    setup: Setup, state: RoundState, row: int, a: int, n: int, distance: np.ndarray, inbox: Sequence
) -> Sample:
    """Agent ``a``'s documents to answer at ``row`` under the budget: what it holds, has notes about
    in its inbox or was reached by, and a stratified sample of ``n`` of the rest (``distance``: its row
    of the distance matrix)."""
    held = set(state.passages[a]) | state.known[a] | {it.note.doc_id for it in inbox}
    reached = (state.learnt[a] >= 0) & (state.learnt[a] <= row)
    full: list[int] = []
    strata: dict[tuple[bool, int], list[int]] = {}
    for j, d in enumerate(setup.world.documents):
        if d.doc_id in held or reached[j]:
            full.append(j)
        else:
            strata.setdefault((bool(state.introduced[row, j]), int(distance[j])), []).append(j)
    return draw(full, strata, n, random.Random(f"multiseal-eval-{setup.seed}-{row}-{a}"))


def store(setup: Setup, state: RoundState, row: int, a: int, graded: list, sample: Sample | None = None) -> None:
    """Agent ``a``'s graded answers into row ``row``: item grades, per-document accuracy (estimated
    for the budget's unasked cells), composition accuracy, latest answers and the outcome log."""
    head = setup.evaluation.headline
    items = {g.qid: g.scores[head] for g in graded}
    state.items[(row, a)] = items
    for j, d in enumerate(setup.world.documents):
        asked = all(q.qid in items for q in d.questions)
        state.asked[row, a, j] = asked
        state.acc[row, a, j] = float(np.mean([items[q.qid] for q in d.questions])) if asked else np.nan
    if sample is not None:  # unasked cells hold their stratum's estimate
        state.acc[row, a] = impute(state.acc[row, a], sample)
        state.samples[(row, a)] = sample
    if setup.world.composition:
        state.composition[row, a] = float(np.mean([items[q.qid] for q in setup.world.composition]))
    answers = state.answers[a]
    for g in graded:
        answers[g.qid] = g.answer
        state.outcomes.append(
            {
                "row": row,
                "agent": a,
                "qid": g.qid,
                "question": g.question,
                "gold": g.gold,
                "answer": g.answer,
                **g.scores,
            }
        )


def measure_drift(setup: Setup, state: RoundState, agents: Sequence[int]) -> None:
    """Perplexity ratio and KL to the base on the general-text set, for ``agents``."""
    if not setup.drift_texts or not agents:
        return
    names = {setup.agents[a].adapter: a for a in agents}
    for name, d in setup.model.drift(list(names), setup.drift_data).items():
        state.drift_values[names[name]] = (d.ppl_ratio, d.kl)
