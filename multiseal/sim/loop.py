"""The round loop: documents → notes → inboxes → adapters → answers → metrics.

One round (row ``t = round + 1`` of the accuracy tensor; row 0 is the base model):

1. **arrivals** — the world hands agents their new documents;
2. **self-edit** — every recipient writes notes on each new document (k candidates, its own style);
   with ``content`` ``passage`` or ``oracle`` the note is the passage or the gold facts instead
   (no generation), with ``shuffled`` the copies that travel are distractor notes
   (:mod:`multiseal.sim.controls`);
3. **sharing** — notes travel along the graph's out-edges (delay, loss, relay) into inboxes;
4. **scheduling** — the scheduler (or an external policy) picks the inbox items each agent adapts on;
5. **adaptation** — each chosen agent trains its persistent adapter on those notes, plus the raw
   passage of documents it holds and an optional replay of earlier sequences (repeated up to a
   reference count when the scheduler is compute-matched); with ``sharing="weights"`` neighbours'
   adapters are then gossip-averaged instead of notes travelling;
6. **evaluation** — every agent answers every question of every document (introduced or not),
   the composition questions and the retention probe, in shared batches over the base model;
7. **metrics** — per-agent and population metrics from :mod:`multiseal.sim.metrics`, and the fact
   metrics of :mod:`multiseal.sim.facts` when the world has facts.

The class takes plain typed arguments; it never sees the scenario file.
"""
from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import numpy as np

from multiseal.learning.drift import encode_texts
from multiseal.learning.evaluate import answer_and_grade
from multiseal.learning.model import SharedModel
from multiseal.learning.self_edit import (
    parse_completion,
    passage_sequence,
    sample_self_edits,
)
from multiseal.sim import controls as C
from multiseal.sim.adversary import (
    Adversary,
    distractor_world,
    false_note,
    noise_note,
    note_rng,
)
from multiseal.sim.facts import FactIndex
from multiseal.sim.graph import DynamicGraph
from multiseal.sim.measure import Measuring
from multiseal.sim.mitigations import Mitigation, combined_state
from multiseal.sim.population import Population, TrainSpec, mitigation_reference, partition
from multiseal.sim.sampling import Sample
from multiseal.sim.sharing import Postbox, average_adapters
from multiseal.sim.trust import TrustSettings, update_trust, weighted_inboxes
from multiseal.types import (
    AgentAction,
    AgentSpec,
    EvalSettings,
    InboxItem,
    Note,
    Plan,
    Question,
    RoundRecord,
    Scheduler,
    SchedulerView,
    SelfEditSettings,
    World,
)
from multiseal.world.arrivals import Arrivals
from multiseal.world.probe import probe_questions, select_probe
from multiseal.world.synthetic import generate_distractors

SHARING_MODES = ("notes", "weights", "none")

