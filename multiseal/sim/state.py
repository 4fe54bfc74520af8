"""Everything a round changes, in one record: what the stages read and write, and what a checkpoint saves.

:class:`RoundState` is the changing half of a simulation (the fixed half is
:class:`~multiseal.sim.setup.Setup`). Row ``t`` of the ``(rounds + 1, agents, documents)`` arrays is the
state after round ``t`` (row 0: the base model). A checkpoint stores the record whole
(:mod:`multiseal.sim.checkpoint`), so a field added here is saved and restored with no further step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from multiseal.sim.sampling import Sample
from multiseal.sim.setup import Setup
from multiseal.sim.sharing import Postbox
from multiseal.types import Note, Question, RoundRecord


@dataclass(eq=False)
class RoundState:
    """The simulation's state between rounds (see the module's docstring)."""

    postbox: Postbox  # inboxes and notes in flight
    acc: np.ndarray  # (rows, agents, documents) headline accuracy; NaN where not measured
    asked: np.ndarray  # (rows, agents, documents) the cell was measured, not estimated by the budget
    composition: np.ndarray  # (rows, agents) accuracy on the composition questions
    answered: np.ndarray  # (rows,) (agent, question) pairs answered per row
    introduced: np.ndarray  # (rows, documents) the document had arrived somewhere by that row
    own: np.ndarray  # (agents, documents) the agent received the passage itself
    learnt: np.ndarray  # (agents, documents) the row the agent first held or adapted on it (-1: never)
    held_prev: np.ndarray  # ``own`` before this round's arrivals (trust compares against it)
    gated_out: np.ndarray  # (agents,) updates a gate rejected
    trust: np.ndarray  # (agents, agents) trust[a, u]: how much a trusts u's notes
    trust_rejected: np.ndarray  # (agents,) inbox items dropped for low trust
    passages: list[set[str]]  # per agent: documents it received
    known: list[set[str]]  # per agent: documents it adapted on notes about
    trained: list[list[str]]  # per agent: sequences trained on, in first-time order
    trained_notes: list[list[str]]  # per agent: note ids adapted on, in order
    answers: list[dict[str, str]]  # per agent: latest answer per question id
    drift_values: dict[int, tuple[float, float]]  # agent -> (ppl ratio, KL); empty without drift
    deltas: dict[int, list[dict]]  # combining agent -> its per-round deltas
    round: int = 0  # rounds played
    started: bool = False  # the adapters exist and row 0 is measured
    probe: list[Question] = field(default_factory=list)  # the retention probe, fixed at the start
    records: list[RoundRecord] = field(default_factory=list)
    history: list[dict[int, dict[str, float]]] = field(default_factory=list)  # per-agent metrics by round
    outcomes: list[dict] = field(default_factory=list)  # every graded answer: row, agent, qid, answer, grades
    notes_log: list[Note] = field(default_factory=list)  # every note written, in order
    samples: dict[tuple[int, int], Sample] = field(default_factory=dict)  # (row, agent) -> its budgeted draw
    items: dict[tuple[int, int], dict[str, float]] = field(default_factory=dict)  # (row, agent) -> qid -> grade
    travelling: dict[str, Note] = field(default_factory=dict)  # shuffled: real note id -> the copy that travels
    dirty: set[int] = field(default_factory=set)  # agents whose adapter changed this round
    round_authors: dict[int, set[int]] = field(default_factory=dict)  # agent -> whose notes it adapted on
    planted: dict[str, dict[int, set[str]]] = field(default_factory=dict)  # fact id -> adversary -> values
    written: dict[str, set[int]] = field(default_factory=dict)  # doc id -> adversaries that wrote about it
    retold: dict[int, set[str]] = field(default_factory=dict)  # agent -> documents it has retold (sharing.retell)
    received: list[tuple[int, int, str, int]] = field(default_factory=list)  # (round, agent, note id, hops)

    @classmethod
    def fresh(cls, setup: Setup, postbox: Postbox) -> RoundState:
        """The state before the first round of ``setup``."""
        A, D, rows = len(setup.agents), len(setup.world.documents), setup.rounds + 1
        return cls(
            postbox=postbox,
            acc=np.full((rows, A, D), np.nan),
            asked=np.zeros((rows, A, D), dtype=bool),
            composition=np.full((rows, A), np.nan),
            answered=np.zeros(rows, dtype=int),
            introduced=np.zeros((rows, D), dtype=bool),
            own=np.zeros((A, D), dtype=bool),
            learnt=np.full((A, D), -1, dtype=int),
            passages=[set() for _ in range(A)],
            known=[set() for _ in range(A)],
            trained=[[] for _ in range(A)],
            trained_notes=[[] for _ in range(A)],
            answers=[{} for _ in range(A)],
            held_prev=np.zeros((A, D), dtype=bool),
            drift_values={a: (1.0, 0.0) for a in range(A)} if setup.drift_texts else {},
            gated_out=np.zeros(A, dtype=int),
            deltas={a: [] for a in setup.mitigations if setup.combines(a)},
            trust=np.ones((A, A)),
            trust_rejected=np.zeros(A, dtype=int),
        )
