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
   training on the passage alone (``passage``: only what the note adds beyond the passage counts)::

       self:        r = g_author
       neighbours:  r = Σ_v w_v g_v / Σ_v w_v      (v: out-neighbours, w_v: trust weight of a → v)
       mixed:       r = m · g_author + (1 − m) · neighbours        (m = mix_weight)

*M-step*

4. per (agent, document) the ``keep`` best candidates with ``r > 0`` are kept;
5. each agent's writer is fine-tuned on (prompt → kept self-edit), the loss on the completion only.

**Held-out evaluation** (the paper's protocol), before the first iteration (iteration 0) and after
each: every agent writes ``eval_samples`` self-edits per held-out document, trains a temporary adapter
from its knowledge adapter on each and answers that document's questions (with a neighbour reward
the neighbours adapt on the same notes too). Training and held-out documents are disjoint, checked.

**Where the writer lives** (``policy``): ``separate`` gives every agent a writer adapter of its own
(``writer<i>``), so the knowledge adapter that answers questions never sees the SFT on writing;
``knowledge`` lets the agent's knowledge adapter write and be SFT-trained, as SEAL trains one model.

**Cost** (``multiseal.trials``). Trials run in batches of ``trial_batch``: all temporary adapters of a batch are trained,
then one ``answer_and_grade`` pass answers every (adapter, question) pair of the batch. Identical
trials (same learner, document and sequences) run once. Pre-update accuracies per (learner,
document) are cached and recomputed only for adapters the M-step changed.
"""
from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

from multiseal.learning.model import SharedModel
from multiseal.learning.self_edit import (
    STYLES,
    parse_completion,
    passage_sequence,
    sample_self_edits,
    self_edit_request,
    training_sequences,
)
from multiseal.learning.train import SftSettings, finetune_on_completions
from multiseal.rl.trials import BaselineCache, Clock, Trial, run_trials
from multiseal.types import (
    AgentSpec,
    Document,
    EvalSettings,
    InnerLoopSettings,
    SelfEditSettings,
)

REWARDS = ("self", "neighbours", "mixed")
POLICIES = ("separate", "knowledge")
BASELINES = ("before", "passage")


@dataclass(frozen=True)
class RestemSettings:
    """Outer-loop settings; ``sft`` trains the writer in the M-step."""

    iterations: int = 2
    candidates: int = 3
    keep: int = 1
    reward: str = "self"
    mix_weight: float = 0.5
    policy: str = "separate"
    sft: SftSettings = SftSettings()
    eval_samples: int = 1
    trial_batch: int = 16
    baseline: str = "before"

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


@dataclass(frozen=True)
class RestemAgent:
    """One agent: its knowledge adapter, the adapter that writes its notes, and its out-neighbours."""

    adapter: str
    writer: str  # == adapter for policy 'knowledge'
    style: str
    inner: InnerLoopSettings
    neighbours: tuple[tuple[int, float], ...] = ()  # (agent index, trust weight of the edge)


# --------------------------------------------------------------------------- pure logic


def neighbour_gain(gains: Sequence[float], weights: Sequence[float] | None = None) -> float:
    """Trust-weighted mean gain of the neighbours (uniform when ``weights`` is None); NaN if none."""
    if not gains:
        return math.nan
    weights = [1.0] * len(gains) if weights is None else list(weights)
    if len(weights) != len(gains):
        raise ValueError("one weight per neighbour gain")
    total = sum(weights)
    return sum(g * w for g, w in zip(gains, weights)) / total if total > 0 else math.nan


def combine_reward(kind: str, self_gain: float | None, neighbour_gains: Sequence[float] = (),
                   weights: Sequence[float] | None = None, mix_weight: float = 0.5) -> float:
    """The reward of one candidate from the gains it produced (see the module docstring)."""
    if kind == "self":
        if self_gain is None:
            raise ValueError("reward 'self' needs the author's gain")
        return self_gain
    nb = neighbour_gain(neighbour_gains, weights)
    if math.isnan(nb):
        raise ValueError(f"reward '{kind}' needs at least one neighbour gain")
    if kind == "neighbours":
        return nb
    if kind == "mixed":
        if self_gain is None:
            raise ValueError("reward 'mixed' needs the author's gain")
        return mix_weight * self_gain + (1.0 - mix_weight) * nb
    raise ValueError(f"reward must be one of {', '.join(REWARDS)}, got {kind!r}")


def select_candidates(rewards: Sequence[float], keep: int, min_reward: float = 0.0,
                      eligible: Sequence[bool] | None = None) -> list[int]:
    """Indices of the ``keep`` highest rewards strictly above ``min_reward``, best first.

    Ties go to the earlier candidate; ``eligible[i] == False`` (a completion with no usable line)
    is never kept; NaN rewards are never kept.
    """
    ok = [i for i, r in enumerate(rewards)
          if not math.isnan(r) and r > min_reward and (eligible is None or eligible[i])]
    return sorted(ok, key=lambda i: (-rewards[i], i))[:keep]


def reward_stats(rewards: Sequence[float]) -> dict[str, float]:
    """mean, max, min, std and the share of candidates with a positive reward."""
    vals = [r for r in rewards if not math.isnan(r)]
    if not vals:
        return {"n": 0.0}
    return {
        "n": float(len(vals)),
        "mean": statistics.fmean(vals),
        "max": max(vals),
        "min": min(vals),
        "std": statistics.pstdev(vals),
        "positive_share": sum(r > 0 for r in vals) / len(vals),
    }


def split_documents(documents: Sequence[Document], n_train: int, n_eval: int,
                    seed: int = 0) -> tuple[list[Document], list[Document]]:
    """A seeded, disjoint (training, held-out) split of the documents that have questions."""
    docs = [d for d in documents if d.questions]
    if n_train + n_eval > len(docs):
        raise ValueError(f"{n_train} training + {n_eval} held-out documents, but only {len(docs)} "
                         "documents with questions")
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    return [docs[i] for i in order[:n_train]], [docs[i] for i in order[n_train : n_train + n_eval]]


def check_disjoint(train_docs: Sequence[Document], eval_docs: Sequence[Document]) -> None:
    """Raise ValueError when a held-out document, passage or question also appears in training."""
    ids = {d.doc_id for d in train_docs} & {d.doc_id for d in eval_docs}
    texts = {d.context for d in train_docs} & {d.context for d in eval_docs}
    qids = {q.qid for d in train_docs for q in d.questions} & {q.qid for d in eval_docs for q in d.questions}
    if ids or texts or qids:
        raise ValueError(f"held-out documents leak into training: ids {sorted(ids)}, "
                         f"{len(texts)} shared passages, questions {sorted(qids)}")


def learners(author: int, agents: Sequence[RestemAgent], reward: str) -> list[int]:
    """The agents that adapt on ``author``'s note for this reward: itself and/or its neighbours."""
    out = [author] if reward in ("self", "mixed") else []
    if reward in ("neighbours", "mixed"):
        out += [v for v, _ in agents[author].neighbours]
    return out


