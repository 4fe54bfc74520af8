"""The shipped general-text set and the retention probe's candidates (fast, no model)."""

from __future__ import annotations

from importlib.resources import files

import pytest

from multiseal.world.general_text import general_passages, general_text
from multiseal.world.probe import GENERAL_KNOWLEDGE, probe_questions


def test_general_text_has_300_short_passages():
    passages = general_text()
    assert len(passages) == 300
    assert len(set(passages)) == 300
    for p in passages:
        assert 25 <= len(p.split()) <= 60, p
        assert p == p.strip() and "\n" not in p
        assert p.isascii(), p


def test_general_text_file_starts_with_a_passage_and_has_its_notes():
    data = files("multiseal.world") / "data"
    first = (data / "general_text.txt").read_text(encoding="utf-8").splitlines()[0]
    assert first == general_text()[0]
    assert not first.startswith("#")
    assert "public domain" in (data / "general_text.md").read_text(encoding="utf-8")


def test_general_passages_returns_the_first_n():
    assert general_passages(1) == [general_text()[0]]
    assert general_passages(10) == list(general_text()[:10])
    assert general_passages(300) == list(general_text())
    assert isinstance(general_passages(5), list)


@pytest.mark.parametrize("n", [0, -1, 301, 10_000])
def test_general_passages_rejects_n_out_of_range(n):
    with pytest.raises(ValueError):
        general_passages(n)


@pytest.mark.parametrize("n", [2.0, "3", None, True])
def test_general_passages_rejects_non_int(n):
    with pytest.raises(ValueError):
        general_passages(n)


def test_probe_has_at_least_150_unique_candidates():
    assert len(GENERAL_KNOWLEDGE) >= 150
    questions = [q for q, _ in GENERAL_KNOWLEDGE]
    assert len(set(questions)) == len(questions)
    for q, a in GENERAL_KNOWLEDGE:
        assert q.strip() and a.strip()
    qs = probe_questions()
    assert len({q.qid for q in qs}) == len(qs)
    assert [(q.question, q.answer) for q in qs] == list(GENERAL_KNOWLEDGE)


def test_probe_keeps_the_original_28_first():
    assert GENERAL_KNOWLEDGE[0] == ("What is the capital of France?", "Paris")
    assert GENERAL_KNOWLEDGE[27] == ("Which organ pumps blood through the human body?", "heart")
    qs = probe_questions()
    assert (qs[0].qid, qs[27].qid) == ("p00", "p27")
