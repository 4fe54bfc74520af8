"""On the real SmolLM2: an agent learns a neighbour's document from the neighbour's notes alone."""

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
