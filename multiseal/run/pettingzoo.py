"""A scenario file as a PettingZoo environment: the entry point for reinforcement-learning users.

    from multiseal.run.pettingzoo import parallel_env
    env = parallel_env("scenarios/quickstart.yaml", model=None, inbox_slots=8)

The environment itself is :class:`multiseal.rl.env.MultiSealEnv`; its observations, actions and
rewards are specified in ``docs/env.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pettingzoo.utils.conversions import parallel_to_aec

from multiseal.config.builders import agent_specs, build_model, build_simulation
from multiseal.config.load import load_scenario
from multiseal.config.schema import Scenario
from multiseal.learning.model import SharedModel
from multiseal.rl.env import MultiSealEnv
from multiseal.sim.loop import Simulation


def parallel_env(
    scenario: Scenario | str | Path,
    *,
    model: SharedModel | None = None,
    source: str | Path | None = None,
    progress: bool = False,
    **options: Any,
) -> MultiSealEnv:
    """The scenario (a ``Scenario`` or a YAML path) as a ``ParallelEnv``; ``model`` reuses a loaded
    ``SharedModel`` (else the scenario's model is loaded). ``options``: ``inbox_slots=8, history=2,
    styles=None, population_weight=0.0, comm_cost=0.0, visible_neighbour_metrics=True``.

    ``reset(seed=s)`` rebuilds the simulation with ``seed = s`` (the world follows the seed unless
    ``world.seed`` pins it); ``reset()`` without a seed plays the next seed."""
    if not isinstance(scenario, Scenario):
        source = source if source is not None else scenario
        scenario = load_scenario(scenario)
    if scenario.kind != "simulation":
        raise ValueError(f"an env needs a scenario of kind 'simulation', got {scenario.kind!r}")
    if model is None:
        model = build_model(scenario.model, progress=False)

    def make_simulation(seed: int) -> Simulation:
        return build_simulation(scenario.model_copy(update={"seed": seed}), model, source, progress=progress)

    return MultiSealEnv(
        make_simulation,
        seed=scenario.seed,
        agent_styles=[s.style for s in agent_specs(scenario)],
        rounds=scenario.rounds,
        note_tokens=scenario.self_edit.max_new_tokens,
        **options,
    )


def env(
    scenario: Scenario | str | Path,
    *,
    model: SharedModel | None = None,
    source: str | Path | None = None,
    **options: Any,
):
    """The AEC form, through PettingZoo's own ``parallel_to_aec`` conversion."""
    return parallel_to_aec(parallel_env(scenario, model=model, source=source, **options))
