"""The cost curve: seconds per round by stage as the population grows, and the inner loop's share of
the machine's matrix-multiply rate, trained together against one agent at a time.

Part 1 (``scaling``). For each population size, graph (ring, complete) and evaluation mode (every
document, or the budget ``evaluation.sample_documents``), one simulation: every agent receives one new
document per round (disjoint arrivals, so the world has agents × rounds documents), writes notes,
shares them, trains on what it received (all agents together) and answers. The table gives the seconds
of the **second-to-last** round by stage (the last is always answered in full, budget or not)
(self-edit, sharing, adapt, evaluate, metrics) plus tracking (writing the
round's metrics to an MLflow SQLite store in a temporary folder, timed here), and the growth exponent
of each stage: the least-squares slope of log seconds against log agents.

``--kernels grouped peft`` repeats every row with peft's mixed-adapter forward (the old path) after
the grouped kernel (``model.lora_kernel``), in the same process.

Part 2 (``inner loop``). The same training work, ``agents`` adapters each on ``sequences`` sequences of
about 64 tokens with batch 1, trained together (one shared batch per step) and one agent after
another, in one process. Tokens per second are set against the fp32 matrix-multiply rate measured in
the same run (1024 × 1024 × 1024 ``torch.mm``), counting 4 × base parameters FLOPs per trained token
(forward and the activations' backward; the base weights get no gradient).

    .venv/bin/python benchmarks/bench_scaling.py --model tiny-random --agents 2 4 8 16 32 64
    .venv/bin/python benchmarks/bench_scaling.py --model smollm2-135m --agents 2 4 8 16
    .venv/bin/python benchmarks/bench_scaling.py --part inner --model smollm2-135m --agents 4 8
"""

from __future__ import annotations

import argparse
import itertools
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from multiseal.config.builders import build_simulation
from multiseal.config.load import validate_scenario
from multiseal.learning.model import build_shared_model
from multiseal.learning.train import inner_loop_job, train_jobs
from multiseal.run.recipes.simulation import round_metrics
from multiseal.types import LORA_KERNELS, LoraSettings, TrainSettings

STAGES = ("self_edit", "sharing", "adapt", "evaluate", "metrics", "tracking")


def scenario(model: str, agents: int, graph: str, sample: int | None, rounds: int, epochs: int) -> dict:
    return {
        "name": "bench-scaling",
        "seed": 0,
        "rounds": rounds,
        "agents": agents,
        "model": {"base": model, "lora": {"rank": 16, "alpha": 32}},
        "world": {"kind": "synthetic", "documents": agents * rounds, "questions_per_doc": [2, 2]},
        "arrivals": {"kind": "disjoint", "docs_per_round": 1},
        "self_edit": {"style": "rewrite", "max_new_tokens": 32},
        "inner_loop": {"epochs": epochs, "lr": 2e-3, "batch_size": 1},
        "topology": {"kind": graph},
        "evaluation": {
            "max_new_tokens": 8,
            "retention_probe": 4,
            "sample_documents": sample,
            "drift_passages": 0,
        },  # drift (issue 14) left out: rows stay comparable with earlier ones
    }


def tracking_seconds(metrics: dict[str, float], folder: Path) -> float:
    """Seconds to log one round's metrics to a fresh MLflow SQLite store (what a run does each round)."""
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    exp = client.create_experiment(f"bench-{time.time_ns()}")
    run = client.create_run(exp)
    t0 = time.perf_counter()
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, 1) for k, v in metrics.items() if v == v]
    for i in range(0, len(items), 1000):
        client.log_batch(run.info.run_id, metrics=items[i : i + 1000])
    seconds = time.perf_counter() - t0
    client.set_terminated(run.info.run_id)
    return seconds


def slope(xs: list[int], ys: list[float]) -> float:
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if y > 0]
    if len(pts) < 2:
        return math.nan
    return float(np.polyfit([p[0] for p in pts], [p[1] for p in pts], 1)[0])


