"""Facts as first-class objects: every synthetic document's facts, note fidelity on hand-written
notes, and the fact metrics (transfer efficiency, writer/learner split, diffusion, misinformation)
on a hand-built round. No model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from multiseal.learning.self_edit import passage_sequence, split_lines, split_qa
from multiseal.sim.facts import (
    FactIndex,
    NoteFacts,
    fact_metrics,
    fact_rows,
    note_units,
    tokens,
)
from multiseal.types import Document, Note, World
from multiseal.world.synthetic import generate_world
from multiseal.world.vocabulary import COLOURS, RELATIONS


def _doc_with(world: World, relation: str) -> Document:
    return next(d for d in world.documents if any(f.relation == relation for f in d.facts))


def _fact(doc: Document, relation: str):
    return next(f for f in doc.facts if f.relation == relation)


def _note(doc: Document, text: str, *, author: int = 0, note_id: str = "n", style: str = "implications") -> Note:
    parse = split_qa if style == "self-qa" else split_lines
    return Note(note_id, author, doc.doc_id, 0, style, text, tuple(parse(text, doc.title)), len(text.split()))


# --- the facts of the synthetic world ----------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_facts_of_every_document_cover_every_question(seed):
    world = generate_world(40, seed=seed, questions_per_doc=(1, 6), composition=20)
    facts = {f.fact_id: f for f in world.facts}
    assert len(facts) == len(world.facts), "fact ids are unique"
    for d in world.documents:
        assert d.facts and all(f.doc_id == d.doc_id and f.entity == d.title for f in d.facts)
        assert all(f.relation in RELATIONS and f.value in d.context for f in d.facts)
        assert [f.fact_id for f in d.facts] == [f"{d.doc_id}.{f.relation}" for f in d.facts]
        for q in d.questions:
            (fid,) = q.fact_ids
            assert facts[fid].doc_id == d.doc_id and facts[fid].value == q.answer
    for q in world.composition:
        a, b = q.fact_ids  # the link in A names B's entity; B's fact is the answer
        assert (facts[a].doc_id, facts[b].doc_id) == q.doc_ids
        assert facts[a].value == world.doc(q.doc_ids[1]).title and facts[b].value == q.answer


def test_squad_style_records_default_to_no_facts():
    doc = Document("s0", "Title", "Some context.", ())
    assert doc.facts == () and World((doc,)).facts == []
    assert not FactIndex(World((doc,)))


# --- note fidelity ------------------------------------------------------------------------------

WORLD = generate_world(8, seed=0, questions_per_doc=(6, 6))
INDEX = FactIndex(WORLD)


def test_fidelity_correct_wrong_and_omitted_facts():
    person = _doc_with(WORLD, "birth_year")
    born, year, colour = (_fact(person, r) for r in ("birthplace", "birth_year", "colour"))
    wrong_year = str(int(year.value) + 1)
    other_colour = next(c for c in COLOURS if c != colour.value)
    text = (
        f"{person.title} was born in {born.value} in {wrong_year}.\n"
        f"- People said {person.title.split()[-1]} always wore {other_colour} clothes.\n"
        "A quiet childhood near the harbour."
    )
    s = INDEX.score(_note(person, text))
    assert s.correct == (born.fact_id,)
    assert set(s.wrong) == {year.fact_id, colour.fact_id}
    assert s.planted == {year.fact_id: (wrong_year,), colour.fact_id: (other_colour,)}
    assert set(s.omitted) == {f.fact_id for f in person.facts} - {born.fact_id, year.fact_id, colour.fact_id}
    assert len(s.correct) + len(s.wrong) + len(s.omitted) == len(person.facts)


def test_a_value_without_its_relation_cue_is_not_a_hallucination():
    person = _doc_with(WORLD, "birth_year")
    year = _fact(person, "birth_year")
    s = INDEX.score(_note(person, f"Something happened in {int(year.value) + 1}."))
    assert year.fact_id in s.omitted and not s.wrong


def test_a_true_value_of_another_named_entity_is_not_a_hallucination():
    org = _doc_with(WORLD, "founder")
    founder = _fact(org, "founder")
    founder_doc = next((d for d in WORLD.documents if d.title == founder.value), None)
    assert founder_doc is not None, "the founder has a document of their own in this world"
    their_year = _fact(founder_doc, "birth_year").value
    s = INDEX.score(_note(org, f"It was founded by {founder.value}, who was born in {their_year}."))
    assert founder.fact_id in s.correct
    assert _fact(org, "founded").fact_id in s.omitted  # 1XXX is the founder's birth year, named as such


def test_fidelity_reads_question_answer_pairs_as_one_unit():
    org = _doc_with(WORLD, "members")
    members, founded = _fact(org, "members"), _fact(org, "founded")
    wrong = str(int(founded.value) - 3)
    text = (
        f"Question: When was {org.title} founded?\nAnswer: {wrong}\n"
        f"Question: How many members does it have?\nAnswer: {members.value}"
    )
    note = _note(org, text, style="self-qa")
    assert len(note_units(note.sequences, org.title)) == 2
    s = INDEX.score(note)
    assert s.correct == (members.fact_id,) and s.wrong == (founded.fact_id,)


def test_the_passage_states_every_fact_and_a_distractor_none():
    doc = WORLD.documents[0]
    passage = Note("p", 0, doc.doc_id, 0, "passage", doc.context, (passage_sequence(doc),), 90)
    s = INDEX.score(passage)
    assert s.correct == tuple(f.fact_id for f in doc.facts) and not s.wrong and not s.omitted
    elsewhere = Note("x", 0, "x000", 0, "shuffled", doc.context, (passage_sequence(doc),), 90)
    assert INDEX.score(elsewhere) == NoteFacts()


def test_tokens_are_lowercase_alphanumeric_runs():
    assert tokens("The Zanjas-Lodge, 1529!") == ("the", "zanjas", "lodge", "1529")


# --- the fact metrics -----------------------------------------------------------------------------


def test_fact_metrics_on_a_hand_built_round():
    """Agent 0 holds document d0 and wrote a note stating fact A and D, a wrong value for B, nothing
    else; agent 1 trained on it. Agent 1 answers A, misses D (a learner failure) and answers B with
    the planted value (misinformation); everything else it misses (writer failures)."""
    doc = WORLD.documents[0]
    facts = list(doc.facts)
    B = next(f for f in facts if RELATIONS[f.relation].type == "year")  # every entity has one year
    A, D = [f for f in facts if f is not B][:2]
    planted = str(int(B.value) - 1 if int(B.value) > 1320 else int(B.value) + 1)
    text = f"{A.value} and {D.value}.\n{RELATIONS[B.relation].cues[0]} {planted}."
    note = Note("r0.a0.d000.0", 0, doc.doc_id, 0, "implications", text, tuple(split_lines(text, doc.title)), 9)
    s = INDEX.score(note)
    assert set(s.correct) == {A.fact_id, D.fact_id} and s.wrong == (B.fact_id,)

    n_docs, n = len(WORLD.documents), len(facts)
    own = np.zeros((2, n_docs), dtype=bool)
    own[0, 0] = True
    introduced = np.zeros(n_docs, dtype=bool)
    introduced[0] = True
    qid = {f.fact_id: INDEX.question[f.fact_id] for f in facts}
    grades = [{q: 1.0 for q in qid.values()}, {q: 0.0 for q in qid.values()}]
    grades[1][qid[A.fact_id]] = 1.0
    answers = [{}, {qid[B.fact_id]: f"maybe {planted}"}]
    distance = np.full((2, n_docs), -1)
    distance[:, 0] = [0, 1]
    per_agent, pop = fact_metrics(
        INDEX,
        notes=[note],
        trained=[[note.note_id], [note.note_id]],
        notes_by_id={note.note_id: note},
        own=own,
        introduced=introduced,
        doc_index={d.doc_id: j for j, d in enumerate(WORLD.documents)},
        grades=grades,
        answers=answers,
        distance=distance,
    )
    assert per_agent[0]["note_fidelity"] == pytest.approx(2 / n)
    assert per_agent[0]["note_hallucination"] == pytest.approx(1 / n)
    assert math.isnan(per_agent[0]["transfer_efficiency"])  # d0 is its own: nothing received only
    assert math.isnan(per_agent[1]["note_fidelity"])  # wrote nothing this round
    assert per_agent[1]["transfer_efficiency"] == pytest.approx(1 / 2)  # arrived: A, D; answered: A
    assert per_agent[1]["learner_miss"] == pytest.approx(1 / n)  # D
    assert per_agent[1]["writer_miss"] == pytest.approx((n - 2) / n)  # all but A and D
    assert pop["pop.fact_diffusion.d0"] == 1.0 and pop["pop.fact_diffusion.d1"] == pytest.approx(1 / n)
    assert pop["pop.misinformation.count"] == 1.0
    assert pop["pop.misinformation"] == pytest.approx(1 / (2 * n))
    doc_index = {d.doc_id: j for j, d in enumerate(WORLD.documents)}
    rows = fact_rows(INDEX, [grades], introduced[None, :], [distance], doc_index)
    first = next(r for r in rows if r["fact_id"] == A.fact_id)
    assert first["correct"] == [0, 1] and first["distance"] == [0, 1] and first["introduced"]


def test_a_value_an_agent_planted_itself_is_not_misinformation():
    doc = WORLD.documents[0]
    B = doc.facts[1]
    planted = next(
        f.value
        for d in WORLD.documents[1:]
        for f in d.facts
        if RELATIONS[f.relation].type == RELATIONS[B.relation].type and f.value != B.value
    )
    text = f"{RELATIONS[B.relation].cues[0]} {planted}."
    note = Note("own", 0, doc.doc_id, 0, "implications", text, tuple(split_lines(text, doc.title)), 4)
    n_docs = len(WORLD.documents)
    introduced = np.zeros(n_docs, dtype=bool)
    introduced[0] = True
    q = INDEX.question[B.fact_id]
    _, pop = fact_metrics(
        INDEX,
        notes=[note],
        trained=[[note.note_id]],
        notes_by_id={note.note_id: note},
        own=np.zeros((1, n_docs), dtype=bool),
        introduced=introduced,
        doc_index={d.doc_id: j for j, d in enumerate(WORLD.documents)},
        grades=[{q: 0.0}],
        answers=[{q: planted}],
        distance=np.zeros((1, n_docs), dtype=int),
    )
    assert pop["pop.misinformation.count"] == 0.0
