"""The controls as scenario settings, on tiny-random: each trains on exactly the sequences it promises.

``sharing.content``: passage forwarding, oracle notes, shuffled (distractor) notes; the ``isolated``
scheduler's ``match``: compute-matched isolation. See docs/controls.md.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from multiseal.config.builders import build_simulation
from multiseal.config.load import validate_scenario
from multiseal.errors import ScenarioError
from multiseal.learning.self_edit import passage_sequence
from multiseal.sim.checkpoint import capture, restore
from multiseal.sim.controls import distractor_note, pad_to
from multiseal.sim.facts import FactIndex, tokens
from multiseal.sim.schedulers import (
    build_scheduler,
    check_scheduler,
    example_view,
    validate_scheduler_params,
)
from multiseal.sim.stages import write
from multiseal.types import Note
from multiseal.world.synthetic import generate_distractors, generate_world
from multiseal.world.vocabulary import RELATIONS

DATA = Path(__file__).parent / "data"
TINY = {
    "model": {"base": "tiny-random", "lora": {"rank": 4, "alpha": 8}},
    "world": {"documents": 6, "questions_per_doc": [3, 3]},
    "agents": 3,
    "rounds": 1,
    "self_edit": {"style": "implications", "max_new_tokens": 12},
    "inner_loop": {"epochs": 1, "batch_size": 8},
    "evaluation": {"max_new_tokens": 4, "retention_probe": 0},
}


def scenario(**changes):
    return validate_scenario({**TINY, **changes})


def _first_doc(sim, agent: int):
    return sim.setup.world.doc(sim.setup.arrivals[0][agent][0])


# --- passage forwarding and oracle notes --------------------------------------------------------


def test_passage_forwarding_trains_neighbours_on_the_senders_passage(run_sim, monkeypatch):
    def no_generation(*args, **kwargs):
        raise AssertionError("passage forwarding writes no self-edit")

    monkeypatch.setattr(write, "sample_self_edits", no_generation)
    sim = run_sim(scenario(sharing={"content": "passage"}))
    doc0 = _first_doc(sim, 0)
    (note,) = [n for n in sim.state.notes_log if n.author == 0]
    assert note.sequences == (passage_sequence(doc0),) and note.text == doc0.context and note.style == "passage"
    for b in (1, 2):  # complete graph: both neighbours trained on agent 0's passage
        assert passage_sequence(doc0) in sim.state.trained[b]
        assert sim.state.learnt[b, sim.setup.doc_index[doc0.doc_id]] == 1
    # each agent: its own passage and its two neighbours' passages
    assert sim.records[0].trained_sequences == {0: 3, 1: 3, 2: 3}
    assert sim.records[0].agents[0]["note_fidelity"] == 1.0


def test_oracle_notes_hold_one_sentence_per_gold_fact(run_sim, monkeypatch):
    monkeypatch.setattr(write, "sample_self_edits", lambda *a, **k: pytest.fail("oracle notes need no model"))
    sim = run_sim(scenario(sharing={"content": "oracle"}))
    index = FactIndex(sim.setup.world)
    for note in sim.state.notes_log:
        doc = sim.setup.world.doc(note.doc_id)
        assert len(note.sequences) == len(doc.facts) == len(note.text.splitlines())
        for seq, fact in zip(note.sequences, doc.facts):
            assert seq.startswith(doc.title + "\n") and fact.value in seq
            assert any(tok.startswith(RELATIONS[fact.relation].cues) for tok in tokens(seq.split("\n", 1)[1]))
        assert index.score(note).correct == tuple(f.fact_id for f in doc.facts)
    doc0 = _first_doc(sim, 0)
    (note0,) = [n for n in sim.state.notes_log if n.author == 0]
    assert set(note0.sequences) <= set(sim.state.trained[1])
    # own: its oracle sentences and its passage; from each neighbour: their oracle sentences
    expected = {
        a: len(_first_doc(sim, a).facts) + 1 + sum(len(_first_doc(sim, b).facts) for b in range(3) if b != a)
        for a in range(3)
    }
    assert sim.records[0].trained_sequences == expected
    assert doc0.facts


# --- shuffled notes -----------------------------------------------------------------------------


def test_shuffled_notes_match_count_and_tokens_and_hold_no_real_fact(run_sim):
    sim = run_sim(scenario(sharing={"content": "shuffled"}))
    real = [n for n in sim.state.notes_log if n.style != "shuffled"]
    copies = [n for n in sim.state.notes_log if n.style == "shuffled"]
    assert len(copies) == len(real) == 3
    for n, x in zip(real, copies):
        assert x.author == n.author and x.doc_id.startswith("x") and len(x.sequences) == len(n.sequences)
        assert abs(x.tokens - n.tokens) <= max(3, n.tokens // 4), (n.tokens, x.tokens)
    assert sim.records[0].communication["notes"] == 6  # each copy to two neighbours
    assert sum(x.tokens for x in copies) * 2 == sim.records[0].communication["tokens"]
    # nothing of the real world: no entity name, no open-type value, no fact stated
    words = {t for x in copies for t in tokens(x.text)}
    for fact in sim.setup.world.facts:
        if RELATIONS[fact.relation].type in ("person", "town", "river", "journal", "material"):
            assert not set(tokens(fact.value)) & words, fact
    index = FactIndex(sim.setup.world)
    for x in copies:
        for doc in sim.setup.world.documents:
            moved = Note(
                x.note_id,
                x.author,
                doc.doc_id,
                x.round,
                x.style,
                x.text,
                tuple(s.replace(x.sequences[0].split("\n")[0], doc.title, 1) for s in x.sequences),
                x.tokens,
            )
            assert not index.score(moved).correct
    # authors train on their own note and passage; neighbours on the copies, never the real notes
    for n in real:
        assert set(n.sequences) <= set(sim.state.trained[n.author])
        for b in range(3):
            if b != n.author:
                assert not set(n.sequences) & set(sim.state.trained[b])
                assert sim.state.learnt[b, sim.setup.doc_index[n.doc_id]] == -1
    for x in copies:
        assert not set(x.sequences) & set(sim.state.trained[x.author])
        assert all(set(x.sequences) <= set(sim.state.trained[b]) for b in range(3) if b != x.author)


def test_a_distractor_note_matches_sequences_and_tokens():
    world = generate_world(4, seed=0)
    doc, other = world.documents[0], world.documents[1]
    count = lambda text: len(text.split())  # noqa: E731 - one token per word
    note = Note("r0.a1.d000.0", 1, doc.doc_id, 0, "implications", "w " * 17, ("a", "b", "c"), 17)
    x = distractor_note(note, other, count)
    assert x.note_id == "r0.a1.d001.0" and x.doc_id == other.doc_id
    assert len(x.sequences) == 3 and x.tokens == 17 and all(s.startswith(other.title + "\n") for s in x.sequences)


# --- compute-matched isolation ------------------------------------------------------------------


def test_compute_matched_isolation_trains_as_many_sequences_as_the_complete_graph(run_sim):
    sharing = run_sim(scenario())
    matched = run_sim(scenario(scheduler={"kind": "isolated", "params": {"match": "complete"}}))
    plain = run_sim(scenario(scheduler={"kind": "isolated"}))
    assert matched.records[0].trained_sequences == sharing.records[0].trained_sequences
    assert all(plain.records[0].trained_sequences[a] < sharing.records[0].trained_sequences[a] for a in range(3))
    assert ((matched.state.learnt >= 0) == matched.state.own).all(), "still only its own material"
    for a in range(3):  # the extra sequences are repeats of its own
        assert set(matched.state.trained[a]) == set(plain.state.trained[a])


def test_compute_matching_to_in_neighbours_on_a_directed_line(run_sim):
    line = {"kind": "line", "directed": True}
    sharing = run_sim(scenario(topology=line))
    matched = run_sim(scenario(topology=line, scheduler={"kind": "isolated", "params": {"match": "neighbours"}}))
    assert matched.records[0].trained_sequences == sharing.records[0].trained_sequences
    assert matched.records[0].trained_sequences[0] < matched.records[0].trained_sequences[2]


def test_pad_to_repeats_in_order_and_falls_back_to_earlier_material():
    assert pad_to(["a", "b"], 5) == ["a", "b", "a", "b", "a"]
    assert pad_to(["a", "b"], 1) == ["a", "b"]
    assert pad_to([], 3, earlier=["z"]) == ["z", "z", "z"] and pad_to([], 3) == []


def test_the_isolated_scheduler_takes_a_typed_match_parameter():
    assert validate_scheduler_params("isolated", {"match": "complete"}) == []
    (problem,) = validate_scheduler_params("isolated", {"match": "ring"})
    assert problem[0] == "params.match"
    sched = build_scheduler("isolated", {"match": "complete"})
    plan = check_scheduler(sched, n=4)
    ref = sched.reference(example_view(4))
    assert all(len(ref[a]) == 8 for a in range(4)) and all(len(plan[a]) == 2 for a in range(4))
    assert build_scheduler("isolated", {}).reference(None) is None


# --- resuming -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"sharing": {"content": "shuffled", "relay": True}, "topology": {"kind": "ring"}},
        {"scheduler": {"kind": "isolated", "params": {"match": "complete"}}},
    ],
    ids=["shuffled-relay", "compute-matched"],
)
def test_a_control_resumes_from_a_checkpoint_exactly(tiny_model, changes):
    sc = scenario(rounds=2, **changes)

    def outcome(sim):
        records = [(r.agents, r.population, r.communication, r.trained_sequences) for r in sim.records]
        return sim.state.acc.copy(), json.dumps(
            [records, [(n.note_id, n.text) for n in sim.state.notes_log], sim.state.outcomes],
            sort_keys=True,
            default=str,
        )

    whole = build_simulation(sc, tiny_model, progress=False)
    whole.run()
    expected = outcome(whole)
    whole.close()
    first = build_simulation(sc, tiny_model, progress=False)
    first.step()
    state, tensors = capture(first)
    blob = pickle.dumps(state)
    first.close()
    resumed = build_simulation(sc, tiny_model, progress=False)
    restore(resumed, pickle.loads(blob), tensors)
    resumed.run()
    got = outcome(resumed)
    resumed.close()
    np.testing.assert_array_equal(got[0], expected[0])
    assert got[1] == expected[1]


# --- validation ---------------------------------------------------------------------------------


def test_oracle_notes_on_a_squad_world_are_a_validation_error(tmp_path):
    raw = {**TINY, "world": {"kind": "squad", "path": str(DATA / "squad_small.json")}, "sharing": {"content": "oracle"}}
    with pytest.raises(ScenarioError, match=r"sharing\.content: 'oracle' .*squad"):
        validate_scenario(raw)
    validate_scenario({**raw, "sharing": {"content": "passage"}})  # passage forwarding needs no facts


@pytest.mark.parametrize("kind", ["policy", "oracle"])
def test_shuffled_notes_refuse_schedulers_that_would_bypass_them(kind):
    params = {"policy": "greedy"} if kind == "policy" else {}
    with pytest.raises(ScenarioError, match=rf"sharing\.content: 'shuffled' cannot run with scheduler\.kind '{kind}'"):
        validate_scenario({**TINY, "sharing": {"content": "shuffled"}, "scheduler": {"kind": kind, "params": params}})


def test_an_unknown_content_is_a_validation_error():
    with pytest.raises(ScenarioError, match=r"sharing\.content"):
        validate_scenario({**TINY, "sharing": {"content": "gossip"}})


def test_the_shuffled_control_and_noise_adversaries_draw_distractors_by_one_rule(tiny_model):
    """Both take one distractor per document from the world's seed (else the scenario's): with a world
    seed that differs from the run's, the two get the same documents."""
    base = {
        "model": {"base": "tiny-random", "lora": {"rank": 4, "alpha": 8}},
        "seed": 1,
        "world": {"documents": 4, "questions_per_doc": [2, 2], "seed": 7},
        "agents": 2,
        "rounds": 1,
        "self_edit": {"max_new_tokens": 4},
    }
    shuffled = build_simulation(validate_scenario({**base, "sharing": {"content": "shuffled"}}), tiny_model)
    noise = build_simulation(
        validate_scenario({**base, "agents": {"count": 2, "overrides": {1: {"role": "adversary", "attack": "noise"}}}}),
        tiny_model,
    )
    plain = build_simulation(validate_scenario(base), tiny_model)
    got = [s.setup.distractors for s in (shuffled, noise, plain)]
    assert got[0] is not None and got[0] == got[1] and got[2] is None
    assert len(got[0].documents) == 4 and got[0] == generate_distractors(shuffled.setup.world, 4, 7)
