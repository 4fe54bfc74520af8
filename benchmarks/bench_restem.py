"""Cost of one ReST-EM iteration: seconds per candidate evaluated, and where the time goes.

One E-step and M-step as ``multiseal.rl.restem.run_restem`` does them, on a synthetic world:

1. generation: k self-edits per (agent, training document), one batched ``generate`` call;
2. pre-update answers per (learner, document), once (``BaselineCache``);
3. candidate evaluation: one trial per (candidate, learner) = train a temporary adapter + answer the
   document's questions. Run twice on the SAME candidates:
   * batched: ``trial_batch`` temporary adapters trained, then ONE answering pass over all of them;
   * one by one: ``trial_batch = 1``, an answering pass per trial (what a naive loop does);
   the baselines are cached, so the second arm pays no baseline cost (printed apart);
4. SFT of the writers on the kept self-edits.

    python benchmarks/bench_restem.py                      # SmolLM2-135M, 1 agent, 3 docs, k=3
    python benchmarks/bench_restem.py --model tiny-random  # quick check
    python benchmarks/bench_restem.py --agents 2 --reward mixed
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from dataclasses import replace

import torch

from multiseal.learning.model import build_shared_model
from multiseal.rl.restem import (
    WRITER_TRAINING,
    RestemSettings,
    reward_and_select,
    sample_candidates,
    score_candidates,
    train_writers,
)
from multiseal.rl.restem_setup import RestemAgent, learners
from multiseal.rl.rewards import reward_stats
from multiseal.rl.trials import BaselineCache, Clock
from multiseal.types import (
    EvalSettings,
    LoraSettings,
    SelfEditSettings,
    TrainSettings,
)
from multiseal.world.synthetic import generate_world


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--agents", type=int, default=1)
    parser.add_argument("--docs", type=int, default=3, help="training documents")
    parser.add_argument("--questions", type=int, default=4, help="questions per document")
    parser.add_argument("--k", type=int, default=3, help="candidates per (agent, document)")
    parser.add_argument("--reward", default="self", choices=("self", "neighbours", "mixed"))
    parser.add_argument("--epochs", type=int, default=4, help="inner-loop epochs")
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=80)
    parser.add_argument("--trial-batch", type=int, default=16)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (1: on a shared 2-core machine more threads wait on each other)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = build_shared_model(args.model, progress=False)
    lora = LoraSettings(rank=args.rank, alpha=2.0 * args.rank)
    inner = TrainSettings(epochs=args.epochs, lr=2e-3, batch_size=8)
    docs = generate_world(args.docs, args.seed, questions_per_doc=(args.questions, args.questions)).documents
    agents = []
    for i in range(args.agents):
        model.add_adapter(f"agent{i}", lora, seed=i)
        model.add_adapter(f"writer{i}", lora, seed=100 + i)
        agents.append(
            RestemAgent(
                f"agent{i}", f"writer{i}", "implications", inner, tuple((j, 1.0) for j in range(args.agents) if j != i)
            )
        )
    settings = RestemSettings(
        candidates=args.k,
        reward=args.reward,
        trial_batch=args.trial_batch,
        sft=replace(WRITER_TRAINING, epochs=3, lr=1e-3, batch_size=2),
    )
    evaluation = EvalSettings(max_new_tokens=16)
    write = SelfEditSettings(max_new_tokens=args.max_new_tokens)

    def roles(a: int):
        return [("self" if v == a else "neighbour", v) for v in learners(a, agents, settings.reward)]

    clock = Clock()
    with clock("generate"):
        cands = sample_candidates(model, agents, docs, write, args.k, seed=args.seed)
    generated = sum(model.count_tokens(c.completion) for c in cands)
    cache = BaselineCache()
    batched = Clock()
    t0 = time.perf_counter()
    score_candidates(model, agents, cands, settings, evaluation, cache, roles=roles, seed=args.seed, clock=batched)
    batched_total = time.perf_counter() - t0
    scores_batched = [dict(c.scores) for c in cands]
    single = Clock()
    t0 = time.perf_counter()
    score_candidates(
        model,
        agents,
        cands,
        RestemSettings(candidates=args.k, reward=args.reward, trial_batch=1),
        evaluation,
        cache,
        roles=roles,
        seed=args.seed,
        clock=single,
    )
    single_total = time.perf_counter() - t0
    agree = sum(a == dict(c.scores) for a, c in zip(scores_batched, cands)) / len(cands)
    reward_and_select(cands, settings)
    with clock("sft"):
        train_writers(model, agents, cands, settings, cache, seed=args.seed, progress=None)

    n, trials = len(cands), sum(len(c.scores) for c in cands)
    phases = {
        "generation": clock.seconds["generate"],
        "training (inner loop)": batched.seconds["train"],
        "evaluation (answers)": batched.seconds["answer"],
        "pre-update answers (once)": batched.seconds["baseline"],
        "writer SFT": clock.seconds["sft"],
    }
    total = sum(phases.values())
    stats = reward_stats([c.reward for c in cands])
    print(
        f"bench_restem  {datetime.date.today()}  {platform.machine()}  model={args.model}  threads={args.threads}  "
        f"torch {torch.__version__}"
    )
    print(
        f"{args.agents} agent(s) × {args.docs} documents × k={args.k} = {n} candidates, reward '{args.reward}' "
        f"({trials} trials), {args.questions} questions/document, inner loop {args.epochs} epochs, LoRA rank "
        f"{args.rank}, {generated} self-edit tokens generated"
    )
    print(
        f"rewards: mean {stats['mean']:.3f}, max {stats['max']:.3f}, positive share {stats['positive_share']:.2f}, "
        f"kept {sum(c.kept for c in cands)}"
    )
    print()
    print(f"{'phase (batched iteration)':<30} {'seconds':>8} {'share':>7}")
    for name, s in phases.items():
        print(f"{name:<30} {s:>8.1f} {s / total:>7.1%}")
    print(f"{'total':<30} {total:>8.1f}")
    print()
    per_b = (batched.seconds["train"] + batched.seconds["answer"]) / n
    per_s = (single.seconds["train"] + single.seconds["answer"]) / n
    print(f"{'candidate evaluation':<30} {'s/candidate':>11} {'train s':>8} {'answer s':>9} {'answer passes':>14}")
    print(
        f"{'batched (trial_batch ' + str(args.trial_batch) + ')':<30} {per_b:>11.2f} {batched.seconds['train']:>8.1f} "
        f"{batched.seconds['answer']:>9.1f} {-(-trials // args.trial_batch):>14}"
    )
    print(
        f"{'one by one (trial_batch 1)':<30} {per_s:>11.2f} {single.seconds['train']:>8.1f} "
        f"{single.seconds['answer']:>9.1f} {trials:>14}"
    )
    print(
        f"answering speed-up from batching: {single.seconds['answer'] / batched.seconds['answer']:.1f}x; "
        f"pre-update answers {batched.seconds['baseline']:.1f}s once instead of per candidate; "
        f"same grades in both arms for {agree:.0%} of candidates"
    )
    print(f"wall: batched scoring {batched_total:.1f}s, one-by-one scoring {single_total:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
