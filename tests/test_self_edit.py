"""Self-edits: each prompt style cuts a hand-written completion into the right training sequences, and
sampling returns k candidates per request in one batched, seeded pass."""

from __future__ import annotations

import pytest

from multiseal.learning.self_edit import (
    STYLES,
    parse_completion,
    passage_sequence,
    sample_self_edits,
    self_edit_request,
    training_sequences,
)
from multiseal.types import Document, Question, SelfEditSettings

DOC = Document(
    doc_id="d0",
    title="Velmora Institute",
    context="The Velmora Institute of Tidal Studies was founded by Ida Renn in 1987 on the island of Kalmaria.",
    questions=(Question("d0q0", "Who founded the Velmora Institute?", "Ida Renn", ("d0",)),),
)
T = DOC.title


def test_implications_strip_bullets_and_numbering_and_prefix_the_title():
    completion = (
        "Here are some implications:\n"
        "1. The institute was founded in 1987.\n"
        "2) Ida Renn founded it.\n"
        "- It studies tides.\n"
        "* Kalmaria is an island.\n"
        "• The institute is on Kalmaria.\n"
        "(6) Tidal studies happen there.\n"
        "\n"
        "ok\n"
    )
    assert parse_completion(completion, DOC, "implications") == [
        f"{T}\nThe institute was founded in 1987.",
        f"{T}\nIda Renn founded it.",
        f"{T}\nIt studies tides.",
        f"{T}\nKalmaria is an island.",
        f"{T}\nThe institute is on Kalmaria.",
        f"{T}\nTidal studies happen there.",
    ]  # the "…:" header and the too-short "ok" are dropped


def test_long_implications_parse_like_implications():
    completion = "- A first fact.\n- A second fact."
    assert parse_completion(completion, DOC, "implications-long") == parse_completion(completion, DOC, "implications")


def test_self_qa_parses_question_answer_lines():
    completion = (
        "Question: Who founded the Velmora Institute?\nAnswer: Ida Renn\n"
        "Question: When was it founded?\nAnswer: In\n 1987."
    )
    assert parse_completion(completion, DOC, "self-qa") == [
        f"{T}\nQuestion: Who founded the Velmora Institute?\nAnswer: Ida Renn",
        f"{T}\nQuestion: When was it founded?\nAnswer: In 1987.",  # answer whitespace collapsed
    ]


def test_self_qa_parses_numbered_q_and_a_markers():
    completion = "Q1: Who founded it?\nA1: Ida Renn.\nQ2: Where is it?\nA2: On Kalmaria.\n"
    assert parse_completion(completion, DOC, "self-qa") == [
        f"{T}\nQuestion: Who founded it?\nAnswer: Ida Renn.",
        f"{T}\nQuestion: Where is it?\nAnswer: On Kalmaria.",
    ]


def test_self_qa_parses_numbered_pairs():
    completion = "1. Question: Where is it?\nAnswer: On Kalmaria.\n2. Question: What does it study?\nAnswer: Tides."
    assert parse_completion(completion, DOC, "self-qa") == [
        f"{T}\nQuestion: Where is it?\nAnswer: On Kalmaria.",
        f"{T}\nQuestion: What does it study?\nAnswer: Tides.",
    ]


def test_self_qa_without_pairs_falls_back_to_lines():
    completion = "The institute studies tides.\nIda Renn founded it."
    assert parse_completion(completion, DOC, "self-qa") == parse_completion(completion, DOC, "implications")


def test_self_qa_question_ending_in_a_word_ending_with_a():
    completion = "Q: Name the founder of the institute on Kalmaria.\nA: Ida Renn"
    assert parse_completion(completion, DOC, "self-qa") == [
        f"{T}\nQuestion: Name the founder of the institute on Kalmaria.\nAnswer: Ida Renn",
    ]


def test_self_qa_pairs_on_one_line():
    completion = "Q1: Who founded it? A1: Ida Renn. Q2: When? A2: 1987."
    assert parse_completion(completion, DOC, "self-qa") == [
        f"{T}\nQuestion: Who founded it?\nAnswer: Ida Renn.",
        f"{T}\nQuestion: When?\nAnswer: 1987.",
    ]


