"""What sharding a population over Ray actors costs and gains: the same scenario in-process, on one Ray
worker and on two.

Arms (same scenario, same seed):

* ``in-process`` — the default: one process, one group of agents;
* ``in-process, 2 groups`` — one process, ``execution.workers: 2`` (the batching the two-worker Ray run
  reproduces exactly, so the Ray arm's difference from it is Ray's alone);
* ``ray, 1 worker`` / ``ray, 2 workers`` — ``execution.kind: ray`` on a local Ray instance started here
  with ``threads`` CPUs per worker.

For each arm: the start-up (loading the model in-process; starting the actors, each loading the model,
for Ray), the mean seconds per round over rounds 2.. (round 1 pays one-off costs), the stages
(self-edit, adapt, evaluate), the workers' busy seconds per round (the shard's own compute, measured
inside the worker) and Ray's **overhead**: per round, the model stages' wall seconds minus the busiest
worker's busy seconds in each stage — serialising notes, sequences, answers and adapter states,
sending them, and scheduling the calls. Every run ends with the same metrics (checked: the Ray arms
must equal the in-process run with the same groups, else the benchmark stops).

    .venv/bin/python benchmarks/bench_ray.py --model tiny-random --agents 4 --rounds 3
    .venv/bin/python benchmarks/bench_ray.py --model smollm2-135m --agents 4 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from multiseal.config.builders import build_model, build_simulation
from multiseal.config.load import validate_scenario

MODEL_STAGES = ("self_edit", "adapt", "evaluate")


def scenario(model: str, agents: int, rounds: int, kind: str, workers: int, threads: int) -> dict:
    return {
        "name": "bench-ray",
        "seed": 0,
        "rounds": rounds,
        "agents": agents,
        "model": {"base": model, "lora": {"rank": 16, "alpha": 32, "dropout": 0.0}, "threads": threads},
        "world": {"kind": "synthetic", "documents": agents * rounds, "questions_per_doc": [2, 2]},
        "arrivals": {"kind": "disjoint", "docs_per_round": 1},
        "self_edit": {"style": "rewrite", "max_new_tokens": 32},
        "inner_loop": {"epochs": 1, "lr": 2e-3, "batch_size": 1, "batching": "together"},
        "topology": {"kind": "complete"},
        "evaluation": {"max_new_tokens": 8, "retention_probe": 4, "drift_passages": 0},
        "execution": {"kind": kind, "workers": workers, "resources_per_worker": {"cpus": threads}},
    }


def fingerprint(sim) -> list:
    """Everything a run measured, NaN-safe, for the equality check."""
    return [
        sorted((a, k, "nan" if v != v else v) for a, m in r.agents.items() for k, v in m.items()) for r in sim.records
    ] + [[n.text for n in sim.state.notes_log]]


def run_arm(label: str, sc: dict, args) -> tuple[dict, list]:
    scn = validate_scenario(sc)
    t0 = time.perf_counter()
    population = None
    if scn.execution.kind == "ray":
        from multiseal.run.ray_population import start

        population = start(scn.model, scn.execution, progress=False)
        model = population
    else:
        model = build_model(scn.model, progress=False)
    startup = time.perf_counter() - t0
    try:
        sim = build_simulation(scn, model, progress=False)
        sim.run()
        later = sim.records[1:] or sim.records
        row = {
            "arm": label,
            "startup": startup,
            "round": float(
                np.mean([sum(v for k, v in r.seconds.items() if not k.startswith("worker.")) for r in later])
            ),
        }
        overhead = []
        for r in later:
            wall = sum(r.seconds.get(s, 0.0) for s in MODEL_STAGES)
            busiest = sum(
                max((v for k, v in r.seconds.items() if k.startswith("worker.") and k.endswith("." + s)), default=0.0)
                for s in MODEL_STAGES
            )
            overhead.append(wall - busiest if any(k.startswith("worker.") for k in r.seconds) else float("nan"))
        for s in MODEL_STAGES:
            row[s] = float(np.mean([r.seconds.get(s, 0.0) for r in later]))
        row["busy"] = float(np.mean([sum(v for k, v in r.seconds.items() if k.startswith("worker.")) for r in later]))
        row["overhead"] = float(np.mean(overhead))
        fp = fingerprint(sim)
        sim.close()
        return row, fp
    finally:
        if population is not None:
            population.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny-random")
    ap.add_argument("--agents", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads in-process and CPUs per Ray worker")
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.set_num_threads(args.threads)
    import ray

    ray.init(num_cpus=2 * args.threads, include_dashboard=False, log_to_driver=False, configure_logging=False)
    arms = [
        ("in-process", "local", 1),
        ("in-process, 2 groups", "local", 2),
        ("ray, 1 worker", "ray", 1),
        ("ray, 2 workers", "ray", 2),
    ]
    print(
        f"\n## {args.model}, {args.agents} agents, complete graph, {args.rounds} rounds, "
        f"{args.threads} thread(s) per process (seconds; per round = mean of rounds 2..{args.rounds})\n"
    )
    print("| arm | start-up | per round | self-edit | adapt | evaluate | workers busy | Ray overhead |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    prints: dict[int, list] = {}
    try:
        for label, kind, workers in arms:
            row, fp = run_arm(label, scenario(args.model, args.agents, args.rounds, kind, workers, args.threads), args)
            if workers in prints and fp != prints[workers]:
                raise SystemExit(f"{label}: the metrics differ from the in-process run with {workers} group(s)")
            prints.setdefault(workers, fp)
            busy = f"{row['busy']:.2f}" if kind == "ray" else "—"
            over = f"{row['overhead']:.2f}" if kind == "ray" else "—"
            print(
                f"| {label} | {row['startup']:.1f} | {row['round']:.2f} | {row['self_edit']:.2f} | {row['adapt']:.2f} "
                f"| {row['evaluate']:.2f} | {busy} | {over} |",
                flush=True,
            )
    finally:
        ray.shutdown()
    print("\nThe Ray arms' metrics equal the in-process arm's with the same number of groups (checked).")


if __name__ == "__main__":
    main()
