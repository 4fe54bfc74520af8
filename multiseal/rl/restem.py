"""The ReST-EM outer loop: agents learn to write notes that help themselves or their neighbours.

One iteration (SEAL's outer loop; ReST-EM is expectation–maximisation on rewarded samples):

*E-step*

1. every agent samples ``candidates`` self-edits for every training document with its *writer*;
2. each candidate becomes one **trial** per learner the reward needs: the author (``self``), the
   author's out-neighbours (``neighbours``) or both (``mixed``). A trial trains a temporary adapter,
   initialised from the learner's current knowledge adapter, on the candidate's lines plus the passage,
   then answers the document's questions closed-book; the adapter is thrown away;
3. reward from the gain ``g = acc_after − acc_ref`` of each learner on that document, where
   ``acc_ref`` (``baseline``) is its accuracy before the update (``before``, the paper's) or after
   training on the passage alone (``passage``: only what the note adds beyond the passage counts);
   ``self``, ``neighbours`` (trust-weighted) or ``mixed`` (:mod:`multiseal.rl.rewards`).

*M-step*

4. per (agent, document) the ``keep`` best candidates with ``r > 0`` are kept;
5. each agent's writer is fine-tuned on (prompt → kept self-edit), the loss on the completion only.

**Held-out evaluation** (the paper's protocol), before the first iteration (iteration 0) and after
each: every agent writes ``eval_samples`` self-edits per held-out document, trains a temporary adapter
from its knowledge adapter on each and answers that document's questions (with a neighbour reward
the neighbours adapt on the same notes too). Training and held-out documents are disjoint, checked.

**Where the writer lives** (``policy``): a writer adapter of its own per agent (``separate``) or the
knowledge adapter itself (``knowledge``); see :mod:`multiseal.rl.restem_setup`, which also makes the
agents and the training/held-out split. :mod:`multiseal.rl.restem_records` holds what is recorded.

**Cost** (:mod:`multiseal.rl.trials`). Trials run in batches of ``trial_batch``: all temporary
adapters of a batch are trained, then one ``answer_and_grade`` pass answers every (adapter, question)
pair of the batch. Identical trials (same learner, document and sequences) run once. Pre-update
accuracies per (learner, document) are cached and recomputed only for adapters the M-step changed.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from multiseal.learning.model import SharedModel
from multiseal.learning.self_edit import (
    STYLES,
    parse_completion,
    passage_sequence,
    sample_self_edits,
    self_edit_request,
    training_sequences,
)
from multiseal.learning.train import finetune_on_completions
from multiseal.rl.restem_records import Candidate, IterationRecord
from multiseal.rl.restem_setup import POLICIES, RestemAgent, check_disjoint, learners
from multiseal.rl.rewards import (
    REWARDS,
    combine_reward,
    gain_stats,
    reward_stats,
    select_candidates,
)
from multiseal.rl.trials import BaselineCache, Clock, Trial, run_trials
from multiseal.types import Document, EvalSettings, SelfEditSettings, TrainSettings

BASELINES = ("before", "passage")


# How the writer is fine-tuned in the M-step: the inner loop's training settings, with a smaller lr,
# a few epochs, small batches and room for a prompt plus its completion.
WRITER_TRAINING = TrainSettings(epochs=2, lr=3e-4, batch_size=4, max_length=512)


@dataclass(frozen=True)
class RestemSettings:
    """Outer-loop settings; ``sft`` trains the writer in the M-step."""

    iterations: int = 2
    candidates: int = 3
    keep: int = 1
    reward: str = "self"
    mix_weight: float = 0.5
    policy: str = "separate"
    sft: TrainSettings = WRITER_TRAINING
    eval_samples: int = 1
    trial_batch: int = 16
    baseline: str = "before"
    together: bool = False  # train each batch of trial adapters in shared batches (inner_loop.batching)

    def __post_init__(self) -> None:
        if self.baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {', '.join(BASELINES)}, got {self.baseline!r}")
        if self.reward not in REWARDS:
            raise ValueError(f"reward must be one of {', '.join(REWARDS)}, got {self.reward!r}")
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")
        if not 1 <= self.keep <= self.candidates:
            raise ValueError(f"keep must be in 1..candidates ({self.candidates}), got {self.keep}")
        if not 0.0 <= self.mix_weight <= 1.0:
            raise ValueError(f"mix_weight must be in [0, 1], got {self.mix_weight}")


# --------------------------------------------------------------------------- one iteration


def _requests(agents: Sequence[RestemAgent], docs: Sequence[Document]) -> list[tuple[int, Document]]:
    return [(a, d) for a in range(len(agents)) for d in docs]


def _gain(score: dict[str, float], base: dict[str, float], metric: str) -> float:
    return score[metric] - base[metric]


def sample_candidates(
    model: SharedModel,
    agents: Sequence[RestemAgent],
    docs: Sequence[Document],
    self_edit: SelfEditSettings,
    k: int,
    seed: int,
    progress: str | None = None,
) -> list[Candidate]:
    """``k`` self-edits per (agent, document), written by the agents' writers in one batched pass."""
    requests = _requests(agents, docs)
    samples = sample_self_edits(
        model,
        [(d, agents[a].writer, agents[a].style) for a, d in requests],
        replace(self_edit, candidates=k),
        seed=seed,
        progress=progress,
    )
    out = []
    for (a, d), completions in zip(requests, samples):
        for j, c in enumerate(completions):
            style = agents[a].style
            out.append(
                Candidate(
                    agent=a,
                    doc=d,
                    index=j,
                    style=style,
                    completion=c,
                    lines=len(parse_completion(c, d, style)),
                    sequences=tuple(training_sequences(c, d, style)),
                )
            )
    return out


