"""The size of a run before it starts: generated and trained tokens, answers, time and memory.

``estimate`` sizes a run with arithmetic only (no world, no
  schedule, no list of the requested size is built), and ``limits.max_hours`` /
  ``limits.max_memory_gb`` turn a typo such as ``rounds: 100000`` into an error instead of a run
  that never ends or a machine that swaps.

**What the estimate counts** (upper bounds where a run may do less; ``T`` = ``self_edit.max_new_tokens``,
``k`` = candidates, ``P`` = passage tokens, 104 for a synthetic passage, characters / 4 for SQuAD,
cut to ``inner_loop.max_length``; ``Q`` = the world's questions):

* ``simulation``: notes, ``k·T`` generated tokens per (recipient, arriving document) of an agent whose
  style writes one; answers, the base row (``Q`` + 2 × probe candidates) plus, every round, every agent
  answering ``Q`` + the probe (under the evaluation budget ``evaluation.sample_documents: s``, every
  round but the last asks an agent about its own and received documents so far plus ``s`` others);
  training, per agent and round ``epochs × (own documents × (P + k·T) +
  received notes × T)``, where a note reaches the graph's mean out-degree (every other agent with
  relay; times 1 − loss; as many as the scheduler kind's ``cost`` hook says it adapts on — at most
  ``budgeted``'s budget, none for ``isolated``; with ``retell``, every agent but the
  adversaries also writes ``k·T`` tokens once per document it does not hold and each out-neighbour
  receives those notes), and replay adds ``fraction`` of the
  earlier rounds' tokens (the ``replay`` section and mitigations); a ``kl`` mitigation trains ``batch ×
  max_length`` more tokens per optimiser step, a ``gate`` answers the update's questions and the probe
  twice per round; drift runs every agent and the base over the general-text passages every round.
* ``knowledge``: per seed, one self-edit of ``T`` tokens per (document, writing condition), one
  adapter per (document, condition) trained ``epochs × (P + T)`` tokens, and every question answered
  once per condition (plus the base once).
* ``skills``: see :func:`_skills`.
* ``restem``: per iteration, ``candidates`` self-edits per (agent, training document), each a trial per
  learner (1; the out-degree for ``neighbours``; both for ``mixed``) training ``epochs × (P + T)``
  tokens and answering the document's questions; the writer SFT on ``keep`` per (agent, document) for
  ``policy_epochs``; and ``iterations + 1`` held-out evaluations of ``eval_samples`` notes per
  (agent, held-out document), with a passage-only trial and a baseline per (learner, document).

**Rates**: the reference figures for SmolLM2-135M on the 2-core development CPU in float32, training
130 tokens/s and generating 35 tokens/s for one sequence; assumed on top of them, a batch of ``b``
sequences takes ``1 + (b − 1)/4`` times as long per step as one (batched generation amortises up to
about 4×) and prompt prefill runs at 3 × the training rate (a forward pass without backward). Rates
scale with 135 M / the model's parameters and are 50× on ``device: cuda``. Against the README's
timings (quickstart 2–3 min, ReST-EM 12 min of one core) the estimate is low by up to 2×: an order of
magnitude, which is what a limit needs. **Memory**: 0.4 GB for Python and torch, the base weights
(parameters × bytes of the dtype), every adapter (rank × (in + out) per targeted layer, float32),
3× the largest adapter for its gradient and AdamW's two moments while it trains, training
activations (batch × max_length × (layers × (14·hidden + 4·intermediate) + 2·vocab) × 4 bytes), and
the run's records (accuracy tables, ~700 bytes per graded answer kept for the artifacts).
"""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from multiseal.config.checks import model_shape
from multiseal.config.paths import resolve_relative, topology_params
from multiseal.config.resolve import resolve_agents
from multiseal.config.schema import Scenario
from multiseal.errors import Problem
from multiseal.learning.self_edit import STYLES
from multiseal.rl import policies as _policies  # noqa: F401 - gives the policy scheduler its cost hook
from multiseal.sim.schedulers import SCHEDULERS
from multiseal.sim.topologies import build_topology
from multiseal.world.arc import load_arc
from multiseal.world.arrivals import documents_received
from multiseal.world.probe import probe_questions
from multiseal.world.squad import load_squad_json

