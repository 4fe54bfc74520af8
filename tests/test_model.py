"""The model backend on the tiny random model: adapters share the base, train in isolation, round-trip,
and batch together; loading fails with a message that says what to do."""

from __future__ import annotations

import pytest
import torch

from multiseal.errors import ModelUnavailableError
from multiseal.learning.model import build_shared_model
from multiseal.learning.train import train_adapter
from multiseal.learning.weights import resolve_device
from multiseal.types import LoraSettings, TrainSettings

FACT = "The Velmora Institute of Tidal Studies was founded by Ida Renn in 1987."
PROMPTS = ["The Velmora Institute", "Who founded the institute?", "Tidal studies began in"]


def base_parameters(model) -> dict[str, torch.Tensor]:
    """The base model's own weights (no LoRA), keyed by name."""
    return {k: p for k, p in model.model.named_parameters() if "lora_" not in k}


def all_parameters(model) -> dict[str, torch.Tensor]:
    source = model.peft if model.peft is not None else model.model
    return {k: p.detach().clone() for k, p in source.named_parameters()}


def lora_param_count(model, settings: LoraSettings) -> int:
    """rank × (in + out) for every targeted linear layer: LoRA's A is r×in, B is out×r."""
    total = 0
    for name, module in model.model.named_modules():
        if name.rsplit(".", 1)[-1] in settings.target_modules:
            base = getattr(module, "base_layer", module)
            total += settings.rank * (base.in_features + base.out_features)
    return total


def train_quickly(model, name: str) -> None:
    """Enough training that the adapter's greedy output moves away from the base's."""
    train_adapter(model, name, [FACT] * 4, TrainSettings(epochs=3, lr=1e-2, batch_size=4), seed=0)


def test_adding_an_adapter_does_not_copy_the_base(tiny_model, make_adapter):
    before = {k: (p.data_ptr(), p.numel()) for k, p in base_parameters(tiny_model).items()}
    settings = LoraSettings(rank=8)
    name = make_adapter(tiny_model, settings)
    after = {k.replace(".base_layer.", "."): (p.data_ptr(), p.numel()) for k, p in base_parameters(tiny_model).items()}
    assert after == before
    adapter = tiny_model.adapter_parameters(name)
    assert adapter, "the adapter has no parameters"
    assert sum(p.numel() for p in adapter.values()) == lora_param_count(tiny_model, settings)


def test_fresh_adapter_answers_like_the_base(tiny_model, make_adapter):
    name = make_adapter(tiny_model)
    base = tiny_model.generate(PROMPTS, None, max_new_tokens=8)
    fresh = tiny_model.generate(PROMPTS, [name] * len(PROMPTS), max_new_tokens=8)
    assert fresh == base
    sampled_base = tiny_model.generate(PROMPTS, None, max_new_tokens=8, temperature=1.0, seed=5)
    sampled_fresh = tiny_model.generate(PROMPTS, [name] * len(PROMPTS), max_new_tokens=8, temperature=1.0, seed=5)
    assert sampled_fresh == sampled_base


def test_training_changes_only_that_adapter(tiny_model, make_adapter):
    trained, _other = make_adapter(tiny_model), make_adapter(tiny_model, seed=1)  # the other must not move
    before = all_parameters(tiny_model)
    train_quickly(tiny_model, trained)
    after = all_parameters(tiny_model)
    assert before.keys() == after.keys()
    marker = f".{trained}."
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed, "training changed nothing"
    assert all(marker in k for k in changed), sorted(k for k in changed if marker not in k)
    # LoRA's A starts random and B at zero; after training both sides of the adapter have moved.
    assert any(".lora_A." in k for k in changed) and any(".lora_B." in k for k in changed)
    trained_answers = tiny_model.generate(PROMPTS, [trained] * 3, max_new_tokens=8)
    assert trained_answers != tiny_model.generate(PROMPTS, None, max_new_tokens=8)


