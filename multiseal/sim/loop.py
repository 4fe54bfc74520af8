"""The round loop: documents → notes → inboxes → adapters → answers → metrics.

One round (row ``t = round + 1`` of the accuracy tensor; row 0 is the base model) is the eight stages
of :mod:`multiseal.sim.stages`, each a function over the simulation's fixed
:class:`~multiseal.sim.setup.Setup` and its changing :class:`~multiseal.sim.state.RoundState`:
arrivals, self-edits, sharing, scheduling, adaptation, retelling (``sharing.retell``), evaluation and
metrics. The state is all a
checkpoint saves (:mod:`multiseal.sim.checkpoint`).

The class takes plain typed arguments; it never sees the scenario file.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace

from multiseal.learning.model import SharedModel
from multiseal.sim import controls as C
from multiseal.sim.adversary import Adversary
from multiseal.sim.graph import DynamicGraph
from multiseal.sim.mitigations import Mitigation
from multiseal.sim.population import Population, mitigation_reference, partition
from multiseal.sim.setup import Setup
from multiseal.sim.sharing import Postbox
from multiseal.sim.stages.adapt import adapt, apply_combination
from multiseal.sim.stages.arrive import arrive
from multiseal.sim.stages.evaluate import evaluate, measure_base
from multiseal.sim.stages.measure import measure
from multiseal.sim.stages.retell import retell
from multiseal.sim.stages.schedule import schedule
from multiseal.sim.stages.share import SHARING_MODES, share, share_after_adapting
from multiseal.sim.stages.write import generated_tokens, write_notes
from multiseal.sim.state import RoundState
from multiseal.sim.trust import TrustSettings
from multiseal.types import AgentAction, AgentSpec, EvalSettings, RoundRecord, Scheduler, SelfEditSettings, World
from multiseal.world.arrivals import Arrivals
from multiseal.world.synthetic import generate_distractors


class Simulation:
    """Several SEAL agents on one shared base model, exchanging notes over a graph.

    ``setup`` holds what the run is given, ``state`` everything its rounds change."""

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
        retell: bool = False,
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
        if retell and (sharing != "notes" or content == "shuffled" or postbox.relay_on):
            raise ValueError("retell needs notes on the move (sharing 'notes'), no relay and no shuffled content")
        if content == "oracle" and not world.facts:
            raise ValueError("content 'oracle' writes notes from the world's gold facts; this world has none")
        adversaries = dict(adversaries or {})
        if any(v.attack == "false_values" for v in adversaries.values()) and not world.facts:
            raise ValueError("an adversary with attack 'false_values' plants false facts; this world has none")
        needs = content == "shuffled" or any(v.attack == "noise" for v in adversaries.values())
        if needs and distractors is None:  # one rule for both: one distractor per document, from the seed
            distractors = generate_distractors(world, len(world.documents), seed)
        agents = tuple(agents)
        # where the adapters live and the work runs: one process, or shards (docs/cluster.md)
        population = model if isinstance(model, Population) else Population.local(model, workers)
        if population.workers > len(agents):
            raise ValueError(f"{population.workers} workers for {len(agents)} agents: at most one worker per agent")
        kept = {a: tuple(ms) for a, ms in (mitigations or {}).items() if ms}
        self.setup = Setup(
            model=population,
            world=world,
            arrivals=arrivals,
            graphs=graphs,
            scheduler=scheduler,
            agents=agents,
            self_edit=self_edit,
            evaluation=evaluation,
            rounds=rounds,
            seed=seed,
            sharing=sharing,
            mixing=mixing,
            replay=replay,
            probe_size=probe_size,
            progress=progress,
            content=content,
            retell=retell,
            distractors=distractors,
            train_together=train_together,
            rows_per_pass=rows_per_pass,
            sample_documents=sample_documents,
            mitigations=kept,
            adversaries=adversaries,
            trust=trust or TrustSettings(),
            drift_texts=tuple(drift_texts),
            drift_length=drift_length,
            reference=mitigation_reference(kept),
        )
        self.state = RoundState.fresh(self.setup, postbox)
        self._assign()

    @property
    def round(self) -> int:
        """Rounds played so far."""
        return self.state.round

    @property
    def records(self) -> list[RoundRecord]:
        """Every played round's record, in order."""
        return self.state.records

    def _assign(self) -> None:
        """Tell the population which group of agents (shard) owns which adapter."""
        agents, population = self.setup.agents, self.setup.model
        blocks = partition(len(agents), population.workers)
        population.assign([[agents[a].adapter for a in b] for b in blocks], blocks)

    def rename_adapters(self, names: Sequence[str]) -> None:
        """Give the agents' adapters these names (before :meth:`start`): several simulations on one
        shared model each need their own, and peft keeps state under a deleted adapter's name."""
        if self.state.started:
            raise RuntimeError("rename the adapters before the simulation starts")
        if len(names) != len(self.setup.agents) or len(set(names)) != len(names):
            raise ValueError(f"{len(self.setup.agents)} distinct names needed, got {list(names)}")
        self.setup.agents = tuple(replace(spec, adapter=n) for spec, n in zip(self.setup.agents, names))
        self._assign()

    # ------------------------------------------------------------------ setup
    def start(self) -> None:
        """Create the agents' adapters and measure row 0 (the base model), fixing the retention probe."""
        if self.state.started:
            return
        self.create_adapters()
        measure_base(self.setup, self.state)
        self.state.started = True

    def create_adapters(self) -> None:
        """Every agent's fresh adapter on the shared model, seeded per agent."""
        for i, spec in enumerate(self.setup.agents):
            self.setup.model.add_adapter(spec.adapter, spec.lora, seed=self.setup.seed * 1000 + i)

    def restore_shapes(self) -> None:
        """After a checkpoint's state is loaded: combined adapters take the rank their deltas need."""
        for a in self.state.deltas:
            apply_combination(self.setup, self.state, a)

    def close(self) -> None:
        """Remove this simulation's adapters from the shared model."""
        if self.state.started:
            model = self.setup.model
            for spec in self.setup.agents:
                if spec.adapter in model.adapters:
                    model.delete_adapter(spec.adapter)
            self.state.started = False

    # ------------------------------------------------------------------ one round
    def step(self, actions: dict[int, AgentAction] | None = None) -> RoundRecord:
        """Play one round; ``actions`` (from a policy) override style, inbox choice and recipients."""
        self.start()
        setup, state = self.setup, self.state
        if state.round >= setup.rounds:
            raise RuntimeError(f"the simulation has already played its {setup.rounds} rounds")
        actions = actions or {}
        r, row = state.round, state.round + 1
        g = setup.graphs.at(r)
        clock = _Clock(setup.model)
        with clock("self_edit", stage="self_edit"):
            arrived = arrive(setup, state, r)
            notes = write_notes(setup, state, r, arrived, actions)
        with clock("sharing"):
            share(setup, state, r, g, notes, actions)
            plan, targets = schedule(setup, state, r, g, notes, actions)
        with clock("adapt", stage="adapt"):
            trained, trained_tokens = adapt(setup, state, r, plan, targets)
            share_after_adapting(setup, state, r, g)
        retold = []
        if setup.retell:
            with clock("retell", stage="self_edit"):
                retold = retell(setup, state, r, g, plan)
        with clock("evaluate", stage="evaluate"):
            evaluate(setup, state, row, g)
        with clock("metrics"):
            per_agent, population = measure(setup, state, row, g)
        seconds = {**clock.seconds, **setup.model.take_seconds()}  # per worker and stage, when sharded
        comm = state.postbox.sent_by_round().get(r, {"notes": 0, "tokens": 0, "lost": 0})
        work = {
            "generated_tokens": generated_tokens(setup, notes) + sum(n.tokens for n in retold),
            "trained_tokens": trained_tokens,
            "answered": int(state.answered[row]),
        }
        record = RoundRecord(r, per_agent, population, notes + retold, trained, dict(comm), seconds, work)
        state.history.append(per_agent)
        state.records.append(record)
        state.round += 1
        return record

    def run(
        self,
        on_round: Callable[[RoundRecord], None] | None = None,
        actions_fn: Callable[[Simulation], dict[int, AgentAction]] | None = None,
    ) -> list[RoundRecord]:
        """Play every remaining round, calling ``on_round`` after each; ``actions_fn(self)``, when
        given, supplies each round's actions (a policy-driven run)."""
        self.start()
        while self.state.round < self.setup.rounds:
            rec = self.step(actions_fn(self) if actions_fn else None)
            if on_round:
                on_round(rec)
        return self.state.records


class _Clock:
    """Wall-clock seconds per stage of a round; ``stage`` also tells the population which stage its
    workers' time belongs to."""

    def __init__(self, model: Population):
        self.model = model
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str, stage: str | None = None) -> Iterator[None]:
        if stage is not None:
            self.model.stage = stage
        t0 = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - t0
