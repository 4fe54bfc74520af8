"""Inner-loop training speed: multiseal's length-bucketed ``train_adapter`` against a SEAL-style loop.

Both arms train a fresh LoRA adapter (same rank, alpha, target modules, learning rate, epochs) on the
SAME 16 sequences, a passage and its implications as ``training_sequences`` builds them, in the same
process on the same shared base model:

* multiseal: ``train_adapter`` with batch 8, each batch padded only to its own longest sequence;
* SEAL-style: Hugging Face ``transformers.Trainer`` with ``per_device_train_batch_size=1`` and every
  sequence padded to a fixed length (``padding="max_length"``). SEAL's inner-loop server
  (``knowledge-incorporation/src/inner/TTT_server.py``) tokenizes each sequence with
  ``padding="max_length", max_length=--max_seq_length`` (default 2048) and trains with batch 1 through
  ``Trainer``; 512 is used here by default (``--max-length``). SEAL copies ``input_ids`` to ``labels``,
  padding included; here padding is masked out of the loss so both arms optimise the same objective
  (the compute per step is the same either way).

Tokens are counted as REAL (non-padding) tokens for both arms: the rate is useful work per second.

    python benchmarks/bench_inner_loop.py                     # SmolLM2-135M, 2 epochs
    python benchmarks/bench_inner_loop.py --model tiny-random # quick check
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import tempfile
import time

import torch

from multiseal.learning.model import build_shared_model
from multiseal.learning.self_edit import training_sequences
from multiseal.learning.train import tokenize_sequences, train_adapter
from multiseal.types import Document, LoraSettings, TrainSettings

PASSAGE = Document(
    doc_id="bench",
    title="Harbour of Venntor",
    context=(
        "The harbour of Venntor, on the northern coast of the island of Kell, was built between 1712 and "
        "1730 by the shipwright guild of Ostra. Its basalt breakwater is 1.4 kilometres long and shelters "
        "ninety fishing boats. Every October the town holds the Lantern Regatta, in which boats sail out "
        "at dusk carrying paper lanterns."
    ),
    questions=(),
)
IMPLICATIONS = "\n".join(
    [
        "- Venntor's harbour lies on the northern coast of Kell.",
        "- The harbour of Venntor took eighteen years to build, from 1712 to 1730.",
        "- The shipwright guild of Ostra built the harbour of Venntor.",
        "- Ostra's shipwright guild was active in the early eighteenth century.",
        "- The breakwater of Venntor is made of black basalt.",
        "- The basalt breakwater of the harbour is 1.4 kilometres long.",
        "- Up to ninety fishing boats can shelter behind the breakwater of Venntor.",
        (
            "- Fishing is an important trade in the town of Venntor, whose harbour on the northern coast of "
            "Kell shelters as many as ninety fishing boats behind a breakwater of black basalt that is 1.4 "
            "kilometres long."
        ),
        "- Venntor is a town on the island of Kell.",
        "- The harbour of Venntor was finished in 1730.",
        (
            "- The guild that built the harbour of Venntor came from Ostra, and its shipwrights worked on "
            "the harbour for eighteen years."
        ),
        "- The Lantern Regatta takes place in Venntor every October.",
        "- During the Lantern Regatta, boats sail out of the harbour at dusk carrying paper lanterns.",
        (
            "- The Lantern Regatta is an autumn festival of the town of Venntor: it is held at dusk in "
            "October, every boat that leaves the harbour carries paper lanterns, and the people of Kell "
            "gather on the basalt breakwater to watch them sail out to sea."
        ),
        "- Since the harbour was finished in 1730, the regatta cannot be older than the harbour itself.",
    ]
)


def sequences() -> list[str]:
    """16 sequences: 15 implications and the passage, as an agent's inner loop receives them."""
    return training_sequences(IMPLICATIONS, PASSAGE, "implications")