# reference rates: SmolLM2-135M on the 2-core development CPU (module docstring)
REF_PARAMETERS = 134.5e6

TRAIN_TOKENS_S = 130.0

GENERATE_TOKENS_S = 35.0

BATCH_STEP_COST = 0.25  # each further sequence in a generation batch costs a quarter of the first

PREFILL_SPEEDUP = 3.0

CUDA_SPEEDUP = 50.0

SYNTHETIC_PASSAGE_TOKENS = 104  # measured mean of the synthetic world's passages (title + context)

SELF_EDIT_PROMPT_TOKENS = 60  # instruction and chat template around the passage

QUESTION_PROMPT_TOKENS = 40

NOTES_BATCH = 32  # SharedModel.generate's default batch, used for notes

RUNTIME_GB = 0.4

ANSWER_RECORD_BYTES = 700


@dataclass(frozen=True)
class Estimate:
    """What a run will roughly cost (module docstring): counts, hours and peak memory."""

    generated_tokens: int
    trained_tokens: int
    answers: int
    hours: float
    memory_gb: float
    device: str = "cpu"
    seconds: dict[str, float] = field(default_factory=dict)  # generation, training, answers
    memory: dict[str, float] = field(default_factory=dict)  # GB per part
    levers: dict[str, list[tuple[str, Any, Any]]] = field(default_factory=dict)  # part -> (key, value, default)
    workers: int = 1  # Ray workers sharing the population: hours and memory are per worker

    def summary(self) -> str:
        where = "on this CPU" if self.device == "cpu" else f"on {self.device}"
        if self.workers > 1:
            where = f"per worker, {self.workers} Ray workers" + (" on CPUs" if self.device == "cpu" else " on GPUs")
        return (
            f"about {count(self.generated_tokens)} generated tokens, {count(self.trained_tokens)} trained "
            f"tokens, {count(self.answers)} answers, {duration(self.hours)} and {gigabytes(self.memory_gb)} {where}"
        )

    def lever(self, part: str) -> str:
        """The setting that most inflates ``part``: the largest multiple of its default."""
        options = self.levers.get(part) or [("rounds", 0, 1)]
        key, value, _ = max(options, key=lambda o: (o[1] / o[2]) if o[2] else 0)
        return f"{key} ({value})"


