"""Stage 4, scheduling: the scheduler (or an external policy) picks the inbox items each agent adapts on."""

from __future__ import annotations

import random

from multiseal.sim.setup import Setup
from multiseal.sim.stages.adapt import training_set
from multiseal.sim.state import RoundState
from multiseal.sim.trust import weighted_inboxes
from multiseal.types import AgentAction, Note, Plan, SchedulerView


def schedule(
    setup: Setup, state: RoundState, r: int, g, notes: list[Note], actions: dict[int, AgentAction]
) -> tuple[Plan, dict[int, int]]:
    """The plan, and per agent the number of sequences to pad its training to (compute matching:
    the size of its training set under the scheduler's ``reference`` plan; empty without one).
    Trust (when learnt or thresholded) weighs the inboxes first and drops what it excludes."""
    inboxes = state.postbox.inboxes()
    if setup.trust.learn or setup.trust.exclude_below is not None:
        inboxes, dropped = weighted_inboxes(inboxes, state.trust, setup.trust)
        for a, items in dropped.items():
            state.postbox.consume(a, items)
            state.trust_rejected[a] += len(items)
    view = SchedulerView(
        round=r,
        graph=g,
        inboxes=inboxes,
        all_notes=list(notes),
        history=state.history,
        known={a: set(k) for a, k in enumerate(state.known)},
        rng=random.Random(setup.seed * 104729 + r),
    )
    plan = setup.scheduler(view)
    reference = getattr(setup.scheduler, "reference", None)
    ref_plan = reference(view) if callable(reference) else None
    targets = {a: len(training_set(setup, state, a, items)) for a, items in (ref_plan or {}).items()}
    if setup.sharing != "notes":  # nothing travels: only one's own notes exist
        plan = {a: [it for it in items if it.note.author == a] for a, items in plan.items()}
    for a, act in actions.items():
        if act.adapt_on is not None:
            plan[a] = list(act.adapt_on)
    return plan, targets
