"""Evaluating all agents in shared batches vs one agent after another.

Every agent answers the same closed-book questions. Arm A: one ``answer_and_grade`` call over all
(agent, question) pairs — prompts of different agents share batches through peft's mixed-adapter
inference. Arm B: one call per agent (what a loop over agents does). Both arms use the same batch
size limit and greedy decoding, and must give identical answers; the ratio is what batching buys.

    .venv/bin/python benchmarks/bench_eval.py [--model tiny-random] [--agents 4] [--documents 4]
"""

from __future__ import annotations

import argparse
import time

import torch

from multiseal.learning.evaluate import answer_and_grade
from multiseal.learning.model import build_shared_model
from multiseal.learning.self_edit import passage_sequence
from multiseal.learning.train import train_adapter
from multiseal.types import EvalSettings, LoraSettings, TrainSettings
from multiseal.world.synthetic import generate_world


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--agents", type=int, default=4)
    ap.add_argument("--documents", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = build_shared_model(args.model, progress=False)
    world = generate_world(args.documents, seed=0, questions_per_doc=(4, 4))
    questions = [q for d in world.documents for q in d.questions]
    names = []
    for a in range(args.agents):  # distinct adapters: each trained briefly on a different passage
        name = f"bench{a}"
        model.add_adapter(name, LoraSettings(rank=16, alpha=32), seed=a)
        doc = world.documents[a % len(world.documents)]
        train_adapter(model, name, [passage_sequence(doc)], TrainSettings(epochs=1, lr=1e-3), seed=a)
        names.append(name)
    settings = EvalSettings(max_new_tokens=16, batch_size=args.batch_size)
    pairs = [(n, q) for n in names for q in questions]

    t0 = time.perf_counter()
    shared = answer_and_grade(model, pairs, settings, progress=None)
    t_shared = time.perf_counter() - t0
    t0 = time.perf_counter()
    looped = []
    for n in names:
        looped += answer_and_grade(model, [(n, q) for q in questions], settings, progress=None)
    t_loop = time.perf_counter() - t0
    same = sum(a.answer == b.answer for a, b in zip(shared, looped))
    print(
        f"model {args.model}, {args.agents} agents x {len(questions)} questions = {len(pairs)} answers, "
        f"batch limit {args.batch_size}, {args.threads} thread(s)"
    )
    print(f"shared batches (all agents at once) {t_shared:8.1f} s")
    print(f"one agent after another             {t_loop:8.1f} s")
    print(f"speed-up {t_loop / t_shared:.2f}x; identical answers {same}/{len(pairs)}")


if __name__ == "__main__":
    main()