def estimate(scenario: Scenario, source: str | Path | None = None) -> Estimate:
    """The run's size and cost, by arithmetic on the settings (module docstring for the formulas)."""
    sc = scenario
    shape = model_shape(sc.model.base)
    params = shape.parameters if shape else int(REF_PARAMETERS)
    device, dtype_bytes = _device(sc.model.device, sc.model.dtype)
    sharded = sc.kind == "simulation" and sc.execution.kind == "ray"
    workers = sc.execution.workers if sharded else 1
    if sharded and sc.execution.resources_per_worker.gpus > 0 and sc.model.device == "auto":
        device, dtype_bytes = _device("cuda", sc.model.dtype)  # each worker gets its GPU from Ray
    speed = REF_PARAMETERS / params * (CUDA_SPEEDUP if device.startswith("cuda") else 1.0)
    docs, questions, passage = _world_size(sc, source)
    passage = min(passage, sc.inner_loop.max_length)
    c = _Cost(speed)
    if sc.kind == "skills":
        adapters, levers = _skills(sc, c, source)
    else:
        size = {"simulation": _simulation, "knowledge": _knowledge, "restem": _restem}[sc.kind]
        adapters, levers = size(sc, c, docs, questions, passage, _reach(sc, source))
    # memory
    targets = sc.model.lora.target_modules
    lora = {r: shape.lora_parameters(targets, r) if shape else int(0.073 * params * r / 32) for r, _ in adapters}
    layers, hidden, inter, vocab = (
        (shape.layers, shape.hidden, shape.intermediate, shape.vocab) if shape else (30, 576, 1536, 49152)
    )
    per_token = layers * (14 * hidden + 4 * inter) + 2 * vocab
    memory = {
        "runtime": RUNTIME_GB,
        "model": params * dtype_bytes / 1e9,
        "adapters": sum(lora[r] * how_many for r, how_many in adapters) * 4 / 1e9 / workers,  # per worker
        "training": (
            3 * max(lora.values(), default=0) * 4 + sc.inner_loop.batch_size * sc.inner_loop.max_length * per_token * 4
        )
        / 1e9,
        "records": c.records_bytes / 1e9,
    }
    # the grouped kernel stacks the adapters a generate call serves, at most all of them, for that call
    memory["serving"] = memory["adapters"] if sc.model.lora_kernel == "grouped" else 0.0
    levers["memory"] = [
        ("agents.count", sc.agents.count, 1),
        ("rounds", sc.rounds, 2),
        ("world.documents", docs, 8),
        ("inner_loop.batch_size", sc.inner_loop.batch_size, 1),
        ("inner_loop.max_length", sc.inner_loop.max_length, 256),
    ]
    seconds = {"generation": c.generate_s, "training": c.train_s, "answers": c.answer_s}
    return Estimate(
        generated_tokens=int(c.generated),
        trained_tokens=int(c.trained),
        answers=int(c.answers),
        # sharded: the workers run each stage at once (the ideal; bench_ray.py measures the overhead)
        hours=(sum(seconds.values()) + c.prefill_tokens / (PREFILL_SPEEDUP * TRAIN_TOKENS_S * speed)) / 3600 / workers,
        memory_gb=sum(memory.values()),
        device=device,
        seconds=seconds,
        memory=memory,
        levers=levers,
        workers=workers,
    )


class _Cost:
    """Accumulates tokens and seconds at the reference rates scaled by ``speed``."""

    def __init__(self, speed: float):
        self.speed = speed
        self.generated = self.trained = self.answers = self.prefill_tokens = 0.0
        self.generate_s = self.train_s = self.answer_s = 0.0
        self.records_bytes = 0.0

    def generate(
        self, sequences: float, batch: int, new_tokens: int, prompt: float, answers: bool = False, times: int = 1
    ) -> None:
        """``times`` ``generate`` calls, each over ``sequences`` prompts of ``prompt`` tokens, ``batch`` at a time."""
        if sequences <= 0:
            return
        full, rest = divmod(math.ceil(sequences), batch)
        steps = full * (1 + BATCH_STEP_COST * (batch - 1)) + (1 + BATCH_STEP_COST * (rest - 1) if rest else 0)
        seconds = times * steps * new_tokens / (GENERATE_TOKENS_S * self.speed)
        sequences *= times
        self.prefill_tokens += sequences * prompt
        if answers:
            self.answers += sequences
            self.answer_s += seconds
            self.records_bytes += sequences * ANSWER_RECORD_BYTES
        else:
            self.generated += sequences * new_tokens
            self.generate_s += seconds

    def train(self, tokens: float) -> None:
        self.trained += tokens
        self.train_s += tokens / (TRAIN_TOKENS_S * self.speed)


