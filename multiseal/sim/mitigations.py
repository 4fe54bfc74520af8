"""Mitigations of forgetting: a registry, chosen per scenario and per agent.

A mitigation is one builder plus one registration: the builder takes its parsed parameters and
returns a :class:`Mitigation`, a bundle of the hooks the round loop calls when an agent adapts::

    class DecayParams(Params):
        weight: float = Field(0.1, gt=0)

    @MITIGATIONS.register("decay", params=DecayParams)
    def decay(params: DecayParams) -> Mitigation:
        return Mitigation("decay", penalty=lambda ctx: my_penalty(ctx.model, ctx.adapter, params.weight))

The hooks (all optional; an agent's mitigations' hooks add up, except that an agent has at most one
gate and one combination):

* ``replay`` — the share of the agent's earlier training sequences mixed into each update;
* ``penalty(ctx) -> Penalty`` — a loss term added at every optimiser step
  (:mod:`multiseal.learning.regularise`); ``reference_passages`` asks the simulation for general-text
  passages with the base model's distributions (``ctx.reference``);
* ``gate`` — :class:`Gate`: keep an update only if it raised the accuracy on the documents it was
  about by more than ``min_gain`` and lowered retention by at most ``max_drop``; otherwise the
  adapter is rolled back and the update counted as gated out;
* ``combine`` — :class:`Combine`: each round's update is trained as a fresh LoRA delta from zero and
  the agent's adapter becomes a combination of all its deltas instead of one adapter trained on top
  of itself.

The built-in kinds: ``replay``, ``kl`` (KL-to-base regularisation on general text), ``l2`` (L2 pull
towards the adapter's previous state), ``gate`` and ``combine`` (docs/forgetting.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import Field

from multiseal.learning.regularise import BaseReference, kl_to_base, l2_pull
from multiseal.learning.train import Penalty
from multiseal.registry import KindRegistry, Params

Problems = list[tuple[str, str]]


@dataclass(frozen=True)
class PenaltyContext:
    """What a penalty builder may read: the model, the agent's adapter, the shared general-text
    reference (None unless some mitigation asked for one) and a per-agent, per-round step offset."""

    model: Any  # multiseal.learning.model.SharedModel
    adapter: str
    agent: int
    round: int
    reference: BaseReference | None = None


@dataclass(frozen=True)
class Gate:
    min_gain: float = 0.0
    max_drop: float = 0.1


@dataclass(frozen=True)
class Combine:
    method: Literal["concat", "svd"] = "concat"
    weighting: Literal["sum", "mean"] = "sum"


@dataclass(frozen=True)
class Mitigation:
    kind: str
    replay: float = 0.0
    penalty: Callable[[PenaltyContext], Penalty] | None = None
    reference_passages: int = 0
    reference_batch: int = 2
    reference_length: int = 64
    gate: Gate | None = None
    combine: Combine | None = None


MitigationBuilder = Callable[[Any], Mitigation]
MITIGATIONS: KindRegistry[MitigationBuilder] = KindRegistry("mitigation")


class ReplayParams(Params):
    fraction: float = Field(0.5, ge=0, le=1, description="share of earlier training sequences replayed")


@MITIGATIONS.register("replay", params=ReplayParams)
def _replay(params: ReplayParams) -> Mitigation:
    """Mix a share of the agent's earlier sequences into each update (rehearsal)."""
    return Mitigation("replay", replay=params.fraction)


class KlParams(Params):
    weight: float = Field(1.0, gt=0, le=1e6, description="multiplies the mean KL(p_base || p_adapter), nats")
    passages: int = Field(8, ge=1, le=10_000, description="general-text passages (the first ones of the shipped set)")
    batch: int = Field(2, ge=1, le=1024, description="passages per optimiser step (cycling)")
    max_length: int = Field(64, ge=8, le=4096, description="tokens per passage")


@MITIGATIONS.register("kl", params=KlParams)
def _kl(params: KlParams) -> Mitigation:
    """KL-to-base regularisation on general text (keeps ordinary next-token behaviour while learning)."""

    def penalty(ctx: PenaltyContext) -> Penalty:
        assert ctx.reference is not None
        return kl_to_base(ctx.reference, params.weight, start=ctx.round * 7919 + ctx.agent)

    return Mitigation(
        "kl",
        penalty=penalty,
        reference_passages=params.passages,
        reference_batch=params.batch,
        reference_length=params.max_length,
    )


class L2Params(Params):
    weight: float = Field(1.0, gt=0, le=1e9, description="multiplies the squared distance to the previous weights")


@MITIGATIONS.register("l2", params=L2Params)
def _l2(params: L2Params) -> Mitigation:
    """L2 pull towards the adapter's state before the update."""
    return Mitigation("l2", penalty=lambda ctx: l2_pull(ctx.model, ctx.adapter, params.weight))


class GateParams(Params):
    min_gain: float = Field(0.0, ge=-1, le=1, description="the update's documents' accuracy must rise by more")
    max_drop: float = Field(0.1, ge=0, le=1, description="the largest retention drop kept")


