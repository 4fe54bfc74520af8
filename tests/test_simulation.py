"""The round loop on tiny-random: shapes, bookkeeping, notes reaching only neighbours, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from multiseal.config.builders import build_simulation
from multiseal.config.load import validate_scenario
from multiseal.run.artifacts import log_artifacts
from multiseal.run.recipes.simulation import round_metrics, summary_table

TINY = {
    "model": {"base": "tiny-random", "lora": {"rank": 4, "alpha": 8}},
    "world": {"documents": 6, "questions_per_doc": [3, 3]},
    "agents": 3,
    "rounds": 2,
    "self_edit": {"style": "implications", "max_new_tokens": 6},
    "inner_loop": {"epochs": 1, "batch_size": 4},
    "evaluation": {"max_new_tokens": 4, "retention_probe": 2},
}


def scenario(**changes):
    raw = {**TINY, **changes}
    return validate_scenario(raw)


@pytest.fixture
def run_sim(tiny_model):
    made = []

    def run(sc, steps=None):
        sim = build_simulation(sc, tiny_model, progress=False)
        made.append(sim)
        if steps is None:
            sim.run()
        else:
            for _ in range(steps):
                sim.step()
        return sim

    yield run
    for sim in made:
        sim.close()


def test_end_to_end_fills_the_accuracy_tensor_and_metrics(run_sim):
    sim = run_sim(scenario())
    A, D = 3, 6
    assert sim.state.acc.shape == (3, A, D)
    assert not np.isnan(sim.state.acc).any(), "every document is measured every round, reached or not"
    assert (
        sim.state.introduced[0].sum() == 0 and sim.state.introduced[1].sum() == 3 and sim.state.introduced[2].sum() == 6
    )
    assert (sim.state.own.sum(axis=1) == 2).all()  # disjoint: one own document per agent per round
    rec = sim.records[-1]
    assert set(rec.agents) == {0, 1, 2}
    assert {"acc_own", "acc_received", "forgetting", "bwt", "retention"} <= set(rec.agents[0])
    flat = round_metrics(rec)
    assert "agent.2.acc_all" in flat and "pop.acc_all.mean" in flat and "comm.notes" in flat
    # complete graph of 3: each agent's note goes to 2 neighbours each round
    assert [r.communication["notes"] for r in sim.records] == [6, 6]
    assert "final round 2 of 2" in summary_table(sim, "strict")
    # the fact metrics (multiseal.sim.facts): per agent, and the population's
    names = {"note_fidelity", "note_hallucination", "transfer_efficiency", "writer_miss", "learner_miss"}
    assert names <= set(rec.agents[0])
    assert 0.0 <= flat["agent.0.note_fidelity"] <= 1.0
    assert {"pop.note_fidelity.mean", "pop.fact_diffusion.d0", "pop.misinformation", "pop.misinformation.count"} <= set(
        flat
    )


class _Tracker:
    """What ``log_artifacts`` needs of a tracker, keeping the JSONL rows."""

    def __init__(self, folder):
        self.folder, self.rows = folder, {}

    def artifact_dir(self):
        return self.folder

    def artifact_file(self, path):
        pass

    def artifact_text(self, name, text):
        pass

    def artifact_jsonl(self, name, rows):
        self.rows[name] = list(rows)


def test_notes_artifact_names_the_facts_each_note_states(run_sim, tmp_path):
    sim = run_sim(scenario(rounds=1))
    tracker = _Tracker(tmp_path)
    log_artifacts(sim, tracker)
    for row in tracker.rows["notes.jsonl"]:
        doc = sim.setup.world.doc(row["doc_id"])
        got = row["facts_correct"] + row["facts_wrong"] + row["facts_omitted"]
        assert sorted(got) == sorted(f.fact_id for f in doc.facts)
    facts = tracker.rows["facts.jsonl"]
    assert {r["row"] for r in facts} == {0, 1}
    assert len(facts) == 2 * sum(len(d.questions) for d in sim.setup.world.documents)  # every asked fact, every row
    assert all(len(r["distance"]) == 3 for r in facts)


def test_notes_reach_only_out_neighbours(run_sim):
    # a directed line 0 -> 1 -> 2: agent 2 never hears of agent 0's documents
    sc = scenario(topology={"kind": "line", "directed": True}, rounds=1)
    sim = run_sim(sc)
    learnt = sim.state.learnt
    doc0 = sim.setup.arrivals[0][0][0]
    j = sim.setup.doc_index[doc0]
    assert learnt[0, j] == 1 and learnt[1, j] == 1 and learnt[2, j] == -1
    assert sim.state.postbox.inbox(2) == []


def test_relay_forwards_received_notes_a_round_later(run_sim):
    sc = scenario(topology={"kind": "line", "directed": True}, sharing={"relay": True})
    sim = run_sim(sc)
    j = sim.setup.doc_index[sim.setup.arrivals[0][0][0]]
    assert sim.state.learnt[2, j] == 2  # relayed by agent 1 after round 1, adapted on in round 2


def test_isolated_agents_learn_only_their_own_documents(run_sim):
    sim = run_sim(scenario(sharing={"mode": "none"}))
    assert ((sim.state.learnt >= 0) == sim.state.own).all()
    assert sum(r.communication.get("notes", 0) for r in sim.records) == 0


def test_weights_sharing_averages_neighbour_adapters(run_sim, tiny_model):
    sim = run_sim(scenario(sharing={"mode": "weights"}), steps=1)
    states = [tiny_model.adapter_state(s.adapter) for s in sim.setup.agents]
    for k in states[0]:  # complete graph + uniform mixing: every adapter is the same average
        assert np.allclose(states[0][k].numpy(), states[1][k].numpy(), atol=1e-6)
    assert (sim.state.learnt[:, :] >= 0).sum() == 9  # 3 own docs reach all 3 agents through the weights


def test_round_robin_adapts_one_agent_per_round(run_sim):
    sim = run_sim(scenario(scheduler={"kind": "round-robin"}))
    assert [sorted(a for a, n in r.trained_sequences.items() if n) for r in sim.records] == [[0], [1]]


def test_same_seed_same_transcript(run_sim):
    a = run_sim(scenario(self_edit={"style": "implications", "max_new_tokens": 6, "temperature": 1.0}))
    b = run_sim(scenario(self_edit={"style": "implications", "max_new_tokens": 6, "temperature": 1.0}))
    assert [n.text for n in a.state.notes_log] == [n.text for n in b.state.notes_log]
    assert np.array_equal(a.state.acc, b.state.acc)
    assert [o["answer"] for o in a.state.outcomes] == [o["answer"] for o in b.state.outcomes]


def test_replay_adds_earlier_sequences(run_sim):
    plain = run_sim(scenario(sharing={"mode": "none"}))
    replay = run_sim(scenario(sharing={"mode": "none"}, replay={"fraction": 1.0}))
    assert plain.records[1].trained_sequences[0] < replay.records[1].trained_sequences[0]


def test_composition_questions_are_scored(run_sim):
    sim = run_sim(scenario(world={"documents": 6, "questions_per_doc": [3, 3], "composition": 2}))
    assert not np.isnan(sim.state.composition).any()
    assert "acc_composition" in sim.records[0].agents[0]


def test_a_base_writer_writes_the_same_notes_whatever_the_agents_learnt(run_sim):
    """``self_edit.writer: base``: round 2's notes come from the shared base, so two runs that trained
    their adapters very differently in round 1 write the same notes; with the agents' own adapters as
    writers (the default) they do not."""

    def notes(writer, lr):
        sim = run_sim(
            scenario(
                self_edit={"style": "rewrite", "max_new_tokens": 6, "temperature": 0.0, "writer": writer},
                inner_loop={"epochs": 2, "batch_size": 4, "lr": lr},
            )
        )
        return [n.text for n in sim.state.notes_log if n.round == 1]

    assert notes("base", 0.3) == notes("base", 1e-5)
    assert notes("adapter", 0.3) != notes("adapter", 1e-5)