# --------------------------------------------------------------------------- agents


def make_agents(model: SharedModel, specs: Sequence[AgentSpec], neighbours: Sequence[Sequence[tuple[int, float]]],
                policy: str, seed: int = 0) -> list[RestemAgent]:
    """Create every agent's knowledge adapter (and writer, for ``separate``) on ``model``.

    ``specs`` give each agent's adapter name, style, LoRA shape and inner loop;
    ``neighbours[i]`` are agent i's out-neighbours with their trust weights.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    agents = []
    for i, spec in enumerate(specs):
        model.add_adapter(spec.adapter, spec.lora, seed=seed * 1000 + i)
        writer = spec.adapter
        if policy == "separate":
            writer = f"writer{i}"
            model.add_adapter(writer, spec.lora, seed=seed * 1000 + 500 + i)
        agents.append(RestemAgent(spec.adapter, writer, spec.style, spec.inner, tuple(neighbours[i])))
    return agents


def neighbours_from_graph(graph, n: int) -> list[tuple[tuple[int, float], ...]]:
    """Out-neighbours (notes travel u → v) with the edge's trust weight, per agent of an nx.DiGraph."""
    return [tuple((int(v), float(graph[u][v].get("weight", 1.0))) for v in sorted(graph.successors(u)))
            for u in range(n)]