def _simulation(sc: Scenario, c: _Cost, docs: int, questions: float, passage: int, reach: float):
    n, rounds, k, new = sc.agents.count, sc.rounds, sc.self_edit.candidates, sc.self_edit.max_new_tokens
    agents = resolve_agents(sc)
    # passage and oracle notes, and adversaries' notes, are written without generation
    writes = [_writes(a.style) and sc.sharing.content not in ("passage", "oracle") and a.writes for a in agents]
    epochs = [a.inner.epochs for a in agents]
    ranks = [(a.lora.rank, 1) for a in agents]
    arrived = _arrivals_per_agent(sc)
    writing = sum(x for x, w in zip(arrived, writes) if w)  # documents that get notes, over the run
    c.generate(writing * k / rounds, NOTES_BATCH, new, passage + SELF_EDIT_PROMPT_TOKENS, times=rounds)
    # answers: the base row (the probe's candidates too), then every agent every round
    probe = min(sc.evaluation.retention_probe, len(probe_questions()))  # the built-in probe is this long
    batch, answer_tokens = sc.evaluation.batch_size, sc.evaluation.max_new_tokens
    c.generate(
        questions + min(2 * probe, len(probe_questions())), batch, answer_tokens, QUESTION_PROMPT_TOKENS, answers=True
    )
    item = statistics.fmean(new if w else passage for w in writes)  # tokens of one inbox note
    received = sum(arrived) / rounds / n * k * reach * (1 - sc.sharing.loss)
    distinct = min(docs, sum(arrived))
    if sc.sharing.retell:  # every agent retells every document it learnt from others once, to each out-neighbour
        received += distinct / rounds * k * reach * (1 - sc.sharing.loss)
    received = _adapted_on(sc, received)
    if sc.sharing.retell and received:
        retellers = n - 1 - sum(not a.writes for a in agents)
        c.generate(distinct * max(retellers, 0) * k, NOTES_BATCH, new, SELF_EDIT_PROMPT_TOKENS)
        item = (item + new) / 2
    sample = sc.evaluation.sample_documents
    if sample is None:
        c.generate(n * (questions + probe), batch, answer_tokens, QUESTION_PROMPT_TOKENS, answers=True, times=rounds)
    else:  # the budget: held and reached documents (growing each round) plus the sample; the last round in full
        per_doc, held = questions / max(docs, 1), sum(arrived) / rounds / n + received / max(k, 1)
        for r in range(1, rounds):
            asked = min(docs, held * r + sample) * per_doc
            c.generate(n * (asked + probe), batch, answer_tokens, QUESTION_PROMPT_TOKENS, answers=True)
        c.generate(n * (questions + probe), batch, answer_tokens, QUESTION_PROMPT_TOKENS, answers=True)
    c.records_bytes += (rounds + 1) * n * (docs * 8 + (questions + probe) * 120)
    # training
    for a in range(n):
        mitigations = agents[a].mitigations
        fraction = min(1.0, sc.replay.fraction + sum(m.replay for m in mitigations))
        replay = 1 + fraction * (rounds - 1) / 2  # each round replays `fraction` of the rounds before
        own = arrived[a] / rounds * (passage + (k * new if writes[a] else 0))
        c.train(epochs[a] * (own + received * item) * rounds * replay)
        steps = epochs[a] * (arrived[a] / rounds * (1 + (k if writes[a] else 0)) + received) * rounds * replay
        for m in mitigations:  # a KL penalty runs its general-text batch through the adapter every step
            if m.reference_passages:
                c.train(steps * m.reference_batch * m.reference_length)
            if m.gate:  # asked before and after each update: the update's documents and the probe
                gate_questions = (arrived[a] / rounds + received) * questions / max(docs, 1) + probe
                c.generate(2 * gate_questions, batch, answer_tokens, QUESTION_PROMPT_TOKENS, answers=True, times=rounds)
    # drift: every agent and the base, every round, one forward pass over the general-text passages
    drift_tokens = (n + 1) * rounds * sc.evaluation.drift_passages * sc.evaluation.drift_length
    c.answer_s += drift_tokens / (PREFILL_SPEEDUP * TRAIN_TOKENS_S * c.speed)
    levers = {
        "generation": [
            ("self_edit.max_new_tokens", new, 128),
            ("self_edit.candidates", k, 1),
            ("rounds", rounds, 2),
            ("agents.count", n, 1),
            ("arrivals.docs_per_round", sc.arrivals.docs_per_round, 1),
        ],
        "training": [
            ("inner_loop.epochs", max(epochs), 10),
            ("rounds", rounds, 2),
            ("agents.count", n, 1),
            ("self_edit.max_new_tokens", new, 128),
            ("self_edit.candidates", k, 1),
            ("arrivals.docs_per_round", sc.arrivals.docs_per_round, 1),
        ],
        "answers": [
            ("rounds", rounds, 2),
            ("world.documents", docs, 8),
            ("agents.count", n, 1),
            ("evaluation.sample_documents", sample or docs, 8),
            ("evaluation.max_new_tokens", answer_tokens, 24),
            ("world.composition", sc.world.composition, 1),
        ],
    }
    return ranks, levers


