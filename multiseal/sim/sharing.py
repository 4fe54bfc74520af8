"""What travels along the edges: notes (with delay, loss, relay and accounting) and adapter weights.

``Postbox`` is the message layer of one simulation. Per round the simulation calls, in order::

    postbox.post(r, graph, outbox)        # new notes leave their authors
    postbox.deliver(r)                    # notes due by round r land in inboxes
    ... scheduler reads postbox.inbox(a); agents adapt; postbox.consume(a, chosen) ...
    postbox.relay_received(r, graph)      # only does something when relay is on
    postbox.send_on(r, graph, a, note)    # a retold note (sharing.retell) leaves its writer

Two rules hold whatever the path: an agent never receives the same ``note_id`` twice, and an author
always gets its own notes at once (hops 0, weight 1.0, never lost). Loss is decided by a hash of
``(seed, note_id, u, v)``, so it is deterministic and does not depend on the order of calls.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Collection

import networkx as nx
from torch import Tensor

from multiseal.types import InboxItem, Note

Edge = tuple[int, int]
_COUNTERS = ("notes", "tokens", "lost")


class Postbox:
    """Inboxes and in-flight notes for ``n_agents`` agents.

    ``delay`` (rounds) and ``loss`` (probability) apply to every edge unless ``edge_delay`` /
    ``edge_loss`` give a value for that ``(u, v)``. With ``relay`` on, an agent forwards notes it
    received from others to its own out-neighbours (never back to the author or to the agent it got
    the note from), up to ``max_hops`` hops from the author (``None``: no limit).
    """

    def __init__(
        self,
        n_agents: int,
        *,
        delay: int = 0,
        loss: float = 0.0,
        relay: bool = False,
        max_hops: int | None = None,
        seed: int = 0,
        edge_delay: dict[Edge, int] | None = None,
        edge_loss: dict[Edge, float] | None = None,
    ):
        if n_agents < 1:
            raise ValueError(f"n_agents must be >= 1, got {n_agents}")
        for d in [delay, *(edge_delay or {}).values()]:
            if not isinstance(d, int) or d < 0:
                raise ValueError(f"delays must be ints >= 0, got {d!r}")
        for p in [loss, *(edge_loss or {}).values()]:
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"loss probabilities must be in [0, 1], got {p!r}")
        if max_hops is not None and max_hops < 1:
            raise ValueError(f"max_hops must be >= 1 or None, got {max_hops!r}")
        self.n_agents, self.delay, self.loss, self.relay_on = n_agents, delay, loss, relay
        self.max_hops, self.seed = max_hops, seed
        self.edge_delay, self.edge_loss = dict(edge_delay or {}), dict(edge_loss or {})
        self._inbox: dict[int, list[InboxItem]] = {a: [] for a in range(n_agents)}
        self._in_flight: list[tuple[int, int, InboxItem]] = []  # (due round, recipient, item)
        self._has: dict[int, set[str]] = {a: set() for a in range(n_agents)}  # delivered or in flight
        self._arrived: dict[int, dict[int, list[InboxItem]]] = defaultdict(lambda: defaultdict(list))
        self._relayed: dict[int, set[str]] = {a: set() for a in range(n_agents)}
        self._stats: dict[tuple[int, int, int], dict[str, int]] = {}

    def __getstate__(self) -> dict:
        """Picklable (for checkpoints): the arrivals' nested defaultdicts become plain dicts."""
        state = dict(vars(self))
        state["_arrived"] = {r: dict(by_agent) for r, by_agent in self._arrived.items()}
        return state

    def __setstate__(self, state: dict) -> None:
        arrived = state.pop("_arrived")
        vars(self).update(state)
        self._arrived = defaultdict(lambda: defaultdict(list))
        for r, by_agent in arrived.items():
            self._arrived[r].update(by_agent)

    # ------------------------------------------------------------ sending

    def _check_agent(self, a: int) -> None:
        if not 0 <= a < self.n_agents:
            raise ValueError(f"agent {a} does not exist (agents are 0..{self.n_agents - 1})")

    def _lost(self, note_id: str, u: int, v: int) -> bool:
        p = self.edge_loss.get((u, v), self.loss)
        if p <= 0.0:
            return False
        digest = hashlib.blake2b(f"{self.seed}|{note_id}|{u}|{v}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64 < p

    def _transmit(self, round: int, graph: nx.DiGraph, u: int, v: int, note: Note, hops: int) -> None:
        """Send ``note`` over edge u→v unless v already has it; count it, maybe lose it."""
        if note.note_id in self._has[v]:
            return
        counts = self._stats.setdefault((round, u, v), dict.fromkeys(_COUNTERS, 0))
        counts["notes"] += 1
        counts["tokens"] += note.tokens
        if self._lost(note.note_id, u, v):
            counts["lost"] += 1  # v may still get the note later along another path
            return
        self._has[v].add(note.note_id)
        item = InboxItem(
            note=note, sender=u, received_round=round, weight=float(graph[u][v].get("weight", 1.0)), hops=hops
        )
        self._in_flight.append((round + self.edge_delay.get((u, v), self.delay), v, item))

    def post(
        self, round: int, graph: nx.DiGraph, outbox: dict[int, list[Note]], send_to: dict[int, set[int]] | None = None
    ) -> None:
        """Send each agent's new notes to itself (at once) and to its out-neighbours.

        With ``send_to``, agent u sends only to ``send_to[u]`` (each must be an out-neighbour); an
        agent missing from ``send_to`` sends to nobody but itself (gossip: one edge talks per round).
        A neighbour's copy arrives at ``round + delay(u, v)`` (delay 0: this same round's ``deliver``).
        """
        for u in sorted(outbox):
            self._check_agent(u)
            if send_to is None:
                targets = sorted(graph.successors(u))
            else:
                targets = sorted(send_to.get(u, ()))
                missing = [v for v in targets if not graph.has_edge(u, v)]
                if missing:
                    raise ValueError(f"send_to[{u}] names {missing}, which are not out-neighbours of {u}")
            for note in outbox[u]:
                if note.author != u:
                    raise ValueError(f"outbox[{u}] holds note {note.note_id!r} written by agent {note.author}")
                if note.note_id not in self._has[u]:
                    self._has[u].add(note.note_id)
                    self._inbox[u].append(InboxItem(note=note, sender=u, received_round=round, weight=1.0, hops=0))
                for v in targets:
                    self._transmit(round, graph, u, v, note, hops=note.hops + 1)

    def deliver(self, round: int) -> dict[int, list[InboxItem]]:
        """Move every in-flight item due at or before ``round`` into its inbox; return the arrivals.

        Every agent key is present. ``received_round`` of an arrival is the round it is delivered.
        """
        due = [x for x in self._in_flight if x[0] <= round]
        self._in_flight = [x for x in self._in_flight if x[0] > round]
        arrivals: dict[int, list[InboxItem]] = {a: [] for a in range(self.n_agents)}
        for _, v, item in sorted(due, key=lambda x: (x[0], x[1], x[2].sender, x[2].note.note_id)):
            if item.received_round != round:
                item = InboxItem(item.note, item.sender, round, item.weight, item.hops)
            self._inbox[v].append(item)
            arrivals[v].append(item)
            if self.relay_on:
                self._arrived[round][v].append(item)
        return arrivals

    # ------------------------------------------------------------ inboxes

    def inbox(self, agent: int) -> list[InboxItem]:
        """The agent's pending items (own notes included), oldest first; a copy."""
        self._check_agent(agent)
        return list(self._inbox[agent])

    def inboxes(self) -> dict[int, list[InboxItem]]:
        """Every agent's pending items, as the scheduler's view wants them."""
        return {a: list(items) for a, items in self._inbox.items()}

    def consume(self, agent: int, items: list[InboxItem]) -> None:
        """Remove from the agent's inbox the notes it adapted on (matched by ``note_id``).

        Items that are not pending (e.g. an oracle plan's) are ignored; a consumed note never comes back.
        """
        self._check_agent(agent)
        done = {it.note.note_id for it in items}
        self._inbox[agent] = [it for it in self._inbox[agent] if it.note.note_id not in done]

    # ------------------------------------------------------------ relay

    def relay(self, round: int, graph: nx.DiGraph, agent: int, items: list[InboxItem]) -> None:
        """Forward received items (hops >= 1) to ``agent``'s out-neighbours; no-op when relay is off.

        Not to the note's author nor the agent it came from; ``hops + 1`` must stay within
        ``max_hops``; each agent relays a given note at most once.
        """
        if not self.relay_on:
            return
        self._check_agent(agent)
        for item in items:
            if item.hops < 1 or item.note.note_id in self._relayed[agent]:
                continue
            if self.max_hops is not None and item.hops + 1 > self.max_hops:
                continue
            self._relayed[agent].add(item.note.note_id)
            for v in sorted(graph.successors(agent)):
                if v not in (item.note.author, item.sender):
                    self._transmit(round, graph, agent, v, item.note, hops=item.hops + 1)

    def send_on(
        self, round: int, graph: nx.DiGraph, agent: int, note: Note, skip: Collection[int] = frozenset()
    ) -> None:
        """Send a note ``agent`` retold from memory to its out-neighbours, except those in ``skip`` (the
        agents it learnt the document from); it arrives ``note.hops + 1`` hops from the document's holder.
        Not to the writer itself; not at all if that would exceed ``max_hops``."""
        self._check_agent(agent)
        if note.author != agent:
            raise ValueError(f"agent {agent} cannot send on note {note.note_id!r} written by agent {note.author}")
        self._has[agent].add(note.note_id)
        if self.max_hops is not None and note.hops + 1 > self.max_hops:
            return
        for v in sorted(graph.successors(agent)):
            if v != agent and v not in skip:
                self._transmit(round, graph, agent, v, note, hops=note.hops + 1)

    def relay_received(self, round: int, graph: nx.DiGraph) -> None:
        """Relay everything delivered during ``round``; call once per round after ``deliver``."""
        for agent, items in sorted(self._arrived.pop(round, {}).items()):
            self.relay(round, graph, agent, items)

    # ------------------------------------------------------------ accounting

    @property
    def stats(self) -> dict[tuple[int, int, int], dict[str, int]]:
        """Per ``(round, u, v)``: notes and tokens sent over u→v (lost ones included) and notes lost."""
        return {k: dict(v) for k, v in sorted(self._stats.items())}

    def sent_by_round(self) -> dict[int, dict[str, int]]:
        """Totals per round: ``{"notes", "tokens", "lost"}`` over all edges (own notes not counted)."""
        out: dict[int, dict[str, int]] = {}
        for (r, _, _), c in sorted(self._stats.items()):
            tot = out.setdefault(r, dict.fromkeys(_COUNTERS, 0))
            for k in _COUNTERS:
                tot[k] += c[k]
        return out

    def sent_by_edge(self) -> dict[Edge, dict[str, int]]:
        """Totals per edge ``(u, v)`` over all rounds."""
        out: dict[Edge, dict[str, int]] = {}
        for (_, u, v), c in sorted(self._stats.items()):
            tot = out.setdefault((u, v), dict.fromkeys(_COUNTERS, 0))
            for k in _COUNTERS:
                tot[k] += c[k]
        return out


def average_adapters(
    states: dict[int, dict[str, Tensor]], graph: nx.DiGraph, mixing: str = "uniform"
) -> dict[int, dict[str, Tensor]]:
    """One gossip-averaging step over LoRA weights (decentralised SGD style).

    ``new[v] = (states[v] + Σ_{u→v} w_uv · states[u]) / (1 + Σ_{u→v} w_uv)`` over in-neighbours u that
    have a state, with ``w_uv`` the edge weight when ``mixing="weighted"`` and 1 when ``"uniform"``.
    All agents mix their *old* states simultaneously; inputs are not modified. Sums run in float32 and
    the result keeps each tensor's dtype and device.
    """
    if mixing not in ("uniform", "weighted"):
        raise ValueError(f"mixing must be 'uniform' or 'weighted', got {mixing!r}")
    for a, st in states.items():
        if set(st) != set(next(iter(states.values()))):
            raise ValueError(f"agent {a}'s adapter has different parameter names from the others")
    out: dict[int, dict[str, Tensor]] = {}
    for v in sorted(states):
        sources = [(v, 1.0)] + [
            (u, float(graph[u][v].get("weight", 1.0)) if mixing == "weighted" else 1.0)
            for u in sorted(graph.predecessors(v))
            if u in states and u != v
        ]
        total = sum(w for _, w in sources)
        out[v] = {}
        for name, t in states[v].items():
            acc = t.float() * (sources[0][1] / total)
            for u, w in sources[1:]:
                acc = acc + states[u][name].to(device=t.device).float() * (w / total)
            out[v][name] = acc.to(t.dtype)
    return out
