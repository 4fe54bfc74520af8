"""One training loop for every LoRA update: the inner loop and ReST-EM's writer fine-tuning.

Both train an adapter in place on tokenised examples. An ``Example`` is token ids plus how many
leading tokens are left out of the loss (label -100):

* the **inner loop** (``train_adapter``) scores every token of a sequence, as SEAL's knowledge
  incorporation does: ``prompt_len = 0``;
* **writer fine-tuning** (``finetune_on_completions``, ReST-EM's M-step) scores only the completion
  after its prompt, so the writer learns *what to write*, not to predict the passage. The prompt is
  tokenised exactly as ``SharedModel.generate`` sees it (formatted, no special tokens added) and the
  completion is followed by EOS, which is where generation stopped.

Sequences are length-bucketed: sorted by length, cut into batches, each batch padded only to its own
longest sequence (SEAL's server pads every sequence to a fixed length and trains with batch 1). A
fresh AdamW optimiser is made for each call (SEAL re-initialises it per self-edit); the training
order and any dropout are fixed by ``seed``.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Sequence

import torch
from tqdm import tqdm

from multiseal.types import TrainSettings


@dataclass(frozen=True)
class TrainStats:
    sequences: int
    tokens: int  # scored (non-pad, non-prompt) tokens processed, all epochs
    padded_tokens: int  # tokens including padding, all epochs
    seconds: float
    loss_first: float
    loss_last: float

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Example:
    """One tokenised example: ``ids``, the first ``prompt_len`` of them left out of the loss."""

    ids: list[int]
    prompt_len: int = 0

    @property
    def labels(self) -> list[int]:
        return [-100] * self.prompt_len + self.ids[self.prompt_len :]


def tokenize_sequences(tokenizer, sequences: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of each sequence, ending with EOS, truncated to ``max_length``."""
    ids = tokenizer(list(sequences), add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    return [(x + [eos])[:max_length] for x in ids if x]


def tokenize_pairs(tokenizer, pairs: Sequence[tuple[str, str]], max_length: int) -> list[Example]:
    """Examples from formatted prompts and raw completions.

    The completion is cut (never the prompt) when the pair exceeds ``max_length``; a pair whose prompt
    alone leaves no room for a completion token is dropped, as is an empty completion.
    """
    out = []
    eos = tokenizer.eos_token_id
    for prompt, completion in pairs:
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        c = tokenizer(completion, add_special_tokens=False)["input_ids"] if completion.strip() else []
        if not c or len(p) >= max_length:
            continue
        out.append(Example((p + c + [eos])[:max_length], len(p)))
    return out


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (-100 on prompt and padding)."""
    width = max(len(e.ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.ids)
        ids[row, :n] = torch.tensor(e.ids)
        mask[row, :n] = 1
        labels[row, :n] = torch.tensor(e.labels)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def length_buckets(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Batches of indices with similar lengths; batch order shuffled by ``rng`` each call.

    Sorting by length (ties broken randomly) before cutting keeps the padding inside each batch small.
    """
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], rng.random()))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def train_examples(model, adapter: str, data: Sequence[Example], *, epochs: int, lr: float, batch_size: int,
                   weight_decay: float = 0.0, seed: int = 0, progress: str | None = None) -> TrainStats:
    """The loop: ``epochs`` passes of length-bucketed batches, AdamW, loss on the labelled tokens.

    ``model`` is a :class:`multiseal.learning.model.SharedModel`; only adapter ``adapter``'s LoRA
    weights change. Token counts in the stats are scored tokens; ``padded_tokens`` counts every
    position.
    """
    if not data or epochs <= 0:
        return TrainStats(len(data), 0, 0, 0.0, float("nan"), float("nan"))
    rng = random.Random(seed)
    lengths = [len(e.ids) for e in data]
    pad = model.tokenizer.pad_token_id
    steps = epochs * ((len(data) + batch_size - 1) // batch_size)
    tokens = padded = 0
    losses: list[float] = []
    t0 = time.perf_counter()
    with (model.training(adapter) as params, torch.random.fork_rng(devices=[]),
          tqdm(total=steps, desc=progress, leave=False, unit="step", disable=not progress) as bar):
        torch.manual_seed(seed)
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        for _ in range(epochs):
            for batch in length_buckets(lengths, batch_size, rng):
                enc = {k: v.to(model.device) for k, v in collate([data[i] for i in batch], pad).items()}
                loss = model.peft(**enc).loss
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                losses.append(float(loss.detach()))
                tokens += int((enc["labels"] != -100).sum())
                padded += enc["input_ids"].numel()
                bar.update(1)
    return TrainStats(len(data), tokens, padded, time.perf_counter() - t0, losses[0], losses[-1])


def train_adapter(model, adapter: str, sequences: Sequence[str], settings: TrainSettings, seed: int = 0,
                  progress: str | None = None) -> TrainStats:
    """The inner loop: fine-tune ``adapter`` in place on ``sequences``, every token scored."""
    data = [Example(ids) for ids in tokenize_sequences(model.tokenizer, sequences, settings.max_length)]
    return train_examples(model, adapter, data, epochs=settings.epochs, lr=settings.lr,
                          batch_size=settings.batch_size, weight_decay=settings.weight_decay, seed=seed,
                          progress=progress)


def finetune_on_completions(model, adapter: str, pairs: Sequence[tuple[str, str]], settings: TrainSettings,
                            seed: int = 0, progress: str | None = None) -> TrainStats:
    """ReST-EM's M-step: train ``adapter`` to write each completion after its (formatted) prompt."""
    data = tokenize_pairs(model.tokenizer, pairs, settings.max_length)
    return train_examples(model, adapter, data, epochs=settings.epochs, lr=settings.lr,
                          batch_size=settings.batch_size, seed=seed, progress=progress)


@torch.no_grad()
def completion_loss(model, adapter: str | None, pairs: Sequence[tuple[str, str]], max_length: int = 512) -> float:
    """Mean per-token negative log-likelihood of the completions given their prompts (None = base)."""
    data = tokenize_pairs(model.tokenizer, pairs, max_length)
    enc = {k: v.to(model.device) for k, v in collate(data, model.tokenizer.pad_token_id).items()}
    if model.peft is None:
        return float(model.model(**enc).loss)
    if adapter is None:
        with model.peft.disable_adapter():
            return float(model.peft(**enc).loss)
    model.peft.set_adapter(adapter)
    model.peft.eval()
    return float(model.peft(**enc).loss)
