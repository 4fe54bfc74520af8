"""Builders: typed scenario sections in, library objects out (torchtune's builder pattern).

This is the only place where scenario sections meet library classes; everything downstream takes
plain typed arguments and never reads the YAML tree.
"""

from __future__ import annotations

import itertools
import os
import warnings
from dataclasses import replace
from pathlib import Path

from multiseal.config.paths import resolve_relative, topology_params
from multiseal.config.resolve import resolve_agents, settings_from
from multiseal.config.schema import (
    EvaluationSection,
    InnerLoopSection,
    LoraSection,
    ModelSection,
    RestemSection,
    Scenario,
    SelfEditSection,
    TasksSection,
    WorldSection,
)
from multiseal.learning.model import SharedModel, build_shared_model
from multiseal.rl.restem import WRITER_TRAINING, RestemSettings
from multiseal.rl.skill_restem import SkillSettings
from multiseal.sim.adversary import Adversary
from multiseal.sim.graph import DynamicGraph, is_disconnected
from multiseal.sim.loop import Simulation
from multiseal.sim.mitigations import Mitigation
from multiseal.sim.population import Population
from multiseal.sim.schedulers import build_scheduler
from multiseal.sim.sharing import Postbox
from multiseal.sim.trust import TrustSettings
from multiseal.types import (
    AgentSpec,
    EvalSettings,
    LoraSettings,
    SelfEditSettings,
    SkillTask,
    TrainSettings,
    World,
)
from multiseal.world.arc import load_arc
from multiseal.world.arrivals import build_arrivals
from multiseal.world.general_text import general_passages
from multiseal.world.grid_tasks import TaskShape, generate_tasks, split_tasks
from multiseal.world.squad import load_squad_json
from multiseal.world.synthetic import generate_distractors, generate_world


def build_model(cfg: ModelSection, progress: bool = True) -> SharedModel:
    """The shared base model. ``threads`` matters on a small CPU: with more threads than free cores,
    each OpenMP region waits for descheduled siblings and runs several times slower."""
    threads = cfg.threads or (int(os.environ["MULTISEAL_THREADS"]) if os.environ.get("MULTISEAL_THREADS") else None)
    if threads:
        import torch

        torch.set_num_threads(threads)
    return build_shared_model(
        cfg.base,
        device=cfg.device,
        dtype=cfg.dtype,
        chat=cfg.chat,
        allow_download=cfg.allow_download,
        progress=progress,
        lora_kernel=cfg.lora_kernel,
    )


def build_lora(cfg: LoraSection) -> LoraSettings:
    return settings_from(cfg, LoraSettings)


def build_world(cfg: WorldSection, seed: int, source: str | Path | None = None) -> World:
    """The synthetic world (seeded) or the documents of a SQuAD-style file."""
    if cfg.kind == "squad":
        return load_squad_json(resolve_relative(cfg.path, source))
    return generate_world(
        cfg.documents,
        cfg.seed if cfg.seed is not None else seed,
        questions_per_doc=tuple(cfg.questions_per_doc),
        composition=cfg.composition,
    )


def build_tasks(
    cfg: TasksSection,
    seed: int,
    source: str | Path | None = None,
) -> tuple[tuple[SkillTask, ...], tuple[SkillTask, ...]]:
    """The skills world split into ``(training tasks, held-out tasks)``: generated (seeded) or ARC files."""
    task_seed = cfg.seed if cfg.seed is not None else seed
    if cfg.kind == "arc":
        solutions = resolve_relative(cfg.solutions, source) if cfg.solutions else None
        tasks = load_arc(resolve_relative(cfg.path, source), solutions)
    else:
        shape = TaskShape(
            width=tuple(cfg.width),
            height=tuple(cfg.height),
            colours=cfg.colours,
            demonstrations=cfg.demonstrations,
            tests=cfg.tests,
        )
        tasks = generate_tasks(cfg.families, cfg.per_family, task_seed, shape)
    return split_tasks(tasks, cfg.held_out, task_seed)


def build_skills(scenario: Scenario) -> SkillSettings:
    """How configurations are written (``self_edit``: temperature, top_p, max_new_tokens), tried
    (``skills``, ``model.lora``) and learnt (``skills.writer_*``)."""
    s, e = scenario.skills, scenario.self_edit
    return SkillSettings(
        lora=build_lora(scenario.model.lora),
        candidates=s.candidates,
        iterations=s.iterations,
        temperature=e.temperature,
        top_p=e.top_p,
        max_new_tokens=e.max_new_tokens,
        ttt_batch_size=s.batch_size,
        max_length=s.max_length,
        together=scenario.inner_loop.batching == "together",
        writer_training=replace(
            WRITER_TRAINING, epochs=s.writer_epochs, lr=s.writer_lr, batch_size=s.writer_batch_size, max_length=1024
        ),
        oracle=s.oracle_grid(),
        form=s.form,
    )


def build_self_edit(cfg: SelfEditSection) -> SelfEditSettings:
    return settings_from(cfg, SelfEditSettings)


def build_inner_loop(cfg: InnerLoopSection) -> TrainSettings:
    return settings_from(cfg, TrainSettings)


def build_eval(cfg: EvaluationSection) -> EvalSettings:
    return settings_from(cfg, EvalSettings)


