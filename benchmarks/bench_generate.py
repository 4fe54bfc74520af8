"""Generation speed: one sequence, a batch on the base, and a batch spread over several LoRA adapters.

Writing notes and answering questions are ``SharedModel.generate`` calls whose prompts belong to
different agents. This prints tokens per second (new tokens, all sequences) for four arms of the same
work on the device the model is on:

- ``batch 1``: one prompt at a time, no adapter (the per-sequence rate);
- ``batch B, base``: B prompts in one call, no adapter;
- ``batch B, A adapters mixed``: the same B prompts, round-robin over A adapters, in one call
  (peft's mixed-adapter forward, what a round does);
- ``batch B, A adapters one at a time``: the same prompts and adapters, one call per adapter.

Sampling at temperature 1 with the same seed in every arm; the adapters are fresh (LoRA's B is zero), so
every arm writes the same text. Tokens are counted by re-tokenising what was written (a sequence may
stop early at its end token). The first call of each arm is a warm-up.

    .venv/bin/python benchmarks/bench_generate.py --model tiny-random
    .venv/bin/python benchmarks/bench_generate.py --model smollm2-135m --batch 16 --adapters 4
"""
from __future__ import annotations

import argparse
import time

import torch

from multiseal.learning.model import build_shared_model
from multiseal.types import LoraSettings


def _sync(model) -> None:
    if model.device.type == "cuda":
        torch.cuda.synchronize()


def _timed(model, prompts, adapters, tokens: int) -> tuple[int, float]:
    """(tokens written, seconds) of one generate call, after one warm-up call."""
    for _ in range(2):
        _sync(model)
        t0 = time.perf_counter()
        out = model.generate(prompts, adapters, max_new_tokens=tokens, temperature=1.0, top_p=1.0, seed=0)
        _sync(model)
        seconds = time.perf_counter() - t0
    return sum(model.count_tokens(text) for text in out), seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--adapters", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=64, help="new tokens per sequence")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = build_shared_model(args.model, device=args.device, dtype=args.dtype, progress=False)
    for a in range(args.adapters):
        model.add_adapter(f"gen{a}", LoraSettings(rank=16, alpha=32), seed=a)
    prompts = [model.prompt(f"Write a short story about the town of Place{i} and its river.") for i in range(args.batch)]
    names = [f"gen{i % args.adapters}" for i in range(args.batch)]
    rows = [("batch 1, base", 1, *_timed(model, prompts[:1], [None], args.tokens)),
            (f"batch {args.batch}, base", args.batch, *_timed(model, prompts, [None] * args.batch, args.tokens)),
            (f"batch {args.batch}, {args.adapters} adapters mixed", args.batch,
             *_timed(model, prompts, names, args.tokens))]
    written, seconds = 0, 0.0
    for a in range(args.adapters):
        mine = [i for i, n in enumerate(names) if n == f"gen{a}"]
        w, s = _timed(model, [prompts[i] for i in mine], [names[i] for i in mine], args.tokens)
        written, seconds = written + w, seconds + s
    rows.append((f"batch {args.batch}, {args.adapters} adapters one at a time", args.batch, written, seconds))
    print(f"\n## generation, {args.model} on {model.device} ({next(model.model.parameters()).dtype}), "
          f"{args.tokens} new tokens per sequence, {args.threads} CPU thread(s)\n")
    print("| arm | sequences | tokens written | seconds | tokens/s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, n, written, seconds in rows:
        print(f"| {name} | {n} | {written} | {seconds:.2f} | {written / seconds:.0f} |")


if __name__ == "__main__":
    main()
