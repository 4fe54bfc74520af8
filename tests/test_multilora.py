"""The grouped LoRA kernel (multiseal.learning.multilora): any mix of adapters in one batch, one grouped
product per layer, against peft's mixed-adapter forward (``lora_kernel: peft``, the old path).

Why the text comparisons can ask for equality on any CPU: both paths do the same floating-point
operations on the same values. peft computes ``B(A(x[rows])) · scaling`` with ``F.linear`` (a matrix
product of the adapter's rows with ``W.T``) and adds it to the base output at those rows; the grouped
kernel takes the same rows in the same order, and ``grouped_mm`` on the CPU computes each adapter's
segment with ``at::mm_out`` on the same ``W.T`` (ATen's GroupedMMUtils.h), then scales and adds.
The same BLAS call on the same shapes and values gives the same bits on one machine, whichever it is.
The layer test does not rely on that: it bounds both paths against the exact product in float64.
"""

from __future__ import annotations

import pytest
import torch

from multiseal.learning.multilora import routed
from multiseal.types import LoraSettings

SETTINGS = LoraSettings(rank=8, alpha=16)


def _perturb(model, names, seed=0, scale=0.05):
    """Fresh LoRA adds nothing (B = 0): give each adapter's B random values so it changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n in names:
            for k, p in model.adapter_parameters(n).items():
                if ".lora_B." in k:
                    p.copy_((torch.randn(p.shape, generator=g) * scale).to(p))


@pytest.fixture
def kernel(tiny_model):
    """Set the shared tiny model's kernel for one test; restored after."""
    before = tiny_model.lora_kernel

    def use(name: str, model=tiny_model):
        model.lora_kernel = name

    yield use
    tiny_model.lora_kernel = before


def _adapters(model, make_adapter, n, settings=SETTINGS):
    names = [make_adapter(model, settings, seed=i) for i in range(n)]
    _perturb(model, names)
    return names


def _prompts(model, n):
    return [model.prompt(f"Tell me about the town of Place{i} and the river that runs by it.") for i in range(n)]


def test_greedy_and_sampled_text_equal_peft_for_a_mixed_batch(tiny_model, make_adapter, kernel):
    names = _adapters(tiny_model, make_adapter, 4)
    prompts = _prompts(tiny_model, 10)
    rows = [names[i % 4] if i % 3 else None for i in range(10)]  # base rows among them
    out = {}
    for k in ("peft", "grouped"):
        kernel(k)
        out[k] = (
            tiny_model.generate(prompts, rows, max_new_tokens=16, batch_size=5),
            tiny_model.generate(prompts, rows, max_new_tokens=16, batch_size=5, temperature=1.0, seed=7),
        )
    assert out["grouped"] == out["peft"]
    # and the adapters really act: the same prompts on the base alone read differently
    assert tiny_model.generate(prompts, None, max_new_tokens=16, batch_size=5) != out["grouped"][0]


def _logits(model, names, rows, prompts):
    tok = model.tokenizer
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with model.serving(names) as serve:
        return serve.logits(enc, rows)


def test_logits_of_each_row_equal_peft_and_base_rows_equal_the_base(tiny_model, make_adapter, kernel):
    names = _adapters(tiny_model, make_adapter, 3)
    prompts = _prompts(tiny_model, 6)
    rows = [names[2], None, names[0], names[2], None, names[1]]
    kernel("peft")
    want = _logits(tiny_model, names, rows, prompts)
    base = _logits(tiny_model, names, [None] * 6, prompts)
    kernel("grouped")
    got = _logits(tiny_model, names, rows, prompts)
    assert torch.equal(got, want)
    assert torch.equal(got[[1, 4]], base[[1, 4]])
    assert not torch.equal(got[0], base[0])


def test_one_layer_is_within_the_float32_bound_of_the_exact_product(tiny_model, make_adapter):
    """One LoRA layer, rows of three adapters and the base in a jumbled order, against float64: each
    product of k terms is within ``γ_k = k·u/(1-k·u)`` (u = 2⁻²⁴) of exact, relative to the product of
    absolute values; the second product also carries the first one's error through |B|."""
    from peft.tuners.lora import LoraLayer

    names = _adapters(tiny_model, make_adapter, 3)
    layer = next(m for m in tiny_model.model.modules() if isinstance(m, LoraLayer))
    rows = [names[1], None, names[0], names[1], names[2], None, names[0]]
    x = torch.randn(len(rows), 5, layer.in_features, generator=torch.Generator().manual_seed(1))
    with routed(tiny_model.model, names) as router:
        router.route(rows, x.device)
        got = layer(x).double()
    u = 2.0**-24

    def gamma(k):
        return k * u / (1 - k * u)

    base = layer.base_layer(x).double()  # the base output is the same call on both paths
    for i, name in enumerate(rows):
        if name is None:
            assert torch.equal(got[i], base[i])
            continue
        a = layer.lora_A[name].weight.double()
        b = layer.lora_B[name].weight.double()
        s = layer.scaling[name]
        xi = x[i].double()
        exact_h, abs_h = xi @ a.T, xi.abs() @ a.abs().T
        err_h = gamma(a.shape[1]) * abs_h
        exact = exact_h @ b.T * s
        bound = (gamma(b.shape[1]) * (abs_h + err_h) @ b.abs().T + err_h @ b.abs().T) * abs(s)
        bound = bound * (1 + 2 * u) + u * (base[i] + exact).abs() * 2  # the scaling and the final add
        assert torch.all((got[i] - (base[i] + exact)).abs() <= bound), name


