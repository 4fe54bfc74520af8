"""Forgetting measured and fought (issue 14), on tiny-random: each measure against a hand computation,
each mitigation changing exactly what it promises, false notes, their spread metric and trust."""

from __future__ import annotations

import json
import math
import random

import networkx as nx
import numpy as np
import pytest
import torch

from multiseal.config.builders import build_simulation
from multiseal.config.load import validate_scenario
from multiseal.errors import ScenarioError
from multiseal.learning.drift import drift, encode_texts
from multiseal.learning.regularise import BaseReference, kl_to_base, l2_pull
from multiseal.learning.train import Example, Job, tokenize_sequences, train_jobs
from multiseal.sim.adversary import adversary_metrics, false_note, noise_note
from multiseal.sim.checkpoint import capture, restore
from multiseal.sim.facts import FactIndex, tokens
from multiseal.sim.mitigations import Combine, combined_state, delta_bytes
from multiseal.sim.schedulers import Budgeted
from multiseal.sim.trust import TrustSettings, update_trust, weighted_inboxes
from multiseal.types import InboxItem, LoraSettings, Note
from multiseal.world.general_text import general_passages
from multiseal.world.synthetic import generate_distractors, generate_world

TINY = {
    "model": {"base": "tiny-random", "lora": {"rank": 4, "alpha": 8}},
    "world": {"documents": 12, "questions_per_doc": [3, 3]},
    "agents": 3,
    "rounds": 2,
    "topology": {"kind": "ring"},
    "self_edit": {"style": "implications", "max_new_tokens": 12},
    "inner_loop": {"epochs": 2, "batch_size": 2, "lr": 5e-3},
    "evaluation": {"max_new_tokens": 4, "retention_probe": 2, "drift_passages": 4},
}


def scenario(**changes):
    return validate_scenario({**TINY, **changes})