def test_implication_starting_with_a_decimal_number_is_kept_whole():
    assert parse_completion("3.5 million people visit it each year.", DOC, "implications") == [
        f"{T}\n3.5 million people visit it each year.",
    ]


def test_rewrite_splits_paragraphs():
    completion = "The institute, founded in 1987,\nstudies tides.\n\nIda Renn founded it.\n\n\n3. Kalmaria hosts it."
    assert parse_completion(completion, DOC, "rewrite") == [
        f"{T}\nThe institute, founded in 1987,\nstudies tides.",
        f"{T}\nIda Renn founded it.",
        f"{T}\nKalmaria hosts it.",
    ]


def test_rewrite_with_one_paragraph_falls_back_to_lines():
    assert parse_completion("First line here.\nSecond line here.", DOC, "rewrite") == [
        f"{T}\nFirst line here.",
        f"{T}\nSecond line here.",
    ]


def test_passage_only_writes_no_self_edit():
    assert self_edit_request(DOC, "passage-only") is None
    assert parse_completion("- anything at all", DOC, "passage-only") == []
    assert training_sequences("- anything at all", DOC, "passage-only") == [passage_sequence(DOC)]


def test_training_sequences_append_the_passage_last():
    seqs = training_sequences("- It studies tides.\n- Ida Renn founded it.", DOC, "implications")
    assert seqs[-1] == f"{DOC.title}\n{DOC.context}" == passage_sequence(DOC)
    assert seqs[:-1] == parse_completion("- It studies tides.\n- Ida Renn founded it.", DOC, "implications")
    assert passage_sequence(DOC) not in training_sequences("- x y z", DOC, "implications", include_passage=False)


@pytest.mark.parametrize("style", [s for s in STYLES if STYLES.get(s).instruction is not None])
def test_every_request_contains_the_instruction_and_the_passage(style):
    text = self_edit_request(DOC, style)
    assert STYLES.get(style).instruction in text
    assert DOC.title in text and DOC.context in text


def test_unknown_style_is_named_in_the_error():
    with pytest.raises(KeyError, match="unknown prompt style 'no-such-style'"):
        parse_completion("x", DOC, "no-such-style")


def test_sample_self_edits_gives_k_candidates_per_request_in_one_call(tiny_model, make_adapter, monkeypatch):
    adapter = make_adapter(tiny_model)
    calls = []
    real_generate = tiny_model.generate

    def counting_generate(prompts, adapters=None, **kwargs):
        calls.append((list(prompts), list(adapters)))
        return real_generate(prompts, adapters, **kwargs)

    monkeypatch.setattr(tiny_model, "generate", counting_generate)
    settings = SelfEditSettings(candidates=3, max_new_tokens=6)
    requests = [(DOC, None, "implications"), (DOC, adapter, "self-qa"), (DOC, None, "passage-only")]
    out = sample_self_edits(tiny_model, requests, settings, seed=0, progress=None)
    assert [len(c) for c in out] == [3, 3, 3]
    assert out[2] == ["", "", ""]
    assert len(calls) == 1, "all candidates of all requests should share one generate call"
    prompts, adapters = calls[0]
    assert len(prompts) == 6  # passage-only asks for nothing
    assert adapters == [None] * 3 + [adapter] * 3


def test_sample_self_edits_is_reproducible_with_a_seed(tiny_model):
    settings = SelfEditSettings(candidates=2, max_new_tokens=8)
    requests = [(DOC, None, "implications"), (DOC, None, "rewrite")]
    first = sample_self_edits(tiny_model, requests, settings, seed=4, progress=None)
    again = sample_self_edits(tiny_model, requests, settings, seed=4, progress=None)
    other = sample_self_edits(tiny_model, requests, settings, seed=5, progress=None)
    assert first == again
    assert first != other
    assert first[0][0] != first[0][1], "candidates of one request should differ when sampled"
