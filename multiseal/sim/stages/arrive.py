"""Stage 1, arrivals: the round's documents reach their recipients."""

from __future__ import annotations

from multiseal.sim.setup import Setup
from multiseal.sim.state import RoundState


def arrive(setup: Setup, state: RoundState, r: int) -> list[tuple[int, str]]:
    """Give round ``r``'s documents to their recipients; returns ``(agent, doc_id)`` in agent order.
    A recipient holds the passage from this round's row on; the document counts as introduced."""
    row = r + 1
    state.held_prev = state.own.copy()
    arrived = []
    for a, docs in sorted(setup.arrivals.get(r, {}).items()):
        for doc_id in docs:
            j = setup.doc_index[doc_id]
            state.own[a, j] = True
            state.passages[a].add(doc_id)
            if state.learnt[a, j] < 0:
                state.learnt[a, j] = row
            arrived.append((a, doc_id))
    for rr in range(r + 1):
        for docs in setup.arrivals.get(rr, {}).values():
            for doc_id in docs:
                state.introduced[row:, setup.doc_index[doc_id]] = True
    return arrived