def _perturb(model, name, scale=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    state = model.adapter_state(name)
    model.set_adapter_state(name, {k: v + scale * torch.randn(v.shape, generator=g) for k, v in state.items()})


# --- continuous measures ---------------------------------------------------------------------------


def test_the_base_is_its_own_reference(tiny_model, make_adapter):
    """A fresh adapter (B = 0) is the base: perplexity ratio exactly 1, KL exactly 0."""
    name = make_adapter(tiny_model, LoraSettings(rank=4, alpha=8))
    data = encode_texts(tiny_model, general_passages(5), 32)
    d = drift(tiny_model, [name], data, batch_size=2)[name]
    assert d.ppl_ratio == pytest.approx(1.0, abs=1e-6)
    assert d.kl == pytest.approx(0.0, abs=1e-7)


def test_perplexity_and_kl_match_a_hand_computation(tiny_model, make_adapter):
    name = make_adapter(tiny_model, LoraSettings(rank=4, alpha=8))
    _perturb(tiny_model, name)
    texts = general_passages(3)
    data = encode_texts(tiny_model, texts, 24)
    got = drift(tiny_model, [name], data, batch_size=2)[name]
    nll_base = nll = kl = 0.0
    n = 0
    with torch.no_grad():
        for e in data:  # one passage at a time, no padding: position t predicts token t + 1
            ids = torch.tensor([e.ids])
            with tiny_model.peft.disable_adapter():
                pb = torch.log_softmax(tiny_model.peft(input_ids=ids).logits.float()[0, :-1], -1)
            tiny_model.peft.set_adapter(name)
            pa = torch.log_softmax(tiny_model.peft(input_ids=ids).logits.float()[0, :-1], -1)
            target = ids[0, 1:]
            nll_base -= float(pb[torch.arange(len(target)), target].sum())
            nll -= float(pa[torch.arange(len(target)), target].sum())
            kl += float((pb.exp() * (pb - pa)).sum())
            n += len(target)
    assert got.ppl == pytest.approx(math.exp(nll / n), rel=1e-4)
    assert got.ppl_ratio == pytest.approx(math.exp(nll / n) / math.exp(nll_base / n), rel=1e-4)
    assert got.kl == pytest.approx(kl / n, rel=1e-3)
    assert got.kl > 0


def test_a_simulation_logs_drift_for_every_agent(run_sim):
    sim = run_sim(scenario())
    for rec in sim.records:
        for m in rec.agents.values():
            assert m["ppl_ratio"] > 0 and m["kl_base"] >= 0
        assert "pop.ppl_ratio.mean" in rec.population and "pop.kl_base.mean" in rec.population
    assert any(m["kl_base"] > 0 for m in sim.records[-1].agents.values())  # training moved someone
    off = run_sim(scenario(evaluation={**TINY["evaluation"], "drift_passages": 0}))
    assert "ppl_ratio" not in off.records[-1].agents[0]


def test_the_probe_has_enough_candidates_and_its_size_is_a_setting(run_sim):
    from multiseal.world.probe import probe_questions

    assert len(probe_questions()) >= 150
    sim = run_sim(scenario(evaluation={**TINY["evaluation"], "retention_probe": 0}))
    assert sim.state.probe == []


# --- the regularisers -------------------------------------------------------------------------------


def _job(model, name, penalty=None, epochs=3):
    texts = [f"The tower of Ulm{k} was built in {1500 + 7 * k} by Mira{k}." for k in range(4)]
    return Job(
        name,
        [Example(x) for x in tokenize_sequences(model.tokenizer, texts, 64)],
        epochs=epochs,
        lr=2e-2,
        batch_size=1,
        seed=3,
        penalty=penalty,
    )


def _distance(a, b):
    return sum(float(((a[k] - b[k]) ** 2).sum()) for k in a) ** 0.5


def test_l2_pull_keeps_the_adapter_closer_to_its_previous_state(tiny_model, make_adapter):
    plain, pulled = (make_adapter(tiny_model, LoraSettings(rank=4, alpha=8), seed=1) for _ in range(2))
    for n in (plain, pulled):
        _perturb(tiny_model, n, seed=5)  # the same "previous state" for both
    start = tiny_model.adapter_state(plain)
    train_jobs(tiny_model, [_job(tiny_model, plain)])
    train_jobs(tiny_model, [_job(tiny_model, pulled, l2_pull(tiny_model, pulled, weight=50.0))])
    far, near = _distance(tiny_model.adapter_state(plain), start), _distance(tiny_model.adapter_state(pulled), start)
    assert 0 < near < far


def test_kl_regularisation_keeps_the_adapter_closer_to_the_base_on_general_text(tiny_model, make_adapter):
    plain, held = (make_adapter(tiny_model, LoraSettings(rank=4, alpha=8), seed=2) for _ in range(2))
    data = encode_texts(tiny_model, general_passages(4), 32)
    reference = BaseReference.build(tiny_model, data, batch_size=2)
    train_jobs(tiny_model, [_job(tiny_model, plain)])
    train_jobs(tiny_model, [_job(tiny_model, held, kl_to_base(reference, weight=20.0))])
    d = drift(tiny_model, [plain, held], data)
    assert 0 < d[held].kl < d[plain].kl


def test_penalties_train_together_as_one_after_another(tiny_model64, make_adapter):
    names = [make_adapter(tiny_model64, LoraSettings(rank=4, alpha=8), seed=s) for s in (3, 4)]
    data = encode_texts(tiny_model64, general_passages(4), 32)
    reference = BaseReference.build(tiny_model64, data, batch_size=2)
    start = {n: tiny_model64.adapter_state(n) for n in names}

    def jobs():
        return [
            _job(tiny_model64, names[0], l2_pull(tiny_model64, names[0], 5.0)),
            _job(tiny_model64, names[1], kl_to_base(reference, 5.0)),
        ]

    train_jobs(tiny_model64, jobs())
    alone = {n: tiny_model64.adapter_state(n) for n in names}
    for n in names:
        tiny_model64.set_adapter_state(n, start[n])
    train_jobs(tiny_model64, jobs(), together=True)
    for n in names:
        together = tiny_model64.adapter_state(n)
        assert (
            _distance(alone[n], together) / _distance(alone[n], start[n]) < 1e-6
        )  # float64: see the tiny_model64 fixture


# --- mitigations in the round loop -----------------------------------------------------------------


def _with(entries, **changes):
    return scenario(mitigations=entries, **changes)


def test_replay_as_a_mitigation_equals_the_replay_section(run_sim):
    a = run_sim(_with([{"kind": "replay", "params": {"fraction": 0.5}}], rounds=3))
    b = run_sim(scenario(replay={"fraction": 0.5}, rounds=3))
    assert [r.trained_sequences for r in a.records] == [r.trained_sequences for r in b.records]
    assert json.dumps(a.records[-1].agents) == json.dumps(b.records[-1].agents)  # NaN equal in JSON


def test_the_gate_rolls_back_an_update_that_did_not_help_and_counts_it(run_sim, tiny_model):
    # tiny-random answers nothing right: no update raises accuracy, so min_gain 0 rejects every one
    sim = run_sim(_with([{"kind": "gate", "params": {"min_gain": 0.0}}]))
    for a, spec in enumerate(sim.setup.agents):
        state = tiny_model.adapter_state(spec.adapter)
        assert all(float(t.abs().max()) == 0 for k, t in state.items() if ".lora_B." in k)  # still the base
        assert sim.records[-1].agents[a]["gated_out"] == 2.0
        assert sim.state.trained_notes[a] == []  # nothing was learnt
        assert sim.records[-1].agents[a]["kl_base"] == 0.0
    kept = run_sim(_with([{"kind": "gate", "params": {"min_gain": -1.0, "max_drop": 1.0}}]))
    assert all(m["gated_out"] == 0.0 for m in kept.records[-1].agents.values())
    assert all(m["kl_base"] > 0 for m in kept.records[-1].agents.values())


def test_the_gate_compares_accuracy_before_and_after(run_sim, monkeypatch):
    """A harmful update (accuracy on its documents falls) is rolled back; a helpful one is kept."""
    from multiseal.sim.stages import adapt

    calls = []

    def scores(setup, state, row, plan, when):
        calls.append(when)
        return {a: ((0.5, 1.0) if when == "before" else ((0.2, 1.0) if a == 0 else (0.8, 1.0))) for a in plan}

    monkeypatch.setattr(adapt, "gate_scores", scores)
    sim = run_sim(_with([{"kind": "gate"}], rounds=1))
    assert calls == ["before", "after"]
    assert sim.state.gated_out.tolist() == [1, 0, 0]
    assert sim.records[-1].agents[0]["kl_base"] == 0.0 and sim.records[-1].agents[1]["kl_base"] > 0


def test_combining_per_round_deltas_is_their_exact_sum():
    g = torch.Generator().manual_seed(0)
    key_a, key_b = "m.q.lora_A.weight", "m.q.lora_B.weight"
    deltas = [{key_a: torch.randn(2, 6, generator=g), key_b: torch.randn(5, 2, generator=g)} for _ in range(3)]
    want = sum(d[key_b] @ d[key_a] for d in deltas)
    cat, rank = combined_state(deltas, Combine("concat", "sum"), 2)
    assert rank == 6 and torch.allclose(cat[key_b] @ cat[key_a], want, atol=1e-5)
    mean, _ = combined_state(deltas, Combine("concat", "mean"), 2)
    assert torch.allclose(mean[key_b] @ mean[key_a], want / 3, atol=1e-5)
    svd, rank = combined_state(deltas, Combine("svd", "sum"), 2)
    assert rank == 2 and svd[key_a].shape == (2, 6)
    best = torch.linalg.svd(want)  # the best rank-2 approximation (Eckart-Young)
    approx = best.U[:, :2] @ torch.diag(best.S[:2]) @ best.Vh[:2]
    assert torch.allclose(svd[key_b] @ svd[key_a], approx, atol=1e-4)
    assert delta_bytes(deltas) == 3 * (12 + 10) * 4


def test_combine_keeps_each_rounds_delta_and_logs_its_memory(run_sim, tiny_model):
    sim = run_sim(_with([{"kind": "combine"}], rounds=3))
    for a, spec in enumerate(sim.setup.agents):
        deltas = sim.state.deltas[a]
        assert len(deltas) == 3
        m = sim.records[-1].agents[a]
        assert m["adapter_rank"] == 12 and m["combine_bytes"] == delta_bytes(deltas)
        state = tiny_model.adapter_state(spec.adapter)
        key = next(k for k in state if ".lora_A." in k)
        bkey = key.replace(".lora_A.", ".lora_B.")
        assert torch.allclose(state[bkey] @ state[key], sum(d[bkey] @ d[key] for d in deltas), atol=1e-6)
    assert [r.agents[0]["adapter_rank"] for r in sim.records] == [4, 8, 12]


def test_a_run_with_combined_adapters_resumes_exactly(tiny_model):
    sc = _with([{"kind": "combine"}, {"kind": "l2"}], rounds=3)
    whole = build_simulation(sc, tiny_model, progress=False)
    whole.run()
    expected = [r.agents for r in whole.records]
    whole.close()
    first = build_simulation(sc, tiny_model, progress=False)
    first.step()
    state, tensors = capture(first)
    first.close()
    resumed = build_simulation(sc, tiny_model, progress=False)
    restore(resumed, state, tensors)
    resumed.run()
    got = [r.agents for r in resumed.records]
    resumed.close()
    assert json.dumps(got) == json.dumps(expected)


def test_mitigations_are_chosen_per_agent(run_sim):
    sim = run_sim(
        _with(
            [{"kind": "gate", "params": {"min_gain": 0.0}}],
            agents={"count": 3, "overrides": {1: {"mitigations": []}, 2: {"mitigations": [{"kind": "combine"}]}}},
        )
    )
    m = sim.records[-1].agents
    assert m[0]["gated_out"] == 2 and "gated_out" not in m[1] and "gated_out" not in m[2]
    assert m[2]["adapter_rank"] == 8 and "adapter_rank" not in m[0]


@pytest.mark.parametrize(
    ("raw", "key", "words"),
    [
        ({"mitigations": [{"kind": "forget-me-not"}]}, "mitigations.0.kind", "forget-me-not"),
        ({"mitigations": [{"kind": "l2", "params": {"weight": -1}}]}, "mitigations.0.params.weight", "greater than 0"),
        ({"mitigations": [{"kind": "l2", "params": {"wieght": 1}}]}, "mitigations.0.params.wieght", "weight"),
        ({"mitigations": [{"kind": "gate"}, {"kind": "gate"}]}, "mitigations", "at most one"),
        (
            {"agents": {"count": 2, "overrides": {1: {"mitigations": [{"kind": "kl", "params": {"passages": 0}}]}}}},
            "agents.overrides.1.mitigations.0.params.passages",
            "greater than or equal to 1",
        ),
        ({"agents": {"count": 2, "overrides": {1: {"rate": 0.5}}}}, "agents.overrides[1]", "adversary"),
        (
            {
                "agents": {"count": 2, "overrides": {1: {"role": "adversary"}}},
                "world": {"kind": "squad", "path": "x.json"},
            },
            "agents.overrides.1.attack",
            "SQuAD",
        ),
        ({"trust": {"learn": "yes"}}, "trust.learn", "boolean"),
        ({"mitigations": [{"kind": "combine"}], "sharing": {"mode": "weights"}}, "mitigations.0.kind", "rank"),
        ({"kind": "knowledge", "mitigations": [{"kind": "l2"}]}, "mitigations", "kind: simulation only"),
        ({"kind": "knowledge", "trust": {"learn": True}}, "trust.learn", "kind: simulation only"),
    ],
)
def test_bad_mitigation_and_adversary_settings_name_their_key(raw, key, words):
    with pytest.raises(ScenarioError) as e:
        validate_scenario({**TINY, **raw})
    text = str(e.value)
    assert key in text and words in text, text


# --- adversaries --------------------------------------------------------------------------------------


def test_false_notes_carry_the_planted_values():
    world = generate_world(6, seed=3)
    index = FactIndex(world)
    doc = world.documents[0]
    note, planted = false_note(doc, 0, 0, 0.5, index, random.Random(1), lambda t: len(t.split()))
    assert len(planted) == round(0.5 * len(doc.facts)) and planted
    scored = index.score(note)
    assert set(scored.wrong) == set(planted)  # the scorer sees exactly the planted facts as wrong
    for fid, value in planted.items():
        fact = index.facts[fid]
        assert value != fact.value and value in scored.planted[fid]
        assert any(value in s for s in note.sequences) and not any(fact.value in s for s in note.sequences)
    assert set(scored.correct) == {f.fact_id for f in doc.facts} - set(planted)
    noise = noise_note(doc, 0, 0, generate_distractors(world, 1, 3).documents[0], lambda t: 1)
    assert index.score(noise).correct == () and len(noise.sequences) == len(doc.facts)


def test_an_adversary_in_a_simulation_plants_what_its_notes_say(run_sim):
    sim = run_sim(
        scenario(
            agents={"count": 3, "overrides": {0: {"role": "adversary", "rate": 0.5}}},
            arrivals={"kind": "overlapping", "copies": 2},
        )
    )
    mine = [n for n in sim.state.notes_log if n.author == 0]
    assert mine and all(n.style == "adversary" for n in mine)
    planted = {fid for fid, by in sim.state.planted.items() if 0 in by}
    assert planted == {fid for n in mine for fid in sim.setup.facts.score(n).wrong}
    pop = sim.records[-1].population
    assert pop["pop.adv.planted_pairs"] > 0 and 0 <= pop["pop.adv.planted_answered"] <= 1


def test_the_spread_metric_on_a_hand_built_case():
    world = generate_world(2, seed=5, questions_per_doc=(6, 6))
    index = FactIndex(world)
    f1, f2, f3 = index.asked()[:3]  # same document
    q = index.question
    wrong = index.alternatives(f1)[0]
    g = nx.DiGraph([(0, 1), (1, 2)])  # adversary 0 -> 1 -> 2; agent 3 unreachable
    g.add_node(3)
    grades = [
        {},
        {q[f1.fact_id]: 0.0, q[f2.fact_id]: 1.0, q[f3.fact_id]: 1.0},
        {q[f1.fact_id]: 0.0, q[f2.fact_id]: 0.0, q[f3.fact_id]: 1.0},
        {q[f1.fact_id]: 1.0, q[f2.fact_id]: 1.0, q[f3.fact_id]: 0.0},
    ]
    answers = [{}, {q[f1.fact_id]: f"it is {wrong}"}, {q[f1.fact_id]: "no idea"}, {q[f1.fact_id]: f1.value}]
    out = adversary_metrics(
        index,
        planted={f1.fact_id: {0: {wrong}}},
        adversaries=[0],
        grades=grades,
        answers=answers,
        written={f1.doc_id: {0}},
        graph=g,
    )
    assert out["pop.adv.planted_answered"] == pytest.approx(1 / 3)
    assert out["pop.adv.planted_answered.d1"] == 1.0 and out["pop.adv.planted_answered.d2"] == 0.0
    assert out["pop.adv.planted_answered.unreachable"] == 0.0
    assert out["pop.adv.acc_affected"] == pytest.approx(1 / 3)
    assert out["pop.adv.acc_unaffected"] == pytest.approx(4 / 6)  # f2, f3 for agents 1..3
    assert out["pop.adv.acc_drop"] == pytest.approx(4 / 6 - 1 / 3)
    assert tokens(wrong)


# --- trust -------------------------------------------------------------------------------------------


def test_trust_falls_after_a_harmful_note_and_rises_after_a_useful_one():
    trust = np.ones((3, 3))
    held = np.array([[True, False], [True, True], [False, False]])
    before = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 0.0]])
    after = np.array([[0.5, 0.0], [0.75, 0.5], [0.0, 0.0]])
    changes = update_trust(
        trust,
        TrustSettings(learn=True, rate=1.0),
        authors={0: {2}, 1: {0}, 2: {1}},
        before=before,
        after=after,
        held=held,
    )
    assert changes == {0: -0.5, 1: 0.125}
    assert trust[0, 2] == 0.5 and trust[1, 0] == 1.0 and trust[2, 1] == 1.0  # capped at 1; 2 holds nothing
    update_trust(
        trust, TrustSettings(learn=True, rate=4.0, floor=0.1), authors={0: {2}}, before=before, after=after, held=held
    )
    assert trust[0, 2] == 0.1