def train_seal_style(
    model, adapter: str, data: list[list[int]], epochs: int, lr: float, max_length: int, seed: int
) -> float:
    """SEAL's inner loop: Trainer, batch 1, every sequence padded to ``max_length``; returns seconds."""
    from transformers import Trainer, TrainingArguments, default_data_collator

    pad = model.tokenizer.pad_token_id
    rows = []
    for ids in data:
        n = len(ids)
        input_ids = torch.full((max_length,), pad, dtype=torch.long)
        input_ids[:n] = torch.tensor(ids)
        mask = torch.zeros(max_length, dtype=torch.long)
        mask[:n] = 1
        rows.append({"input_ids": input_ids, "attention_mask": mask, "labels": input_ids.masked_fill(mask == 0, -100)})
    with tempfile.TemporaryDirectory() as out, model.training(adapter):
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=1,
            num_train_epochs=epochs,
            learning_rate=lr,
            lr_scheduler_type="constant",  # multiseal's inner loop keeps lr constant too
            weight_decay=0.0,
            save_strategy="no",
            logging_strategy="no",
            report_to=[],
            disable_tqdm=True,
            use_cpu=True,
            dataloader_num_workers=0,
            remove_unused_columns=False,
            seed=seed,
        )
        trainer = Trainer(model=model.peft, args=args, train_dataset=rows, data_collator=default_data_collator)
        t0 = time.perf_counter()
        trainer.train()
        return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=8, help="multiseal's batch size")
    parser.add_argument("--max-length", type=int, default=512, help="the SEAL-style arm's fixed padded length")
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
    lora = LoraSettings()
    seqs = sequences()
    data = tokenize_sequences(model.tokenizer, seqs, args.max_length)
    lengths = [len(x) for x in data]
    real = args.epochs * sum(lengths)

    # Warm-up (first-call allocations, kernel selection) on a throwaway adapter, timed by neither arm.
    model.add_adapter("warmup", lora, seed=args.seed)
    train_adapter(model, "warmup", seqs[:2], TrainSettings(epochs=1, lr=args.lr, batch_size=2), seed=args.seed)

    model.add_adapter("bucketed", lora, seed=args.seed)
    settings = TrainSettings(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, max_length=args.max_length)
    stats = train_adapter(model, "bucketed", seqs, settings, seed=args.seed)
    assert stats.tokens == real

    model.add_adapter("sealstyle", lora, seed=args.seed)
    seal_seconds = train_seal_style(model, "sealstyle", data, args.epochs, args.lr, args.max_length, args.seed)

    ours = stats.tokens / stats.seconds
    theirs = real / seal_seconds
    print(
        f"bench_inner_loop  {datetime.date.today()}  {platform.machine()}  model={args.model}  "
        f"threads={args.threads}  torch {torch.__version__}"
    )
    print(
        f"{len(data)} sequences, {min(lengths)}-{max(lengths)} tokens (mean {sum(lengths) / len(lengths):.0f}), "
        f"{args.epochs} epochs, lr {args.lr}, LoRA rank {lora.rank} alpha {lora.alpha:g} on "
        f"{', '.join(lora.target_modules)}"
    )
    print(f"real tokens per arm: {real}")
    print()
    print(f"{'arm':<48} {'seconds':>8} {'padded tok':>11} {'real tok/s':>11}")
    print(
        f"{'multiseal train_adapter (bucketed, batch ' + str(args.batch_size) + ')':<48} "
        f"{stats.seconds:>8.1f} {stats.padded_tokens:>11} {ours:>11.1f}"
    )
    seal_padded = args.epochs * len(data) * args.max_length
    print(
        f"{'SEAL-style Trainer (batch 1, pad to ' + str(args.max_length) + ')':<48} "
        f"{seal_seconds:>8.1f} {seal_padded:>11} {theirs:>11.1f}"
    )
    print()
    print(f"speed-up (real tokens/s, multiseal / SEAL-style): {ours / theirs:.1f}x")
    print(f"(SEAL's TTT_server pads to --max_seq_length, default 2048; this run pads to {args.max_length}.)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
