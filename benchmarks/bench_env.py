"""PettingZoo env speed: env steps (rounds) per second, with a random policy under the action masks.

The scenario is the small one RL experiments and the API tests use: 3 agents on a ring, 4 synthetic
documents (2 rounds, each document to 2 agents), 8-token notes, one inner-loop epoch on sequences cut
to ``--max-length`` tokens, 4-token answers, no retention probe. Every env step writes notes, shares
them, trains the agents that chose something, re-evaluates them and builds the next observations.
``reset`` (rebuilding the simulation and measuring the base model, row 0) is timed apart. Wall time
depends on what else runs on the machine; CPU time of this process is printed too.

    python benchmarks/bench_env.py                              # tiny-random, 5 episodes
    python benchmarks/bench_env.py --model smollm2-135m --episodes 2
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
import time
import warnings

import torch

from multiseal.config.load import validate_scenario
from multiseal.learning.model import build_shared_model
from multiseal.run.pettingzoo import parallel_env


def small_scenario(model: str, max_length: int, rounds: int = 2) -> dict:
    return {
        "rounds": rounds,
        "seed": 0,
        "model": {"base": model, "lora": {"rank": 4, "alpha": 8}},
        "world": {"documents": 2 * rounds, "questions_per_doc": [2, 2]},
        "agents": 3,
        "arrivals": {"kind": "overlapping", "copies": 2},
        "topology": {"kind": "ring"},
        "self_edit": {"max_new_tokens": 8},
        "inner_loop": {"epochs": 1, "max_length": max_length},
        "evaluation": {"max_new_tokens": 4, "retention_probe": 0},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny-random")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="rounds (env steps) per episode")
    parser.add_argument("--max-length", type=int, default=32, help="inner_loop.max_length (tokens per sequence)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (1: on a shared 2-core machine more threads wait on each other)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")

    t0 = time.perf_counter()
    model = build_shared_model(args.model, progress=False)
    load = time.perf_counter() - t0
    sc = validate_scenario(small_scenario(args.model, args.max_length, args.rounds))
    env = parallel_env(sc, model=model)
    # warm-up episode (first-call allocations), timed by nothing
    _, infos = env.reset(seed=10_000)
    env.step({a: env.action_space(a).sample(mask=infos[a]["action_mask"]) for a in env.agents})

    resets, steps, cpu, phases = [], [], [], {"self_edit": [], "adapt": [], "evaluate": []}
    for ep in range(args.episodes):
        for i, a in enumerate(env.possible_agents):
            env.action_space(a).seed(ep * 100 + i)
        t = time.perf_counter()
        _, infos = env.reset(seed=ep)
        resets.append(time.perf_counter() - t)
        while env.agents:
            actions = {a: env.action_space(a).sample(mask=infos[a]["action_mask"]) for a in env.agents}
            t, c = time.perf_counter(), time.process_time()
            _, _, _, _, infos = env.step(actions)
            steps.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
            for k in phases:
                phases[k].append(env.sim.records[-1].seconds.get(k, 0.0))
    env.close()

    total = sum(steps)
    print(
        f"bench_env  {datetime.date.today()}  {platform.machine()}  model={args.model}  threads={args.threads}  "
        f"torch {torch.__version__}  (model load {load:.1f}s)"
    )
    print(f"{args.episodes} episodes x {args.rounds} rounds, 3 agents, max_length {args.max_length}, random policy")
    print(
        f"env step: mean {statistics.mean(steps):.3f}s  median {statistics.median(steps):.3f}s  "
        f"max {max(steps):.3f}s  ->  {len(steps) / total:.2f} steps/s"
    )
    print(
        f"CPU time per step (this process, all threads): mean {statistics.mean(cpu):.3f}s  ->  "
        f"{len(cpu) / sum(cpu):.2f} steps per CPU-second (about the rate on an idle core, with 1 thread)"
    )
    rest = statistics.mean(steps) - sum(statistics.mean(v) for v in phases.values())
    print(
        "  of which "
        + ", ".join(f"{k} {statistics.mean(v):.3f}s" for k, v in phases.items())
        + f", the rest (metrics, observations) {rest:.3f}s"
    )
    print(f"reset: mean {statistics.mean(resets):.3f}s (rebuild + base-model answers, row 0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
