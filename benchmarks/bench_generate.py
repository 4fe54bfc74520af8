"""Generation speed: one sequence, a batch on the base, and a batch spread over 1 to 64 LoRA adapters.

Writing notes and answering questions are ``SharedModel.generate`` calls whose prompts belong to
different agents. This prints, in one run on the device the model is on, tokens per second (new
tokens, all sequences) for the same work done several ways:

- ``no adapters loaded``: the bare base model, before any adapter exists (batch 1 and batch B);
- ``base, N adapters loaded``: the same prompts on the base while N adapters sit on the model
  (a loaded adapter must cost the base nothing);
- ``B rows over A adapters``: the B prompts round-robin over A adapters in one call, for A in
  ``--adapters`` (1, 4, 16 and 64 by default; A above B means A prompts in batches of B, every batch
  mixing B adapters), with the grouped kernel (``model.lora_kernel: grouped``, the default) and with
  peft's mixed-adapter forward (``peft``, the old path);
- optionally (``--one-at-a-time``) one call per adapter.

Then the decode step at batch B: seconds per generated token of the whole batch (a 1-token call
subtracted from a ``--tokens`` call, every row forced to write them all), on the base and over B
adapters, beside its arithmetic bound: 2 × (parameters the step multiplies) × B floating-point
operations at the matrix-multiply rate measured in the same run (a ``--gemm``-sized float32 product).

Greedy decoding with every row forced to write ``--tokens`` tokens, so every arm does the same work;
the adapters get random B matrices, so they change the output and are really applied. Each arm runs
what ``SharedModel.generate`` runs (batches of B through one ``SharedModel.serving`` context) and is
timed after a warm-up call. Ratios are what to compare: they come from one process, back to back.

    .venv/bin/python benchmarks/bench_generate.py --model tiny-random
    .venv/bin/python benchmarks/bench_generate.py --model smollm2-135m --batch 16 --tokens 32
"""

from __future__ import annotations

import argparse
import time

import torch

from multiseal.learning.model import build_shared_model
from multiseal.types import LoraSettings


def _sync_all() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _encode(model, prompts):
    tok = model.tokenizer
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    return {k: v.to(model.device) for k, v in enc.items()}


def _generate(model, prompts, adapters, tokens: int, batch: int) -> None:
    """What ``SharedModel.generate`` does (batches of ``batch`` rows, one serving context for the call),
    greedy, with every row forced to write ``tokens`` tokens so that every arm does the same work."""
    with model.serving([a for a in adapters if a is not None]) as serve:
        for i in range(0, len(prompts), batch):
            serve.generate(
                _encode(model, prompts[i : i + batch]),
                adapters[i : i + batch],
                max_new_tokens=tokens,
                min_new_tokens=tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=model.tokenizer.pad_token_id,
            )