def _knowledge(sc: Scenario, c: _Cost, docs: int, questions: float, passage: int, reach: float):
    conditions, seeds = sc.experiment.conditions, len(sc.experiment.seeds)
    new, epochs = sc.self_edit.max_new_tokens, sc.inner_loop.epochs
    writing = sum(_writes(s) for s in conditions)
    batch, answer_tokens = sc.evaluation.batch_size, sc.evaluation.max_new_tokens
    c.generate(questions, batch, answer_tokens, QUESTION_PROMPT_TOKENS, answers=True)  # the base model
    c.generate(docs * writing * seeds, NOTES_BATCH, new, passage + SELF_EDIT_PROMPT_TOKENS)
    c.train(seeds * docs * epochs * (len(conditions) * passage + writing * new))
    c.generate(seeds * len(conditions) * questions, batch, answer_tokens, QUESTION_PROMPT_TOKENS, answers=True)
    levers = {
        "generation": [
            ("self_edit.max_new_tokens", new, 128),
            ("experiment.seeds", seeds, 1),
            ("world.documents", docs, 8),
        ],
        "training": [
            ("inner_loop.epochs", epochs, 10),
            ("experiment.seeds", seeds, 1),
            ("world.documents", docs, 8),
            ("experiment.conditions", len(conditions), 5),
        ],
        "answers": [
            ("experiment.seeds", seeds, 1),
            ("world.documents", docs, 8),
            ("evaluation.max_new_tokens", answer_tokens, 24),
        ],
    }
    return [(sc.model.lora.rank, docs * len(conditions))], levers  # a seed's adapters live together


def _restem(sc: Scenario, c: _Cost, docs: int, questions: float, passage: int, degree: float):
    r, n = sc.restem, sc.agents.count
    new, epochs = sc.self_edit.max_new_tokens, sc.inner_loop.epochs
    per_doc = questions / docs if docs else 0
    learners = {"self": 1, "neighbours": degree, "mixed": 1 + degree}[r.reward]
    heldout_learners = 1 if r.reward == "self" else 1 + degree
    batch, answer_tokens = sc.evaluation.batch_size, sc.evaluation.max_new_tokens
    prompt = passage + SELF_EDIT_PROMPT_TOKENS
    evaluations = r.iterations + 1
    once = 1 if r.policy == "separate" else evaluations  # cached baselines, recomputed when the writer is the learner
    # held-out evaluations: notes, a trial per (note, learner), passage trials and baselines
    c.generate(n * r.eval_documents * r.eval_samples * evaluations, NOTES_BATCH, new, prompt)
    heldout_trials = n * r.eval_documents * r.eval_samples * heldout_learners * evaluations
    passage_trials = n * r.eval_documents * heldout_learners * once
    # iterations: candidates, a trial per (candidate, learner), baselines, the writers' SFT
    c.generate(n * r.train_documents * r.candidates * r.iterations, NOTES_BATCH, new, prompt)
    trials = n * r.train_documents * r.candidates * learners * r.iterations
    if r.baseline == "passage":
        passage_trials += n * r.train_documents * learners * once
    c.train(epochs * ((heldout_trials + trials) * (new + passage) + passage_trials * passage))
    c.train(n * r.train_documents * r.keep * r.policy_epochs * (prompt + new) * r.iterations)
    baselines = n * (r.eval_documents + r.train_documents) * max(learners, 1) * once
    c.generate(
        (heldout_trials + trials + passage_trials + baselines) * per_doc,
        batch,
        answer_tokens,
        QUESTION_PROMPT_TOKENS,
        answers=True,
    )
    ranks = [(sc.model.lora.rank, n * (2 if r.policy == "separate" else 1) + r.trial_batch)]
    levers = {
        "generation": [
            ("restem.candidates", r.candidates, 3),
            ("restem.iterations", r.iterations, 2),
            ("self_edit.max_new_tokens", new, 128),
            ("restem.train_documents", r.train_documents, 4),
            ("restem.eval_samples", r.eval_samples, 1),
            ("agents.count", n, 1),
        ],
        "training": [
            ("inner_loop.epochs", epochs, 10),
            ("restem.candidates", r.candidates, 3),
            ("restem.iterations", r.iterations, 2),
            ("restem.train_documents", r.train_documents, 4),
            ("restem.policy_epochs", r.policy_epochs, 2),
            ("agents.count", n, 1),
        ],
        "answers": [
            ("restem.candidates", r.candidates, 3),
            ("restem.iterations", r.iterations, 2),
            ("restem.eval_samples", r.eval_samples, 1),
            ("evaluation.max_new_tokens", answer_tokens, 24),
        ],
    }
    return ranks, levers