def score_candidates(
    model: SharedModel,
    agents: Sequence[RestemAgent],
    cands: list[Candidate],
    settings: RestemSettings,
    evaluation: EvalSettings,
    cache: BaselineCache,
    *,
    roles: Callable[[int], list[tuple[str, int]]],
    seed: int,
    clock: Clock,
    prefix: str = "",
    passage: bool = False,
    progress: bool = False,
) -> None:
    """Run every (candidate, learner) trial and store per-learner scores and gains in the candidates.

    ``roles(author)`` lists ``("self" | "neighbour", learner)`` pairs. Sets each candidate's ``scores``
    (learner → grades), ``base`` (before the update), ``passage`` (after training on the passage
    alone, when ``passage`` or ``settings.baseline == "passage"``), ``self_gain`` and
    ``neighbour_gains`` with their ``neighbour_weights`` (headline metric, over
    ``settings.baseline``). Passage-only trials missing from the cache share the candidates' batches.
    """
    metric = evaluation.headline
    passage = passage or settings.baseline == "passage"
    trials, owners = [], []
    for c in cands:
        for role, learner in roles(c.agent):
            trials.append(Trial(learner, c.doc, c.sequences))
            owners.append((c, role, learner))
    with clock(prefix + "baseline"):
        cache.ensure(
            model,
            [(agents[t.learner].adapter, t.doc) for t in trials],
            evaluation,
            progress="pre-update answers" if progress else None,
        )
    extra: dict[tuple[str, str], Trial] = {}
    if passage:
        for t in trials:
            key = (agents[t.learner].adapter, t.doc.doc_id)
            if not cache.has_passage(*key):
                extra.setdefault(key, Trial(t.learner, t.doc, (passage_sequence(t.doc),)))
    results = run_trials(
        model,
        trials + list(extra.values()),
        agents,
        evaluation,
        batch=settings.trial_batch,
        seed=seed,
        clock=clock,
        prefix=prefix,
        progress=progress,
        together=settings.together,
    )
    for key, score in zip(extra, results[len(trials) :]):
        cache.put_passage(*key, score)
    for c in cands:
        c.clear_scores()
    for (c, role, learner), score in zip(owners, results):
        adapter, doc_id = agents[learner].adapter, c.doc.doc_id
        c.scores[learner], c.base[learner] = score, cache.get(adapter, doc_id)
        if passage:
            c.passage[learner] = cache.passage(adapter, doc_id)
        reference = c.passage[learner] if settings.baseline == "passage" else c.base[learner]
        gain = _gain(score, reference, metric)
        if role == "self":
            c.self_gain = gain
        else:
            c.neighbour_gains.append(gain)
            c.neighbour_weights.append(dict(agents[c.agent].neighbours)[learner])


