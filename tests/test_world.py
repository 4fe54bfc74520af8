"""The world: the synthetic fictional-fact generator and the SEAL/SQuAD JSON loader."""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

import pytest

from multiseal.errors import DataError
from multiseal.types import Document, World
from multiseal.world.squad import load_squad_json
from multiseal.world.synthetic import generate_distractors, generate_world

DATA = Path(__file__).parent / "data"


# --- generator -------------------------------------------------------------------------------


def test_same_seed_same_world() -> None:
    assert generate_world(30, seed=7, composition=5) == generate_world(30, seed=7, composition=5)


def test_different_seed_different_world() -> None:
    a, b = generate_world(30, seed=1), generate_world(30, seed=2)
    assert [d.context for d in a.documents] != [d.context for d in b.documents]
    assert {d.title for d in a.documents} != {d.title for d in b.documents}


@pytest.mark.parametrize("seed", range(5))
def test_documents_are_well_formed(seed: int) -> None:
    world = generate_world(40, seed=seed)
    assert world.doc_ids == [f"d{i:03d}" for i in range(40)]
    for doc in world.documents:
        words = len(doc.context.split())
        sentences = len(re.findall(r"[.!?](?:\s|$)", doc.context))
        assert 50 <= words <= 120, (doc.doc_id, words)
        assert 3 <= sentences <= 6, (doc.doc_id, sentences)
        assert 3 <= len(doc.questions) <= 6
        for k, q in enumerate(doc.questions):
            assert q.qid == f"{doc.doc_id}.q{k}"
            assert q.doc_ids == (doc.doc_id,) and q.kind == "single"
            assert q.answer in doc.context, (q.question, q.answer)
            assert 1 <= len(q.answer.split()) <= 3
            assert doc.title.split()[0] in q.question  # the question names the entity


def test_entities_are_unique_and_diverse() -> None:
    world = generate_world(100, seed=3)
    titles = [d.title for d in world.documents]
    assert len(set(titles)) == len(titles)
    first_words = {d.context.split()[0] for d in world.documents}
    assert len(first_words) > 10  # passages do not all open the same way
    kinds = {d.questions[0].question.split()[0] for d in world.documents}
    assert len(kinds) > 1


def test_questions_per_doc_range_is_respected() -> None:
    world = generate_world(20, seed=0, questions_per_doc=(2, 2))
    assert all(len(d.questions) == 2 for d in world.documents)
    with pytest.raises(ValueError, match="questions_per_doc"):
        generate_world(5, seed=0, questions_per_doc=(4, 9))


def test_generator_is_fast() -> None:
    start = time.perf_counter()
    generate_world(100, seed=0, composition=20)
    assert time.perf_counter() - start < 0.25  # target < 50 ms; slack for a loaded CI machine


def _digest(world: World) -> str:
    """Passages, questions, answers and ids (not the facts, added later) as a short sha256."""
    rows: list = [
        [d.doc_id, d.title, d.context, [[q.qid, q.question, q.answer, list(q.doc_ids), q.kind] for q in d.questions]]
        for d in world.documents
    ]
    rows.append([[q.qid, q.question, q.answer, list(q.doc_ids), q.kind] for q in world.composition])
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]


# Computed with the generator as it was before documents had facts (commit 3b9f1fc): a seed's world
# must never change, or every recorded result of that seed stops being reproducible.
FROZEN_WORLDS = {
    (1, 0, (3, 6), 0): "d6b66a888525bead",
    (6, 0, (3, 3), 0): "1453eacbc00a41ef",
    (8, 0, (3, 6), 0): "598b72bf4966a2e0",
    (12, 3, (1, 6), 4): "4fcc8621c70cc142",
    (30, 7, (3, 6), 5): "10146247d1353f0b",
    (40, 1, (2, 5), 25): "511f02ca8c7c4cba",
    (100, 3, (3, 6), 20): "91d20ad30624f52f",
    (4, 11, (6, 6), 0): "7c519ed1595628d9",
}


@pytest.mark.parametrize("case", sorted(FROZEN_WORLDS))
def test_worlds_are_unchanged_since_they_were_frozen(case: tuple) -> None:
    n, seed, per_doc, composition = case
    assert _digest(generate_world(n, seed, per_doc, composition)) == FROZEN_WORLDS[case]


def test_distractors_share_no_invented_word_or_year_and_leave_the_world_alone() -> None:
    world = generate_world(30, seed=4, composition=5)
    before = _digest(world)
    xs = generate_distractors(world, 30, seed=4)
    assert _digest(world) == before == _digest(generate_world(30, seed=4, composition=5))
    assert xs == generate_distractors(world, 30, seed=4) and [d.doc_id for d in xs.documents][:2] == ["x000", "x001"]
    generic = {
        "the",
        "engine",
        "foundry",
        "lodge",
        "compass",
        "clock",
        "guild",
        "lens",
        "harp",
        "company",
        "institute",
        "society",
        "observatory",
        "academy",
        "collective",
        "archive",
        "loom",
        "astrolabe",
        "press",
        "lantern",
        "telescope",
        "barometer",
        "bell",
    }
    real_names = {w.lower() for d in world.documents for w in re.findall(r"[A-Za-z]+", d.title)} - generic
    x_words = {w.lower() for d in xs.documents for w in re.findall(r"[A-Za-z]+", f"{d.title} {d.context}")}
    assert not real_names & x_words
    real_years = {f.value for f in world.facts if f.value.isdigit() and len(f.value) == 4}
    assert not real_years & {f.value for f in xs.facts}