def test_adapter_state_round_trip_gives_identical_answers(tiny_model, make_adapter):
    source = make_adapter(tiny_model)
    train_quickly(tiny_model, source)
    target = make_adapter(tiny_model, seed=7)
    state = tiny_model.adapter_state(source)
    assert all(f".{source}." not in k for k in state)
    tiny_model.set_adapter_state(target, state)
    for k, v in tiny_model.adapter_state(target).items():
        assert torch.equal(v, state[k]), k
    assert tiny_model.generate(PROMPTS, [target] * 3, max_new_tokens=8) == tiny_model.generate(
        PROMPTS, [source] * 3, max_new_tokens=8
    )
    # The state is a copy: training the source afterwards leaves it alone.
    train_quickly(tiny_model, source)
    assert any(not torch.equal(v, state[k]) for k, v in tiny_model.adapter_state(source).items())


def test_add_adapter_init_from_copies_the_weights(tiny_model, make_adapter):
    source = make_adapter(tiny_model)
    train_quickly(tiny_model, source)
    copy = make_adapter(tiny_model, init_from=source, seed=3)
    src, dst = tiny_model.adapter_state(source), tiny_model.adapter_state(copy)
    assert src.keys() == dst.keys()
    assert all(torch.equal(src[k], dst[k]) for k in src)
    # A copy, not a view: training the copy leaves the source as it was.
    train_quickly(tiny_model, copy)
    assert all(torch.equal(src[k], v) for k, v in tiny_model.adapter_state(source).items())


def test_mixed_adapter_batch_equals_per_adapter_generation(tiny_model, make_adapter):
    trained, fresh = make_adapter(tiny_model), make_adapter(tiny_model, seed=2)
    train_quickly(tiny_model, trained)
    prompts = [p for p in PROMPTS for _ in range(3)]
    adapters = [trained, None, fresh] * len(PROMPTS)
    mixed = tiny_model.generate(prompts, adapters, max_new_tokens=8, batch_size=64)
    alone = {a: tiny_model.generate(PROMPTS, [a] * len(PROMPTS), max_new_tokens=8) for a in (trained, None, fresh)}
    expected = [alone[a][PROMPTS.index(p)] for p, a in zip(prompts, adapters)]
    assert mixed == expected
    assert alone[trained] != alone[None], "the trained adapter should answer differently"


def test_same_seed_gives_same_sampled_text(tiny_model):
    first = tiny_model.generate(PROMPTS, None, max_new_tokens=10, temperature=1.0, seed=11)
    again = tiny_model.generate(PROMPTS, None, max_new_tokens=10, temperature=1.0, seed=11)
    other = tiny_model.generate(PROMPTS, None, max_new_tokens=10, temperature=1.0, seed=12)
    assert first == again
    assert first != other


def test_deleted_adapter_is_gone(tiny_model, make_adapter):
    keep, gone = make_adapter(tiny_model), make_adapter(tiny_model)
    tiny_model.delete_adapter(gone)
    assert gone not in tiny_model.adapters
    assert tiny_model.adapter_parameters(gone) == {}
    assert tiny_model.adapter_parameters(keep)
    with pytest.raises(KeyError):
        tiny_model.delete_adapter(gone)


def test_adapter_named_like_a_module_keeps_to_its_own_parameters(tiny_model, make_adapter):
    other = make_adapter(tiny_model)
    tiny_model.add_adapter("mlp", LoraSettings())
    try:
        own = tiny_model.adapter_parameters("mlp")
        assert all(f".{other}." not in k for k in own), "another adapter's weights were selected"
    finally:
        tiny_model.delete_adapter("mlp")


def test_duplicate_adapter_name_is_refused(tiny_model, make_adapter):
    name = make_adapter(tiny_model)
    with pytest.raises(ValueError, match="already exists"):
        tiny_model.add_adapter(name, LoraSettings())


@pytest.mark.parametrize("name", ["no-such-alias", "/no/such/folder/for/multiseal"])
def test_unavailable_model_says_how_to_fetch_it(name):
    with pytest.raises(ModelUnavailableError, match="allow_download"):
        build_shared_model(name, progress=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU default")
def test_auto_device_is_cpu_float32_without_a_gpu():
    assert resolve_device("auto") == (torch.device("cpu"), torch.float32)
    assert resolve_device("cpu", "bfloat16") == (torch.device("cpu"), torch.bfloat16)
