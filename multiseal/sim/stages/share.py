"""Stage 3, sharing: notes travel along the graph's out-edges (delay, loss, relay) into inboxes; with
``sharing: weights`` neighbours' adapters are gossip-averaged after adaptation instead."""

from __future__ import annotations

from multiseal.sim import controls as C
from multiseal.sim.setup import Setup
from multiseal.sim.sharing import average_adapters
from multiseal.sim.state import RoundState
from multiseal.types import AgentAction, Note

SHARING_MODES = ("notes", "weights", "none")


def share(setup: Setup, state: RoundState, r: int, g, notes: list[Note], actions: dict[int, AgentAction]) -> None:
    """Post round ``r``'s notes along ``g``'s out-edges (a policy may narrow an author's recipients)
    and deliver what is due."""
    outbox: dict[int, list[Note]] = {a: [] for a in range(len(setup.agents))}
    for n in notes:
        outbox[n.author].append(n)
    if setup.sharing == "notes":
        send_to = {a: set(g.successors(a)) for a in outbox}
        for a, act in actions.items():
            if act.send_to is not None:
                send_to[a] = set(act.send_to) & set(g.successors(a))
    else:
        send_to = {a: set() for a in outbox}
    if state.travelling:  # shuffled: authors keep their notes, distractor copies travel
        C.post_copies(state.postbox, r, g, outbox, state.travelling, send_to)
        state.travelling = {}
    else:
        state.postbox.post(r, g, outbox, send_to)
    for v, items in state.postbox.deliver(r).items():  # what arrived from others, and how far it came
        state.received.extend((r, v, it.note.note_id, it.hops) for it in items if it.hops >= 1)


def share_after_adapting(setup: Setup, state: RoundState, r: int, g) -> None:
    """What travels once the round's updates are made: received notes relayed on (``sharing.relay``),
    and, with weights sharing, every adapter averaged with its in-neighbours'."""
    if state.postbox.relay_on:
        state.postbox.relay_received(r, g)
    if setup.sharing == "weights":
        average_weights(setup, state, r + 1, g)


def average_weights(setup: Setup, state: RoundState, row: int, g) -> None:
    """Weights sharing: gossip-average each agent's adapter with its in-neighbours'; a neighbour's
    documents count as reached through the averaged weights."""
    model = setup.model
    states = {a: model.adapter_state(s.adapter) for a, s in enumerate(setup.agents)}
    averaged = average_adapters(states, g, mixing=setup.mixing)
    before = state.learnt.copy()
    for a, s in enumerate(setup.agents):
        model.set_adapter_state(s.adapter, averaged[a])
        preds = list(g.predecessors(a))
        if preds:
            state.dirty.add(a)
        for u in preds:
            reached = (before[u] >= 0) & (before[u] <= row) & (state.learnt[a] < 0)
            state.learnt[a, reached] = row
