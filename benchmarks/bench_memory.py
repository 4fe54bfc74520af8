"""Resident memory of one shared base model plus 1, 4, 16 agents' LoRA adapters.

Each agent count runs in a fresh Python subprocess, so allocator caches and earlier runs do not leak
into the figure. In each subprocess RSS (``VmRSS`` from /proc/self/status) is read after the imports,
after loading the base, and after adding N adapters; the table reports the growth per agent next to
the size the adapters' parameter count predicts, and the base's own weight size.

    python benchmarks/bench_memory.py                      # SmolLM2-135M, rank 32, all linear layers
    python benchmarks/bench_memory.py --model tiny-random --agents 1 4
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import platform
import subprocess
import sys

MiB = 1024 * 1024


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def rss_bytes() -> int:
    """Current resident set size of this process."""
    gc.collect()
    return _status_kib("VmRSS") * 1024


def worker(model_name: str, agents: int, rank: int) -> dict:
    """Load the base, add ``agents`` adapters; memory and sizes as a dict (runs in a subprocess).

    Pages are not resident until touched (measured: RSS right after loading SmolLM2 was only ~66 MiB
    above the imports, the weights still unread), so the base is measured after one forward pass and
    the adapters after every adapter weight has been written once in place, as training does.
    """
    import torch

    torch.set_num_threads(1)
    import peft  # noqa: F401  (imported before the first reading, so "RSS base" is about the model)
    from transformers import AutoTokenizer, LlamaForCausalLM  # noqa: F401

    from multiseal.learning.model import build_shared_model
    from multiseal.types import LoraSettings

    rss_imports = rss_bytes()
    model = build_shared_model(model_name, progress=False)
    ids = model.tokenizer("The shared base model reads every weight once.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        model.model(input_ids=ids)
    rss_base = rss_bytes()
    settings = LoraSettings(rank=rank)
    for i in range(agents):
        model.add_adapter(f"agent{i}", settings, seed=i)
    with torch.no_grad():
        for i in range(agents):
            for p in model.adapter_parameters(f"agent{i}").values():
                p.mul_(1.0)
    rss_agents = rss_bytes()
    base = [p for k, p in model.model.named_parameters() if "lora_" not in k]
    adapter = model.adapter_parameters("agent0") if agents else {}
    return {
        "agents": agents,
        "rss_imports": rss_imports,
        "rss_base": rss_base,
        "rss_agents": rss_agents,
        "peak": _status_kib("VmHWM") * 1024,
        "base_params": sum(p.numel() for p in base),
        "base_bytes": sum(p.numel() * p.element_size() for p in base),
        "adapter_params": sum(p.numel() for p in adapter.values()),
        "adapter_bytes": sum(p.numel() * p.element_size() for p in adapter.values()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--agents", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(args.model, args.worker, args.rank)))
        return 0

    rows = []
    for n in args.agents:
        cmd = [sys.executable, __file__, "--model", args.model, "--rank", str(args.rank), "--worker", str(n)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))

    first = next((r for r in rows if r["agents"]), rows[0])
    print(
        f"bench_memory  {datetime.date.today()}  {platform.machine()}  model={args.model}  "
        f"LoRA rank {args.rank}, all linear layers, float32; one fresh process per row"
    )
    print(f"base weights: {first['base_params'] / 1e6:.1f} M parameters = {first['base_bytes'] / MiB:.1f} MiB")
    print(
        f"one adapter:  {first['adapter_params'] / 1e6:.2f} M parameters = {first['adapter_bytes'] / MiB:.1f} MiB "
        f"({100 * first['adapter_params'] / first['base_params']:.1f}% of the base)"
    )
    print()
    header = (
        f"{'agents':>6} {'RSS imports':>12} {'RSS base':>10} {'RSS agents':>11} "
        f"{'peak':>8} {'Δ/agent':>9} {'adapter':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        per = (r["rss_agents"] - r["rss_base"]) / r["agents"] if r["agents"] else 0.0
        print(
            f"{r['agents']:>6} {r['rss_imports'] / MiB:>10.0f}Mi {r['rss_base'] / MiB:>8.0f}Mi "
            f"{r['rss_agents'] / MiB:>9.0f}Mi {r['peak'] / MiB:>6.0f}Mi {per / MiB:>7.1f}Mi "
            f"{r['adapter_bytes'] / MiB:>7.1f}Mi"
        )
    print(
        "\nRSS imports: after importing torch, transformers and peft; RSS base: after loading the base and "
        "one forward pass;\nRSS agents: after adding the adapters and writing every adapter weight once, "
        "as training does;\n"
        "Δ/agent = (RSS agents - RSS base) / agents; adapter = parameter count x 4 bytes."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