class Simulation(Measuring):
    """Several SEAL agents on one shared base model, exchanging notes over a graph."""

    def __init__(
        self,
        model: SharedModel | Population,
        world: World,
        arrivals: Arrivals,
        graphs: DynamicGraph,
        postbox: Postbox,
        scheduler: Scheduler,
        agents: Sequence[AgentSpec],
        self_edit: SelfEditSettings,
        evaluation: EvalSettings,
        *,
        rounds: int,
        seed: int = 0,
        sharing: str = "notes",
        mixing: str = "uniform",
        replay: float = 0.0,
        probe_size: int = 8,
        progress: bool = True,
        content: str = "notes",
        distractors: World | None = None,
        train_together: bool = False,
        rows_per_pass: int = 64,
        sample_documents: int | None = None,
        mitigations: Mapping[int, Sequence[Mitigation]] | None = None,
        adversaries: Mapping[int, Adversary] | None = None,
        trust: TrustSettings | None = None,
        drift_texts: Sequence[str] = (),
        drift_length: int = 64,
        workers: int = 1,
    ):
        if sharing not in SHARING_MODES:
            raise ValueError(f"sharing must be one of {SHARING_MODES}, got {sharing!r}")
        if content not in C.CONTENTS:
            raise ValueError(f"content must be one of {C.CONTENTS}, got {content!r}")
        if content == "oracle" and not world.facts:
            raise ValueError("content 'oracle' writes notes from the world's gold facts; this world has none")
        if content == "shuffled" and distractors is None:
            distractors = generate_distractors(world, len(world.documents), seed)
        self.content, self.distractors = content, distractors
        self.world, self.arrivals, self.graphs = world, arrivals, graphs
        self.postbox, self.scheduler, self.agents = postbox, scheduler, list(agents)
        # where the adapters live and the work runs: one process, or shards (docs/cluster.md)
        self.model = model if isinstance(model, Population) else Population.local(model, workers)
        if self.model.workers > len(self.agents):
            raise ValueError(f"{self.model.workers} workers for {len(self.agents)} agents: at most one worker per agent")
        blocks = partition(len(self.agents), self.model.workers)
        self.model.assign([[self.agents[a].adapter for a in b] for b in blocks], blocks)
        self.self_edit, self.evaluation = self_edit, evaluation
        self.rounds, self.seed, self.sharing, self.mixing = rounds, seed, sharing, mixing
        self.replay, self.probe_size, self.progress = replay, probe_size, progress
        self.train_together, self.rows_per_pass = train_together, rows_per_pass
        self.sample_documents = sample_documents  # the evaluation budget (None: every document every round)
        self.mitigations = {a: tuple(ms) for a, ms in (mitigations or {}).items() if ms}
        self.adversaries = dict(adversaries or {})
        if any(v.attack == "false_values" for v in self.adversaries.values()) and not world.facts:
            raise ValueError("an adversary with attack 'false_values' plants false facts; this world has none")
        if any(v.attack == "noise" for v in self.adversaries.values()) and self.distractors is None:
            self.distractors = distractor_world(world, seed)
        self.trust_settings = trust or TrustSettings()
        self.drift_texts, self.drift_length = tuple(drift_texts), drift_length
        self.doc_index = {d.doc_id: j for j, d in enumerate(world.documents)}
        A, D = len(self.agents), len(world.documents)
        self.acc = np.full((rounds + 1, A, D), np.nan)
        self.composition = np.full((rounds + 1, A), np.nan)
        self.asked = np.zeros((rounds + 1, A, D), dtype=bool)  # the cell was measured, not estimated
        self.samples: dict[tuple[int, int], Sample] = {}  # (row, agent) -> its budgeted draw
        self.answered = np.zeros(rounds + 1, dtype=int)  # (agent, question) pairs answered per row
        self.introduced = np.zeros((rounds + 1, D), dtype=bool)
        self.own = np.zeros((A, D), dtype=bool)
        self.learnt = np.full((A, D), -1, dtype=int)
        self.round = 0
        self.history: list[dict[int, dict[str, float]]] = []
        self.records: list[RoundRecord] = []
        self.outcomes: list[dict] = []  # every graded answer: row, agent, qid, answer, grades
        self.notes_log: list[Note] = []
        self.probe: list[Question] = []
        self._items: dict[tuple[int, int], dict[str, float]] = {}  # (row, agent) -> qid -> headline
        self._passages: list[set[str]] = [set() for _ in range(A)]
        self._known: list[set[str]] = [set() for _ in range(A)]
        self._trained: list[list[str]] = [[] for _ in range(A)]
        self._trained_notes: list[list[str]] = [[] for _ in range(A)]  # note ids adapted on, in order
        self._answers: list[dict[str, str]] = [{} for _ in range(A)]  # latest answer per question id
        self._travelling: dict[str, Note] = {}  # shuffled: real note id -> the distractor copy that travels
        self._facts = FactIndex(world)
        self._dirty: set[int] = set()
        self._started = False
        # forgetting: drift from the base, mitigations' state, trust and planted values
        self.drift_values: dict[int, tuple[float, float]] = {a: (1.0, 0.0) for a in range(A)} if drift_texts else {}
        self.gated_out = np.zeros(A, dtype=int)
        self._deltas: dict[int, list[dict]] = {a: [] for a, ms in self.mitigations.items()
                                               if any(m.combine for m in ms)}
        self.trust = np.ones((A, A))
        self.trust_rejected = np.zeros(A, dtype=int)
        self._round_authors: dict[int, set[int]] = {}
        self._held_prev = np.zeros((A, D), dtype=bool)
        self.planted: dict[str, dict[int, set[str]]] = {}  # fact id -> adversary -> planted values
        self._written: dict[str, set[int]] = {}  # doc id -> adversaries that wrote about it
        self._reference = mitigation_reference(self.mitigations)  # (passages, length, batch) the KL terms share
        self._drift_data: list | None = None

    # ------------------------------------------------------------------ setup
    @property
    def questions(self) -> list[Question]:
        return [q for d in self.world.documents for q in d.questions] + list(self.world.composition)

    def start(self) -> None:
        """Create the agents' adapters and measure row 0 (the base model; every fresh LoRA adapter
        equals it, since its B matrix starts at zero), then fix the retention probe."""
        if self._started:
            return
        self.create_adapters()
        pool = probe_questions()
        candidates = pool[: 2 * self.probe_size]  # enough spares for wrong answers
        graded = answer_and_grade(
            self.model, [(None, q) for q in self.questions + candidates], self.evaluation,
            progress="base answers" if self.progress else None,
        )
        head = self.evaluation.headline
        by_qid = {g.qid: g for g in graded}
        right = [by_qid[q.qid].scores[head] >= 0.5 for q in candidates]
        if sum(right) < self.probe_size and len(pool) > len(candidates):  # too few right: ask more (up to 8×)
            rest = pool[len(candidates): 8 * self.probe_size]
            more = answer_and_grade(self.model, [(None, q) for q in rest], self.evaluation,
                                    progress="base answers (probe)" if self.progress else None)
            candidates, right = candidates + rest, right + [g.scores[head] >= 0.5 for g in more]
        self.probe = select_probe(candidates, right, self.probe_size)
        for a in range(len(self.agents)):
            self._store(0, a, [g for g in graded if g.qid in self._scored_qids()])
        self._started = True

    def create_adapters(self) -> None:
        """Every agent's fresh adapter on the shared model, seeded per agent."""
        for i, spec in enumerate(self.agents):
            self.model.add_adapter(spec.adapter, spec.lora, seed=self.seed * 1000 + i)

    def close(self) -> None:
        """Remove this simulation's adapters from the shared model."""
        if self._started:
            for spec in self.agents:
                if spec.adapter in self.model.adapters:
                    self.model.delete_adapter(spec.adapter)
            self._started = False

    def _scored_qids(self) -> set[str]:
        return {q.qid for q in self.questions} | {q.qid for q in self.probe}

    # ------------------------------------------------------------------ one round
    def step(self, actions: dict[int, AgentAction] | None = None) -> RoundRecord:
        """Play one round; ``actions`` (from a policy) override style, inbox choice and recipients."""
        self.start()
        if self.round >= self.rounds:
            raise RuntimeError(f"the simulation has already played its {self.rounds} rounds")
        actions = actions or {}
        r, row = self.round, self.round + 1
        g = self.graphs.at(r)
        seconds: dict[str, float] = {}
        t0 = time.perf_counter()
        self.model.stage = "self_edit"
        self._held_prev = self.own.copy()
        new_docs = self._arrive(r, row)
        notes = self._write_notes(r, new_docs, actions)
        seconds["self_edit"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        self._share(r, g, notes, actions)
        plan, targets = self._schedule(r, g, notes, actions)
        seconds["sharing"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.model.stage = "adapt"
        trained, trained_tokens = self._adapt(r, row, plan, targets)
        if self.postbox.relay_on:
            self.postbox.relay_received(r, g)
        if self.sharing == "weights":
            self._average(r, row, g)
        seconds["adapt"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.model.stage = "evaluate"
        self._evaluate(row, g)
        if self.trust_settings.learn:
            update_trust(self.trust, self.trust_settings, authors=self._round_authors, before=self.acc[row - 1],
                         after=self.acc[row], held=self._held_prev)
        seconds["evaluate"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        per_agent, population = self._metrics(row, g)
        seconds["metrics"] = time.perf_counter() - t0
        seconds.update(self.model.take_seconds())  # per worker and stage, when the agents are sharded
        comm = self.postbox.sent_by_round().get(r, {"notes": 0, "tokens": 0, "lost": 0})
        generated = sum(n.tokens for n in notes if n.style not in ("adversary", "noise")) \
            if self.content not in ("passage", "oracle") else 0  # adversaries write without generating
        work = {"generated_tokens": generated, "trained_tokens": trained_tokens, "answered": int(self.answered[row])}
        record = RoundRecord(r, per_agent, population, notes, trained, dict(comm), seconds, work)
        self.history.append(per_agent)
        self.records.append(record)
        self.round += 1
        return record

    def run(self, on_round: Callable[[RoundRecord], None] | None = None,
            actions_fn: Callable[[Simulation], dict[int, AgentAction]] | None = None) -> list[RoundRecord]:
        """Play every remaining round, calling ``on_round`` after each; ``actions_fn(self)``, when
        given, supplies each round's actions (a policy-driven run)."""
        self.start()
        while self.round < self.rounds:
            rec = self.step(actions_fn(self) if actions_fn else None)
            if on_round:
                on_round(rec)
        return self.records

    # ------------------------------------------------------------------ the stages
    def _arrive(self, r: int, row: int) -> list[tuple[int, str]]:
        arrived = []
        for a, docs in sorted(self.arrivals.get(r, {}).items()):
            for doc_id in docs:
                j = self.doc_index[doc_id]
                self.own[a, j] = True
                self._passages[a].add(doc_id)
                if self.learnt[a, j] < 0:
                    self.learnt[a, j] = row
                arrived.append((a, doc_id))
        for rr in range(r + 1):
            for docs in self.arrivals.get(rr, {}).values():
                for doc_id in docs:
                    self.introduced[row:, self.doc_index[doc_id]] = True
        return arrived

    def _write_notes(self, r: int, arrived: list[tuple[int, str]], actions: dict[int, AgentAction]) -> list[Note]:
        hostile = [(a, d) for a, d in arrived if a in self.adversaries]
        arrived = [(a, d) for a, d in arrived if a not in self.adversaries]
        if self.content in ("passage", "oracle"):  # the control writes the note: no generation
            docs = [(a, self.world.doc(d)) for a, d in arrived]
            notes = C.control_notes(self.content, docs, r, self.model.count_tokens) + self._hostile_notes(r, hostile)
            self.notes_log.extend(notes)
            return notes
        styles = [(actions.get(a) and actions[a].style) or self.agents[a].style for a, _ in arrived]
        writers = [self.agents[a].adapter if self.self_edit.writer == "adapter" else None for a, _ in arrived]
        requests = [(self.world.doc(d), w, s) for (_, d), w, s in zip(arrived, writers, styles)]
        samples = sample_self_edits(
            self.model, requests, self.self_edit, seed=self.seed * 7919 + r,
            progress=f"round {r + 1}: writing notes" if self.progress else None,
        )
        notes = []
        for ((a, doc_id), style, cands) in zip(arrived, styles, samples):
            doc = self.world.doc(doc_id)
            for k, text in enumerate(cands):
                if style == "passage-only":
                    text, seqs = doc.context, [passage_sequence(doc)]
                else:
                    seqs = parse_completion(text, doc, style)
                notes.append(Note(f"r{r}.a{a}.{doc_id}.{k}", a, doc_id, r, style, text, tuple(seqs),
                                  self.model.count_tokens(text)))
        notes += self._hostile_notes(r, hostile)
        self.notes_log.extend(notes)
        if self.content == "shuffled" and self.sharing == "notes" and self.distractors is not None:
            self._travelling = C.travelling_copies(notes, self.distractors, self.doc_index, self.model.count_tokens)
            self.notes_log.extend(self._travelling.values())
        return notes

    def _hostile_notes(self, r: int, arrived: list[tuple[int, str]]) -> list[Note]:
        """Adversaries' notes (:mod:`multiseal.sim.adversary`), recording what they plant."""
        notes = []
        for a, doc_id in arrived:
            doc, adv = self.world.doc(doc_id), self.adversaries[a]
            if adv.attack == "noise":
                assert self.distractors is not None
                xs = self.distractors.documents
                notes.append(noise_note(doc, a, r, xs[self.doc_index[doc_id] % len(xs)], self.model.count_tokens))
            else:
                note, planted = false_note(doc, a, r, adv.rate, self._facts, note_rng(self.seed, r, a, doc_id),
                                           self.model.count_tokens)
                notes.append(note)
                for fid, value in planted.items():
                    self.planted.setdefault(fid, {}).setdefault(a, set()).add(value)
            self._written.setdefault(doc_id, set()).add(a)
        return notes

    def _share(self, r: int, g, notes: list[Note], actions: dict[int, AgentAction]) -> None:
        outbox: dict[int, list[Note]] = {a: [] for a in range(len(self.agents))}
        for n in notes:
            outbox[n.author].append(n)
        if self.sharing == "notes":
            send_to = {a: set(g.successors(a)) for a in outbox}
            for a, act in actions.items():
                if act.send_to is not None:
                    send_to[a] = set(act.send_to) & set(g.successors(a))
        else:
            send_to = {a: set() for a in outbox}
        if self._travelling:  # shuffled: authors keep their notes, distractor copies travel
            C.post_copies(self.postbox, r, g, outbox, self._travelling, send_to)
            self._travelling = {}
        else:
            self.postbox.post(r, g, outbox, send_to)
        self.postbox.deliver(r)

    def _schedule(self, r: int, g, notes: list[Note], actions: dict[int, AgentAction]) -> tuple[Plan, dict[int, int]]:
        """The plan, and per agent the number of sequences to pad its training to (compute matching:
        the size of its training set under the scheduler's ``reference`` plan; empty without one)."""
        inboxes = self.postbox.inboxes()
        if self.trust_settings.learn or self.trust_settings.exclude_below is not None:
            inboxes, dropped = weighted_inboxes(inboxes, self.trust, self.trust_settings)
            for a, items in dropped.items():
                self.postbox.consume(a, items)
                self.trust_rejected[a] += len(items)
        view = SchedulerView(
            round=r, graph=g, inboxes=inboxes,
            all_notes=list(notes),
            history=self.history, known={a: set(k) for a, k in enumerate(self._known)},
            rng=random.Random(self.seed * 104729 + r),
        )
        plan = self.scheduler(view)
        reference = getattr(self.scheduler, "reference", None)
        ref_plan = reference(view) if callable(reference) else None
        targets = {a: len(self.training_set(a, items)) for a, items in (ref_plan or {}).items()}
        if self.sharing != "notes":  # nothing travels: only one's own notes exist
            plan = {a: [it for it in items if it.note.author == a] for a, items in plan.items()}
        for a, act in actions.items():
            if act.adapt_on is not None:
                plan[a] = list(act.adapt_on)
        return plan, targets

    def training_set(self, agent: int, items: Sequence[InboxItem]) -> list[str]:
        """Sequences for ``agent`` from chosen notes: each note's sequences, plus the raw passage of
        every document the agent holds itself (once), without duplicates."""
        seqs: list[str] = []
        for it in items:
            doc_id = it.note.doc_id
            seqs.extend(it.note.sequences)
            if doc_id in self._passages[agent]:
                seqs.append(passage_sequence(self.world.doc(doc_id)))
        return list(dict.fromkeys(seqs))

    def _adapt(self, r: int, row: int, plan: Plan, targets: dict[int, int] | None = None) -> tuple[dict[int, int], int]:
        """Train every agent of the plan on its chosen items (plus padding and replay): together in
        shared batches, or one after another (``train_together``); the result is the same. An agent's
        mitigations (:mod:`multiseal.sim.mitigations`) add replay and loss terms, train the update as a
        fresh delta to combine, or gate it afterwards. Returns the sequences each agent trained on and
        the tokens trained (all agents, all epochs)."""
        trained: dict[int, int] = {}
        rng = random.Random(self.seed * 15485863 + r)
        updates: dict[int, tuple[list[str], list[str]]] = {}  # agent -> (this round's sequences, replayed)
        for a, items in sorted(plan.items()):
            seqs = self.training_set(a, items)
            if targets and a in targets:  # compute-matched: repeat one's own material to the reference count
                seqs = C.pad_to(seqs, targets[a], self._trained[a])
            if not seqs:
                trained[a] = 0
                continue
            earlier = [s for s in self._trained[a] if s not in seqs]
            fraction = min(1.0, self.replay + sum(m.replay for m in self.mitigations.get(a, ())))
            n_replay = round(fraction * len(earlier))
            updates[a] = (seqs, rng.sample(earlier, n_replay) if n_replay else [])
            trained[a] = len(seqs) + n_replay
        gated = {a: m.gate for a in updates for m in self.mitigations.get(a, ()) if m.gate}
        before = self._gate_scores(row, {a: plan[a] for a in gated}, "before") if gated else {}
        snapshots = {a: self.model.adapter_state(self.agents[a].adapter) for a in gated if a not in self._deltas}
        specs = []
        for a, (seqs, replayed) in updates.items():
            spec = self.agents[a]
            if a in self._deltas:  # combine: this round's update is a fresh delta
                self._recreate(a, spec.lora, seed=self.seed * 1000 + a + 7919 * (r + 1))
            penalties = tuple(m for m in self.mitigations.get(a, ()) if m.penalty)
            specs.append(TrainSpec(a, spec.adapter, tuple(seqs + replayed), spec.inner, self.seed * 31 + r * 1009 + a,
                                   r, penalties, self._reference if any(m.reference_passages for m in penalties) else None))

        def labels(mine: Sequence[TrainSpec]):
            if not self.progress:
                return None
            if self.train_together:
                return f"round {r + 1}: training {len(mine)} agents"
            return [f"round {r + 1}: training agent {s.agent}" for s in mine]

        stats = self.model.train(specs, together=self.train_together, max_rows=self.rows_per_pass, progress=labels)
        for a in updates:
            if a in self._deltas:
                self._deltas[a].append(self.model.adapter_state(self.agents[a].adapter))
                self._apply_combination(a)
        kept = set(updates)
        if gated:
            after = self._gate_scores(row, {a: plan[a] for a in gated}, "after")
            for a, gate in gated.items():
                (gain_b, ret_b), (gain_a, ret_a) = before[a], after[a]
                gain, drop = gain_a - gain_b, 0.0 if math.isnan(ret_b) else ret_b - ret_a
                if (not math.isnan(gain) and gain <= gate.min_gain) or drop > gate.max_drop:
                    kept.discard(a)
                    self.gated_out[a] += 1
                    if a in self._deltas:
                        self._deltas[a].pop()
                        self._apply_combination(a)
                    else:
                        self.model.set_adapter_state(self.agents[a].adapter, snapshots[a])
        self._round_authors = {}
        for a, items in sorted(plan.items()):
            if a in updates:
                self.postbox.consume(a, list(items))
            if a not in kept:
                continue
            seqs = updates[a][0]
            self._trained[a].extend(s for s in dict.fromkeys(seqs) if s not in self._trained[a])
            self._trained_notes[a].extend(it.note.note_id for it in items)
            self._round_authors[a] = {it.note.author for it in items} - {a}
            for it in items:
                self._known[a].add(it.note.doc_id)
                j = self.doc_index.get(it.note.doc_id)  # None: a distractor document (shuffled)
                if j is not None and self.learnt[a, j] < 0:
                    self.learnt[a, j] = row
            self._dirty.add(a)
        return trained, sum(st.tokens for st in stats)

    # ------------------------------------------------------------------ mitigations
    def _gate_scores(self, row: int, plan: Plan, when: str) -> dict[int, tuple[float, float]]:
        """Per gated agent: headline accuracy on the questions of the documents its update is about, and
        on the retention probe (NaN when it has none)."""
        head = self.evaluation.headline
        asked: dict[int, tuple[list[str], list[str]]] = {}
        pairs = []
        for a, items in plan.items():
            docs = dict.fromkeys(it.note.doc_id for it in items if it.note.doc_id in self.doc_index)
            qs = [q for d in docs for q in self.world.doc(d).questions]
            asked[a] = ([q.qid for q in qs], [q.qid for q in self.probe])
            pairs += [(self.agents[a].adapter, q) for q in qs + self.probe]
        graded = answer_and_grade(self.model, pairs, self.evaluation,
                                  progress=f"round {row}: gate, {when}" if self.progress else None)
        self.answered[row] += len(pairs)
        by = {}
        for gr in graded:
            by.setdefault(gr.adapter, {})[gr.qid] = gr.scores[head]
        out = {}
        for a, (target, probe) in asked.items():
            got = by.get(self.agents[a].adapter, {})
            out[a] = (float(np.mean([got[q] for q in target])) if target else float("nan"),
                      float(np.mean([got[q] for q in probe])) if probe else float("nan"))
        return out

    def _combine_of(self, a: int):
        return next(m.combine for m in self.mitigations[a] if m.combine)

    def _recreate(self, a: int, lora, seed: int) -> None:
        """Agent ``a``'s adapter made afresh with shape ``lora`` (B = 0: it equals the base)."""
        name = self.agents[a].adapter
        if name in self.model.adapters:
            self.model.delete_adapter(name)
        self.model.add_adapter(name, lora, seed=seed)

    def _apply_combination(self, a: int) -> None:
        """Agent ``a``'s adapter becomes the combination of its stored per-round deltas."""
        spec, deltas = self.agents[a], self._deltas[a]
        if not deltas:
            self._recreate(a, spec.lora, seed=self.seed * 1000 + a)
            return
        state, rank = combined_state(deltas, self._combine_of(a), spec.lora.rank)
        lora = spec.lora if rank == spec.lora.rank else replace(spec.lora, rank=rank,
                                                                alpha=spec.lora.alpha * rank / spec.lora.rank)
        if self.model.adapters.get(spec.adapter) != lora:
            self._recreate(a, lora, seed=0)
        self.model.set_adapter_state(spec.adapter, state)

    def restore_shapes(self) -> None:
        """After a checkpoint's state is loaded: combined adapters take the rank their deltas need."""
        for a in self._deltas:
            self._apply_combination(a)

    def _measure_drift(self, agents: Sequence[int]) -> None:
        """Perplexity ratio and KL to the base on the general-text set, for ``agents``."""
        if not self.drift_texts or not agents:
            return
        if self._drift_data is None:
            self._drift_data = encode_texts(self.model, self.drift_texts, self.drift_length)
        names = {self.agents[a].adapter: a for a in agents}
        for name, d in self.model.drift(list(names), self._drift_data).items():
            self.drift_values[names[name]] = (d.ppl_ratio, d.kl)

    def _average(self, r: int, row: int, g) -> None:
        """Weights sharing: gossip-average each agent's adapter with its in-neighbours'."""
        states = {a: self.model.adapter_state(s.adapter) for a, s in enumerate(self.agents)}
        averaged = average_adapters(states, g, mixing=self.mixing)
        before = self.learnt.copy()
        for a, s in enumerate(self.agents):
            self.model.set_adapter_state(s.adapter, averaged[a])
            preds = list(g.predecessors(a))
            if preds:
                self._dirty.add(a)
            for u in preds:  # a neighbour's knowledge now reaches a through the averaged weights
                reached = (before[u] >= 0) & (before[u] <= row) & (self.learnt[a] < 0)
                self.learnt[a, reached] = row
