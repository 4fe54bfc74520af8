"""Schedulers: which agents adapt this round, and on which of the notes in their inbox.

A scheduler is a callable ``(SchedulerView) -> Plan`` built by ``build_scheduler(kind, params)`` from a
builder registered in ``SCHEDULERS`` with the pydantic model of its parameters; the builder receives
the parsed parameters::

    class NewestParams(Params):
        keep: int = Field(1, ge=1)

    @SCHEDULERS.register("newest", params=NewestParams)
    def newest(params: NewestParams) -> Scheduler: ...

The plan maps *every* agent to the items it adapts on now (``[]``: it waits; its items stay
pending). The simulation then calls ``postbox.consume(agent, plan[agent])``. A scheduler draws
randomness only from ``view.rng`` and must not modify the view. ``check_scheduler`` is the
conformance check a new scheduler should pass. A scheduler may also offer ``reference(view) -> Plan |
None``: the simulation then repeats each agent's training sequences up to the number that plan would
give it (compute matching; see :class:`Isolated` and ``docs/controls.md``).

A kind that adapts on fewer notes than reach an agent says so with its ``cost`` hook,
``cost(params, received) -> notes adapted on per round`` (``budgeted``: at most its budget;
``isolated``: none of others'); the estimate (:mod:`multiseal.config.estimate`) asks it instead of
testing kind or parameter names. Without a hook an agent adapts on everything that reaches it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, get_args

import networkx as nx
from pydantic import Field, field_validator

from multiseal.errors import FieldProblems
from multiseal.learning.self_edit import STYLES
from multiseal.registry import KindRegistry, NoParams, Params
from multiseal.types import Decision, InboxItem, Note, Plan, Scheduler, SchedulerView

Problems = list[tuple[str, str]]
SchedulerBuilder = Callable[[Any], Scheduler]
SCHEDULERS: KindRegistry[SchedulerBuilder] = KindRegistry("scheduler")
RankBy = Literal["trust", "recency", "novelty"]
RANK_BY: tuple[str, ...] = get_args(RankBy)


def _unique(items: Iterable[InboxItem]) -> list[InboxItem]:
    """Items in order, the first of each ``note_id`` only."""
    seen: set[str] = set()
    out = []
    for it in items:
        if it.note.note_id not in seen:
            seen.add(it.note.note_id)
            out.append(it)
    return out


def _per_agent(view: SchedulerView, pick: Callable[[int, list[InboxItem]], Iterable[InboxItem]]) -> Plan:
    return {a: _unique(pick(a, list(view.inboxes.get(a, [])))) for a in view.agents()}


# ---------------------------------------------------------------- built-in schedulers


@SCHEDULERS.register("synchronous")
def _synchronous(params: NoParams) -> Scheduler:
    """Every agent adapts on its whole inbox every round."""
    return lambda view: _per_agent(view, lambda a, inbox: inbox)


@SCHEDULERS.register("round-robin")
def _round_robin(params: NoParams) -> Scheduler:
    """Only agent ``agents[round % n]`` adapts, on its whole inbox; the others keep theirs pending."""

    def schedule(view: SchedulerView) -> Plan:
        agents = view.agents()
        turn = agents[view.round % len(agents)] if agents else None
        return _per_agent(view, lambda a, inbox: inbox if a == turn else [])

    return schedule


class RandomGossip:
    """One edge u→v, drawn with ``view.rng`` among the graph's edges (sorted), talks per round.

    Both endpoints adapt on their pending items whose sender is the other endpoint or themselves;
    every other agent waits. With no edges nobody adapts. ``chosen_edge`` keeps the last draw for logs.
    """

    def __init__(self) -> None:
        self.chosen_edge: tuple[int, int] | None = None

    def __call__(self, view: SchedulerView) -> Plan:
        edges = sorted(view.graph.edges)
        self.chosen_edge = view.rng.choice(edges) if edges else None
        pair = set(self.chosen_edge or ())
        return _per_agent(view, lambda a, inbox: [it for it in inbox if it.sender in pair] if a in pair else [])


@SCHEDULERS.register("random-gossip")
def _random_gossip(params: NoParams) -> Scheduler:
    return RandomGossip()


class BudgetedParams(Params):
    budget: int = Field(ge=1, description="the most notes an agent adapts on per round")
    rank_by: RankBy = Field("trust", description="how notes from others are ranked")


def _recency_key(it: InboxItem) -> tuple:
    """Newest note first, then latest arrival, then highest trust, then ``note_id``."""
    return (-it.note.round, -it.received_round, -it.weight, it.note.note_id)


def _trust_key(it: InboxItem) -> tuple:
    """Highest trust first, then newest note, then latest arrival, then ``note_id``."""
    return (-it.weight, -it.note.round, -it.received_round, it.note.note_id)


class Budgeted:
    """At most ``budget`` items per agent per round: own notes first (newest first), then others ranked.

    ``rank_by``: ``trust`` (edge weight, high first), ``recency`` (newest note first) or ``novelty``
    (greedy: a note about a document the agent has not adapted on before, ``known[agent]``, beats
    one it has; among equals, the document with fewer notes already chosen this round wins). Ties
    fall back to trust, then recency, then ``note_id``, so the plan is deterministic. Items over
    budget stay pending for later rounds.
    """

    def __init__(self, budget: int, rank_by: str = "trust"):
        self.budget, self.rank_by = budget, rank_by

    def _pick(self, agent: int, inbox: list[InboxItem], known: set[str]) -> list[InboxItem]:
        inbox = _unique(inbox)
        own = sorted((it for it in inbox if it.hops == 0), key=_recency_key)
        chosen = own[: self.budget]
        others = [it for it in inbox if it.hops != 0]
        if self.rank_by != "novelty":
            key = _trust_key if self.rank_by == "trust" else _recency_key
            return chosen + sorted(others, key=key)[: self.budget - len(chosen)]
        per_doc: dict[str, int] = {}
        for it in chosen:
            per_doc[it.note.doc_id] = per_doc.get(it.note.doc_id, 0) + 1
        while others and len(chosen) < self.budget:
            best = min(
                others, key=lambda it: (it.note.doc_id in known, per_doc.get(it.note.doc_id, 0), *_trust_key(it))
            )
            others.remove(best)
            chosen.append(best)
            per_doc[best.note.doc_id] = per_doc.get(best.note.doc_id, 0) + 1
        return chosen

    def __call__(self, view: SchedulerView) -> Plan:
        return _per_agent(view, lambda a, inbox: self._pick(a, inbox, view.known.get(a, set())))


@SCHEDULERS.register("budgeted", params=BudgetedParams, cost=lambda p, received: min(received, p.budget))
def _budgeted(params: BudgetedParams) -> Scheduler:
    return Budgeted(params.budget, params.rank_by)


MatchKind = Literal["none", "neighbours", "complete"]


class IsolatedParams(Params):
    match: MatchKind = Field(
        "none",
        description=(
            "compute matching: 'none' trains on one's own material once; 'neighbours' / 'complete' repeat "
            "it up to the sequences the agent would have trained on this round had it adapted on every "
            "note its in-neighbours (on the round's graph) / all agents wrote this round, as well as its own"
        ),
    )


class Isolated:
    """Every agent adapts only on its own notes (hops 0): the no-sharing baseline.

    With ``match`` other than ``none`` it is *compute-matched*: :meth:`reference` is the synchronous
    plan of a sharing arm without delay or loss (own notes plus every note of this round by the
    agent's in-neighbours in ``view.graph`` for ``neighbours``, by every agent for ``complete``), and
    the simulation repeats the agent's own training sequences, in order, until their number equals the
    number of distinct sequences that reference plan would give it (passages of its own documents
    included, replay excluded). Same epochs and batch size, so the same number of optimiser steps.
    """

    def __init__(self, match: str = "none"):
        self.match = match

    def __call__(self, view: SchedulerView) -> Plan:
        return _per_agent(view, lambda a, inbox: [it for it in inbox if it.hops == 0 and it.sender == a])

    def reference(self, view: SchedulerView) -> Plan | None:
        """The plan whose training-set size each agent's own training is padded to (None: no matching)."""
        if self.match == "none":
            return None

        def items(a: int) -> list[InboxItem]:
            if self.match == "complete":
                senders = set(view.agents())
            else:
                senders = {a} | (set(view.graph.predecessors(a)) if a in view.graph else set())
            return [
                InboxItem(n, n.author, view.round, 1.0, 0 if n.author == a else 1)
                for n in view.all_notes
                if n.author in senders
            ]

        return _per_agent(view, lambda a, inbox: items(a))


@SCHEDULERS.register("isolated", params=IsolatedParams, cost=lambda p, received: 0.0)
def _isolated(params: IsolatedParams) -> Scheduler:
    """The no-sharing baseline, compute-matched when ``match`` says so (:class:`Isolated`)."""
    return Isolated(params.match)


@SCHEDULERS.register("oracle")
def _oracle(params: NoParams) -> Scheduler:
    """Centralised upper bound: every agent adapts on every note written this round, inbox or not.

    Notes are wrapped as ``InboxItem(sender=author, received_round=round, weight=1.0, hops=0 if own
    else 1)``.
    """

    def schedule(view: SchedulerView) -> Plan:
        def items(a: int) -> list[InboxItem]:
            return [InboxItem(n, n.author, view.round, 1.0, 0 if n.author == a else 1) for n in view.all_notes]

        return _per_agent(view, lambda a, inbox: items(a))

    return schedule


class PolicyScheduler:
    """The ``policy`` scheduler kind: applies the decisions a policy made for this round.

    ``decide`` stores one round's decisions; the next call resolves them against the inboxes as they
    are after this round's deliveries (a policy decides before this round's notes exist), then forgets
    them. Agents without a decision, and every agent in a round nobody decided (``check_scheduler``,
    a simulation stepped by hand), adapt on their whole inbox, as ``synchronous``. ``adapted[a]``
    keeps the notes planned for agent a so far (the interface's ``overlap`` feature reads it).
    """

    def __init__(self) -> None:
        self._decisions: dict[int, Decision] = {}
        self.adapted: dict[int, list[Note]] = {}

    def decide(self, decisions: Mapping[int, Decision]) -> None:
        self._decisions = dict(decisions)

    def __call__(self, view: SchedulerView) -> Plan:
        decisions, self._decisions = self._decisions, {}
        plan: Plan = {}
        for a in view.agents():
            items = list(view.inboxes.get(a, []))  # the postbox never holds a note twice
            d = decisions.get(a)
            if d is not None:
                items = [
                    it
                    for it in items
                    if it.note.note_id in d.note_ids or (it.received_round == view.round and it.sender in d.new_from)
                ]
            plan[a] = items
            self.adapted.setdefault(a, []).extend(it.note for it in items)
        return plan


class PolicySchedulerParams(Params):
    """The ``policy`` kind's parameters. That ``policy`` names a registered policy (or an import path
    allowed by ``allow_import``) and that ``policy_params`` fit that policy's own model is checked by
    :func:`multiseal.rl.policies.validate_policy_params` (the rl layer, above this one)."""

    policy: str = Field(
        description="a registered policy, or an import path 'package.module:callable' with allow_import: true"
    )
    allow_import: bool = Field(False, description="let policy name code to import")
    policy_params: dict[str, Any] = Field(default_factory=dict, description="the policy's own parameters")
    inbox_slots: int | None = Field(None, ge=1, description="inbox items a policy sees per round")
    history: int | None = Field(None, ge=1, description="past rounds in an observation")
    styles: list[str] | None = Field(None, min_length=1, description="prompt styles a policy may choose")
    visible_neighbour_metrics: bool | None = Field(None, description="show neighbours' metrics")

    @field_validator("styles")
    @classmethod
    def _styles(cls, styles: list[str] | None) -> list[str] | None:
        bad = [
            (f"[{i}]", f"'{s}' is not one of {', '.join(STYLES.names())}")
            for i, s in enumerate(styles or [])
            if s not in STYLES
        ]
        if bad:
            raise FieldProblems(*bad)
        return styles


@SCHEDULERS.register("policy", params=PolicySchedulerParams)
def _policy(params: PolicySchedulerParams) -> Scheduler:
    """A policy decides (``multiseal.rl.policies``): the simulation recipe asks it every round through
    the PettingZoo interface (``multiseal.rl.interface``) and hands its decisions to this scheduler.
    In a round nobody decided (``check_scheduler``, a simulation stepped by hand) it acts as
    ``synchronous``."""
    return PolicyScheduler()


# ---------------------------------------------------------------- building and checking


def validate_scheduler_params(kind: str, params: Mapping[str, Any] | None) -> Problems:
    """Every problem with a scheduler setting, as ``(dotted key, message)`` pairs (``params.budget``)."""
    return SCHEDULERS.validate(kind, params)[1]


def build_scheduler(kind: str, params: Mapping[str, Any] | None = None) -> Scheduler:
    """The scheduler ``kind`` with ``params``; raises ``ParamsError`` listing every problem."""
    parsed = SCHEDULERS.parse(kind, params)
    return SCHEDULERS.get(kind).fn(parsed)


def example_view(n: int = 4, seed: int = 0, round: int = 1) -> SchedulerView:
    """A small view for tests and checks: a bidirectional ring (line for n < 3), two docs per agent.

    Agent a wrote ``n{a}-{d}`` about doc ``doc{a}-{d}`` this round; its inbox holds those (hops 0)
    and its in-neighbours' notes (hops 1, weight 0.5 + 0.1·sender), plus an older neighbour note
    about an already known document.
    """
    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    for a in range(n):
        b = (a + 1) % n
        if b != a:
            g.add_edge(a, b, weight=0.5 + 0.1 * a)
            g.add_edge(b, a, weight=0.5 + 0.1 * b)
    notes = {
        a: [Note(f"n{a}-{d}", a, f"doc{a}-{d}", round, "implications", "text", ("text",), 5 + d) for d in range(2)]
        for a in range(n)
    }
    inboxes: dict[int, list[InboxItem]] = {}
    for a in range(n):
        items = [InboxItem(nt, a, round, 1.0, 0) for nt in notes[a]]
        for u in sorted(g.predecessors(a)):
            old = Note(f"old{u}->{a}", u, f"doc{u}-0", round - 1, "implications", "old", ("old",), 3)
            items.append(InboxItem(old, u, round - 1, g[u][a]["weight"], 1))
            items += [InboxItem(nt, u, round, g[u][a]["weight"], 1) for nt in notes[u]]
        inboxes[a] = items
    return SchedulerView(
        round=round,
        graph=g,
        inboxes=inboxes,
        all_notes=[nt for a in range(n) for nt in notes[a]],
        history=[],
        known={a: {f"doc{(a + 1) % n}-0"} for a in range(n)},
        rng=random.Random(seed),
    )


def _plan_ids(plan: Plan) -> dict[int, list[str]]:
    return {a: [it.note.note_id for it in items] for a, items in plan.items()}


def check_scheduler(scheduler: Scheduler, n: int = 4, *, seed: int = 0, inbox_only: bool = True) -> Plan:
    """Conformance check for a scheduler; raises ``AssertionError`` naming what is wrong.

    On ``example_view(n, seed)``: the plan has every agent key, lists of ``InboxItem`` without
    repeated notes, taken from that agent's inbox (unless ``inbox_only=False``, for centralised
    schedulers such as the oracle); the view is left unchanged; the same rng seed gives the same
    plan; an empty inbox round still gives every agent key. Returns the plan.
    """

    def fail(msg: str) -> None:
        raise AssertionError(f"check_scheduler: {msg}")

    view = example_view(n, seed)
    before = {a: list(items) for a, items in view.inboxes.items()}
    plan = scheduler(view)
    if not isinstance(plan, dict) or sorted(plan) != list(range(n)):
        fail(f"plan keys are {sorted(plan) if isinstance(plan, dict) else plan!r}, expected 0..{n - 1}")
    if view.inboxes != before:
        fail("scheduler modified view.inboxes")
    for a, items in plan.items():
        if not isinstance(items, list) or not all(isinstance(it, InboxItem) for it in items):
            fail(f"plan[{a}] is not a list of InboxItem")
        ids = [it.note.note_id for it in items]
        if len(ids) != len(set(ids)):
            fail(f"plan[{a}] repeats a note")
        if inbox_only and not all(it in view.inboxes[a] for it in items):
            fail(f"plan[{a}] holds items that are not in agent {a}'s inbox")
    if _plan_ids(scheduler(example_view(n, seed))) != _plan_ids(plan):
        fail("same rng seed gave a different plan")
    empty = example_view(n, seed)
    empty.inboxes, empty.all_notes = {a: [] for a in range(n)}, []
    got = scheduler(empty)
    if sorted(got) != list(range(n)) or any(got.values()):
        fail("with empty inboxes the plan must map every agent to []")
    return plan
