"""What the ReST-EM loop records: one candidate self-edit, one iteration, and the rows they log.

A :class:`Candidate` is one self-edit an agent's writer sampled for one document: a training
candidate in the E-step, or a held-out note in the evaluation. Scoring fills in what it did for
each learner, selection its reward and whether it is kept. ``Candidate.row`` and
``Candidate.note_row`` are the JSON rows logged to ``restem/candidates.jsonl`` (and
``restem/kept_iter<t>.jsonl``) and ``restem/heldout_notes.jsonl``. An :class:`IterationRecord` holds
those rows and the statistics of one iteration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from multiseal.types import Document

Scores = dict[str, float]  # metric → mean grade on a document's questions


@dataclass(eq=False)
class Candidate:
    """One sampled self-edit of agent ``agent`` about ``doc``, and (once scored) what it did.

    Learners are agent indices: the author (``self_gain``) and/or its out-neighbours
    (``neighbour_gains``, in the order of ``neighbour_weights``). Gains are on the headline metric,
    over the run's baseline.
    """

    agent: int
    doc: Document
    index: int  # which of the agent's samples for this document (logged as "candidate" / "sample")
    style: str
    completion: str  # what the writer wrote
    lines: int  # usable self-edit lines parsed from the completion
    sequences: tuple[str, ...]  # what a trial trains on: the parsed note and the passage
    scores: dict[int, Scores] = field(default_factory=dict)  # learner → grades after the trial
    base: dict[int, Scores] = field(default_factory=dict)  # learner → grades before any update
    passage: dict[int, Scores] = field(default_factory=dict)  # learner → grades after the passage alone
    self_gain: float | None = None
    neighbour_gains: list[float] = field(default_factory=list)
    neighbour_weights: list[float] = field(default_factory=list)  # trust weight of author → neighbour
    reward: float | None = None  # set by selection
    kept: bool = False

    def clear_scores(self) -> None:
        """Forget a previous scoring (a candidate can be scored again)."""
        self.scores, self.base, self.passage = {}, {}, {}
        self.self_gain, self.neighbour_gains, self.neighbour_weights = None, [], []

    def row(self, iteration: int) -> dict[str, Any]:
        """The logged row of a training candidate (``restem/candidates.jsonl``)."""
        return {
            "iteration": iteration,
            "agent": self.agent,
            "doc_id": self.doc.doc_id,
            "candidate": self.index,
            "style": self.style,
            "completion": self.completion,
            "lines": self.lines,
            "self_gain": self.self_gain,
            "neighbour_gains": self.neighbour_gains,
            "reward": self.reward,
            "kept": self.kept,
            "scores": {str(k): v for k, v in self.scores.items()},
            "passage": {str(k): v for k, v in self.passage.items()},
        }

    def note_row(self, iteration: int) -> dict[str, Any]:
        """The logged row of a held-out note (``restem/heldout_notes.jsonl``)."""
        return {
            "iteration": iteration,
            "agent": self.agent,
            "doc_id": self.doc.doc_id,
            "sample": self.index,
            "completion": self.completion,
            "lines": self.lines,
            "self_gain": self.self_gain,
            "scores": {str(k): v for k, v in self.scores.items()},
            "passage": {str(k): v for k, v in self.passage.items()},
        }


@dataclass
class IterationRecord:
    """What one iteration measured (iteration 0: held-out evaluation before any RL).

    ``candidates`` and ``heldout_notes`` are the logged rows (``Candidate.row``, ``Candidate.note_row``).
    """

    iteration: int
    heldout: dict[str, float] = field(default_factory=dict)
    rewards: dict[str, float] = field(default_factory=dict)
    gains: dict[str, float] = field(default_factory=dict)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    heldout_notes: list[dict[str, Any]] = field(default_factory=list)
    sft: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    counts: dict[str, float] = field(default_factory=dict)

    @property
    def kept(self) -> list[dict[str, Any]]:
        """The rows of the kept candidates (``restem/kept_iter<t>.jsonl``)."""
        return [c for c in self.candidates if c["kept"]]

    def metrics(self) -> dict[str, float]:
        """Flat MLflow metrics: ``restem.heldout.*``, ``restem.reward.*``, ``restem.seconds.*``..."""
        out = {f"restem.heldout.{k}": v for k, v in self.heldout.items()}
        out.update({f"restem.reward.{k}": v for k, v in self.rewards.items()})
        out.update({f"restem.gain.{k}": v for k, v in self.gains.items()})
        out.update({f"restem.sft.{k}": v for k, v in self.sft.items()})
        out.update({f"restem.seconds.{k}": v for k, v in self.seconds.items()})
        out.update({f"restem.count.{k}": v for k, v in self.counts.items()})
        n = self.counts.get("candidates", 0)
        if n:
            spent = sum(self.seconds.get(k, 0.0) for k in ("train", "answer", "baseline"))
            out["restem.seconds_per_candidate"] = spent / n
        return out