# --------------------------------------------------------------------------- one iteration


@dataclass
class IterationRecord:
    """What one iteration measured (iteration 0: held-out evaluation before any RL)."""

    iteration: int
    heldout: dict[str, float] = field(default_factory=dict)
    rewards: dict[str, float] = field(default_factory=dict)
    gains: dict[str, float] = field(default_factory=dict)
    candidates: list[dict] = field(default_factory=list)
    heldout_notes: list[dict] = field(default_factory=list)
    sft: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    counts: dict[str, float] = field(default_factory=dict)

    @property
    def kept(self) -> list[dict]:
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


def _requests(agents: Sequence[RestemAgent], docs: Sequence[Document]) -> list[tuple[int, Document]]:
    return [(a, d) for a in range(len(agents)) for d in docs]


def _gain(score: dict[str, float], base: dict[str, float], metric: str) -> float:
    return score[metric] - base[metric]


def sample_candidates(model: SharedModel, agents: Sequence[RestemAgent], docs: Sequence[Document],
                      self_edit: SelfEditSettings, k: int, seed: int,
                      progress: str | None = None) -> list[dict]:
    """``k`` self-edits per (agent, document), written by the agents' writers in one batched pass."""
    requests = _requests(agents, docs)
    samples = sample_self_edits(
        model, [(d, agents[a].writer, agents[a].style) for a, d in requests],
        replace(self_edit, candidates=k), seed=seed, progress=progress,
    )
    out = []
    for (a, d), completions in zip(requests, samples):
        for j, c in enumerate(completions):
            style = agents[a].style
            out.append({
                "agent": a, "doc": d, "candidate": j, "style": style, "completion": c,
                "lines": len(parse_completion(c, d, style)),
                "sequences": tuple(training_sequences(c, d, style)),
            })
    return out


def score_candidates(model: SharedModel, agents: Sequence[RestemAgent], cands: list[dict],
                     settings: RestemSettings, evaluation: EvalSettings, cache: BaselineCache, *,
                     roles: Callable[[int], list[tuple[str, int]]], seed: int, clock: Clock, prefix: str = "",
                     passage: bool = False, progress: bool = False) -> None:
    """Run every (candidate, learner) trial and store per-learner scores and gains in the candidates.

    ``roles(author)`` lists ``("self" | "neighbour", learner)`` pairs. Adds ``scores`` (learner →
    grades), ``base`` (before the update), ``passage`` (after training on the passage alone, when
    ``passage`` or ``settings.baseline == "passage"``), ``self_gain`` and ``neighbour_gains`` (headline
    metric, over ``settings.baseline``) to each candidate dict. Passage-only trials missing from the
    cache share the candidates' batches.
    """
    metric = evaluation.headline
    passage = passage or settings.baseline == "passage"
    trials, owners = [], []
    for c in cands:
        for role, learner in roles(c["agent"]):
            trials.append(Trial(learner, c["doc"], c["sequences"]))
            owners.append((c, role, learner))
    with clock(prefix + "baseline"):
        cache.ensure(model, [(agents[t.learner].adapter, t.doc) for t in trials], evaluation,
                     progress="pre-update answers" if progress else None)
    extra: dict[tuple[str, str], Trial] = {}
    if passage:
        for t in trials:
            key = (agents[t.learner].adapter, t.doc.doc_id)
            if not cache.has_passage(*key):
                extra.setdefault(key, Trial(t.learner, t.doc, (passage_sequence(t.doc),)))
    results = run_trials(model, trials + list(extra.values()), agents, evaluation, batch=settings.trial_batch,
                         seed=seed, clock=clock, prefix=prefix, progress=progress)
    for key, score in zip(extra, results[len(trials):]):
        cache.put_passage(*key, score)
    for c in cands:
        c.update(scores={}, base={}, passage={}, self_gain=None, neighbour_gains=[], neighbour_weights=[])
    for (c, role, learner), score in zip(owners, results):
        adapter, doc_id = agents[learner].adapter, c["doc"].doc_id
        c["scores"][learner], c["base"][learner] = score, cache.get(adapter, doc_id)
        if passage:
            c["passage"][learner] = cache.passage(adapter, doc_id)
        reference = c["passage"][learner] if settings.baseline == "passage" else c["base"][learner]
        gain = _gain(score, reference, metric)
        if role == "self":
            c["self_gain"] = gain
        else:
            c["neighbour_gains"].append(gain)
            c["neighbour_weights"].append(dict(agents[c["agent"]].neighbours)[learner])