@pytest.mark.parametrize("seed", range(5))
def test_composition_questions_need_both_documents(seed: int) -> None:
    world = generate_world(40, seed=seed, composition=25)
    assert [q.qid for q in world.composition] == [f"c{k:03d}" for k in range(25)]
    single_qids = {q.qid for d in world.documents for q in d.questions}
    for q in world.composition:
        assert q.kind == "composition" and q.qid not in single_qids
        a_id, b_id = q.doc_ids
        a, b = world.doc(a_id), world.doc(b_id)
        assert a_id != b_id
        assert q.answer in b.context
        assert q.answer.lower() not in a.context.lower()
        assert b.title in a.context  # doc A names the bridge entity
        assert a.title in q.question  # the question names doc A's entity


def test_asking_for_composition_questions_leaves_the_documents_alone() -> None:
    assert generate_world(30, seed=4).documents == generate_world(30, seed=4, composition=10).documents


def test_too_many_composition_questions_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"composition=500 .* at most \d+"):
        generate_world(10, seed=0, composition=500)
    with pytest.raises(ValueError, match="at most 0"):
        generate_world(1, seed=0, composition=1)


def test_small_worlds_still_link() -> None:
    assert len(generate_world(2, seed=0, composition=1).composition) == 1


# --- loader ----------------------------------------------------------------------------------


def test_good_file_loads() -> None:
    world = load_squad_json(DATA / "squad_small.json")
    assert isinstance(world, World) and world.composition == ()
    assert world.doc_ids == [f"d{i:03d}" for i in range(6)]
    for doc in world.documents:
        assert isinstance(doc, Document)
        assert 3 <= len(doc.questions) <= 5
        for k, q in enumerate(doc.questions):
            assert q.qid == f"{doc.doc_id}.q{k}" and q.doc_ids == (doc.doc_id,)
            assert q.answer in doc.context


def _item(**over: object) -> dict:
    item = {
        "title": "Tovric Mill",
        "context": "Tovric Mill was built in 1802.",
        "questions": [{"question": "When was Tovric Mill built?", "answer": "1802"}],
    }
    item.update(over)
    return item


def _write(tmp_path: Path, data: object, raw: str | None = None) -> Path:
    path = tmp_path / "bad_world.json"
    path.write_text(raw if raw is not None else json.dumps(data), encoding="utf-8")
    return path


def _no_key(key: str) -> dict:
    item = _item()
    del item[key]
    return item


@pytest.mark.parametrize(
    "items, pattern",
    [
        ([_item(), "just a string"], r"item 1: expected an object"),
        ([_no_key("title")], r"item 0: key 'title': missing key"),
        ([_item(), _no_key("context")], r"item 1: key 'context': missing key"),
        ([_no_key("questions")], r"item 0: key 'questions': missing key"),
        ([_item(title=3)], r"item 0: key 'title': expected a string, got int"),
        ([_item(context="   ")], r"item 0: key 'context': must not be empty"),
        ([_item(questions={"q": 1})], r"item 0: key 'questions': expected a list"),
        ([_item(questions=[])], r"item 0: key 'questions': must contain at least one question"),
        (
            [
                _item(
                    questions=[
                        {"question": "a?", "answer": "b"},
                        {"question": "c?", "answer": "d"},
                        {"question": "Where?"},
                    ]
                )
            ],
            r"item 0: key 'questions\[2\]\.answer': missing key",
        ),
        (
            [_item(), _item(questions=[{"question": "Where?", "answer": ""}])],
            r"item 1: key 'questions\[0\]\.answer': must not be empty",
        ),
        (
            [_item(questions=[{"question": "Where?", "answer": ["x"]}])],
            r"item 0: key 'questions\[0\]\.answer': expected a string, got list",
        ),
        ([_item(questions=["Where?"])], r"item 0: key 'questions\[0\]': expected an object"),
        ([_item(id="x1")], r"item 0: key 'id': unknown key\(s\) 'id'"),
        (
            [_item(questions=[{"question": "Where?", "answer": "x", "answers": ["x"]}])],
            r"item 0: key 'questions\[0\]\.answers': unknown key",
        ),
    ],
)
def test_malformed_items_name_file_item_and_key(tmp_path: Path, items: list, pattern: str) -> None:
    with pytest.raises(DataError, match=r"bad_world\.json: " + pattern):
        load_squad_json(_write(tmp_path, items))


def test_invalid_json_reports_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, None, raw='[\n  {"title": "x",\n   "context": }\n]')
    with pytest.raises(DataError, match=r"bad_world\.json: not valid JSON: .* line 3 column \d+"):
        load_squad_json(path)


@pytest.mark.parametrize(
    "data, pattern",
    [
        ({"documents": [_item()]}, r"top level must be a list .* got an object \(keys 'documents'\)"),
        ("hello", r"top level must be a list of items, got str"),
        ([], r"contains no items"),
    ],
)
def test_bad_top_level(tmp_path: Path, data: object, pattern: str) -> None:
    with pytest.raises(DataError, match=r"bad_world\.json: " + pattern):
        load_squad_json(_write(tmp_path, data))


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.json: file not found"):
        load_squad_json(tmp_path / "nope.json")