def test_the_budgeted_scheduler_prefers_trusted_authors_and_low_trust_is_excluded():
    def item(author, nid):
        note = Note(nid, author, f"d{author}", 0, "rewrite", "t", ("s",), 1)
        return InboxItem(note, author, 0, 1.0, 1)

    trust = np.ones((3, 3))
    trust[0, 1] = 0.2
    inbox = {0: [item(1, "a"), item(2, "b")]}
    kept, dropped = weighted_inboxes(inbox, trust, TrustSettings(learn=True))
    assert [it.weight for it in kept[0]] == [0.2, 1.0] and dropped[0] == []
    assert [it.note.note_id for it in Budgeted(1)._pick(0, kept[0], set())] == ["b"]
    kept, dropped = weighted_inboxes(inbox, trust, TrustSettings(learn=True, exclude_below=0.5))
    assert [it.note.note_id for it in kept[0]] == ["b"] and [it.note.note_id for it in dropped[0]] == ["a"]


def test_a_simulation_learns_trust_from_its_accuracy_rows(run_sim):
    sim = run_sim(
        scenario(
            trust={"learn": True, "rate": 1.0}, rounds=2, agents={"count": 3, "overrides": {0: {"role": "adversary"}}}
        )
    )
    m = sim.records[-1].agents
    assert {"trust_from_0", "trust_from_2"} <= set(m[1]) and "pop.adv.trust" in sim.records[-1].population
    assert all(0.0 <= v <= 1.0 for a in m for k, v in m[a].items() if k.startswith("trust_from_"))


