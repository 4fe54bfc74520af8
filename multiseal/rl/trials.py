"""Trials: what a self-edit does for a learner, measured with a temporary adapter.

A trial copies a learner's knowledge adapter, trains the copy on a list of sequences (a note plus the
passage) and answers the document's questions closed-book; the copy is then deleted. Trials run in
batches: all temporary adapters of a batch are trained first, then one ``answer_and_grade`` call
answers every (adapter, question) pair of the batch in shared generation batches. Identical trials
run once. ``BaselineCache`` holds the learners' pre-update scores, the other side of a gain.
"""

from __future__ import annotations

import contextlib
import itertools
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from multiseal.learning.evaluate import answer_and_grade, mean_scores
from multiseal.learning.model import SharedModel
from multiseal.learning.train import inner_loop_job, train_jobs
from multiseal.types import Document, EvalSettings, TrainSettings


class Learner(Protocol):
    """What a trial needs of an agent: its knowledge adapter and its inner-loop settings."""

    adapter: str
    inner: TrainSettings


class Clock:
    """Seconds spent per named phase (``with clock("train"): ...``), accumulated."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - t0


class BaselineCache:
    """The reference scores a gain is measured against, per (adapter, document).

    ``before``: the adapter's own answers before any update, filled in one batched answering pass
    (``ensure``). ``passage``: the scores of a trial on the raw passage alone, filled by the caller
    (``put_passage``) so those trials share batches with the others. Call ``invalidate`` when an
    adapter is trained (in ReST-EM: the M-step with ``policy: knowledge``); otherwise every value is
    computed once per run.
    """

    def __init__(self) -> None:
        self._scores: dict[tuple[str, str], dict[str, float]] = {}
        self._passage: dict[tuple[str, str], dict[str, float]] = {}
        self.answered = 0  # questions answered to fill the cache (for cost accounting)
        self.passage_trials = 0

    def ensure(
        self,
        model: SharedModel,
        needed: Iterable[tuple[str, Document]],
        evaluation: EvalSettings,
        progress: str | None = None,
    ) -> None:
        todo = [
            (a, d) for (a, _), d in {(a, d.doc_id): d for a, d in needed}.items() if (a, d.doc_id) not in self._scores
        ]
        if not todo:
            return
        pairs = [(a, q) for a, d in todo for q in d.questions]
        graded = answer_and_grade(model, pairs, evaluation, progress=progress)
        self.answered += len(pairs)
        start = 0
        for a, d in todo:
            self._scores[(a, d.doc_id)] = mean_scores(graded[start : start + len(d.questions)])
            start += len(d.questions)

    def get(self, adapter: str, doc_id: str) -> dict[str, float]:
        return self._scores[(adapter, doc_id)]

    def has_passage(self, adapter: str, doc_id: str) -> bool:
        return (adapter, doc_id) in self._passage

    def put_passage(self, adapter: str, doc_id: str, scores: dict[str, float]) -> None:
        self._passage[(adapter, doc_id)] = scores
        self.passage_trials += 1

    def passage(self, adapter: str, doc_id: str) -> dict[str, float]:
        return self._passage[(adapter, doc_id)]

    def invalidate(self, adapter: str) -> None:
        self._scores = {k: v for k, v in self._scores.items() if k[0] != adapter}
        self._passage = {k: v for k, v in self._passage.items() if k[0] != adapter}


_temp_names = itertools.count()


def _temp_name() -> str:
    # peft keeps the last deleted adapter resident, so a name is never reused in a process.
    return f"rst{next(_temp_names)}x"


@dataclass(frozen=True)
class Trial:
    """Learner ``learner`` adapts a copy of its knowledge adapter on ``sequences``, then answers ``doc``."""

    learner: int
    doc: Document
    sequences: tuple[str, ...]


def run_trials(
    model: SharedModel,
    trials: Sequence[Trial],
    agents: Sequence[Learner],
    evaluation: EvalSettings,
    *,
    batch: int = 16,
    seed: int = 0,
    clock: Clock | None = None,
    prefix: str = "",
    progress: bool = False,
    together: bool = False,
) -> list[dict[str, float]]:
    """Mean grades of each trial on its document's questions, in batches of ``batch`` adapters.

    Within a batch every temporary adapter is trained first (in shared batches with ``together``; see
    :func:`multiseal.learning.train.train_jobs`), then one ``answer_and_grade`` call
    answers all (adapter, question) pairs; the adapters are deleted afterwards. Trials with the same
    learner, document and sequences are run once (training is deterministic for ``seed``).
    """
    clock = clock or Clock()
    index: dict[tuple, int] = {}
    unique: list[Trial] = []
    for t in trials:
        key = (t.learner, t.doc.doc_id, t.sequences)
        if key not in index:
            index[key] = len(unique)
            unique.append(t)
    scores: list[dict[str, float]] = []
    for start in range(0, len(unique), batch):
        chunk = unique[start : start + batch]
        names: list[str] = []
        try:
            with clock(prefix + "train"):
                jobs = []
                for t in chunk:
                    agent = agents[t.learner]
                    name = _temp_name()
                    model.add_adapter(name, model.adapters[agent.adapter], init_from=agent.adapter)
                    names.append(name)
                    jobs.append(inner_loop_job(model, name, list(t.sequences), agent.inner, seed=seed))
                if together:
                    train_jobs(
                        model,
                        jobs,
                        together=True,
                        progress=f"trials {start + 1}-{start + len(chunk)}/{len(unique)}" if progress else None,
                    )
                else:
                    for k, job in enumerate(jobs):
                        train_jobs(model, [job], progress=f"trial {start + k + 1}/{len(unique)}" if progress else None)
            with clock(prefix + "answer"):
                pairs = [(n, q) for n, t in zip(names, chunk) for q in t.doc.questions]
                graded = answer_and_grade(model, pairs, evaluation, progress="answering" if progress else None)
        finally:
            with warnings.catch_warnings():  # peft warns when the active adapter goes; it is reset on use
                warnings.simplefilter("ignore", UserWarning)
                for n in names:
                    model.delete_adapter(n)
        pos = 0
        for t in chunk:
            scores.append(mean_scores(graded[pos : pos + len(t.doc.questions)]))
            pos += len(t.doc.questions)
    return [scores[index[(t.learner, t.doc.doc_id, t.sequences)]] for t in trials]
