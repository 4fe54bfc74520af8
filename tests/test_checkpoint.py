"""A checkpoint holds the whole state between rounds: resuming gives exactly the uninterrupted run."""
from __future__ import annotations

import json

import numpy as np
import pytest

from multiseal.config.builders import build_simulation
from multiseal.config.load import validate_scenario
from multiseal.run.statefile import dump_files, load_files
from multiseal.sim.checkpoint import STATE_CLASSES, capture, restore

TINY = {
    "model": {"base": "tiny-random", "lora": {"rank": 4, "alpha": 8}},
    "world": {"documents": 9, "questions_per_doc": [2, 2]},
    "agents": 3,
    "rounds": 3,
    "self_edit": {"style": "implications", "max_new_tokens": 6},
    "inner_loop": {"epochs": 1, "batch_size": 2},
    "evaluation": {"max_new_tokens": 4, "retention_probe": 2},
    "topology": {"kind": "ring"},
    "replay": {"fraction": 0.5},
}


def _outcome(sim):
    """The accuracy tensor, and every record, note and answer as JSON (NaN compares equal there)."""
    records = [(r.agents, r.population, r.communication, r.trained_sequences) for r in sim.records]
    notes = [(n.note_id, n.text, n.sequences) for n in sim.notes_log]
    return sim.acc.copy(), json.dumps([records, notes, sim.outcomes], sort_keys=True, default=str)


@pytest.mark.parametrize("changes", [
    {},
    {"sharing": {"mode": "notes", "delay": 1, "loss": 0.3, "relay": True}},
    {"scheduler": {"kind": "random-gossip"}},
    {"sharing": {"mode": "weights"}},
], ids=["synchronous", "delay-loss-relay", "random-gossip", "weights"])
def test_resuming_from_a_checkpoint_replays_the_uninterrupted_run(tiny_model, changes):
    scenario = validate_scenario({**TINY, **changes})
    whole = build_simulation(scenario, tiny_model, progress=False)
    whole.run()
    expected = _outcome(whole)
    whole.close()

    first = build_simulation(scenario, tiny_model, progress=False)
    first.step()
    state, tensors = capture(first)
    files = dump_files(state, STATE_CLASSES)  # what the run directory stores: data, not a pickle
    first.close()

    resumed = build_simulation(scenario, tiny_model, progress=False)
    restore(resumed, load_files(files, STATE_CLASSES), tensors)
    assert resumed.round == 1
    resumed.run()
    got = _outcome(resumed)
    resumed.close()
    np.testing.assert_array_equal(got[0], expected[0])
    assert got[1:] == expected[1:]
