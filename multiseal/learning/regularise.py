"""Regularisers a mitigation adds to the inner loop's loss (``Job.penalty``, :mod:`multiseal.learning.train`).

* :func:`l2_pull` — ``weight · Σ ‖θ − θ_prev‖²`` over the adapter's LoRA weights, ``θ_prev`` their
  values when the penalty is made (before this round's update): the update is pulled back towards
  what the agent already was.
* :func:`kl_to_base` — ``weight · KL(p_base || p_adapter)`` on general-text passages
  (:class:`BaseReference`), one batch per step, cycling: the adapter is kept close to the base
  model's next-token distributions on ordinary text while it learns the new material.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from multiseal.learning.drift import kl_from_base
from multiseal.learning.train import Example, Forward, Penalty, collate, shifted_labels


def l2_pull(model, adapter: str, weight: float) -> Penalty:
    """An L2 pull of ``adapter`` towards its current weights (call before training)."""
    params = model.adapter_parameters(adapter)
    previous = {k: p.detach().clone() for k, p in params.items()}

    def penalty(forward: Forward) -> torch.Tensor:
        return weight * sum((p - previous[k]).pow(2).sum() for k, p in params.items())

    return penalty


@dataclass
class BaseReference:
    """General-text batches with the base model's log-probabilities, computed once and shared by every
    agent's KL penalty (batch × positions × vocabulary floats each)."""

    batches: list[dict[str, torch.Tensor]]
    base_logp: list[torch.Tensor]

    @classmethod
    @torch.no_grad()
    def build(cls, model, data: Sequence[Example], batch_size: int) -> BaseReference:
        pad = model.tokenizer.pad_token_id
        batches, logps = [], []
        was_training = model.peft.training
        with model.serving([]) as serve:
            for i in range(0, len(data), batch_size):
                enc = {k: v.to(model.device) for k, v in collate(data[i : i + batch_size], pad).items()}
                batches.append(enc)
                logps.append(torch.log_softmax(serve.logits(enc, [None] * enc["input_ids"].shape[0]), dim=-1))
        model.peft.train(was_training)
        return cls(batches, logps)


def kl_to_base(reference: BaseReference, weight: float, start: int = 0) -> Penalty:
    """``weight ·`` the mean KL from the base on the next reference batch (cycling from ``start``)."""
    step = [start]

    def penalty(forward: Forward) -> torch.Tensor:
        k = step[0] % len(reference.batches)
        step[0] += 1
        enc = reference.batches[k]
        scored = shifted_labels(enc["labels"]) != -100
        return weight * kl_from_base(reference.base_logp[k], forward(enc), scored)

    return penalty
