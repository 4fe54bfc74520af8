"""All agents trained together (issue 13): shared batches equal one agent after another.

Each row of a shared batch goes through its own agent's adapter, each agent keeps its own loss and
AdamW, and agents with fewer sequences drop out of later steps, so the adapters after training
together must equal those after training one after another, to floating-point rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from multiseal.config.builders import build_simulation
from multiseal.config.load import validate_scenario
from multiseal.errors import ScenarioError
from multiseal.learning.train import Example, Job, _chunks, tokenize_sequences, train_jobs
from multiseal.types import LoraSettings

# The gap between the two adapters' weights as a share of how far training moved them (norms over all
# LoRA tensors), on tiny-random in float64 (the ``tiny_model64`` fixture says why float32 would make
# this bound one machine's rounding): about 1e-11 from rounding, > 1e-1 from anything structural.
REL_TOL = 1e-6


def _texts(agent: int, n: int) -> list[str]:
    return [
        f"agent {agent} fact {k}: the tower of Ulm{k} was built in {1500 + 7 * k + agent}" + " again" * (k % 3)
        for k in range(n)
    ]


def _jobs(model, names, batches=(1, 2, 1)):
    # three agents with different sequence counts, epochs, learning rates and batch sizes: agent 2 has one
    # step, agent 0 four, agent 1 nine (batch 2) or fifteen (batch 1), so agents drop out of later shared
    # steps. With batch sizes (1, 1, 1) every shared step has one row per agent: the stacked product
    # (SharedModel.stacked); with (1, 2, 1) the steps with unequal rows take peft's mixed-adapter forward.
    sizes, epochs, lrs = [4, 5, 1], [1, 3, 1], [1e-3, 5e-3, 2e-3]
    return [
        Job(
            n,
            [Example(x) for x in tokenize_sequences(model.tokenizer, _texts(i, sizes[i]), 64)],
            epochs=epochs[i],
            lr=lrs[i],
            batch_size=batches[i],
            seed=11 + i,
        )
        for i, n in enumerate(names)
    ]


def _state(model, names):
    return {n: model.adapter_state(n) for n in names}


def _relative_gap(a, b, start):
    gap = sum(float(((a[k] - b[k]) ** 2).sum()) for k in a) ** 0.5
    moved = sum(float(((a[k] - start[k]) ** 2).sum()) for k in a) ** 0.5
    return gap / moved


@pytest.mark.parametrize(
    ("max_rows", "batches", "ranks"),
    [
        (64, (1, 2, 1), (4, 4, 4)),  # mixed-adapter forward where rows differ, stacked where they agree
        (64, (1, 1, 1), (4, 4, 4)),  # the stacked product at every step
        (2, (1, 2, 1), (4, 4, 4)),  # several passes per step
        (1, (1, 1, 1), (4, 4, 4)),
        (64, (1, 1, 1), (4, 8, 4)),  # adapters of different ranks cannot be stacked: peft's forward throughout
    ],
)
def test_training_together_equals_one_after_another(tiny_model64, make_adapter, max_rows, batches, ranks):
    names = [make_adapter(tiny_model64, LoraSettings(rank=r, alpha=2 * r), seed=i) for i, r in enumerate(ranks)]
    assert tiny_model64.stackable(names) == (len(set(ranks)) == 1)
    start = _state(tiny_model64, names)
    alone = train_jobs(tiny_model64, _jobs(tiny_model64, names, batches), together=False)
    after_alone = _state(tiny_model64, names)
    for n in names:
        tiny_model64.set_adapter_state(n, start[n])
    together = train_jobs(tiny_model64, _jobs(tiny_model64, names, batches), together=True, max_rows=max_rows)
    after_together = _state(tiny_model64, names)
    for n in names:
        assert _relative_gap(after_alone[n], after_together[n], start[n]) < REL_TOL, n
    for a, t in zip(alone, together):
        assert (a.tokens, a.padded_tokens <= t.padded_tokens) == (t.tokens, True)
        assert a.loss_first == pytest.approx(t.loss_first, rel=1e-5)
        assert a.loss_last == pytest.approx(t.loss_last, rel=1e-4)


def test_a_shared_adam_state_would_be_caught(tiny_model64, make_adapter):
    """The tolerance above is tight enough to see a real difference: one agent at another learning
    rate lands far outside it."""
    names = [make_adapter(tiny_model64, LoraSettings(rank=4, alpha=8), seed=i) for i in range(3)]
    start = _state(tiny_model64, names)
    jobs = _jobs(tiny_model64, names)
    train_jobs(tiny_model64, jobs, together=True)
    good = _state(tiny_model64, names)
    for n in names:
        tiny_model64.set_adapter_state(n, start[n])
    jobs[1] = Job(
        jobs[1].adapter, jobs[1].data, jobs[1].epochs, jobs[1].lr * 1.5, jobs[1].batch_size, seed=jobs[1].seed
    )
    train_jobs(tiny_model64, jobs, together=True)
    assert _relative_gap(good[names[1]], _state(tiny_model64, names)[names[1]], start[names[1]]) > 1e4 * REL_TOL


def test_only_the_jobs_adapters_change(tiny_model, make_adapter):
    names = [make_adapter(tiny_model, LoraSettings(rank=4, alpha=8), seed=i) for i in range(3)]
    bystander = names.pop()
    before = tiny_model.adapter_state(bystander)
    train_jobs(tiny_model, _jobs(tiny_model, names)[:2], together=True)
    after = tiny_model.adapter_state(bystander)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(p.requires_grad for p in tiny_model.peft.parameters()), "training leaves everything frozen"


def test_chunks_never_split_a_job():
    assert _chunks([0, 1, 2, 3], [2, 2, 3, 1], 4) == [[0, 1], [2, 3]]
    assert _chunks([0, 1], [5, 1], 4) == [[0], [1]]  # a job larger than the cap gets a pass of its own


def test_one_adapter_twice_is_refused(tiny_model, make_adapter):
    name = make_adapter(tiny_model, LoraSettings(rank=4, alpha=8))
    job = Job(name, [Example([1, 2, 3])], 1, 1e-3, 1)
    with pytest.raises(ValueError, match="one job per adapter"):
        train_jobs(tiny_model, [job, job], together=True)


SIM = {
    "model": {"base": "tiny-random", "lora": {"rank": 4, "alpha": 8}},
    "world": {"documents": 8, "questions_per_doc": [2, 2]},
    "agents": 4,
    "rounds": 2,
    "self_edit": {"style": "implications", "max_new_tokens": 6},
    "inner_loop": {"epochs": 2, "batch_size": 2},
    "evaluation": {"max_new_tokens": 4, "retention_probe": 2},
    "topology": {"kind": "ring"},
    "replay": {"fraction": 0.5},
}


def test_a_simulation_trained_together_replays_the_sequential_one(tiny_model64):
    """Same seed, same notes, same answers and metrics; adapters equal to rounding."""
    runs = {}
    for batching in ("sequential", "together"):
        sim = build_simulation(
            validate_scenario({**SIM, "inner_loop": {**SIM["inner_loop"], "batching": batching}}),
            tiny_model64,
            progress=False,
        )
        sim.run()
        runs[batching] = (sim, {a: tiny_model64.adapter_state(s.adapter) for a, s in enumerate(sim.setup.agents)})
    (seq, seq_w), (tog, tog_w) = runs["sequential"], runs["together"]
    try:
        assert [n.text for n in seq.state.notes_log] == [n.text for n in tog.state.notes_log]
        assert [r.trained_sequences for r in seq.records] == [r.trained_sequences for r in tog.records]
        np.testing.assert_array_equal(seq.state.acc, tog.state.acc)
        for a in seq_w:
            gap = max(float((seq_w[a][k] - tog_w[a][k]).abs().max()) for k in seq_w[a])
            size = max(float(seq_w[a][k].abs().max()) for k in seq_w[a])
            assert gap < REL_TOL * size
    finally:
        seq.close()
        tog.close()


def test_together_with_lora_dropout_is_a_validation_error():
    raw = {**SIM, "model": {"base": "tiny-random", "lora": {"rank": 4, "alpha": 8, "dropout": 0.1}}}
    with pytest.raises(ScenarioError, match=r"inner_loop\.batching"):
        validate_scenario(raw)
    validate_scenario({**raw, "inner_loop": {"batching": "sequential"}})
