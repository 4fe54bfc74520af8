"""The PettingZoo interface: PettingZoo's own conformance tests, then masks, invalid actions,
determinism, reward bookkeeping and adapter clean-up, all on the tiny random model."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, seed_test

from multiseal.config.load import validate_scenario
from multiseal.rl.interface import (
    ACTION_KEYS,
    HISTORY_METRICS,
    NEIGHBOUR_FEATURES,
    SLOT_FEATURES,
)
from multiseal.run.pettingzoo import env, parallel_env

SMALL = {
    "rounds": 2,
    "seed": 3,
    "model": {"base": "tiny-random", "lora": {"rank": 4, "alpha": 8}},
    "world": {"documents": 4, "questions_per_doc": [2, 2]},
    "agents": 3,
    "arrivals": {"kind": "overlapping", "copies": 2},
    "topology": {"kind": "ring"},
    "self_edit": {"max_new_tokens": 8},
    "inner_loop": {"epochs": 1, "max_length": 32},
    "evaluation": {"max_new_tokens": 4, "retention_probe": 0},
}


def scenario(**changes):
    raw = {**SMALL, **changes}
    return validate_scenario(raw)


def make(tiny_model, sc=None, **options):
    return parallel_env(sc or scenario(), model=tiny_model, **options)


def zero_action(e, agent):
    space = e.action_space(agent)
    return {k: np.zeros(s.shape, dtype=np.int8) if k != "style" else 0 for k, s in space.spaces.items()}


def valid_action(info, style=0):
    """Every allowed bit set."""
    m = info["action_mask"]
    return {"style": style, **{k: (m[k] != 0).astype(np.int8) for k in ("adapt", "adapt_new", "send")}}


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ---------------------------------------------------------------- PettingZoo conformance


def test_parallel_api_conformance(tiny_model):
    e = make(tiny_model)
    parallel_api_test(e, num_cycles=4)
    e.close()


def test_aec_api_conformance(tiny_model):
    e = env(scenario(), model=tiny_model)
    api_test(e, num_cycles=4)
    e.close()


def test_parallel_seed_conformance(tiny_model):
    made = []

    def build():
        made.append(make(tiny_model))
        return made[-1]

    parallel_seed_test(build, num_cycles=4)
    for e in made:
        e.close()


def test_aec_seed_conformance(tiny_model):
    made = []

    def build():
        made.append(env(scenario(), model=tiny_model))
        return made[-1]

    seed_test(build, num_cycles=4)
    for e in made:
        e.close()


# ---------------------------------------------------------------- spaces and observations


def test_spaces_have_fixed_shapes_and_observations_match_them(tiny_model):
    e = make(tiny_model, inbox_slots=5, history=3)
    A = 3
    obs, infos = e.reset(seed=0)
    size = 3 + 3 * len(HISTORY_METRICS) + 5 * len(SLOT_FEATURES) + A * len(NEIGHBOUR_FEATURES)
    assert e.possible_agents == ["agent_0", "agent_1", "agent_2"]
    for a in e.agents:
        space = e.action_space(a)
        assert isinstance(space, spaces.Dict) and tuple(space.spaces) == tuple(sorted(ACTION_KEYS))
        assert space["style"].n == len(e.styles) and space["adapt"].n == 5
        assert space["adapt_new"].n == A and space["send"].n == A
        ob_space = e.observation_space(a)
        assert ob_space.shape == (size,) and ob_space.dtype == np.float32
        assert obs[a].dtype == np.float32 and ob_space.contains(obs[a])
    assert len(e.interface.feature_names()) == size
    blocks = e.interface.unflatten(obs["agent_0"])
    assert blocks["slots"].shape == (5, len(SLOT_FEATURES)) and blocks["history"].shape == (3, len(HISTORY_METRICS))
    e.close()


def test_styles_default_to_note_writing_styles_and_can_be_chosen(tiny_model):
    e = make(tiny_model)
    assert "passage-only" not in e.styles and "implications" in e.styles
    e2 = make(tiny_model, styles=["rewrite", "self-qa"])
    assert e2.styles == ["rewrite", "self-qa"] and e2.action_space("agent_0")["style"].n == 2
    with pytest.raises(ValueError, match="styles"):
        make(tiny_model, styles=["poetry"])


def test_observation_sees_pending_notes_and_neighbour_metrics(tiny_model):
    e = make(tiny_model)
    obs, infos = e.reset(seed=0)
    # nobody adapts in round 0: every delivered note stays pending and shows up in the slots
    obs, _, _, _, infos = e.step({a: zero_action(e, a) for a in e.agents})
    sim = e.sim
    for i, a in enumerate(e.possible_agents):
        pending = sim.state.postbox.inbox(i)
        slots = e.interface.unflatten(obs[a])["slots"]
        f = {n: k for k, n in enumerate(SLOT_FEATURES)}
        assert slots[:, f["present"]].sum() == min(len(pending), 8)
        assert infos[a]["slots"] == tuple(it.note.note_id for it in e.interface.slots(sim, i))
        for k, note_id in enumerate(infos[a]["slots"]):
            item = next(it for it in pending if it.note.note_id == note_id)
            assert slots[k, f["own"]] == float(item.note.author == i)
            assert 0.0 <= slots[k, f["overlap"]] <= 1.0
        nb = e.interface.unflatten(obs[a])["neighbours"]
        assert nb[i].tolist() == [0.0, 0.0, 0.0, 0.0]  # no row for oneself
        assert nb[:, 0].sum() == 2  # ring of three: both others are neighbours
    hidden = make(tiny_model, visible_neighbour_metrics=False)
    obs_h, _ = hidden.reset(seed=0)
    obs_h, *_ = hidden.step({a: zero_action(hidden, a) for a in hidden.agents})
    assert all(hidden.interface.unflatten(o)["neighbours"][:, 2:].sum() == 0 for o in obs_h.values())
    e.close()
    hidden.close()


# ---------------------------------------------------------------- masks and invalid actions


def test_action_masks_follow_the_graph_and_the_inbox(tiny_model):
    # a directed line 0 -> 1 -> 2: agent 1 may send only to 2 and take new notes only from 0 and itself
    e = make(tiny_model, scenario(topology={"kind": "line", "directed": True}))
    _, infos = e.reset(seed=0)
    m = infos["agent_1"]["action_mask"]
    assert m["send"].tolist() == [0, 0, 2]
    assert m["adapt_new"].tolist() == [2, 2, 0]
    assert m["adapt"].tolist() == [0] * 8  # the inbox is empty before the first round
    assert m["style"].tolist() == [1] * len(e.styles)
    assert all(v.dtype == np.int8 for v in m.values())
    # sampling under the mask never gives an invalid action
    for a in e.agents:
        act = e.action_space(a).sample(mask=infos[a]["action_mask"])
        assert e.action_space(a).contains(act)
    e.close()


def test_invalid_bits_are_ignored_and_counted_never_fatal(tiny_model):
    e = make(tiny_model, scenario(topology={"kind": "line", "directed": True}))
    _, infos = e.reset(seed=0)
    everything = {
        "style": 99,
        "adapt": np.ones(8, np.int8),
        "adapt_new": np.ones(3, np.int8),
        "send": np.ones(3, np.int8),
    }
    obs, rewards, term, trunc, infos = e.step({a: dict(everything) for a in e.agents})
    # agent 1: 8 empty slots, new notes from 2 (not an in-neighbour), sending to 0 and to itself, style
    assert infos["agent_1"]["invalid"] == {"style": 1, "adapt": 8, "adapt_new": 1, "send": 2}
    assert infos["agent_1"]["invalid_actions"] == 12
    assert infos["agent_2"]["invalid"]["send"] == 3  # the end of the line sends to nobody
    # the valid part still acted: agent 1's notes reached agent 2 only, in its own configured style
    sent = {(u, v) for (r, u, v) in e.sim.state.postbox.stats if r == 0}
    assert sent == {(0, 1), (1, 2)}
    assert all(n.style == e.sim.setup.agents[n.author].style for n in e.sim.records[0].notes)
    obs, rewards, term, trunc, infos = e.step({a: dict(everything) for a in e.agents})
    assert all(term.values()) and e.agents == []
    assert infos["agent_1"]["invalid_actions"] > 12
    e.close()


def test_malformed_actions_raise_a_clear_error(tiny_model):
    e = make(tiny_model)
    e.reset(seed=0)
    with pytest.raises(ValueError, match="'adapt' must have 8 entries"):
        e.step({"agent_0": {"style": 0, "adapt": [1, 0], "adapt_new": [0] * 3, "send": [0] * 3}})
    with pytest.raises(ValueError, match="has no 'send'"):
        e.step({"agent_0": {"style": 0, "adapt": [0] * 8, "adapt_new": [0] * 3}})
    with pytest.raises(ValueError, match="unknown agents"):
        e.step({"player_9": zero_action(e, "agent_0")})
    e.close()


# ---------------------------------------------------------------- what actions do


def test_adapt_choices_reach_the_scheduler(tiny_model):
    e = make(tiny_model)
    _, infos = e.reset(seed=0)
    # round 0: agent 0 takes only its own new notes, the others nothing
    acts = {a: zero_action(e, a) for a in e.agents}
    acts["agent_0"]["adapt_new"] = np.array([1, 0, 0], np.int8)
    acts["agent_0"]["send"] = valid_action(infos["agent_0"])["send"]
    obs, _, _, _, infos = e.step(acts)
    sim = e.sim
    planned = {a: [n.note_id for n in notes] for a, notes in sim.setup.scheduler.adapted.items()}
    assert planned[0] and planned[0] == [n.note_id for n in sim.records[0].notes if n.author == 0]
    assert planned[1] == [] and planned[2] == []
    assert sim.records[0].trained_sequences[1] == 0
    # round 1: agent 1 adapts on the note in its first slot, which then leaves its inbox
    first = infos["agent_1"]["slots"][0]
    acts = {a: zero_action(e, a) for a in e.agents}
    acts["agent_1"]["adapt"][0] = 1
    e.step(acts)
    assert [n.note_id for n in sim.setup.scheduler.adapted[1]] == [first]
    assert first not in {it.note.note_id for it in sim.state.postbox.inbox(1)}
    e.close()


def test_an_agent_left_out_of_the_actions_keeps_the_scenario_defaults(tiny_model):
    e = make(tiny_model)
    e.reset(seed=0)
    _, _, _, _, infos = e.step({"agent_0": zero_action(e, "agent_0")})
    sim = e.sim
    assert sim.records[0].trained_sequences[0] == 0
    assert sim.records[0].trained_sequences[1] > 0  # synchronous: its whole inbox
    assert all(v == 0 for v in infos["agent_1"]["invalid"].values())
    e.close()


# ---------------------------------------------------------------- determinism and episodes


def _episode(e, seed, actions_seed=0):
    obs, infos = e.reset(seed=seed)
    for i, a in enumerate(e.possible_agents):
        e.action_space(a).seed(actions_seed + i)
    out = [obs]
    while e.agents:
        acts = {a: e.action_space(a).sample(mask=infos[a]["action_mask"]) for a in e.agents}
        obs, rewards, _, _, infos = e.step(acts)
        out.append((obs, rewards, {a: i["slots"] for a, i in infos.items()}))
    return out, e.sim.state.acc.copy(), [n.text for n in e.sim.state.notes_log]


def _same(x, y) -> bool:
    if isinstance(x, dict):
        return x.keys() == y.keys() and all(_same(x[k], y[k]) for k in x)
    if isinstance(x, (list, tuple)):
        return len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y))
    if isinstance(x, np.ndarray):
        return np.array_equal(x, y, equal_nan=True)
    return x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y))


def test_same_seed_same_episode_and_reset_rebuilds_everything(tiny_model):
    e1, e2 = make(tiny_model), make(tiny_model)
    run1 = _episode(e1, seed=5)
    run2 = _episode(e2, seed=5)
    again = _episode(e1, seed=5)  # a reset on a used env starts from scratch
    assert _same(run1, run2) and _same(run1, again)
    other = _episode(e1, seed=6)
    assert not _same(run1[2], other[2])  # another seed: another world and other notes
    e1.close()
    e2.close()


def test_unseeded_reset_plays_the_next_seed(tiny_model):
    e = make(tiny_model)
    e.reset()
    assert e.sim.setup.seed == SMALL["seed"]
    e.reset(seed=10)
    e.reset()
    assert e.sim.setup.seed == 11
    e.close()


def test_adapters_are_cleaned_up_between_episodes(tiny_model):
    before = set(tiny_model.adapters)
    e = make(tiny_model)
    for s in range(3):
        e.reset(seed=s)
        e.step({a: zero_action(e, a) for a in e.agents})
        assert len(set(tiny_model.adapters) - before) == 3
        assert all("." not in spec.adapter and spec.adapter not in "lora_" for spec in e.sim.setup.agents)
    e.close()
    assert set(tiny_model.adapters) == before


# ---------------------------------------------------------------- rewards


def test_rewards_sum_to_final_accuracy_plus_population_term_minus_communication(tiny_model):
    e = make(tiny_model, population_weight=0.5, comm_cost=0.01)
    obs, infos = e.reset(seed=1)
    totals = dict.fromkeys(e.possible_agents, 0.0)
    while e.agents:
        obs, rewards, _, _, infos = e.step({a: valid_action(infos[a]) for a in e.agents})
        for a, r in rewards.items():
            totals[a] += r
            t = infos[a]["reward_terms"]
            assert r == pytest.approx(t["own_gain"] + 0.5 * t["population_gain"] - 0.01 * t["notes_sent"])
    sim = e.sim
    nz = lambda x: 0.0 if x is None or math.isnan(x) else x  # noqa: E731
    final_pop = nz(sim.records[-1].population["pop.acc_all.mean"])
    for i, a in enumerate(e.possible_agents):
        sent = sum(c["notes"] for (r, u, v), c in sim.state.postbox.stats.items() if u == i)
        assert sent > 0
        expected = nz(sim.records[-1].agents[i]["acc_own"]) + 0.5 * final_pop - 0.01 * sent
        assert totals[a] == pytest.approx(expected)
    e.close()


def test_sending_nothing_costs_nothing_and_reaches_nobody(tiny_model):
    e = make(tiny_model, comm_cost=1.0)
    _, infos = e.reset(seed=0)
    acts = {a: {**valid_action(infos[a]), "send": np.zeros(3, np.int8)} for a in e.agents}
    _, rewards, _, _, infos = e.step(acts)
    assert all(i["reward_terms"]["notes_sent"] == 0.0 for i in infos.values())
    assert e.sim.records[0].communication.get("notes", 0) == 0
    assert all(it.hops == 0 for a in range(3) for it in e.sim.state.postbox.inbox(a))
    e.close()


def test_an_env_needs_a_simulation_scenario(tiny_model):
    with pytest.raises(ValueError, match="kind 'simulation'"):
        make(tiny_model, scenario(kind="knowledge"))