def heldout_evaluation(
    model: SharedModel,
    agents: Sequence[RestemAgent],
    eval_docs: Sequence[Document],
    settings: RestemSettings,
    evaluation: EvalSettings,
    self_edit: SelfEditSettings,
    cache: BaselineCache,
    *,
    seed: int,
    clock: Clock,
    progress: bool = False,
) -> tuple[dict[str, float], list[Candidate]]:
    """Accuracy after training on the agents' own notes about held-out documents (paper's protocol).

    Keys: ``<metric>`` (authors adapting on their own notes, the headline), ``base.<metric>`` (before
    the update), ``passage.<metric>`` (after training on the passage alone: what the notes add to),
    ``agent.<i>.<metric>``, and with a neighbour reward ``neighbours.<metric>``,
    ``neighbours.base.<metric>`` and ``neighbours.passage.<metric>`` (the neighbours adapting on the
    same notes).
    """
    with clock("heldout.generate"):
        notes = sample_candidates(
            model,
            agents,
            eval_docs,
            self_edit,
            settings.eval_samples,
            seed=seed,
            progress="held-out notes" if progress else None,
        )
    with_nb = settings.reward != "self"

    def roles(a: int) -> list[tuple[str, int]]:
        return [("self", a)] + ([("neighbour", v) for v, _ in agents[a].neighbours] if with_nb else [])

    score_candidates(
        model,
        agents,
        notes,
        settings,
        evaluation,
        cache,
        roles=roles,
        seed=seed,
        clock=clock,
        prefix="heldout.",
        passage=True,
        progress=progress,
    )
    out: dict[str, float] = {}
    metrics = list(notes[0].scores[notes[0].agent]) if notes else []
    for m in metrics:
        own = [(n.scores[n.agent], n.base[n.agent]) for n in notes]
        out[m] = statistics.fmean(s[m] for s, _ in own)
        out[f"base.{m}"] = statistics.fmean(b[m] for _, b in own)
        out[f"passage.{m}"] = statistics.fmean(n.passage[n.agent][m] for n in notes)
        for a in range(len(agents)):
            mine = [n.scores[a][m] for n in notes if n.agent == a]
            out[f"agent.{a}.{m}"] = statistics.fmean(mine)
        if with_nb:
            nb = [(n.scores[v], n.base[v]) for n in notes for v, _ in agents[n.agent].neighbours]
            if nb:
                out[f"neighbours.{m}"] = statistics.fmean(s[m] for s, _ in nb)
                out[f"neighbours.base.{m}"] = statistics.fmean(b[m] for _, b in nb)
                out[f"neighbours.passage.{m}"] = statistics.fmean(
                    n.passage[v][m] for n in notes for v, _ in agents[n.agent].neighbours
                )
    return out, notes


