"""The inner loop: LoRA fine-tuning of one adapter on a list of training sequences.

Sequences are length-bucketed: sorted by length, cut into batches, each batch padded only to its own
longest sequence, so almost no compute goes to padding (SEAL's server pads every sequence to a fixed
length and trains with batch 1). The loss covers every real token, as in SEAL's knowledge
incorporation.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Sequence

import torch


@dataclass(frozen=True)
class InnerLoopSettings:
    """Inner-loop hyper-parameters (SEAL: 10 epochs, lr 1e-3, batch 1)."""

    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 1
    max_length: int = 256
    weight_decay: float = 0.0


@dataclass(frozen=True)
class TrainStats:
    sequences: int
    tokens: int  # real (non-pad) tokens processed, all epochs
    padded_tokens: int  # tokens including padding, all epochs
    seconds: float
    loss_first: float
    loss_last: float

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def tokenize_sequences(tokenizer, sequences: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of each sequence, ending with EOS, truncated to ``max_length``."""
    ids = tokenizer(list(sequences), add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    return [(x + [eos])[:max_length] for x in ids if x]


def length_buckets(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Batches of indices with similar lengths; batch order shuffled by ``rng`` each call.

    Sorting by length (ties broken randomly) before cutting keeps the padding inside each batch small.
    """
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], rng.random()))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def train_adapter(
    model,  # multiseal.model.SharedModel
    adapter: str,
    sequences: Sequence[str],
    settings: InnerLoopSettings,
    seed: int = 0,
    progress: str | None = None,
) -> TrainStats:
    """Fine-tune adapter ``adapter`` in place on ``sequences``; only its LoRA weights change.

    A fresh AdamW optimiser is made for each call (SEAL re-initialises it per self-edit). The
    training order is fixed by ``seed``.
    """
    data = tokenize_sequences(model.tokenizer, sequences, settings.max_length)
    if not data or settings.epochs <= 0:
        return TrainStats(len(data), 0, 0, 0.0, float("nan"), float("nan"))
    rng = random.Random(seed)
    pad = model.tokenizer.pad_token_id
    lengths = [len(x) for x in data]
    steps = settings.epochs * ((len(data) + settings.batch_size - 1) // settings.batch_size)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, desc=progress, leave=False, unit="step")
    tokens = padded = 0
    losses: list[float] = []
    t0 = time.perf_counter()
    with model.training(adapter) as params, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
        for _ in range(settings.epochs):
            for batch in length_buckets(lengths, settings.batch_size, rng):
                width = max(lengths[i] for i in batch)
                ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    ids[row, : lengths[i]] = torch.tensor(data[i])
                    mask[row, : lengths[i]] = 1
                labels = ids.masked_fill(mask == 0, -100)
                ids, mask, labels = (t.to(model.device) for t in (ids, mask, labels))
                loss = model.peft(input_ids=ids, attention_mask=mask, labels=labels).loss
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                losses.append(float(loss.detach()))
                tokens += int(mask.sum())
                padded += ids.numel()
                if bar:
                    bar.update(1)
    if bar:
        bar.close()
    return TrainStats(len(data), tokens, padded, time.perf_counter() - t0, losses[0], losses[-1])
