"""Stage 5, adaptation: each chosen agent trains its persistent adapter on the notes it chose.

An agent trains on its chosen notes' sequences plus the raw passage of every document it holds
itself, an optional replay of earlier sequences, and (when the scheduler is compute-matched) its own
material repeated up to a reference count. Its mitigations (:mod:`multiseal.sim.mitigations`) add
replay and loss terms, train the update as a fresh delta to combine with the earlier ones, or gate it
afterwards. Agents train together in shared batches or one after another (``train_together``); the
result is the same.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from multiseal.learning.evaluate import answer_and_grade
from multiseal.learning.self_edit import passage_sequence
from multiseal.sim import controls as C
from multiseal.sim.mitigations import combined_state
from multiseal.sim.population import TrainSpec
from multiseal.sim.setup import Setup
from multiseal.sim.state import RoundState
from multiseal.types import InboxItem, Plan


def training_set(setup: Setup, state: RoundState, agent: int, items: Sequence[InboxItem]) -> list[str]:
    """Sequences for ``agent`` from chosen notes: each note's sequences, plus the raw passage of
    every document the agent holds itself (once), without duplicates."""
    seqs: list[str] = []
    for it in items:
        doc_id = it.note.doc_id
        seqs.extend(it.note.sequences)
        if doc_id in state.passages[agent]:
            seqs.append(passage_sequence(setup.world.doc(doc_id)))
    return list(dict.fromkeys(seqs))


def adapt(
    setup: Setup, state: RoundState, r: int, plan: Plan, targets: dict[int, int] | None = None
) -> tuple[dict[int, int], int]:
    """Train every agent of the plan on its chosen items; returns the sequences each agent trained
    on and the tokens trained (all agents, all epochs)."""
    row, model, mitigations = r + 1, setup.model, setup.mitigations
    trained: dict[int, int] = {}
    rng = random.Random(setup.seed * 15485863 + r)
    updates: dict[int, tuple[list[str], list[str]]] = {}  # agent -> (this round's sequences, replayed)
    for a, items in sorted(plan.items()):
        seqs = training_set(setup, state, a, items)
        if targets and a in targets:  # compute-matched: repeat one's own material to the reference count
            seqs = C.pad_to(seqs, targets[a], state.trained[a])
        if not seqs:
            trained[a] = 0
            continue
        earlier = [s for s in state.trained[a] if s not in seqs]
        fraction = min(1.0, setup.replay + sum(m.replay for m in mitigations.get(a, ())))
        n_replay = round(fraction * len(earlier))
        updates[a] = (seqs, rng.sample(earlier, n_replay) if n_replay else [])
        trained[a] = len(seqs) + n_replay
    gated = {a: m.gate for a in updates for m in mitigations.get(a, ()) if m.gate}
    before = gate_scores(setup, state, row, {a: plan[a] for a in gated}, "before") if gated else {}
    snapshots = {a: model.adapter_state(setup.agents[a].adapter) for a in gated if a not in state.deltas}
    specs = []
    for a, (seqs, replayed) in updates.items():
        spec = setup.agents[a]
        if a in state.deltas:  # combine: this round's update is a fresh delta
            recreate(setup, a, spec.lora, seed=setup.seed * 1000 + a + 7919 * (r + 1))
        penalties = tuple(m for m in mitigations.get(a, ()) if m.penalty)
        specs.append(
            TrainSpec(
                a,
                spec.adapter,
                tuple(seqs + replayed),
                spec.inner,
                setup.seed * 31 + r * 1009 + a,
                r,
                penalties,
                setup.reference if any(m.reference_passages for m in penalties) else None,
            )
        )

    def labels(mine: Sequence[TrainSpec]):
        if not setup.progress:
            return None
        if setup.train_together:
            return f"round {r + 1}: training {len(mine)} agents"
        return [f"round {r + 1}: training agent {s.agent}" for s in mine]

    stats = model.train(specs, together=setup.train_together, max_rows=setup.rows_per_pass, progress=labels)
    for a in updates:
        if a in state.deltas:
            state.deltas[a].append(model.adapter_state(setup.agents[a].adapter))
            apply_combination(setup, state, a)
    kept = set(updates)
    if gated:
        after = gate_scores(setup, state, row, {a: plan[a] for a in gated}, "after")
        for a, gate in gated.items():
            (gain_b, ret_b), (gain_a, ret_a) = before[a], after[a]
            gain, drop = gain_a - gain_b, 0.0 if math.isnan(ret_b) else ret_b - ret_a
            if (not math.isnan(gain) and gain <= gate.min_gain) or drop > gate.max_drop:
                kept.discard(a)
                state.gated_out[a] += 1
                if a in state.deltas:
                    state.deltas[a].pop()
                    apply_combination(setup, state, a)
                else:
                    model.set_adapter_state(setup.agents[a].adapter, snapshots[a])
    state.round_authors = {}
    for a, items in sorted(plan.items()):
        if a in updates:
            state.postbox.consume(a, list(items))
        if a not in kept:
            continue
        seqs = updates[a][0]
        state.trained[a].extend(s for s in dict.fromkeys(seqs) if s not in state.trained[a])
        state.trained_notes[a].extend(it.note.note_id for it in items)
        state.round_authors[a] = {it.note.author for it in items} - {a}
        for it in items:
            state.known[a].add(it.note.doc_id)
            j = setup.doc_index.get(it.note.doc_id)  # None: a distractor document (shuffled)
            if j is not None and state.learnt[a, j] < 0:
                state.learnt[a, j] = row
        state.dirty.add(a)
    return trained, sum(st.tokens for st in stats)


def gate_scores(setup: Setup, state: RoundState, row: int, plan: Plan, when: str) -> dict[int, tuple[float, float]]:
    """Per gated agent: headline accuracy on the questions of the documents its update is about, and
    on the retention probe (NaN when it has none)."""
    head = setup.evaluation.headline
    asked: dict[int, tuple[list[str], list[str]]] = {}
    pairs = []
    for a, items in plan.items():
        docs = dict.fromkeys(it.note.doc_id for it in items if it.note.doc_id in setup.doc_index)
        qs = [q for d in docs for q in setup.world.doc(d).questions]
        asked[a] = ([q.qid for q in qs], [q.qid for q in state.probe])
        pairs += [(setup.agents[a].adapter, q) for q in qs + state.probe]
    graded = answer_and_grade(
        setup.model, pairs, setup.evaluation, progress=f"round {row}: gate, {when}" if setup.progress else None
    )
    state.answered[row] += len(pairs)
    by: dict[str | None, dict[str, float]] = {}
    for gr in graded:
        by.setdefault(gr.adapter, {})[gr.qid] = gr.scores[head]
    out = {}
    for a, (target, probe) in asked.items():
        got = by.get(setup.agents[a].adapter, {})
        out[a] = (
            float(np.mean([got[q] for q in target])) if target else float("nan"),
            float(np.mean([got[q] for q in probe])) if probe else float("nan"),
        )
    return out


def recreate(setup: Setup, a: int, lora, seed: int) -> None:
    """Agent ``a``'s adapter made afresh with shape ``lora`` (B = 0: it equals the base)."""
    name = setup.agents[a].adapter
    if name in setup.model.adapters:
        setup.model.delete_adapter(name)
    setup.model.add_adapter(name, lora, seed=seed)


def apply_combination(setup: Setup, state: RoundState, a: int) -> None:
    """Agent ``a``'s adapter becomes the combination of its stored per-round deltas."""
    spec, deltas = setup.agents[a], state.deltas[a]
    if not deltas:
        recreate(setup, a, spec.lora, seed=setup.seed * 1000 + a)
        return
    combine = next(m.combine for m in setup.mitigations[a] if m.combine)
    combined, rank = combined_state(deltas, combine, spec.lora.rank)
    lora = (
        spec.lora
        if rank == spec.lora.rank
        else replace(spec.lora, rank=rank, alpha=spec.lora.alpha * rank / spec.lora.rank)
    )
    if setup.model.adapters.get(spec.adapter) != lora:
        recreate(setup, a, lora, seed=0)
    setup.model.set_adapter_state(spec.adapter, combined)
