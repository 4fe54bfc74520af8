"""A multi-agent simulation as a PettingZoo ``ParallelEnv`` that learned policies drive.

One PettingZoo agent per multiseal agent (``agent_0``, ``agent_1``, ...); one env step is one round
(``Simulation.step``); an episode is ``rounds`` rounds, after which every agent is *terminated*.
Observations, actions, masks and rewards are specified in ``docs/env.md`` and computed by
:class:`multiseal.rl.interface.Interface`. ``reset(seed=s)`` asks ``make_simulation(s)`` for a fresh
simulation on the same loaded base model. To make an env from a scenario file, use
:func:`multiseal.run.pettingzoo.parallel_env` (or ``env`` for the AEC form).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from multiseal.rl.interface import ACTION_KEYS, Interface, _nz, agent_name
from multiseal.sim.loop import Simulation
from multiseal.sim.schedulers import PolicyScheduler
from multiseal.types import RoundRecord


def round_rewards(
    sim: Simulation, record: RoundRecord, *, population_weight: float = 0.0, comm_cost: float = 0.0
) -> dict[int, dict[str, float]]:
    """Per agent for ``record``'s round: ``own_gain``, ``population_gain``, ``notes_sent`` and ``reward``
    (the formula in the module docstring; NaN counts as 0 in every term)."""
    r = record.round
    prev = sim.records[r - 1] if r > 0 else None
    pop_gain = _nz(record.population.get("pop.acc_all.mean")) - _nz(
        prev.population.get("pop.acc_all.mean") if prev else None
    )
    sent: dict[int, int] = {}
    for (rr, u, _), c in sim.state.postbox.stats.items():
        if rr == r:
            sent[u] = sent.get(u, 0) + c["notes"]
    out = {}
    for a, m in record.agents.items():
        own_gain = _nz(m.get("acc_own")) - _nz(prev.agents[a].get("acc_own") if prev else None)
        n = sent.get(a, 0)
        out[a] = {
            "own_gain": own_gain,
            "population_gain": pop_gain,
            "notes_sent": float(n),
            "reward": own_gain + population_weight * pop_gain - comm_cost * n,
        }
    return out


_ENV_IDS = itertools.count()


class MultiSealEnv(ParallelEnv):
    """A multiseal scenario as a PettingZoo ``ParallelEnv`` (see the module docstring)."""

    metadata = {"name": "multiseal_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(
        self,
        make_simulation: Callable[[int], Simulation],
        *,
        seed: int,
        agent_styles: Sequence[str],
        rounds: int,
        note_tokens: int,
        inbox_slots: int = 8,
        history: int = 2,
        styles: Sequence[str] | None = None,
        population_weight: float = 0.0,
        comm_cost: float = 0.0,
        visible_neighbour_metrics: bool = True,
    ):
        """``make_simulation(seed)`` builds one episode's simulation (not started); ``seed`` is the first
        episode's; ``agent_styles``, ``rounds`` and ``note_tokens`` (the note budget) shape the interface."""
        self.make_simulation, self.first_seed = make_simulation, seed
        self.population_weight, self.comm_cost = population_weight, comm_cost
        self.interface = Interface(
            len(agent_styles),
            list(agent_styles),
            rounds=rounds,
            note_tokens=note_tokens,
            styles=styles,
            inbox_slots=inbox_slots,
            history=history,
            visible_neighbour_metrics=visible_neighbour_metrics,
        )
        self.styles = self.interface.styles
        self.possible_agents = list(self.interface.names)
        self.agents: list[str] = []
        self.render_mode = None
        self._obs_spaces = {a: self.interface.observation_space() for a in self.possible_agents}
        self._act_spaces = {a: self.interface.action_space() for a in self.possible_agents}
        self.sim: Simulation | None = None
        self._id, self._episode = next(_ENV_IDS), 0
        self._seed: int | None = None
        self._invalid = dict.fromkeys(self.possible_agents, 0)

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_spaces[agent]

    def action_space(self, agent: str) -> spaces.Dict:
        return self._act_spaces[agent]

    # -- episode ----------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict | None = None):
        self._teardown()
        self._seed = seed if seed is not None else (self.first_seed if self._seed is None else self._seed + 1)
        sim = self.make_simulation(self._seed)
        sim.setup.scheduler = PolicyScheduler()
        # peft keeps some state under a deleted adapter's name: never reuse one on the shared model
        sim.rename_adapters([f"pz{self._id}x{self._episode}a{i}" for i in range(len(sim.setup.agents))])
        self._episode += 1
        sim.start()  # adapters and the base model's row 0, so every step costs the same
        self.sim = sim
        self.agents = list(self.possible_agents)
        self._invalid = dict.fromkeys(self.possible_agents, 0)
        zero = {"own_gain": 0.0, "population_gain": 0.0, "notes_sent": 0.0, "reward": 0.0}
        return self._observations(), self._infos({}, {a: dict(zero) for a in range(len(self.agents))})

    def step(self, actions: Mapping[str, Mapping[str, Any]]):
        if self.sim is None:
            raise RuntimeError("call reset() before step()")
        if not self.agents:
            return {}, {}, {}, {}, {}
        index = {name: i for i, name in enumerate(self.possible_agents)}
        unknown = [k for k in actions if k not in index]
        if unknown:
            raise ValueError(f"actions for unknown agents {unknown}; agents are {self.possible_agents}")
        tr = self.interface.apply(self.sim, {index[k]: v for k, v in actions.items()})
        record = self.sim.step(tr.actions)
        terms = round_rewards(self.sim, record, population_weight=self.population_weight, comm_cost=self.comm_cost)
        for a, bad in tr.invalid.items():
            self._invalid[agent_name(a)] += sum(bad.values())
        done = self.sim.round >= self.sim.setup.rounds
        names = list(self.agents)
        obs = self._observations()
        infos = self._infos(tr.invalid, terms)
        rewards = {n: float(terms[index[n]]["reward"]) for n in names}
        terminations = dict.fromkeys(names, done)
        truncations = dict.fromkeys(names, False)
        if done:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def _observations(self) -> dict[str, np.ndarray]:
        return {agent_name(a): o for a, o in self.interface.observe(self.sim).items()}

    def _infos(self, invalid: Mapping[int, dict[str, int]], terms: Mapping[int, dict[str, float]]) -> dict[str, dict]:
        return {
            name: {
                **self.interface.info(self.sim, a),
                "invalid": dict(invalid.get(a) or dict.fromkeys(ACTION_KEYS, 0)),
                "invalid_actions": self._invalid[name],
                "reward_terms": dict(terms[a]),
            }
            for a, name in enumerate(self.possible_agents)
        }

    def _teardown(self) -> None:
        if self.sim is not None:
            self.sim.close()
        self.sim = None

    def close(self) -> None:
        """Delete this episode's adapters from the shared model."""
        self._teardown()
        self.agents = []
