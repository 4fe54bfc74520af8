"""Where a decode step's time goes: torch's profiler over one batch of generation, by operator.

Runs ``SharedModel.generate``'s path (one ``serving`` context, ``generate`` with every row forced to
write ``--tokens`` tokens) on a batch of ``--batch`` prompts spread over ``--adapters`` LoRA adapters
(0 = the base, no adapter loaded) with ``--kernel`` (grouped or peft), after a warm-up call, and prints
the operators that took the most self CPU time, then the share of the wall time spent inside any
operator at all: the rest is Python (transformers' generate loop, peft's and multiseal's layer code).

    .venv/bin/python benchmarks/profile_decode.py --model smollm2-135m --batch 16 --adapters 16
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from multiseal.learning.model import build_shared_model
from multiseal.types import LoraSettings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--adapters", type=int, default=16)
    ap.add_argument("--kernel", default="grouped", choices=["grouped", "peft"])
    ap.add_argument("--rank", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = build_shared_model(args.model, progress=False, lora_kernel=args.kernel)
    names = []
    for a in range(args.adapters):
        model.add_adapter(f"gen{a}", LoraSettings(rank=args.rank, alpha=2 * args.rank), seed=a)
        names.append(f"gen{a}")
    rows = [names[i % len(names)] if names else None for i in range(args.batch)]
    tok = model.tokenizer
    tok.padding_side = "left"
    prompts = [
        model.prompt(f"Write a short story about the town of Place{i} and its river.") for i in range(args.batch)
    ]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)

    def run():
        with model.serving(names) as serve:
            serve.generate(
                enc,
                rows,
                max_new_tokens=args.tokens,
                min_new_tokens=args.tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=tok.pad_token_id,
            )

    run()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        run()
        wall = time.perf_counter() - t0
    events = prof.key_averages()
    ops = sum(e.self_cpu_time_total for e in events) / 1e6
    print(
        f"\n## decode profile: {args.model}, batch {args.batch}, {args.adapters} adapter(s), kernel {args.kernel}, "
        f"{args.tokens} tokens, {args.threads} thread(s)\n"
    )
    print(
        f"wall {wall:.2f} s ({wall / args.tokens * 1e3:.0f} ms per step incl. prefill); inside operators "
        f"{ops:.2f} s ({ops / wall:.0%}); outside (Python) {wall - ops:.2f} s ({(wall - ops) / wall:.0%})\n"
    )
    print("| operator | calls | self CPU s | share of wall |")
    print("| --- | ---: | ---: | ---: |")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[: args.top]:
        s = e.self_cpu_time_total / 1e6
        print(f"| {e.key} | {e.count} | {s:.3f} | {s / wall:.1%} |")


if __name__ == "__main__":
    main()
