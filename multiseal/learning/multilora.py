"""Any mix of LoRA adapters in one batch, with one grouped product per layer.

peft's mixed-adapter forward (``adapter_names=``) runs each LoRA layer once per adapter present in the
batch, with Python index lists built per layer per call; with 16 agents in a batch of 16 that is 16
small products and 16 scatters in each of the model's ~200 LoRA layers at every decoded token.
:func:`routed` replaces it while it is open: every LoRA layer of the model runs its base layer and then,
for the rows that carry an adapter, one grouped product over the adapters' stacked weights — the rows
taken in adapter order, each adapter's A and B applied to its own segment of rows (the SGMV shape of
Punica and vLLM, here ``torch.nn.functional.grouped_mm``) — and adds the result back in place. Rows of
the base model are one more "adapter" with nothing to add: they skip the product. The Python work per
layer is the same for 1 adapter or 64; the weights are stacked once when the context opens (they do
not change while it is open), not per token.

The arithmetic is peft's: ``base(x) + (B (A x)) · scaling``, each product a matrix product of the
segment's rows with the adapter's own weight laid out as peft's ``F.linear`` reads it, so on the CPU in
float32 each row's values are peft's to the bit whenever the kernel makes the same reduction (tested:
greedy text token for token). ``grouped_mm`` takes float32, bfloat16 and float16 with
dimensions whose rows are multiples of 16 bytes (and on CUDA needs a recent GPU); other dtypes,
shapes and devices where it fails use a gathered batched product (``torch.bmm`` over each row's own A
and B, the BGMV shape), which copies the rows' weights per layer.

Only for inference (no gradients reach the stacked copies): generation, evaluation, drift measures.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@functools.cache
def _grouped_works(device_type: str, dtype: torch.dtype) -> bool:
    """Whether ``grouped_mm`` runs for this device and dtype here (a two-row probe, once per pair)."""
    if not hasattr(F, "grouped_mm") or dtype not in (torch.float32, torch.bfloat16, torch.float16):
        return False
    try:
        x = torch.ones(16, 16, device=device_type, dtype=dtype)
        w = torch.ones(2, 16, 16, device=device_type, dtype=dtype)
        y = F.grouped_mm(x, w, offs=torch.tensor([8, 16], device=device_type, dtype=torch.int32))
        return bool(torch.all(y == 16).item())
    except (RuntimeError, NotImplementedError, TypeError):
        return False


@dataclass
class Router:
    """Which adapter each row of the next forward passes uses (:meth:`route`); shared by every layer."""

    names: tuple[str, ...]
    rows: int | None = None  # the batch size routed (None: not routed yet, every row the base)
    perm: torch.Tensor | None = None  # rows that carry an adapter, in adapter order
    slots: torch.Tensor | None = None  # each of those rows' adapter index, in the same order
    counts: tuple[int, ...] = ()
    _offsets: dict[int, torch.Tensor] = field(default_factory=dict)

    def route(self, adapters: Sequence[str | None], device: torch.device) -> None:
        """Rows ``i`` of the following forward passes use adapter ``adapters[i]`` (None = the base)."""
        index = {n: k for k, n in enumerate(self.names)}
        unknown = {a for a in adapters if a is not None and a not in index}
        if unknown:
            raise KeyError(f"adapters {sorted(unknown)} are not routed here (have {list(self.names)})")
        rows = sorted((index[a], i) for i, a in enumerate(adapters) if a is not None)
        self.rows = len(adapters)
        self._offsets = {}
        if not rows:
            self.perm = self.slots = None
            self.counts = ()
            return
        self.perm = torch.tensor([i for _, i in rows], device=device)
        self.slots = torch.tensor([k for k, _ in rows], device=device)
        self.counts = tuple(sum(1 for k, _ in rows if k == g) for g in range(len(self.names)))

    def offsets(self, per_row: int, device: torch.device) -> torch.Tensor:
        """Segment ends for ``grouped_mm`` when each row contributes ``per_row`` positions."""
        if per_row not in self._offsets:
            ends, total = [], 0
            for c in self.counts:
                total += c * per_row
                ends.append(total)
            self._offsets[per_row] = torch.tensor(ends, device=device, dtype=torch.int32)
        return self._offsets[per_row]


def _lora_layers(model: torch.nn.Module):
    from peft.tuners.lora import LoraLayer

    return [m for m in model.modules() if isinstance(m, LoraLayer)]


def _layer_forward(module, router: Router, names: Sequence[str]) -> Callable:
    """The replacement ``forward`` of one LoRA layer: base, then one grouped product for adapter rows."""
    base = module.base_layer
    if not names:
        return base.forward
    wa = torch.stack([module.lora_A[n].weight.detach() for n in names])  # (adapters, r, in)
    wb = torch.stack([module.lora_B[n].weight.detach() for n in names])  # (adapters, out, r)
    a, b = wa.transpose(1, 2), wb.transpose(1, 2)  # F.linear's layout: x @ W.T
    scales = [module.scaling[n] for n in names]
    same_scale = len(set(scales)) == 1
    row_scale = torch.tensor(scales, dtype=wa.dtype, device=wa.device)
    size = wa.element_size()  # grouped_mm wants every stride a multiple of 16 bytes
    grouped = _grouped_works(wa.device.type, wa.dtype) and all(d * size % 16 == 0 for d in wa.shape[1:] + wb.shape[1:2])

    def forward(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        result = base(x, *args, **kwargs)
        if router.rows is not None and x.shape[0] != router.rows:
            raise ValueError(f"a batch of {x.shape[0]} rows where {router.rows} were routed")
        if router.perm is None:
            return result
        n, per_row = router.perm.shape[0], x[0].numel() // x.shape[-1]
        xs = x.index_select(0, router.perm).to(wa.dtype)
        if grouped:
            offs = router.offsets(per_row, x.device)
            h = F.grouped_mm(xs.reshape(n * per_row, -1), a, offs=offs)
            delta = F.grouped_mm(h, b, offs=offs).view(n, *result.shape[1:])
        else:  # BGMV: each row's own A and B, gathered
            xs = xs.reshape(n, per_row, -1)
            delta = torch.bmm(torch.bmm(xs, a.index_select(0, router.slots)), b.index_select(0, router.slots))
            delta = delta.view(n, *result.shape[1:])
        if same_scale:
            delta = delta * scales[0]
        else:
            delta = delta * row_scale.index_select(0, router.slots).view(n, *[1] * (delta.dim() - 1))
        return result.index_add_(0, router.perm, delta.to(result.dtype))

    return forward


@contextlib.contextmanager
def routed(model: torch.nn.Module, names: Sequence[str]) -> Iterator[Router]:
    """While open, the LoRA layers of ``model`` serve adapters ``names`` to the rows :meth:`Router.route`
    names, and the base model to the others (every row, until routed); peft's own adapter selection is
    bypassed. Every LoRA layer must hold every adapter of ``names`` as plain LoRA of one rank
    (``SharedModel.stackable``). The weights are read when the context opens: do not train inside it."""
    router = Router(tuple(names))
    layers = _lora_layers(model)
    with torch.no_grad():
        patched = [(m, _layer_forward(m, router, names)) for m in layers]
    for m, fwd in patched:
        m.forward = fwd
    try:
        yield router
    finally:
        for m, _ in patched:
            del m.forward
