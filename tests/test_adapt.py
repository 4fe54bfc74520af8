"""The inner loop: length buckets cover every sequence once with little padding; training lowers the
loss, is deterministic for a seed, and does nothing with zero epochs."""

from __future__ import annotations

import math
import random

import pytest
import torch

from multiseal.learning.train import length_buckets, tokenize_sequences, train_adapter
from multiseal.types import TrainSettings

FACT = "The Velmora Institute of Tidal Studies was founded by Ida Renn in 1987."
SEQUENCES = [
    FACT,
    "Velmora Institute\nIda Renn founded the institute.",
    "Velmora Institute\nThe institute studies tides on the island of Kalmaria, far from the mainland coast.",
    "Velmora Institute\nIt opened in 1987.",
]


@pytest.mark.parametrize("n, batch_size", [(1, 8), (7, 3), (16, 8), (17, 8), (30, 1)])
def test_length_buckets_cover_each_index_once(n, batch_size):
    rng = random.Random(n)
    lengths = [rng.randint(5, 90) for _ in range(n)]
    batches = length_buckets(lengths, batch_size, random.Random(0))
    assert sorted(i for b in batches for i in b) == list(range(n))
    assert all(1 <= len(b) <= batch_size for b in batches)
    assert sum(len(b) < batch_size for b in batches) <= 1
    assert len(batches) == math.ceil(n / batch_size)


def test_length_buckets_group_similar_lengths():
    rng = random.Random(1)
    lengths = [rng.randint(5, 90) for _ in range(40)]
    batches = length_buckets(lengths, 8, random.Random(0))
    spans = sorted((min(lengths[i] for i in b), max(lengths[i] for i in b)) for b in batches)
    # Consecutive slices of the length-sorted order: the batches' length ranges do not interleave.
    assert all(hi <= next_lo for (_, hi), (next_lo, _) in zip(spans, spans[1:]))
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert padded < 1.2 * sum(lengths), "bucketing should keep padding small"


def test_length_buckets_shuffle_batch_order_by_seed():
    lengths = list(range(10, 74))
    a = length_buckets(lengths, 8, random.Random(0))
    assert a == length_buckets(lengths, 8, random.Random(0))
    assert a != length_buckets(lengths, 8, random.Random(1))
    assert sorted(map(sorted, a)) == sorted(map(sorted, length_buckets(lengths, 8, random.Random(1))))


def test_tokenize_sequences_ends_with_eos_and_truncates(tiny_model):
    tok = tiny_model.tokenizer
    ids = tokenize_sequences(tok, [FACT, ""], max_length=8)
    assert len(ids) == 1, "empty sequences are dropped"
    assert len(ids[0]) == 8
    full = tokenize_sequences(tok, [FACT], max_length=256)[0]
    assert full[-1] == tok.eos_token_id
    assert full[:-1] == tok(FACT, add_special_tokens=False)["input_ids"]


def test_training_lowers_the_loss_on_a_repeated_sequence(tiny_model, make_adapter):
    name = make_adapter(tiny_model)
    settings = TrainSettings(epochs=5, lr=1e-2, batch_size=4)
    stats = train_adapter(tiny_model, name, [FACT] * 4, settings, seed=0)
    assert stats.loss_last < stats.loss_first
    n_tokens = len(tokenize_sequences(tiny_model.tokenizer, [FACT], settings.max_length)[0])
    assert stats.sequences == 4
    assert stats.tokens == stats.padded_tokens == settings.epochs * 4 * n_tokens  # equal lengths: no padding


def test_training_counts_real_and_padded_tokens(tiny_model, make_adapter):
    name = make_adapter(tiny_model)
    settings = TrainSettings(epochs=2, lr=1e-3, batch_size=2)
    stats = train_adapter(tiny_model, name, SEQUENCES, settings, seed=0)
    real = sum(len(x) for x in tokenize_sequences(tiny_model.tokenizer, SEQUENCES, settings.max_length))
    assert stats.tokens == settings.epochs * real
    assert stats.padded_tokens >= stats.tokens
    assert stats.tokens_per_second > 0


def test_training_is_deterministic_for_a_seed(tiny_model, make_adapter):
    settings = TrainSettings(epochs=3, lr=1e-2, batch_size=2)
    first = make_adapter(tiny_model, seed=3)
    second = make_adapter(tiny_model, init_from=first)
    third = make_adapter(tiny_model, init_from=first)
    s1 = train_adapter(tiny_model, first, SEQUENCES, settings, seed=9)
    s2 = train_adapter(tiny_model, second, SEQUENCES, settings, seed=9)
    train_adapter(tiny_model, third, SEQUENCES, settings, seed=10)
    a, b, c = (tiny_model.adapter_state(n) for n in (first, second, third))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (s1.loss_first, s1.loss_last) == (s2.loss_first, s2.loss_last)
    assert any(not torch.equal(a[k], c[k]) for k in a), "another seed should give another batch order"


def test_zero_epochs_change_nothing(tiny_model, make_adapter):
    name = make_adapter(tiny_model)
    before = tiny_model.adapter_state(name)
    stats = train_adapter(tiny_model, name, SEQUENCES, TrainSettings(epochs=0), seed=0)
    after = tiny_model.adapter_state(name)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert stats.tokens == 0 and math.isnan(stats.loss_first)