def test_the_report_ranks_continuous_measures_against_accuracy_based_forgetting():
    from multiseal.analysis.drift import agreement

    rows = [{"ppl_ratio": 1 + x, "kl_base": -x, "retention drop": x / 10, "forgetting": math.nan} for x in range(6)]
    got = {(r["measure"], r["against"]): r for r in agreement(rows)}
    assert got[("ppl_ratio", "retention drop")]["rho"] == pytest.approx(1.0)
    assert got[("kl_base", "retention drop")]["rho"] == pytest.approx(-1.0)
    assert got[("ppl_ratio", "retention drop")]["n"] == 6
    assert math.isnan(got[("ppl_ratio", "forgetting")]["rho"]) and got[("ppl_ratio", "forgetting")]["n"] == 0


def test_the_kl_mitigation_reads_its_own_passages_batch_and_length(run_sim):
    sim = run_sim(_with([{"kind": "kl", "params": {"passages": 3, "batch": 2, "max_length": 12}}], rounds=1))
    assert sim.setup.reference == (3, 12, 2)
    ref = sim.setup.model.shards[0]._references[(3, 12, 2)]  # built where the adapters live
    assert [b["input_ids"].shape[0] for b in ref.batches] == [2, 1]
    assert max(b["input_ids"].shape[1] for b in ref.batches) == 12