def _best(fn, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls of ``fn``, after one warm-up call."""
    times = []
    for k in range(1 + repeats):
        _sync_all()
        t0 = time.perf_counter()
        fn()
        _sync_all()
        if k:
            times.append(time.perf_counter() - t0)
    return min(times)


def _timed(model, prompts, adapters, tokens: int, batch: int) -> tuple[int, float]:
    """(tokens written, seconds) of one call."""
    return len(prompts) * tokens, _best(lambda: _generate(model, prompts, adapters, tokens, batch), 1)


def _step(model, prompts, adapters, tokens: int) -> float:
    """Seconds per decode step of one batch: a ``tokens``-token call minus a 1-token call."""
    b = len(prompts)
    long = _best(lambda: _generate(model, prompts, adapters, tokens, b), 2)
    short = _best(lambda: _generate(model, prompts, adapters, 1, b), 2)
    return (long - short) / (tokens - 1)


def _products_alone(model, rows: int) -> float:
    """Seconds of the matrix products one decode step of ``rows`` rows makes on the base: every linear
    weight of the model (LoRA's own excluded), in its real layout, applied to ``rows`` rows once."""
    weights = [m.weight for n, m in model.model.named_modules() if isinstance(m, torch.nn.Linear) and "lora_" not in n]
    xs = {w.shape[1]: torch.randn(rows, w.shape[1], device=w.device, dtype=w.dtype) for w in weights}

    def step():
        for w in weights:
            torch.nn.functional.linear(xs[w.shape[1]], w)

    with torch.no_grad():
        return _best(step, 3)


def _gemm_rate(device, dtype, size: int) -> float:
    """Floating-point operations per second of a ``size``-cubed matrix product (best of 5)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    return 2 * size**3 / _best(lambda: a @ b, 5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--adapters", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--rank", type=int, default=32, help="LoRA rank (all linear layers; SEAL's and multiseal's 32)")
    ap.add_argument("--tokens", type=int, default=32, help="new tokens per sequence")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--gemm", type=int, default=1024, help="size of the product that measures the arithmetic rate")
    ap.add_argument("--one-at-a-time", action="store_true", help="add the arm with one call per adapter")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = build_shared_model(args.model, device=args.device, dtype=args.dtype, progress=False)
    dtype = next(model.model.parameters()).dtype
    b = args.batch
    most = max(args.adapters)
    prompts = [
        model.prompt(f"Write a short story about the town of Place{i} and its river.") for i in range(max(b, most))
    ]
    rows: list[tuple[str, int, int, float]] = []

    def arm(name, ps, adapters):
        rows.append((name, len(ps), *_timed(model, ps, adapters, args.tokens, b)))

    arm("batch 1, no adapters loaded", prompts[:1], [None])
    arm(f"batch {b}, no adapters loaded", prompts[:b], [None] * b)
    bare_step = _step(model, prompts[:b], [None] * b, args.tokens)
    for a in range(most):
        model.add_adapter(f"gen{a}", LoraSettings(rank=args.rank, alpha=2 * args.rank), seed=a)
    with torch.no_grad():  # fresh LoRA has B = 0; give every adapter an effect of its own
        g = torch.Generator().manual_seed(0)
        for k, p in model.peft.named_parameters():
            if ".lora_B." in k:
                p.copy_(torch.randn(p.shape, generator=g).to(p) * 0.01)
    arm(f"batch 1, base, {most} adapters loaded", prompts[:1], [None])
    arm(f"batch {b}, base, {most} adapters loaded", prompts[:b], [None] * b)
    base_rate = rows[-1][2] / rows[-1][3]
    for n in args.adapters:
        ps = prompts[: max(b, n)]
        names = [f"gen{i % n}" for i in range(len(ps))]
        for kernel in ("grouped", "peft"):
            model.lora_kernel = kernel
            arm(f"batch {b}, {len(ps)} rows over {n} adapter(s), {kernel}", ps, names)
        model.lora_kernel = "grouped"
    if args.one_at_a_time:
        n = min(b, most)
        written, seconds = 0, 0.0
        for a in range(n):
            mine = [prompts[i] for i in range(b) if i % n == a]
            w, s = _timed(model, mine, [f"gen{a}"] * len(mine), args.tokens, b)
            written, seconds = written + w, seconds + s
        rows.append((f"batch {b} over {n} adapters, one call per adapter", b, written, seconds))
    mixed = [f"gen{i % b}" for i in range(b)]
    base_step = _step(model, prompts[:b], [None] * b, args.tokens)
    grouped_step = _step(model, prompts[:b], mixed, args.tokens)
    model.lora_kernel = "peft"
    peft_step = _step(model, prompts[:b], mixed, args.tokens)
    model.lora_kernel = "grouped"

    rate = _gemm_rate(model.device, dtype, args.gemm)
    alone = _products_alone(model, b)
    n_base = sum(p.numel() for n, p in model.model.named_parameters() if "lora_" not in n and "embed_tokens" not in n)
    head = model.model.get_output_embeddings().weight.numel()
    n_mult = n_base + (head if model.model.config.tie_word_embeddings else 0)
    n_lora = sum(p.numel() for n, p in model.model.named_parameters() if ".gen0." in n)
    bound_base = 2 * n_mult * b / rate
    bound_mixed = 2 * (n_mult + n_lora) * b / rate

    print(
        f"\n## generation, {args.model} on {model.device} ({dtype}), {args.tokens} new tokens per sequence, "
        f"LoRA rank {args.rank} on all linear layers, {args.threads} CPU thread(s)\n"
    )
    print("| arm | sequences | tokens written | seconds | tokens/s | × base at batch " + str(b) + " |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, n, written, seconds in rows:
        r = written / seconds
        print(f"| {name} | {n} | {written} | {seconds:.2f} | {r:.1f} | {r / base_rate:.2f} |")
    print(f"\n### decode step, batch {b}\n")
    print(
        f"matrix-multiply rate ({args.gemm}³, {dtype}): {rate / 1e9:.1f} GFLOP/s; "
        f"a step multiplies {n_mult / 1e6:.1f} M base parameters (+{n_lora / 1e6:.2f} M per row's adapter)\n"
    )
    print(
        f"the step's base matrix products alone ({b} rows through every linear weight once): {alone * 1e3:.1f} ms, "
        f"{2 * n_mult * b / alone / 1e9:.1f} GFLOP/s\n"
    )
    print("| step | seconds | arithmetic bound | × arithmetic bound | × base products alone |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, s, bound in (
        ("base, no adapters loaded", bare_step, bound_base),
        (f"base, {most} adapters loaded", base_step, bound_base),
        (f"{b} rows over {b} adapters, grouped", grouped_step, bound_mixed),
        (f"{b} rows over {b} adapters, peft", peft_step, bound_mixed),
    ):
        print(f"| {name} | {s * 1e3:.1f} ms | {bound * 1e3:.1f} ms | {s / bound:.2f} | {s / alone:.2f} |")


if __name__ == "__main__":
    main()
