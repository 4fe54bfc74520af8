"""Knowledge that travels: retelling from memory (``sharing.retell``), hop counts, metrics by hop and
the distance × round table. The prompts and the routing run on tiny-random; the metrics on hand-written
notes and a hand-built accuracy tensor (no model)."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest

from multiseal.config.load import validate_scenario
from multiseal.learning.self_edit import STYLES, parse_retold, retell_request, split_lines
from multiseal.sim.diffusion import distance_rounds
from multiseal.sim.facts import FactIndex, hop_metrics, origins
from multiseal.sim.population import Population
from multiseal.sim.sharing import Postbox
from multiseal.types import Note
from multiseal.world.synthetic import generate_world
from multiseal.world.vocabulary import RELATIONS

WORLD = generate_world(6, seed=3, questions_per_doc=(6, 6))
INDEX = FactIndex(WORLD)
DOC_INDEX = {d.doc_id: j for j, d in enumerate(WORLD.documents)}


def _line(n: int, directed: bool = True) -> dict:
    return {
        "model": {"base": "tiny-random", "lora": {"rank": 4, "alpha": 8}},
        "world": {"documents": 3, "questions_per_doc": [2, 2]},
        "agents": n,
        "rounds": 3,
        "topology": {"kind": "line", "directed": directed},
        "arrivals": {"kind": "broadcast", "docs_per_round": 1, "source": 0},
        "sharing": {"retell": True},
        "self_edit": {"style": "implications", "max_new_tokens": 8, "candidates": 2},
        "inner_loop": {"epochs": 1, "batch_size": 2},
        "evaluation": {"max_new_tokens": 4, "retention_probe": 2},
    }


# --- the closed-book prompt ---------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES.names())
def test_the_retelling_prompt_names_the_document_and_never_shows_its_passage(style):
    doc = WORLD.documents[0]
    text = retell_request(doc, style)
    assert doc.title in text
    assert doc.context not in text
    assert not any(f.value in text for f in doc.facts), "no fact of the passage leaks into the prompt"
    seqs = parse_retold("Some line about it.\nAnother line about it.", doc, style)
    assert seqs and all(s.startswith(doc.title + "\n") for s in seqs)


# --- routing on a directed line ------------------------------------------------------------------


def test_retold_notes_are_written_from_memory_carry_their_hops_and_go_only_along_out_edges(run_sim, monkeypatch):
    """0 → 1 → 2 → 3, one document per round at agent 0: agent 1 retells it (hop 1) in the round it
    arrives, agent 2 retells agent 1's retelling a round later (hop 2), and so on; every prompt of a
    retelling names the title and holds no passage; nothing travels against an edge."""
    sc = validate_scenario(_line(4))
    generated: list[str] = []
    real_generate = Population.generate

    def record(self, texts, *args, **kw):
        generated.extend(texts)
        return real_generate(self, texts, *args, **kw)

    monkeypatch.setattr(Population, "generate", record)
    sim = run_sim(sc)
    docs = {d.doc_id: d for d in sim.setup.world.documents}
    retold = [n for n in sim.state.notes_log if n.note_id.split(".")[-2] == "retold"]
    assert retold
    # the prompts that reached the model: every retelling one holds the title and no passage
    asked = [p for p in generated if "Subject:" in p]
    assert len(asked) == len(retold)
    for n in retold:
        assert any(docs[n.doc_id].title in p for p in asked)
    for p in asked:
        assert not any(d.context in p for d in docs.values())
    # hops: agent k retells at hop k, one round after agent k - 1 did
    by_agent = {(n.author, n.doc_id): n for n in retold}
    first = sim.setup.world.documents[0].doc_id
    for k in (1, 2, 3):
        note = by_agent[(k, first)]
        assert note.hops == k and note.round == k - 1 and note.style == "implications"
        assert note.sources and all(s.startswith(f"r{k - 2 if k > 1 else 0}.a{k - 1}.") for s in note.sources)
    assert not any(n.author == 0 for n in retold), "the holder has nothing to retell"
    g = sim.setup.graphs.at(0)
    assert all(g.has_edge(u, v) for (_, u, v) in sim.state.postbox.stats)
    received = {(agent, nid): hops for _, agent, nid, hops in sim.state.received}
    for k in (2, 3):
        ids = [
            nid for (a, nid), h in received.items() if a == k and nid.startswith(f"r{k - 2}.a{k - 1}.{first}.retold")
        ]
        assert ids and all(received[(k, nid)] == k for nid in ids)


def test_max_hops_stops_a_retold_note_and_an_undirected_line_never_sends_back():
    g = nx.path_graph(4).to_directed()
    box = Postbox(4, max_hops=2)
    note = Note("r", 1, "d", 0, "implications", "t", ("t",), 1, hops=1, sources=("o",))
    box.send_on(0, g, 1, note, skip={0})  # learnt from 0: goes to 2 only
    assert sorted((u, v) for (_, u, v) in box.stats) == [(1, 2)]
    far = Note("r2", 2, "d", 1, "implications", "t", ("t",), 1, hops=2, sources=("r",))
    box.send_on(1, g, 2, far, skip={1})  # would arrive at hop 3 > max_hops
    assert (1, 2, 3) not in box.stats
    arrived = box.deliver(1)
    assert [(it.note.note_id, it.hops) for it in arrived[2]] == [("r", 2)]
    with pytest.raises(ValueError, match="written by agent 1"):
        box.send_on(0, g, 2, note)


# --- metrics by hop on hand-written notes ----------------------------------------------------------


def _stated(doc, pairs: list[tuple[object, str]]) -> tuple[str, ...]:
    text = "\n".join(f"{RELATIONS[f.relation].cues[0]} {v}." for f, v in pairs)
    return tuple(split_lines(text, doc.title))


def test_hop_metrics_on_a_hand_built_chain_of_retellings():
    """Agent 0 holds the document and writes h0: A right, B wrong (x). Agent 1 retells h0 as r1: A wrong
    (y, new), B wrong (x, inherited). Agent 2 retells r1 as r2: A wrong (y), B wrong (x), C wrong (z,
    new). Line 0 → 1 → 2 → 3, and r1 also reaches agent 4, at graph distance 1 (an edge 1 → 4)."""
    doc = WORLD.documents[0]
    A, B, C = [f for f in doc.facts if INDEX.alternatives(f)][:3]
    x, y, z = INDEX.alternatives(B)[0], INDEX.alternatives(A)[0], INDEX.alternatives(C)[0]
    h0 = Note("h0", 0, doc.doc_id, 0, "implications", "", _stated(doc, [(A, A.value), (B, x)]), 1)
    r1 = Note("r1", 1, doc.doc_id, 0, "implications", "", _stated(doc, [(A, y), (B, x)]), 1, hops=1, sources=("h0",))
    r2 = Note(
        "r2", 2, doc.doc_id, 1, "implications", "", _stated(doc, [(A, y), (B, x), (C, z)]), 1, hops=2, sources=("r1",)
    )
    assert INDEX.score(h0).correct == (A.fact_id,) and set(INDEX.score(r2).wrong) == {A.fact_id, B.fact_id, C.fact_id}
    by_id = {n.note_id: n for n in (h0, r1, r2)}
    assert origins(INDEX, r2, by_id) == {(A.fact_id, y): 1, (B.fact_id, x): 0, (C.fact_id, z): 2}

    n = len(doc.facts)
    received = [(0, 1, "h0", 1), (1, 2, "r1", 2), (1, 4, "r1", 2), (2, 3, "r2", 3)]
    trained = [["h0"], ["h0"], ["r1"], ["r2"], ["r1"]]
    introduced = np.zeros(len(WORLD.documents), dtype=bool)
    introduced[0] = True
    distance = np.full((5, len(WORLD.documents)), -1)
    distance[:, 0] = [0, 1, 2, 3, 1]
    q = INDEX.question
    grades = [{q[f.fact_id]: 1.0 for f in doc.facts} for _ in range(5)]
    answers: list[dict[str, str]] = [{} for _ in range(5)]
    for agent, fact, value in [(1, B, x), (2, A, y), (3, C, z), (4, A, y)]:
        grades[agent][q[fact.fact_id]] = 0.0
        answers[agent][q[fact.fact_id]] = f"it is {value}"
    pop = hop_metrics(
        INDEX,
        received=received,
        notes_by_id=by_id,
        trained=trained,
        doc_index=DOC_INDEX,
        introduced=introduced,
        grades=grades,
        answers=answers,
        distance=distance,
    )
    assert pop["pop.hop.facts.h1"] == pytest.approx(1 / n) and pop["pop.hop.facts.h2"] == 0.0
    assert pop["pop.hop.wrong.h1"] == pytest.approx(1 / n)
    assert pop["pop.hop.wrong.h2"] == pytest.approx(2 / n) and pop["pop.hop.wrong.h3"] == pytest.approx(3 / n)
    assert pop["pop.hop.introduced.h1"] == pytest.approx(1 / n)  # B's x, made by agent 0
    assert pop["pop.hop.introduced.h2"] == pytest.approx(1 / n)  # A's y, made by agent 1 (twice received)
    assert pop["pop.hop.introduced.h3"] == pytest.approx(1 / n)  # C's z, made by agent 2
    assert pop["pop.hop.notes.h2"] == 2.0
    # spread: agent 1 (distance 1) says x (made at hop 0), agent 2 (distance 2) says y (made at hop 1),
    # agent 3 (distance 3) says z (made at hop 2); agent 4 says y at distance 1, where it was made: not spread
    asked = sum(1 for f in doc.facts if f.fact_id in q)
    assert pop["pop.misinformation.spread.count"] == 3.0
    assert pop["pop.misinformation.spread"] == pytest.approx(3 / (5 * asked))


def test_forwarded_notes_keep_their_facts_and_introduce_nothing_past_the_first_hop():
    doc = WORLD.documents[1]
    A, B = [f for f in doc.facts if INDEX.alternatives(f)][:2]
    h0 = Note(
        "h0", 0, doc.doc_id, 0, "implications", "", _stated(doc, [(A, A.value), (B, INDEX.alternatives(B)[0])]), 1
    )
    introduced = np.zeros(len(WORLD.documents), dtype=bool)
    pop = hop_metrics(
        INDEX,
        received=[(0, 1, "h0", 1), (1, 2, "h0", 2), (2, 3, "h0", 3)],
        notes_by_id={"h0": h0},
        trained=[[], [], [], []],
        doc_index=DOC_INDEX,
        introduced=introduced,
        grades=[{}] * 4,
        answers=[{}] * 4,
        distance=np.full((4, len(WORLD.documents)), -1),
    )
    n = len(doc.facts)
    assert [pop[f"pop.hop.facts.h{k}"] for k in (1, 2, 3)] == [pytest.approx(1 / n)] * 3
    assert [pop[f"pop.hop.introduced.h{k}"] for k in (1, 2, 3)] == [pytest.approx(1 / n), 0.0, 0.0]
    assert math.isnan(pop["pop.misinformation.spread"])  # no introduced document: no pair


# --- the distance × round table -------------------------------------------------------------------


def test_the_distance_round_table_against_a_hand_computation():
    """Three agents on a line, two documents held by agent 0 (the second introduced in round 2):
    row t, distance d -> the mean accuracy of the (agent, introduced document) pairs at distance d."""
    acc = np.array(
        [
            [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]],  # base
            [[1.0, 0.0], [0.5, 0.0], [0.0, 0.0]],  # round 1: d0 introduced
            [[1.0, 1.0], [1.0, 0.5], [0.5, np.nan]],  # round 2: d1 too; one cell not measured
        ]
    )
    introduced = np.array([[False, False], [True, False], [True, True]])
    dist = np.array([[0, 0], [1, 1], [2, 2]])
    table = distance_rounds(acc, introduced, [dist] * 3)
    assert sorted(table) == [0, 1, 2]
    assert math.isnan(table[0][0])  # nothing introduced at the base row
    assert table[0][1:] == [1.0, 1.0]
    assert table[1][1:] == [0.5, 0.75]
    assert table[2][1:] == [0.0, 0.5]  # (2, d1) not measured: left out, not counted as 0
