"""Learn which prompt style to write notes in: an epsilon-greedy bandit on the PettingZoo env,
compared with the built-in policies and schedulers on the same scenario and the same held-out seeds.

The bandit chooses each agent's style in every round where a document arrives for it, and learns
from that agent's reward (its accuracy gain on its own documents, see docs/env.md); the rest of
its action (what to adapt on, whom to send to) is the ``greedy`` policy's. One value table is shared
by all agents, so a few short episodes give it enough pulls. Training episodes use seeds
``1000, 1001, ...``; every method is then evaluated on seeds ``0 .. --eval-seeds - 1`` with the same
reward bookkeeping (``multiseal.rl.env.round_rewards``), the bandit without exploration.

    python analysis/bandit_styles.py --model tiny-random      # a quick check (a minute or two)
    python analysis/bandit_styles.py                          # SmolLM2-135M (longer)
    python analysis/bandit_styles.py --scenario scenarios/quickstart.yaml --episodes 6

On ``tiny-random`` every accuracy is about zero: it checks the plumbing, not the learning.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import warnings

import numpy as np
import torch

from multiseal.config.builders import build_simulation
from multiseal.config.load import load_scenario, validate_scenario
from multiseal.config.schema import Scenario
from multiseal.rl.env import round_rewards
from multiseal.rl.interface import Interface
from multiseal.rl.policies import build_policy
from multiseal.run.pettingzoo import parallel_env

SCHEDULERS = {"synchronous": {}, "isolated": {}, "round-robin": {}, "budgeted": {"budget": 2}}


def small_scenario(model: str) -> Scenario:
    """Three agents on a ring, 2 rounds, 4 documents each received by 2 agents, small budgets."""
    return validate_scenario(
        {
            "name": "bandit-styles",
            "rounds": 2,
            "seed": 0,
            "model": {"base": model, "lora": {"rank": 8, "alpha": 16}},
            "world": {"documents": 4, "questions_per_doc": [3, 3]},
            "agents": 3,
            "arrivals": {"kind": "overlapping", "copies": 2},
            "topology": {"kind": "ring"},
            "self_edit": {"max_new_tokens": 48 if model != "tiny-random" else 8},
            "inner_loop": {"epochs": 2 if model != "tiny-random" else 1, "lr": 2e-3, "max_length": 96},
            "evaluation": {"max_new_tokens": 16 if model != "tiny-random" else 4, "retention_probe": 0},
        }
    )


class StyleBandit:
    """Epsilon-greedy over ``interface.styles`` (untried styles first), shared by all agents."""

    def __init__(self, interface: Interface, epsilon: float = 0.3, seed: int = 0):
        self.interface, self.epsilon = interface, epsilon
        self.greedy = build_policy("greedy", interface)
        self.rng = np.random.default_rng(seed)
        self.counts = np.zeros(len(interface.styles))
        self.values = np.zeros(len(interface.styles))
        self.explore = True
        self.pulled: dict[str, int] = {}

    def __call__(self, observations: dict[str, np.ndarray], infos: dict[str, dict]) -> dict[str, dict]:
        actions = self.greedy(observations, infos)
        self.pulled = {}
        for name, obs in observations.items():
            if self.explore and (self.counts.min() == 0 or self.rng.random() < self.epsilon):
                untried = np.flatnonzero(self.counts == 0)
                style = int(self.rng.choice(untried if len(untried) else len(self.counts)))
            else:
                style = int(np.argmax(self.values))
            actions[name]["style"] = style
            if self.interface.unflatten(obs)["own"][1] > 0:  # a document arrives: the style matters
                self.pulled[name] = style
        return actions

    def update(self, rewards: dict[str, float]) -> None:
        for name, style in self.pulled.items():
            self.counts[style] += 1
            self.values[style] += (rewards[name] - self.values[style]) / self.counts[style]


def play(env, policy, seed: int, learn: bool = False) -> float:
    """One episode; returns the mean (over agents) episode return."""
    obs, infos = env.reset(seed=seed)
    total = dict.fromkeys(env.possible_agents, 0.0)
    while env.agents:
        obs, rewards, _, _, infos = env.step(policy(obs, infos))
        if learn:
            policy.update(rewards)
        for a, r in rewards.items():
            total[a] += r
    return statistics.mean(total.values())


def scheduler_return(scenario: Scenario, model, kind: str, params: dict, seed: int, tag: str, **reward) -> float:
    """A built-in scheduler's episode, scored with the env's reward bookkeeping."""
    sc = scenario.model_copy(
        update={"seed": seed, "scheduler": scenario.scheduler.model_copy(update={"kind": kind, "params": params})}
    )
    sim = build_simulation(sc, model, progress=False)
    sim.rename_adapters([f"{tag}x{i}" for i in range(len(sim.setup.agents))])
    total = np.zeros(len(sim.setup.agents))
    for rec in sim.run():
        terms = round_rewards(sim, rec, **reward)
        total += [terms[a]["reward"] for a in range(len(sim.setup.agents))]
    sim.close()
    return float(total.mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m", help="base model (tiny-random for a quick check)")
    parser.add_argument("--scenario", help="a simulation scenario YAML (default: a small built-in one)")
    parser.add_argument("--episodes", type=int, default=4, help="training episodes")
    parser.add_argument("--eval-seeds", type=int, default=2, help="held-out seeds every method is scored on")
    parser.add_argument("--epsilon", type=float, default=0.3)
    parser.add_argument("--population-weight", type=float, default=0.0)
    parser.add_argument("--comm-cost", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")

    scenario = load_scenario(args.scenario) if args.scenario else small_scenario(args.model)
    reward = {"population_weight": args.population_weight, "comm_cost": args.comm_cost}
    env = parallel_env(scenario, source=args.scenario, **reward)
    model = env.model
    print(
        f"scenario '{scenario.name}': {scenario.agents.count} agents, {scenario.rounds} rounds, "
        f"model {scenario.model.base}; styles {env.styles}"
    )

    bandit = StyleBandit(env.interface, args.epsilon, seed=0)
    for ep in range(args.episodes):
        ret = play(env, bandit, seed=1000 + ep, learn=True)
        print(
            f"training episode {ep + 1}/{args.episodes}: mean return {ret:+.3f}; style values "
            + ", ".join(f"{s} {v:+.3f} ({int(n)})" for s, v, n in zip(env.styles, bandit.values, bandit.counts))
        )
    bandit.explore = False

    seeds = range(args.eval_seeds)
    results: dict[str, list[float]] = {}
    results[f"bandit (-> {env.styles[int(np.argmax(bandit.values))]})"] = [play(env, bandit, s) for s in seeds]
    for name in ("greedy", "random"):
        policy = build_policy(name, env.interface, seed=0)
        results[f"policy {name}"] = [play(env, policy, s) for s in seeds]
    env.close()
    for k, (kind, params) in enumerate(SCHEDULERS.items()):
        results[f"scheduler {kind}"] = [
            scheduler_return(scenario, model, kind, params, s, f"bl{k}s{s}", **reward) for s in seeds
        ]

    print(
        f"\nmean episode return per agent on held-out seeds {list(seeds)} "
        f"(= final acc_own{' + pop term' if args.population_weight else ''}"
        f"{' - communication' if args.comm_cost else ''}):"
    )
    for name, vals in sorted(results.items(), key=lambda kv: -statistics.mean(kv[1])):
        print(f"  {name:<36} {statistics.mean(vals):+.3f}   per seed " + " ".join(f"{v:+.3f}" for v in vals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