def test_float64_uses_the_gathered_product_and_agrees_with_peft(tiny_model64, make_adapter):
    """grouped_mm has no float64: the gathered batched product (BGMV) runs instead. Its reductions
    are not peft's, so agreement is to float64 rounding: logits of order 10 differ by under 1e-9
    (u = 1.1e-16; a product of a few hundred terms, through two layers, is within ~1e-12)."""
    names = _adapters(tiny_model64, make_adapter, 3)
    prompts = _prompts(tiny_model64, 5)
    rows = [names[0], None, names[2], names[1], names[0]]
    before = tiny_model64.lora_kernel
    try:
        tiny_model64.lora_kernel = "peft"
        want = _logits(tiny_model64, names, rows, prompts)
        tiny_model64.lora_kernel = "grouped"
        got = _logits(tiny_model64, names, rows, prompts)
    finally:
        tiny_model64.lora_kernel = before
    assert got.dtype == torch.float32  # logits are returned as float, computed in float64
    assert (got.double() - want.double()).abs().max() < 1e-5  # float32 of the logits: u·|logit| ~ 1e-6


def test_adapters_of_different_ranks_fall_back_to_peft(tiny_model, make_adapter, kernel):
    a = make_adapter(tiny_model, LoraSettings(rank=4, alpha=8), seed=1)
    b = make_adapter(tiny_model, LoraSettings(rank=8, alpha=16), seed=2)
    _perturb(tiny_model, [a, b])
    assert not tiny_model.stackable([a, b])
    prompts = _prompts(tiny_model, 4)
    with tiny_model.serving([a, b]) as serve:
        assert serve.router is None
    kernel("peft")
    want = tiny_model.generate(prompts, [a, b, None, a], max_new_tokens=8)
    kernel("grouped")
    assert tiny_model.generate(prompts, [a, b, None, a], max_new_tokens=8) == want


def test_routing_an_adapter_not_served_is_refused(tiny_model, make_adapter):
    a, b = _adapters(tiny_model, make_adapter, 2)
    with routed(tiny_model.model, [a]) as router, pytest.raises(KeyError, match=b):
        router.route([a, b], torch.device("cpu"))


def test_the_layers_are_restored_when_serving_ends(tiny_model, make_adapter):
    from peft.tuners.lora import LoraLayer

    names = _adapters(tiny_model, make_adapter, 2)
    with tiny_model.serving(names):
        assert all("forward" in vars(m) for m in tiny_model.model.modules() if isinstance(m, LoraLayer))
    assert not any("forward" in vars(m) for m in tiny_model.model.modules() if isinstance(m, LoraLayer))


def test_an_unknown_kernel_is_refused(tiny_model):
    from dataclasses import replace

    with pytest.raises(ValueError, match="lora_kernel"):
        replace(tiny_model, lora_kernel="fast")


def test_drift_is_the_same_through_either_kernel(tiny_model, make_adapter, kernel):
    from multiseal.learning.drift import drift, encode_texts

    names = _adapters(tiny_model, make_adapter, 2)
    data = encode_texts(
        tiny_model,
        [
            "The river runs past the mill and the old stone bridge.",
            "A town of four thousand people lies in the valley.",
        ],
        32,
    )
    kernel("peft")
    want = drift(tiny_model, names, data)
    kernel("grouped")
    assert drift(tiny_model, names, data) == want


@pytest.mark.smollm2
def test_smollm2_greedy_text_is_token_for_token_peft(smollm2_model, make_adapter):
    names = [make_adapter(smollm2_model, LoraSettings(), seed=i) for i in range(4)]
    _perturb(smollm2_model, names, scale=0.01)
    prompts = _prompts(smollm2_model, 8)
    rows = [names[i % 4] if i % 4 != 3 else None for i in range(8)]
    before = smollm2_model.lora_kernel
    try:
        smollm2_model.lora_kernel = "peft"
        want = smollm2_model.generate(prompts, rows, max_new_tokens=20)
        smollm2_model.lora_kernel = "grouped"
        got = smollm2_model.generate(prompts, rows, max_new_tokens=20)
    finally:
        smollm2_model.lora_kernel = before
    assert got == want
    assert smollm2_model.generate(prompts, None, max_new_tokens=20) != got
