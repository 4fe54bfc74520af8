"""Continuous forgetting measures: how far an adapter has moved the model on general text.

Both come from the same forward passes over a fixed set of general-text passages
(:func:`multiseal.world.general_text.general_passages`), every token position scored:

* **perplexity ratio** — ``exp(mean NLL)`` of the passages under the adapter, divided by the same under
  the base model (1.0: no change; above 1: the adapter predicts ordinary text worse);
* **KL to the base** — the mean over positions of ``KL(p_base || p_adapter)`` of the next-token
  distributions, in nats (RL's Razor measures forgetting as this forward KL from the base policy).

The base model's distributions are recomputed in each call (keeping them would take
positions × vocabulary floats), so one call costs one forward pass per adapter plus one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from multiseal.learning.train import (
    Example,
    collate,
    shifted_labels,
    tokenize_sequences,
)


@dataclass(frozen=True)
class Drift:
    """One adapter's distance from the base on the general-text set."""

    ppl: float  # perplexity under the adapter
    ppl_ratio: float  # ppl / the base model's ppl
    kl: float  # mean KL(p_base || p_adapter) per scored position, nats


def encode_texts(model, texts: Sequence[str], max_length: int) -> list[Example]:
    """The passages as examples (every token scored), truncated to ``max_length`` tokens."""
    return [Example(ids) for ids in tokenize_sequences(model.tokenizer, texts, max_length)]


def kl_from_base(base_logp: torch.Tensor, logits: torch.Tensor, scored: torch.Tensor) -> torch.Tensor:
    """Mean ``KL(p_base || p)`` over the ``scored`` positions (differentiable in ``logits``)."""
    logp = torch.log_softmax(logits, dim=-1)
    kl = (base_logp.exp() * (base_logp - logp)).sum(-1)
    return kl[scored].sum() / scored.sum().clamp(min=1)


@torch.no_grad()
def drift(model, adapters: Sequence[str], data: Sequence[Example], batch_size: int = 8) -> dict[str, Drift]:
    """Perplexity ratio and KL to the base of each adapter on ``data`` (:func:`encode_texts`).

    ``model`` is a :class:`multiseal.learning.model.SharedModel` with at least one adapter; it is left
    in eval mode. Returns ``{adapter: Drift}``; an empty ``data`` gives NaNs."""
    if not data or not adapters:
        return {a: Drift(math.nan, math.nan, math.nan) for a in adapters}
    pad = model.tokenizer.pad_token_id
    nll = {a: 0.0 for a in adapters}
    kl = {a: 0.0 for a in adapters}
    base_nll, n = 0.0, 0
    with model.serving(adapters) as serve:
        for i in range(0, len(data), batch_size):
            enc = {k: v.to(model.device) for k, v in collate(data[i : i + batch_size], pad).items()}
            labels = shifted_labels(enc["labels"])
            scored = labels != -100
            n += int(scored.sum())
            rows = enc["input_ids"].shape[0]
            base = torch.log_softmax(serve.logits(enc, [None] * rows), dim=-1)
            base_nll += float(_nll_sum(base, labels))
            for a in adapters:
                logits = serve.logits(enc, [a] * rows)
                nll[a] += float(_nll_sum(torch.log_softmax(logits, dim=-1), labels))
                kl[a] += float(kl_from_base(base, logits, scored)) * int(scored.sum())
    base_ppl = math.exp(base_nll / n)
    return {a: Drift(math.exp(nll[a] / n), math.exp(nll[a] / n) / base_ppl, kl[a] / n) for a in adapters}


def _nll_sum(logp: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.nll_loss(
        logp.view(-1, logp.shape[-1]), labels.reshape(-1), ignore_index=-100, reduction="sum"
    )
