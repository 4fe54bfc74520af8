"""On the real SmolLM2: an agent learns a neighbour's document from the neighbour's notes alone, and
retells it from memory."""

from __future__ import annotations

import pytest

from multiseal.config.builders import build_simulation
from multiseal.config.load import validate_scenario

pytestmark = pytest.mark.smollm2


def test_accuracy_on_neighbours_document_rises_after_adapting_on_its_notes(smollm2_model):
    sc = validate_scenario(
        {
            "model": {"base": "smollm2-135m"},  # SEAL's LoRA: rank 32, alpha 64
            "world": {"documents": 2, "questions_per_doc": [4, 4]},
            "agents": 2,
            "rounds": 1,
            "arrivals": {"kind": "disjoint", "docs_per_round": 1},
            # greedy rewrites: deterministic notes that restate the passage in the author's words
            "self_edit": {"style": "rewrite", "temperature": 0.0, "max_new_tokens": 96},
            "inner_loop": {"epochs": 10, "lr": 1.0e-3, "batch_size": 1},  # SEAL's inner loop
            "topology": {"kind": "complete"},
            "evaluation": {"headline": "f1", "retention_probe": 0},
        }
    )
    sim = build_simulation(sc, smollm2_model, progress=False)
    try:
        sim.run()
        doc0 = sim.setup.doc_index[sim.setup.arrivals[0][0][0]]  # agent 0's document; agent 1 never sees its passage
        assert not sim.state.own[1, doc0] and sim.state.learnt[1, doc0] == 1
        before, after = sim.state.acc[0, 1, doc0], sim.state.acc[1, 1, doc0]
        assert after > before, (before, after, [n.text for n in sim.state.notes_log])
    finally:
        sim.close()


def test_a_retold_note_states_facts_the_base_cannot_know(smollm2_model):
    """Retelling (sharing.retell) on a line 0 - 1 - 2: agent 1 adapts on agent 0's greedy rewrite of a
    fictional document, then writes its own note from memory, given the title only. That note states
    facts of the document; the base model, given the same closed-book prompt, states none of them (the
    documents are fictional), so the facts came through agent 1's adapted weights."""
    from multiseal.learning.self_edit import parse_retold, sample_self_edits
    from multiseal.types import Note

    sc = validate_scenario(
        {
            "model": {"base": "smollm2-135m", "lora": {"rank": 16, "alpha": 32}},
            "world": {"documents": 1, "questions_per_doc": [4, 4]},
            "agents": 3,
            "rounds": 1,
            "arrivals": {"kind": "table", "table": [{"round": 0, "agent": 0, "docs": ["d000"]}]},
            "self_edit": {"style": "rewrite", "temperature": 0.0, "max_new_tokens": 128},
            "inner_loop": {"epochs": 6, "lr": 2.0e-3, "batch_size": 1},  # the study's calibrated loop
            "topology": {"kind": "line"},
            "sharing": {"retell": True},
            "evaluation": {"max_new_tokens": 16, "retention_probe": 0},
        }
    )
    sim = build_simulation(sc, smollm2_model, progress=False)
    try:
        sim.run()
        (retold,) = [n for n in sim.state.notes_log if n.author == 1]
        assert retold.hops == 1 and retold.sources == ("r0.a0.d000.0",)
        stated = sim.setup.facts.score(retold).correct
        assert stated, retold.text
        doc = sim.setup.world.doc("d000")
        (base_text,) = sample_self_edits(
            smollm2_model, [(doc, None, "rewrite")], sim.setup.self_edit, progress=None, closed_book=True
        )[0]
        base_note = Note("base", 1, "d000", 0, "rewrite", base_text, tuple(parse_retold(base_text, doc, "rewrite")), 1)
        assert len(sim.setup.facts.score(base_note).correct) < len(stated), (base_text, retold.text)
    finally:
        sim.close()