def _writes(style: str) -> bool:
    """The style writes a self-edit (``passage-only`` does not)."""
    return style not in STYLES or STYLES.get(style).instruction is not None


def _arrivals_per_agent(sc: Scenario) -> list[float]:
    """Documents each agent receives over the run: the arrival kind's arithmetic (no schedule is built)."""
    a = sc.arrivals
    try:
        return documents_received(a.kind, sc.agents.count, sc.rounds, a.docs_per_round, a.copies, a.table, a.source)
    except (ValueError, KeyError):  # a bad schedule is reported by its own check
        return [0.0] * sc.agents.count


def _reach(sc: Scenario, source: str | Path | None) -> float:
    """Agents a note reaches: the mean out-degree of the round-0 graph (every other agent with
    relay); 0 when notes do not travel."""
    n = sc.agents.count
    if n < 2 or (sc.kind == "simulation" and sc.sharing.mode != "notes"):
        return 0.0
    if sc.kind == "simulation" and sc.sharing.relay:
        return float(n - 1)
    t = sc.topology
    params = topology_params(t.params, source)
    try:
        g = build_topology(t.kind, n, directed=t.directed, params=params, weights=t.weights, seed=sc.seed)
        return statistics.fmean(g.out_degree(v) for v in range(n))
    except Exception:  # noqa: BLE001 - a topology's problems are reported by its own check
        return float(n - 1)


def _adapted_on(sc: Scenario, received: float) -> float:
    """Notes from others an agent adapts on per round when ``received`` reach it: the scheduler kind's
    ``cost`` hook says (``budgeted``: at most its budget; ``isolated``: none; ``policy``: its policy's),
    else all of them."""
    if sc.kind != "simulation" or sc.scheduler.kind not in SCHEDULERS:
        return received
    kind = SCHEDULERS.get(sc.scheduler.kind)
    if kind.cost is None:
        return received
    parsed, problems = kind.validate(sc.scheduler.params, context={"n": sc.agents.count})
    return received if problems else float(kind.cost(parsed, received))