def part_scaling(model, args) -> None:
    print(
        f"\n## seconds of round {args.rounds - 1} of {args.rounds} by stage ({args.model}, epochs {args.epochs}, "
        f"{torch.get_num_threads()} thread(s))\n"
    )
    print("| kernel | graph | evaluation | agents | " + " | ".join(STAGES) + " | total | answers | trained tokens |")
    print("| --- | --- | --- | ---: | " + " | ".join("---:" for _ in STAGES) + " | ---: | ---: | ---: |")
    curves: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    samples = {"all": None, "budget": args.sample}
    with tempfile.TemporaryDirectory() as tmp:
        for kernel, graph, (label, sample) in itertools.product(
            args.kernels,
            args.graphs,
            [(k if v is None else f"budget {v}", v) for k, v in samples.items() if k in args.evaluations],
        ):
            curve = curves.setdefault((kernel, graph, label), {s: [] for s in (*STAGES, "total")})
            model.lora_kernel = kernel
            for n in args.agents:
                if graph == "complete" and n > args.max_complete:
                    continue
                sc = validate_scenario(scenario(args.model, n, graph, sample, args.rounds, args.epochs))
                sim = build_simulation(sc, model, progress=False)
                sim.run()
                rec = sim.records[-2]
                sec = {s: rec.seconds.get(s, 0.0) for s in STAGES}
                sec["tracking"] = tracking_seconds(round_metrics(rec), Path(tmp))
                sim.close()
                total = sum(sec.values())
                for s in STAGES:
                    curve[s].append(sec[s])
                curve["total"].append(total)
                print(
                    f"| {kernel} | {graph} | {label} | {n} | "
                    + " | ".join(f"{sec[s]:.2f}" for s in STAGES)
                    + f" | {total:.2f} | {rec.work['answered']} | {rec.work['trained_tokens']} |",
                    flush=True,
                )
    print("\n## growth exponent by stage (slope of log seconds against log agents)\n")
    print("| kernel | graph | evaluation | agents | " + " | ".join(STAGES) + " | total |")
    print("| --- | --- | --- | --- | " + " | ".join("---:" for _ in STAGES) + " | ---: |")
    for (kernel, graph, label), curve in curves.items():
        xs = [n for n in args.agents if graph != "complete" or n <= args.max_complete]
        print(
            f"| {kernel} | {graph} | {label} | {xs[0]}-{xs[-1]} | "
            + " | ".join(f"{slope(xs, curve[s]):.2f}" for s in (*STAGES, "total"))
            + " |"
        )


def matmul_rate(seconds: float = 3.0) -> float:
    """fp32 FLOP/s of a 1024^3 matrix product on this process's threads."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    torch.mm(a, b)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        torch.mm(a, b)
        n += 1
    return n * 2 * 1024**3 / (time.perf_counter() - t0)


def part_inner(model, args) -> None:
    params = sum(p.numel() for p in model.model.parameters())
    settings = TrainSettings(epochs=1, lr=1e-3, batch_size=1)
    words = "the lighthouse of Varno was built in 1742 by the guild of glass makers and rebuilt after a storm".split()
    print(
        f"\n## inner loop: {args.sequences} sequences per agent, batch 1, one epoch ({args.model}, "
        f"{params / 1e6:.1f} M base parameters, {torch.get_num_threads()} thread(s))\n"
    )
    print("| agents | arm | seconds | trained tokens | tokens/s | share of matmul rate | speed-up |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for n in args.agents:
        names = [f"inner{n}x{a}" for a in range(n)]
        for a, name in enumerate(names):
            model.add_adapter(name, LoraSettings(rank=16, alpha=32), seed=a)
        seqs = {
            a: [" ".join(words[(a + k) % 7 :] + words[: (a + k) % 7]) * 3 for k in range(args.sequences)]
            for a in range(n)
        }
        rate = matmul_rate()
        out = {}
        for arm in ("one after another", "together"):
            jobs = [inner_loop_job(model, name, seqs[a], settings, seed=a) for a, name in enumerate(names)]
            t0 = time.perf_counter()
            if arm == "together":
                stats = train_jobs(model, jobs, together=True)
            else:
                stats = [train_jobs(model, [j])[0] for j in jobs]
            seconds = time.perf_counter() - t0
            tokens = sum(s.tokens for s in stats)
            out[arm] = (seconds, tokens)
        for arm, (seconds, tokens) in out.items():
            tps = tokens / seconds
            speed = out["one after another"][0] / seconds
            print(
                f"| {n} | {arm} | {seconds:.1f} | {tokens} | {tps:.0f} | {tps * 4 * params / rate:.0%} | {speed:.2f}x |",
                flush=True,
            )
        for name in names:
            model.delete_adapter(name)
    print(f"\nmatmul rate in this run: {rate / 1e9:.0f} GFLOP/s (last measured)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="tiny-random")
    ap.add_argument("--agents", type=int, nargs="+", default=[2, 4, 8, 16])
    ap.add_argument("--graphs", nargs="+", default=["ring", "complete"])
    ap.add_argument(
        "--max-complete",
        type=int,
        default=10**6,
        help="largest population on the complete graph (its training grows with agents squared)",
    )
    ap.add_argument("--sample", type=int, default=4, help="evaluation.sample_documents of the budgeted arm")
    ap.add_argument(
        "--evaluations",
        nargs="+",
        choices=["all", "budget"],
        default=["all", "budget"],
        help="every document answered, and/or the budgeted arm",
    )
    ap.add_argument(
        "--kernels",
        nargs="+",
        choices=list(LORA_KERNELS),
        default=["grouped"],
        help="model.lora_kernel: how batches mixing agents' adapters run (grouped, or peft's old path)",
    )
    ap.add_argument("--rounds", type=int, default=3, help="at least 2: the second-to-last round is measured")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--sequences", type=int, default=8, help="inner loop: sequences per agent")
    ap.add_argument("--part", choices=["scaling", "inner", "both"], default="both")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = build_shared_model(args.model, progress=False)
    if args.part in ("scaling", "both"):
        part_scaling(model, args)
    if args.part in ("inner", "both"):
        part_inner(model, args)


if __name__ == "__main__":
    main()
