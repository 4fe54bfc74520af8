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
    notes = [(n.note_id, n.text, n.sequences) for n in sim.state.notes_log]
    return sim.state.acc.copy(), json.dumps([records, notes, sim.state.outcomes], sort_keys=True, default=str)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"sharing": {"mode": "notes", "delay": 1, "loss": 0.3, "relay": True}},
        {"scheduler": {"kind": "random-gossip"}},
        {"sharing": {"mode": "weights"}},
        {"sharing": {"mode": "notes", "delay": 1, "retell": True}, "topology": {"kind": "line"}},
    ],
    ids=["synchronous", "delay-loss-relay", "random-gossip", "weights", "retell"],
)
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


def test_the_checkpoint_holds_the_round_state_whole_and_nothing_rebuilt(tiny_model):
    """Every field of ``RoundState`` is saved (no deny-list to keep); the ``Setup`` never is."""
    import dataclasses

    from multiseal.sim.state import RoundState

    sim = build_simulation(validate_scenario(TINY), tiny_model, progress=False)
    sim.step()
    state, _ = capture(sim)
    loaded = load_files(dump_files(state, STATE_CLASSES), STATE_CLASSES)
    assert set(loaded) == {"round", "state", "scheduler_state", "rng"} and loaded["round"] == 1
    assert isinstance(loaded["state"], RoundState)
    for f in dataclasses.fields(RoundState):
        got, want = getattr(loaded["state"], f.name), getattr(sim.state, f.name)
        if isinstance(want, np.ndarray):
            np.testing.assert_array_equal(got, want)
        elif f.name in ("records", "history", "outcomes"):  # NaN inside: compare as JSON
            assert json.dumps(got, default=str, sort_keys=True) == json.dumps(want, default=str, sort_keys=True), f.name
        elif f.name != "postbox":
            assert got == want, f.name
    sim.close()
    assert "multiseal.sim.setup" not in dump_files(state, STATE_CLASSES)["state.json"].decode()


def test_a_checkpoint_from_before_the_state_record_still_resumes(tiny_model):
    """Checkpoints written when the state was the simulation's own attributes (flat, some named with a
    leading underscore, a few rebuilt parts among them) load into the round state."""
    import dataclasses

    scenario = validate_scenario(TINY)
    whole = build_simulation(scenario, tiny_model, progress=False)
    whole.run()
    expected = _outcome(whole)
    whole.close()
    first = build_simulation(scenario, tiny_model, progress=False)
    first.step()
    state, tensors = capture(first)
    first.close()
    private = {
        "items",
        "passages",
        "known",
        "trained",
        "trained_notes",
        "answers",
        "travelling",
        "dirty",
        "started",
        "held_prev",
        "round_authors",
        "deltas",
        "written",
    }
    flat = {
        ("_" + f.name if f.name in private else f.name): getattr(state["state"], f.name)
        for f in dataclasses.fields(state["state"])
    }
    flat.update(content="notes", distractors=None, scheduler_state=state["scheduler_state"], rng=state["rng"])
    resumed = build_simulation(scenario, tiny_model, progress=False)
    restore(resumed, load_files(dump_files(flat, STATE_CLASSES), STATE_CLASSES), tensors)
    resumed.run()
    got = _outcome(resumed)
    resumed.close()
    np.testing.assert_array_equal(got[0], expected[0])
    assert got[1:] == expected[1:]