def _task_sizes(sc: Scenario, source: str | Path | None) -> tuple[int, int, float, float]:
    """Training tasks, held-out tasks, tokens of a demonstration pair as text and of an answer grid."""
    t = sc.tasks
    if t.kind == "arc":
        tasks = load_arc(
            resolve_relative(t.path, source), resolve_relative(t.solutions, source) if t.solutions else None
        )
        n = len(tasks)
        cells_in = statistics.fmean(len(p.input) * len(p.input[0]) for x in tasks for p in x.train)
        cells_out = statistics.fmean(len(p.output) * len(p.output[0]) for x in tasks for p in x.train)
        families = {x.family for x in tasks}
    else:
        n, families = len(t.families) * t.per_family, set(t.families)
        cells_in = statistics.fmean(t.width) * statistics.fmean(t.height)
        cells_out = 1.5 * cells_in  # most rules keep the size; repeat and scale grow it
    held = sum(min(max(1, round(t.held_out * n / len(families))), max(1, n // len(families) - 1)) for _ in families)
    pair = 2 * (cells_in + cells_out) + 8  # 'c ' per cell and the Input:/Output: lines
    return n - held, held, pair, 2 * cells_out + 4


def _skills(sc: Scenario, c: _Cost, source: str | Path | None):
    """``skills``: one test-time training per (arm's configuration, held-out task), each training
    ``epochs × copies × sets × queries`` examples of ``demonstrations × pair tokens + 30`` (sets: the
    original and each augmentation; queries: every demonstration with leave-one-out, else one); the
    oracle's configurations as given; the random arm's the menu's mean (3.1 sets, leave-one-out half the
    time, 2 copies, 5.5 epochs); the written ones, in the keyed form, the prompt's example configuration
    (what SmolLM2-135M writes untrained, docs/skills.md), in the free form the menu's mean. ReST-EM's
    ``candidates`` per training task and iteration likewise; the writer's configurations (six values of
    up to 40 tokens keyed, ``self_edit.max_new_tokens`` free, each) and its fine-tuning on at most every
    candidate."""
    from multiseal.learning.augment import AUGMENTATIONS
    from multiseal.learning.skill_config import EPOCHS_RANGE, EXAMPLE, REPEAT_RANGE, VALUE_TOKENS

    s, demos = sc.skills, sc.tasks.demonstrations
    train, held, pair, answer = _task_sizes(sc, source)
    example = 30 + demos * pair

    def ttt(configs: float, sets: float, queries: float, repeat: float, epochs: float) -> None:
        c.train(configs * epochs * sets * repeat * queries * example)
        c.generate(configs * sc.tasks.tests, NOTES_BATCH, int(answer), example, answers=True)

    def fixed(cfg) -> tuple[float, float, float, float]:
        return (
            1 + len(set(cfg.augmentations) - {"identity"}),
            demos if cfg.leave_one_out else 1,
            cfg.repeat,
            cfg.epochs,
        )

    menu_mean = (1 + 0.3 * (len(AUGMENTATIONS) - 1), (demos + 1) / 2, sum(REPEAT_RANGE) / 2, sum(EPOCHS_RANGE) / 2)
    written = fixed(EXAMPLE) if s.form == "keyed" else menu_mean
    new = sum(VALUE_TOKENS.values()) if s.form == "keyed" else sc.self_edit.max_new_tokens
    prompt = 250 + demos * pair  # the menu and the demonstrations
    arms = set(s.arms)
    if "in-context" in arms:
        c.generate(held * sc.tasks.tests, NOTES_BATCH, int(answer), example, answers=True)
    if "random" in arms:
        ttt(held, *menu_mean)
    if "oracle" in arms:
        for cfg in s.oracle_grid():
            ttt(held, *fixed(cfg))
    trained = s.iterations if "self-edit" in arms else 0
    evaluations = (1 + (trained > 0)) if "self-edit" in arms else 0
    writes = held * evaluations + train * s.candidates * trained
    if s.form == "keyed":  # one generation per key, each prefilling the prompt again
        for _ in VALUE_TOKENS:
            c.generate(writes, NOTES_BATCH, new // len(VALUE_TOKENS), prompt)
    else:
        c.generate(writes, NOTES_BATCH, new, prompt)
    ttt(writes, *written)
    c.train(train * s.candidates * trained * s.writer_epochs * (prompt + 40))
    levers = {
        "generation": [
            ("skills.candidates", s.candidates, 3),
            ("skills.iterations", s.iterations, 1),
            ("self_edit.max_new_tokens", new, 128),
            ("tasks.per_family", sc.tasks.per_family, 4),
        ],
        "training": [
            ("skills.candidates", s.candidates, 3),
            ("skills.iterations", s.iterations, 1),
            ("tasks.per_family", sc.tasks.per_family, 4),
            ("tasks.demonstrations", demos, 3),
            ("skills.writer_epochs", s.writer_epochs, 3),
        ],
        "answers": [("tasks.per_family", sc.tasks.per_family, 4), ("tasks.tests", sc.tasks.tests, 1)],
    }
    return [(sc.model.lora.rank, 2 + s.candidates * max(1, train))], levers


def _world_size(sc: Scenario, source: str | Path | None) -> tuple[int, float, int]:
    """Documents, questions (composition included) and mean passage tokens, without building a world."""
    if sc.world.kind == "squad":
        world = load_squad_json(resolve_relative(sc.world.path, source))
        docs = world.documents
        chars = statistics.fmean(len(d.title) + 1 + len(d.context) for d in docs) if docs else 0
        return len(docs), float(sum(len(d.questions) for d in docs)), math.ceil(chars / 4)
    lo, hi = sc.world.questions_per_doc
    return sc.world.documents, sc.world.documents * (lo + hi) / 2 + sc.world.composition, SYNTHETIC_PASSAGE_TOKENS


def _device(device: str, dtype: str) -> tuple[str, int]:
    """The device a run would use (``auto``: CUDA when torch sees one) and the bytes of a weight."""
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    on_cuda = device.startswith("cuda")
    if dtype == "auto":
        return device, 2 if on_cuda else 4
    return device, {"float32": 4, "bfloat16": 2, "float16": 2}[dtype]


def memory_limit_gb(device: str) -> tuple[float | None, str]:
    """The default ``limits.max_memory_gb``: 90% of this machine's RAM (of the GPU's on CUDA)."""
    try:
        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                return None, ""
            index = int(device.split(":", 1)[1]) if ":" in device else 0
            return 0.9 * torch.cuda.get_device_properties(index).total_memory / 1e9, "90% of the GPU's memory"
        return 0.9 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, "90% of this machine's RAM"
    except (ValueError, OSError, AttributeError, RuntimeError):
        return None, ""


def check_limits(sc: Scenario, source: str | Path | None = None) -> list[Problem]:
    """The estimated run time and memory against ``limits``; a problem naming what dominates."""
    e = estimate(sc, source)
    problems = []
    if e.hours > sc.limits.max_hours:
        part = max(e.seconds, key=e.seconds.get)
        problems.append(
            Problem(
                "limits.max_hours",
                (
                    f"the estimated run time is {hours(e.hours)} (generation {count(e.generated_tokens)} tokens, "
                    f"training {count(e.trained_tokens)} tokens, {count(e.answers)} answers; {part} dominates) "
                    f"> {hours(sc.limits.max_hours)}; lower {e.lever(part)} or raise limits.max_hours"
                ),
            )
        )
    limit, what = (
        (sc.limits.max_memory_gb, "limits.max_memory_gb") if sc.limits.max_memory_gb else (memory_limit_gb(e.device))
    )
    if limit is not None and e.memory_gb > limit:
        parts = ", ".join(f"{k} {gigabytes(v)}" for k, v in e.memory.items() if v >= 0.05)
        problems.append(
            Problem(
                "limits.max_memory_gb",
                (
                    f"the estimated memory is {gigabytes(e.memory_gb)} ({parts}) > {gigabytes(limit)} ({what}); "
                    f"lower {e.lever('memory')} or raise limits.max_memory_gb"
                ),
            )
        )
    return problems


def count(n: float) -> str:
    """``480``, ``12k``, ``3.4M``, ``3.2e9``."""
    if n < 1000:
        return f"{n:.0f}"
    if n < 1e6:
        return f"{n / 1e3:.1f}k" if n < 1e4 else f"{n / 1e3:.0f}k"
    if n < 1e9:
        return f"{n / 1e6:.1f}M" if n < 1e7 else f"{n / 1e6:.0f}M"
    exponent = int(math.floor(math.log10(n)))
    return f"{n / 10**exponent:.1f}e{exponent}"


def hours(h: float) -> str:
    """``4,100 h``, ``9.9 h``, ``45 min``, ``<1 min``."""
    if h < 1 / 60:
        return "<1 min"
    if h < 1:
        return f"{h * 60:.0f} min"
    return f"{h:,.0f} h" if h >= 10 else f"{h:.1f} h"


def duration(h: float) -> str:
    if h < 1 / 60:
        return "<1 min"
    return f"~{h * 60:.0f} min" if h < 1.5 else f"~{hours(h)}"


def gigabytes(gb: float) -> str:
    if gb < 0.1:
        return f"{gb * 1000:.0f} MB"
    return f"{gb:,.0f} GB" if gb >= 10 else f"{gb:.1f} GB"