@MITIGATIONS.register("gate", params=GateParams)
def _gate(params: GateParams) -> Mitigation:
    """Keep an update only if it helped and did not cost too much retention (rolled back otherwise)."""
    return Mitigation("gate", gate=Gate(params.min_gain, params.max_drop))


class CombineParams(Params):
    method: Literal["concat", "svd"] = Field(
        "concat",
        description="concat: the deltas side by side (exact weighted sum, rank grows each round); "
        "svd: their weighted sum cut back to the adapter's rank",
    )
    weighting: Literal["sum", "mean"] = Field("sum", description="each round's delta weighted 1, or 1/rounds")


@MITIGATIONS.register("combine", params=CombineParams)
def _combine(params: CombineParams) -> Mitigation:
    """Per-round adapters combined instead of one adapter trained on top of itself (LoRA soups)."""
    return Mitigation("combine", combine=Combine(params.method, params.weighting))


# ---------------------------------------------------------------- from settings


def validate_mitigations(entries: Sequence[Mapping[str, Any]], prefix: str) -> Problems:
    """Problems with a list of ``{kind, params}`` entries, keys under ``prefix`` (``mitigations.0.params.weight``)."""
    problems: Problems = []
    kinds: list[Mitigation] = []
    for i, e in enumerate(entries):
        if not isinstance(e, Mapping) or not isinstance(e.get("kind"), str):
            continue  # the schema reports a malformed entry
        kind, params = e["kind"], e.get("params")
        parsed, found = MITIGATIONS.validate(kind, params)
        problems += [(f"{prefix}.{i}.{k}", m) for k, m in found]
        if parsed is not None:
            kinds.append(MITIGATIONS.get(kind).fn(parsed))
    for hook in ("gate", "combine"):
        if sum(getattr(m, hook) is not None for m in kinds) > 1:
            problems.append((prefix, f"at most one mitigation with a {hook} per agent"))
    return problems


def build_mitigations(entries: Sequence[Mapping[str, Any]]) -> tuple[Mitigation, ...]:
    """The mitigations of a list of ``{kind, params}`` entries (raises ``ParamsError``)."""
    return tuple(MITIGATIONS.get(e["kind"]).fn(MITIGATIONS.parse(e["kind"], e.get("params"))) for e in entries)


# ---------------------------------------------------------------- combining per-round deltas

Delta = dict[str, torch.Tensor]  # one round's LoRA weights, keyed as SharedModel.adapter_state


def combined_state(deltas: Sequence[Delta], combine: Combine, rank: int) -> tuple[Delta, int]:
    """The adapter weights that realise ``Σ w_r ΔW_r`` over the per-round ``deltas`` (each a rank-``rank``
    LoRA whose effective delta is ``scaling · B A``), and the rank they need.

    ``concat``: ``A = [A_1; …; A_R]``, ``B = [w_1 B_1, …, w_R B_R]`` — exact, rank ``R · rank`` (the
    combined adapter keeps ``scaling`` by taking alpha ``R`` times larger). ``svd``: the dense sum per
    layer cut to its best rank-``rank`` approximation (the scaling is the same before and after)."""
    n = len(deltas)
    weights = [1.0 if combine.weighting == "sum" else 1.0 / n] * n
    out: Delta = {}
    for key in deltas[0]:
        if ".lora_B." in key or not key.endswith("weight") or ".lora_A." not in key:
            continue
        bkey = key.replace(".lora_A.", ".lora_B.")
        As = [d[key] for d in deltas]
        Bs = [w * d[bkey] for w, d in zip(weights, deltas)]
        if combine.method == "concat":
            out[key], out[bkey] = torch.cat(As, dim=0), torch.cat(Bs, dim=1)
        else:
            dense = sum(b @ a for a, b in zip(As, Bs))
            u, s, vh = torch.linalg.svd(dense, full_matrices=False)
            root = s[:rank].sqrt()
            out[bkey], out[key] = u[:, :rank] * root, root[:, None] * vh[:rank]
    return out, (rank * n if combine.method == "concat" else rank)


def delta_bytes(deltas: Sequence[Delta]) -> int:
    """Memory held by stored per-round deltas."""
    return sum(t.numel() * t.element_size() for d in deltas for t in d.values())


def check_mitigation(name: str, params: Mapping[str, Any] | None = None) -> Mitigation:
    """Conformance check for a registered mitigation (raises AssertionError): built from its parsed
    parameters (the defaults when ``params`` is None) into a :class:`Mitigation` whose hooks have the
    documented types; returns it."""
    kind = MITIGATIONS.get(name)
    m = kind.fn(kind.parse(params))
    assert isinstance(m, Mitigation), f"mitigation {name!r} built {type(m).__name__}, not a Mitigation"
    assert 0.0 <= m.replay <= 1.0, f"mitigation {name!r}: replay {m.replay} outside [0, 1]"
    assert m.penalty is None or callable(m.penalty), f"mitigation {name!r}: penalty is not callable"
    assert m.reference_passages >= 0 and m.reference_batch >= 1 and m.reference_length >= 1, name
    assert m.gate is None or isinstance(m.gate, Gate), f"mitigation {name!r}: gate"
    assert m.combine is None or isinstance(m.combine, Combine), f"mitigation {name!r}: combine"
    return m