def heldout_evaluation(model: SharedModel, agents: Sequence[RestemAgent], eval_docs: Sequence[Document],
                       settings: RestemSettings, evaluation: EvalSettings, self_edit: SelfEditSettings,
                       cache: BaselineCache, *, seed: int, clock: Clock,
                       progress: bool = False) -> tuple[dict[str, float], list[dict]]:
    """Accuracy after training on the agents' own notes about held-out documents (paper's protocol).

    Keys: ``<metric>`` (authors adapting on their own notes, the headline), ``base.<metric>`` (before
    the update), ``passage.<metric>`` (after training on the passage alone: what the notes add to),
    ``agent.<i>.<metric>``, and with a neighbour reward ``neighbours.<metric>``,
    ``neighbours.base.<metric>`` and ``neighbours.passage.<metric>`` (the neighbours adapting on the
    same notes).
    """
    with clock("heldout.generate"):
        notes = sample_candidates(model, agents, eval_docs, self_edit, settings.eval_samples, seed=seed,
                                  progress="held-out notes" if progress else None)
    with_nb = settings.reward != "self"

    def roles(a: int) -> list[tuple[str, int]]:
        return [("self", a)] + ([("neighbour", v) for v, _ in agents[a].neighbours] if with_nb else [])

    score_candidates(model, agents, notes, settings, evaluation, cache, roles=roles, seed=seed, clock=clock,
                     prefix="heldout.", passage=True, progress=progress)
    out: dict[str, float] = {}
    metrics = list(notes[0]["scores"][notes[0]["agent"]]) if notes else []
    for m in metrics:
        own = [(n["scores"][n["agent"]], n["base"][n["agent"]]) for n in notes]
        out[m] = statistics.fmean(s[m] for s, _ in own)
        out[f"base.{m}"] = statistics.fmean(b[m] for _, b in own)
        out[f"passage.{m}"] = statistics.fmean(n["passage"][n["agent"]][m] for n in notes)
        for a in range(len(agents)):
            mine = [n["scores"][a][m] for n in notes if n["agent"] == a]
            out[f"agent.{a}.{m}"] = statistics.fmean(mine)
        if with_nb:
            nb = [(n["scores"][v], n["base"][v]) for n in notes for v, _ in agents[n["agent"]].neighbours]
            if nb:
                out[f"neighbours.{m}"] = statistics.fmean(s[m] for s, _ in nb)
                out[f"neighbours.base.{m}"] = statistics.fmean(b[m] for _, b in nb)
                out[f"neighbours.passage.{m}"] = statistics.fmean(
                    n["passage"][v][m] for n in notes for v, _ in agents[n["agent"]].neighbours)
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

    def finish(rec: IterationRecord, clock: Clock, heldout: tuple[dict, list[dict]]) -> None:
        rec.heldout, notes = heldout
        rec.heldout_notes = [_note_row(rec.iteration, n) for n in notes]
        rec.seconds = dict(clock.seconds)
        records.append(rec)
        if on_iteration:
            on_iteration(rec)

    clock = Clock()
    rec = IterationRecord(0)
    finish(rec, clock, heldout_evaluation(model, agents, eval_docs, settings, evaluation, self_edit, cache,
                                          seed=heldout_seed, clock=clock, progress=progress))
    for it in range(1, settings.iterations + 1):
        clock = Clock()
        rec = IterationRecord(it)
        with clock("generate"):
            cands = sample_candidates(model, agents, train_docs, self_edit, settings.candidates,
                                      seed=seed * 1000 + it, progress=f"iteration {it}: self-edits" if progress else None)

        def roles(a: int) -> list[tuple[str, int]]:
            return [("self" if v == a else "neighbour", v) for v in learners(a, agents, settings.reward)]

        answered, passage_trials = cache.answered, cache.passage_trials
        score_candidates(model, agents, cands, settings, evaluation, cache, roles=roles, seed=seed, clock=clock,
                         progress=progress)
        reward_and_select(cands, agents, settings)
        rec.candidates = [_candidate_row(it, c) for c in cands]
        rec.rewards = reward_stats([c["reward"] for c in cands])
        rec.gains = _gain_stats(cands)
        rec.counts = {
            "candidates": len(cands), "kept": sum(c["kept"] for c in cands),
            "trials": sum(len(c["scores"]) for c in cands),
            "baseline_questions": cache.answered - answered,
            "passage_trials": cache.passage_trials - passage_trials,
        }
        with clock("sft"):
            rec.sft = train_writers(model, agents, cands, settings, cache, seed=seed * 1000 + it, progress=progress)
        finish(rec, clock, heldout_evaluation(model, agents, eval_docs, settings, evaluation, self_edit, cache,
                                              seed=heldout_seed, clock=clock, progress=progress))
    return records


