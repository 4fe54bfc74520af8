"""Supervised fine-tuning of a writer on (prompt → completion) pairs, the loss on the completion only.

ReST-EM's M-step: the adapter that writes self-edits is trained to reproduce the self-edits that
earned a reward, given the same prompt it sampled them from. The prompt is tokenised exactly as
``SharedModel.generate`` sees it (already formatted, no special tokens added) and the completion is
appended followed by EOS, which is where generation stopped; prompt and padding positions are masked
out of the loss (label -100), so the writer learns *what to write*, not to predict the passage.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Sequence

import torch

from multiseal.adapt import TrainStats, length_buckets


@dataclass(frozen=True)
class SftSettings:
    """Writer fine-tuning hyper-parameters (a fresh AdamW per call, constant lr)."""

    epochs: int = 2
    lr: float = 3e-4
    batch_size: int = 4
    max_length: int = 512


@dataclass(frozen=True)
class Example:
    """One tokenised pair: ``ids`` = prompt + completion + EOS, the first ``prompt_len`` unscored."""

    ids: list[int]
    prompt_len: int

    @property
    def labels(self) -> list[int]:
        return [-100] * self.prompt_len + self.ids[self.prompt_len :]


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


def finetune_on_completions(
    model,  # multiseal.model.SharedModel
    adapter: str,
    pairs: Sequence[tuple[str, str]],
    settings: SftSettings,
    seed: int = 0,
    progress: str | None = None,
) -> TrainStats:
    """Train adapter ``adapter`` in place to write each completion after its prompt.

    ``pairs`` are (formatted prompt, completion). Only the adapter's LoRA weights change. Token counts
    in the returned stats are scored (completion) tokens; ``padded_tokens`` counts every position.
    """
    data = tokenize_pairs(model.tokenizer, pairs, settings.max_length)
    if not data or settings.epochs <= 0:
        return TrainStats(len(data), 0, 0, 0.0, float("nan"), float("nan"))
    rng = random.Random(seed)
    lengths = [len(e.ids) for e in data]
    pad = model.tokenizer.pad_token_id
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
        opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0)
        for _ in range(settings.epochs):
            for batch in length_buckets(lengths, settings.batch_size, rng):
                enc = {k: v.to(model.device) for k, v in collate([data[i] for i in batch], pad).items()}
                loss = model.peft(**enc).loss
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                losses.append(float(loss.detach()))
                tokens += int((enc["labels"] != -100).sum())
                padded += enc["input_ids"].numel()
                if bar:
                    bar.update(1)
    if bar:
        bar.close()
    return TrainStats(len(data), tokens, padded, time.perf_counter() - t0, losses[0], losses[-1])


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