def run_restem(
    model: SharedModel,
    agents: Sequence[RestemAgent],
    train_docs: Sequence[Document],
    eval_docs: Sequence[Document],
    settings: RestemSettings,
    evaluation: EvalSettings,
    self_edit: SelfEditSettings,
    *,
    seed: int = 0,
    progress: bool = True,
    on_iteration: Callable[[IterationRecord], None] | None = None,
) -> list[IterationRecord]:
    """Held-out evaluation, then ``settings.iterations`` ReST-EM iterations (module docstring).

    ``agents`` must already exist on ``model`` (``make_agents``). Returns one record per iteration,
    iteration 0 first; ``on_iteration`` sees each as soon as it is complete.
    """
    check_disjoint(train_docs, eval_docs)
    silent = sorted({a.style for a in agents if STYLES.get(a.style).instruction is None})
    if silent:
        raise ValueError(f"styles {silent} write no self-edit; ReST-EM needs a style that does")
    if settings.reward != "self":
        lonely = [i for i, a in enumerate(agents) if not a.neighbours]
        if lonely:
            raise ValueError(f"reward '{settings.reward}' needs out-neighbours; agents {lonely} have none")
    cache = BaselineCache()
    heldout_seed = seed * 1000 + 999  # the same sampling stream at every evaluation
    records: list[IterationRecord] = []

    def finish(rec: IterationRecord, clock: Clock, heldout: tuple[dict[str, float], list[Candidate]]) -> None:
        rec.heldout, notes = heldout
        rec.heldout_notes = [n.note_row(rec.iteration) for n in notes]
        rec.seconds = dict(clock.seconds)
        records.append(rec)
        if on_iteration:
            on_iteration(rec)

    clock = Clock()
    rec = IterationRecord(0)
    finish(
        rec,
        clock,
        heldout_evaluation(
            model,
            agents,
            eval_docs,
            settings,
            evaluation,
            self_edit,
            cache,
            seed=heldout_seed,
            clock=clock,
            progress=progress,
        ),
    )
    for it in range(1, settings.iterations + 1):
        clock = Clock()
        rec = IterationRecord(it)
        with clock("generate"):
            cands = sample_candidates(
                model,
                agents,
                train_docs,
                self_edit,
                settings.candidates,
                seed=seed * 1000 + it,
                progress=f"iteration {it}: self-edits" if progress else None,
            )

        def roles(a: int) -> list[tuple[str, int]]:
            return [("self" if v == a else "neighbour", v) for v in learners(a, agents, settings.reward)]

        answered, passage_trials = cache.answered, cache.passage_trials
        score_candidates(
            model, agents, cands, settings, evaluation, cache, roles=roles, seed=seed, clock=clock, progress=progress
        )
        reward_and_select(cands, settings)
        rec.candidates = [c.row(it) for c in cands]
        rec.rewards = reward_stats([c.reward for c in cands])
        rec.gains = gain_stats(cands)
        rec.counts = {
            "candidates": len(cands),
            "kept": sum(c.kept for c in cands),
            "trials": sum(len(c.scores) for c in cands),
            "baseline_questions": cache.answered - answered,
            "passage_trials": cache.passage_trials - passage_trials,
        }
        with clock("sft"):
            rec.sft = train_writers(model, agents, cands, settings, cache, seed=seed * 1000 + it, progress=progress)
        finish(
            rec,
            clock,
            heldout_evaluation(
                model,
                agents,
                eval_docs,
                settings,
                evaluation,
                self_edit,
                cache,
                seed=heldout_seed,
                clock=clock,
                progress=progress,
            ),
        )
    return records


def reward_and_select(cands: list[Candidate], settings: RestemSettings) -> None:
    """Reward every candidate, then mark the kept ones per (agent, document)."""
    for c in cands:
        c.reward = combine_reward(
            settings.reward, c.self_gain, c.neighbour_gains, c.neighbour_weights, settings.mix_weight
        )
        c.kept = False
    groups: dict[tuple[int, str], list[Candidate]] = {}
    for c in cands:
        groups.setdefault((c.agent, c.doc.doc_id), []).append(c)
    for group in groups.values():
        for i in select_candidates([c.reward for c in group], settings.keep, eligible=[c.lines > 0 for c in group]):
            group[i].kept = True


def train_writers(
    model: SharedModel,
    agents: Sequence[RestemAgent],
    cands: Sequence[Candidate],
    settings: RestemSettings,
    cache: BaselineCache,
    *,
    seed: int,
    progress: bool,
) -> dict[str, float]:
    """The M-step: each writer fine-tuned on (its prompt → its kept self-edits)."""
    firsts, lasts, trained = [], [], 0
    for a, agent in enumerate(agents):
        pairs = [
            (model.prompt(self_edit_request(c.doc, c.style)), c.completion) for c in cands if c.agent == a and c.kept
        ]
        if not pairs:
            continue
        stats = finetune_on_completions(
            model, agent.writer, pairs, settings.sft, seed=seed + a, progress=f"SFT writer {a}" if progress else None
        )
        trained += 1
        if stats.tokens:
            firsts.append(stats.loss_first)
            lasts.append(stats.loss_last)
        if agent.writer == agent.adapter:
            cache.invalidate(agent.adapter)  # its answers may have changed
    out = {"writers_trained": float(trained)}
    if firsts:
        out.update(loss_first=statistics.fmean(firsts), loss_last=statistics.fmean(lasts))
    return out
