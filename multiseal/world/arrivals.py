"""The arrival schedule: which agent receives which document in which round.

An agent that *receives* a document has the raw passage (and may train on it); others learn about
it only through notes. Schedules are plain data, ``Arrivals = {round: {agent: [doc_id, ...]}}``,
with every round ``0..rounds-1`` and every agent present (possibly with an empty list).

Each kind is one ``ArrivalKind`` (how many documents it needs, how it hands them out) registered in
``ARRIVALS``; ``build_arrivals`` is the single entry point. Documents are consumed in world order.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from multiseal.registry import Registry

Arrivals = dict[int, dict[int, list[str]]]


@dataclass(frozen=True)
class ArrivalParams:
    """Everything a schedule kind may read; each kind uses only the fields it documents."""

    n_agents: int
    rounds: int
    docs_per_round: int = 1
    copies: int = 2
    source: int = 0
    table: tuple[dict[str, Any], ...] = ()
    seed: int = 0


@dataclass(frozen=True)
class ArrivalKind:
    """A schedule kind: ``needed(p)`` documents, handed out by ``assign(p, docs)``.

    ``assign`` gets exactly the first ``needed(p)`` documents of the world (for ``table``: all of
    them, to resolve ids) and returns the filled schedule.
    """

    needed: Callable[[ArrivalParams], int]
    assign: Callable[[ArrivalParams, list[str]], Arrivals]
    # documents each agent receives over the run, by arithmetic (the estimate builds no schedule); None:
    # the needed documents spread evenly over the agents
    received: Callable[[ArrivalParams], list[float]] | None = None

    def per_agent(self, p: ArrivalParams) -> list[float]:
        """Documents each agent receives over the run (an estimate's arithmetic, no schedule built)."""
        if self.received is not None:
            return self.received(p)
        return [self.needed(p) / p.n_agents] * p.n_agents


ARRIVALS: Registry[ArrivalKind] = Registry("arrival schedule")


def _empty(p: ArrivalParams) -> Arrivals:
    return {r: {a: [] for a in range(p.n_agents)} for r in range(p.rounds)}


# --- disjoint: every agent its own fresh documents each round -------------------------------


def _disjoint_assign(p: ArrivalParams, docs: list[str]) -> Arrivals:
    out, it = _empty(p), iter(docs)
    for r in range(p.rounds):
        for a in range(p.n_agents):
            out[r][a] = [next(it) for _ in range(p.docs_per_round)]
    return out


ARRIVALS.register(
    "disjoint",
    ArrivalKind(
        needed=lambda p: p.rounds * p.n_agents * p.docs_per_round,
        assign=_disjoint_assign,
        received=lambda p: [float(p.rounds * p.docs_per_round)] * p.n_agents,
    ),
)


# --- overlapping: every document goes to `copies` distinct agents ---------------------------


def _overlap_per_round(p: ArrivalParams) -> int:
    """New documents per round so each agent gets about ``docs_per_round`` of them."""
    return max(1, math.ceil(p.n_agents * p.docs_per_round / p.copies))


def _overlapping_needed(p: ArrivalParams) -> int:
    if not 1 <= p.copies <= p.n_agents:
        raise ValueError(f"overlapping arrivals need 1 <= copies <= n_agents ({p.n_agents}), got copies={p.copies}")
    return p.rounds * _overlap_per_round(p)


def _overlapping_assign(p: ArrivalParams, docs: list[str]) -> Arrivals:
    # Each document goes to the `copies` agents with the lightest load so far (this round,
    # then overall), ties broken by a seeded order: balanced, and reproducible from the seed.
    rng = random.Random(p.seed)
    out, it = _empty(p), iter(docs)
    total = [0] * p.n_agents
    for r in range(p.rounds):
        this_round = [0] * p.n_agents
        for _ in range(_overlap_per_round(p)):
            doc = next(it)
            order = list(range(p.n_agents))
            rng.shuffle(order)
            chosen = sorted(order, key=lambda a: (this_round[a], total[a]))[: p.copies]
            for a in sorted(chosen):
                out[r][a].append(doc)
                this_round[a] += 1
                total[a] += 1
    return out


ARRIVALS.register(
    "overlapping",
    ArrivalKind(
        needed=_overlapping_needed,
        assign=_overlapping_assign,
        received=lambda p: [p.rounds * _overlap_per_round(p) * min(p.copies, p.n_agents) / p.n_agents] * p.n_agents,
    ),
)


# --- broadcast: one source agent receives everything -----------------------------------------


def _broadcast_needed(p: ArrivalParams) -> int:
    if not 0 <= p.source < p.n_agents:
        raise ValueError(f"broadcast source {p.source} is not an agent (0..{p.n_agents - 1})")
    return p.rounds * p.docs_per_round


def _broadcast_assign(p: ArrivalParams, docs: list[str]) -> Arrivals:
    out = _empty(p)
    for r in range(p.rounds):
        out[r][p.source] = docs[r * p.docs_per_round : (r + 1) * p.docs_per_round]
    return out


ARRIVALS.register(
    "broadcast",
    ArrivalKind(
        needed=_broadcast_needed,
        assign=_broadcast_assign,
        received=lambda p: [float(p.rounds * p.docs_per_round) if a == p.source else 0.0 for a in range(p.n_agents)],
    ),
)


# --- table: an explicit list of {"round", "agent", "docs"} entries ----------------------------

_TABLE_KEYS = ("round", "agent", "docs")


def _check_entry(i: int, entry: Any, p: ArrivalParams) -> tuple[int, int, list[str]]:
    """One table entry, validated: ``(round, agent, docs)`` or ValueError naming entry ``i``."""
    if not isinstance(entry, dict):
        raise ValueError(f"table entry {i}: expected an object with keys round, agent, docs")
    missing = [k for k in _TABLE_KEYS if k not in entry]
    extra = sorted(set(entry) - set(_TABLE_KEYS))
    if missing or extra:
        what = "; ".join(
            filter(
                None,
                [
                    missing and f"missing key(s) {', '.join(missing)}",
                    extra and f"unknown key(s) {', '.join(map(str, extra))}",
                ],
            )
        )
        raise ValueError(f"table entry {i}: {what}")
    r, a, docs = entry["round"], entry["agent"], entry["docs"]
    for key, value, limit in (("round", r, p.rounds), ("agent", a, p.n_agents)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"table entry {i}: {key} must be an integer, got {value!r}")
        if not 0 <= value < limit:
            raise ValueError(f"table entry {i}: {key} {value} is out of range 0..{limit - 1}")
    if not isinstance(docs, list) or not all(isinstance(d, str) for d in docs):
        raise ValueError(f"table entry {i}: docs must be a list of document ids")
    return r, a, docs


def _table_needed(p: ArrivalParams) -> int:
    if not p.table:
        raise ValueError("table arrivals need at least one entry {round, agent, docs}")
    seen: set[str] = set()
    for i, entry in enumerate(p.table):
        seen.update(_check_entry(i, entry, p)[2])
    return len(seen)


def _table_assign(p: ArrivalParams, docs: list[str]) -> Arrivals:
    known = set(docs)
    out = _empty(p)
    for i, entry in enumerate(p.table):
        r, a, entry_docs = _check_entry(i, entry, p)
        for d in entry_docs:
            if d not in known:
                raise ValueError(
                    f"table entry {i}: unknown document '{d}' (the world has {len(docs)} documents: {_span(docs)})"
                )
            if d in out[r][a]:
                raise ValueError(f"table entry {i}: document '{d}' is given to agent {a} twice in round {r}")
            out[r][a].append(d)
    return out


def _span(docs: list[str]) -> str:
    return ", ".join(docs) if len(docs) <= 4 else f"{docs[0]} .. {docs[-1]}"


def _table_received(p: ArrivalParams) -> list[float]:
    out = [0.0] * p.n_agents
    for entry in p.table:
        agent, docs = entry.get("agent"), entry.get("docs")
        if isinstance(agent, int) and 0 <= agent < p.n_agents and isinstance(docs, list):
            out[agent] += len(docs)
    return out


ARRIVALS.register("table", ArrivalKind(needed=_table_needed, assign=_table_assign, received=_table_received))


# --- entry points ------------------------------------------------------------------------------


def _params(
    n_agents: int,
    rounds: int,
    docs_per_round: int,
    copies: int,
    source: int,
    table: list[dict[str, Any]] | None,
    seed: int,
) -> ArrivalParams:
    if n_agents < 1:
        raise ValueError(f"n_agents must be at least 1, got {n_agents}")
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    if docs_per_round < 1:
        raise ValueError(f"docs_per_round must be at least 1, got {docs_per_round}")
    if table is not None and not isinstance(table, (list, tuple)):
        raise ValueError(f"table must be a list of {{round, agent, docs}} entries, got {type(table).__name__}")
    return ArrivalParams(n_agents, rounds, docs_per_round, copies, source, tuple(table or ()), seed)


def documents_needed(
    kind: str,
    n_agents: int,
    rounds: int,
    docs_per_round: int = 1,
    copies: int = 2,
    table: list[dict[str, Any]] | None = None,
    source: int = 0,
) -> int:
    """How many documents schedule ``kind`` consumes (for ``table``: distinct ids it names).

    Lets the scenario layer size a synthetic world, or reject a too-small one, before building.
    """
    p = _params(n_agents, rounds, docs_per_round, copies, source, table, 0)
    return ARRIVALS.get(kind).needed(p)


def documents_received(
    kind: str,
    n_agents: int,
    rounds: int,
    docs_per_round: int = 1,
    copies: int = 2,
    table: list[dict[str, Any]] | None = None,
    source: int = 0,
) -> list[float]:
    """Documents each agent receives over the run under schedule ``kind``, by arithmetic (the kind's
    ``received``; the run's estimate builds no schedule)."""
    p = _params(n_agents, rounds, docs_per_round, copies, source, table, 0)
    return ARRIVALS.get(kind).per_agent(p)


def build_arrivals(
    kind: str,
    n_agents: int,
    doc_ids: list[str],
    rounds: int,
    *,
    docs_per_round: int = 1,
    copies: int = 2,
    source: int = 0,
    table: list[dict[str, Any]] | None = None,
    seed: int = 0,
) -> Arrivals:
    """The schedule ``{round: {agent: [doc_id, ...]}}`` of kind ``kind`` over ``doc_ids``.

    Raises ``ValueError`` for a bad table entry or when the schedule needs more documents than
    the world has (``arrival schedule needs N documents but the world has M``).
    """
    if len(set(doc_ids)) != len(doc_ids):
        raise ValueError("doc_ids contains duplicates")
    spec = ARRIVALS.get(kind)
    p = _params(n_agents, rounds, docs_per_round, copies, source, table, seed)
    n = spec.needed(p)
    if n > len(doc_ids):
        raise ValueError(f"arrival schedule needs {n} documents but the world has {len(doc_ids)}")
    return spec.assign(p, list(doc_ids) if kind == "table" else list(doc_ids[:n]))


def check_arrivals(arrivals: Arrivals, n_agents: int, rounds: int, doc_ids: list[str]) -> None:
    """Conformance check for any schedule kind: raise ``AssertionError`` unless every round
    ``0..rounds-1`` and agent ``0..n_agents-1`` is present, every id is a world document, and no
    agent gets the same document twice in one round. Run by the tests over every kind in ``ARRIVALS``.
    """
    assert sorted(arrivals) == list(range(rounds)), f"rounds {sorted(arrivals)} != 0..{rounds - 1}"
    known = set(doc_ids)
    for r, per_agent in arrivals.items():
        assert sorted(per_agent) == list(range(n_agents)), f"round {r}: agents {sorted(per_agent)}"
        for a, docs in per_agent.items():
            assert isinstance(docs, list), f"round {r}, agent {a}: not a list"
            assert set(docs) <= known, f"round {r}, agent {a}: unknown ids {set(docs) - known}"
            assert len(set(docs)) == len(docs), f"round {r}, agent {a}: duplicate ids"


def first_arrival(arrivals: Arrivals) -> dict[tuple[int, str], int]:
    """``(agent, doc_id) -> round`` in which that agent first received that document."""
    out: dict[tuple[int, str], int] = {}
    for r in sorted(arrivals):
        for a in sorted(arrivals[r]):
            for d in arrivals[r][a]:
                out.setdefault((a, d), r)
    return out


def first_recipient(arrivals: Arrivals) -> dict[str, tuple[int, int]]:
    """``doc_id -> (round, agent)`` of its first receipt; ties in a round go to the lowest agent."""
    out: dict[str, tuple[int, int]] = {}
    for r in sorted(arrivals):
        for a in sorted(arrivals[r]):
            for d in arrivals[r][a]:
                out.setdefault(d, (r, a))
    return out


def introduced_by(arrivals: Arrivals, round: int) -> list[str]:
    """Document ids first received in rounds ``<= round``, in order of introduction
    (by round, then agent, then position in that agent's list).

    These are the documents whose questions are evaluated after that round.
    """
    return [d for d, (r, _) in first_recipient(arrivals).items() if r <= round]