_simulations = itertools.count()


def agent_specs(scenario: Scenario, prefix: str | None = None) -> list[AgentSpec]:
    """One spec per agent: the scenario defaults with that agent's overrides applied
    (:func:`multiseal.config.resolve.resolve_agents`).

    Adapter names get a per-process unique prefix, so several simulations can share one model.
    """
    prefix = prefix if prefix is not None else f"s{next(_simulations)}a"
    return [AgentSpec(f"{prefix}{i}", a.style, a.lora, a.inner) for i, a in enumerate(resolve_agents(scenario))]


def build_graphs(scenario: Scenario, source: str | Path | None = None) -> DynamicGraph:
    t = scenario.topology
    params = topology_params(t.params, source)
    return DynamicGraph(
        t.kind,
        scenario.agents.count,
        directed=t.directed,
        params=params,
        seed=scenario.seed,
        weights=t.weights,
        rewire_every=t.rewire_every,
        schedule=t.schedule,
    )


def build_simulation(
    scenario: Scenario, model: SharedModel | Population, source: str | Path | None = None, progress: bool = True
) -> Simulation:
    """All parts of a multi-agent run from its scenario (the model, or a sharded population, is passed in:
    load it once)."""
    world = build_world(scenario.world, scenario.seed, source)
    a = scenario.arrivals
    arrivals = build_arrivals(
        a.kind,
        scenario.agents.count,
        world.doc_ids,
        scenario.rounds,
        docs_per_round=a.docs_per_round,
        copies=a.copies,
        source=a.source,
        table=a.table or None,
        seed=scenario.seed,
    )
    graphs = build_graphs(scenario, source)
    if is_disconnected(graphs.at(0)) and scenario.sharing.mode != "none" and scenario.agents.count > 1:
        warnings.warn(
            f"topology '{scenario.topology.kind}' is disconnected: some notes can never reach some agents", stacklevel=2
        )
    s = scenario.sharing
    postbox = Postbox(
        scenario.agents.count, delay=s.delay, loss=s.loss, relay=s.relay, max_hops=s.max_hops, seed=scenario.seed
    )
    return Simulation(
        model,
        world,
        arrivals,
        graphs,
        postbox,
        build_scheduler(scenario.scheduler.kind, scenario.scheduler.params),
        agent_specs(scenario),
        build_self_edit(scenario.self_edit),
        build_eval(scenario.evaluation),
        rounds=scenario.rounds,
        seed=scenario.seed,
        sharing=s.mode,
        mixing=s.mixing,
        replay=scenario.replay.fraction,
        probe_size=scenario.evaluation.retention_probe,
        progress=progress,
        train_together=scenario.inner_loop.batching == "together",
        rows_per_pass=scenario.inner_loop.rows_per_pass,
        sample_documents=scenario.evaluation.sample_documents,
        content=s.content,
        retell=s.retell,
        distractors=build_distractors(world, scenario),
        mitigations=agent_mitigations(scenario),
        adversaries=build_adversaries(scenario),
        trust=TrustSettings(**scenario.trust.model_dump()),
        drift_texts=general_passages(scenario.evaluation.drift_passages) if scenario.evaluation.drift_passages else (),
        drift_length=scenario.evaluation.drift_length,
        workers=scenario.execution.workers,
    )


def agent_mitigations(scenario: Scenario) -> dict[int, tuple[Mitigation, ...]]:
    """Each agent's mitigations: its override's list, else the scenario's."""
    return {i: a.mitigations for i, a in enumerate(resolve_agents(scenario))}


def build_adversaries(scenario: Scenario) -> dict[int, Adversary]:
    """The agents with ``role: adversary`` (rate 0.5 and attack false_values unless given)."""
    return {i: a.adversary for i, a in enumerate(resolve_agents(scenario)) if a.adversary is not None}


def build_distractors(world: World, scenario: Scenario) -> World | None:
    """The distractor documents of the shuffled-notes control and of noise adversaries (one rule for
    both): one per document of ``world``, from their own seed stream (the world's seed, else the
    scenario's), so ``world`` itself is unchanged; None when nothing uses them."""
    noise = any(a.adversary is not None and a.adversary.attack == "noise" for a in resolve_agents(scenario))
    if scenario.kind != "simulation" or (scenario.sharing.content != "shuffled" and not noise):
        return None
    seed = scenario.world.seed if scenario.world.seed is not None else scenario.seed
    return generate_distractors(world, len(world.documents), seed)


def build_restem(cfg: RestemSection, together: bool = False) -> RestemSettings:
    """The outer loop's settings from the scenario's ``restem`` section (``together``: the inner loop's
    ``batching``, which trains each batch of trial adapters in shared batches)."""
    return RestemSettings(
        iterations=cfg.iterations,
        candidates=cfg.candidates,
        keep=cfg.keep,
        reward=cfg.reward,
        mix_weight=cfg.mix_weight,
        policy=cfg.policy,
        sft=replace(WRITER_TRAINING, epochs=cfg.policy_epochs, lr=cfg.policy_lr, batch_size=cfg.policy_batch_size),
        eval_samples=cfg.eval_samples,
        trial_batch=cfg.trial_batch,
        baseline=cfg.baseline,
        together=together,
    )