def reward_and_select(cands: list[dict], agents: Sequence[RestemAgent], settings: RestemSettings) -> None:
    """Reward every candidate, then mark the kept ones per (agent, document)."""
    for c in cands:
        c["reward"] = combine_reward(settings.reward, c["self_gain"], c["neighbour_gains"],
                                     c["neighbour_weights"], settings.mix_weight)
        c["kept"] = False
    groups: dict[tuple[int, str], list[dict]] = {}
    for c in cands:
        groups.setdefault((c["agent"], c["doc"].doc_id), []).append(c)
    for group in groups.values():
        for i in select_candidates([c["reward"] for c in group], settings.keep,
                                   eligible=[c["lines"] > 0 for c in group]):
            group[i]["kept"] = True


def _gain_stats(cands: Sequence[dict]) -> dict[str, float]:
    out = {}
    own = [c["self_gain"] for c in cands if c["self_gain"] is not None]
    nb = [g for c in cands for g in c["neighbour_gains"]]
    if own:
        out["self.mean"] = statistics.fmean(own)
    if nb:
        out["neighbours.mean"] = statistics.fmean(nb)
    return out


def train_writers(model: SharedModel, agents: Sequence[RestemAgent], cands: Sequence[dict],
                   settings: RestemSettings, cache: BaselineCache, *, seed: int, progress: bool) -> dict[str, float]:
    """The M-step: each writer fine-tuned on (its prompt → its kept self-edits)."""
    firsts, lasts, trained = [], [], 0
    for a, agent in enumerate(agents):
        pairs = [(model.prompt(self_edit_request(c["doc"], c["style"])), c["completion"])
                 for c in cands if c["agent"] == a and c["kept"]]
        if not pairs:
            continue
        stats = finetune_on_completions(model, agent.writer, pairs, settings.sft, seed=seed + a,
                                        progress=f"SFT writer {a}" if progress else None)
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


def _candidate_row(iteration: int, c: dict) -> dict:
    return {
        "iteration": iteration, "agent": c["agent"], "doc_id": c["doc"].doc_id, "candidate": c["candidate"],
        "style": c["style"], "completion": c["completion"], "lines": c["lines"],
        "self_gain": c["self_gain"], "neighbour_gains": c["neighbour_gains"], "reward": c["reward"],
        "kept": c["kept"], "scores": {str(k): v for k, v in c["scores"].items()},
        "passage": {str(k): v for k, v in c["passage"].items()},
    }


def _note_row(iteration: int, n: dict) -> dict:
    return {
        "iteration": iteration, "agent": n["agent"], "doc_id": n["doc"].doc_id, "sample": n["candidate"],
        "completion": n["completion"], "lines": n["lines"], "self_gain": n["self_gain"],
        "scores": {str(k): v for k, v in n["scores"].items()},
        "passage": {str(k): v for k, v in n["passage"].items()},
    }
