"""ReST-EM: rewards and candidate selection on stubbed gains, the writer's SFT, batched trials, the
held-out split, one iteration end to end on tiny-random, and the scenario keys."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from multiseal.learning.train import (
    collate,
    completion_loss,
    finetune_on_completions,
    tokenize_pairs,
)
from multiseal.rl import restem as R
from multiseal.rl import trials as T
from multiseal.rl.restem import WRITER_TRAINING, RestemSettings, run_restem
from multiseal.rl.restem_setup import (
    RestemAgent,
    check_disjoint,
    learners,
    neighbours_from_graph,
    split_documents,
)
from multiseal.rl.rewards import (
    combine_reward,
    neighbour_gain,
    reward_stats,
    select_candidates,
)
from multiseal.rl.trials import Trial, run_trials
from multiseal.types import (
    EvalSettings,
    LoraSettings,
    SelfEditSettings,
    TrainSettings,
)
from multiseal.world.synthetic import generate_world

ROOT = Path(__file__).resolve().parents[1]
TINY_LORA = LoraSettings(rank=4, alpha=8)
TINY_INNER = TrainSettings(epochs=1, lr=1e-2, batch_size=8, max_length=64)
TINY_EVAL = EvalSettings(max_new_tokens=3, batch_size=64)
TINY_WRITE = SelfEditSettings(max_new_tokens=10)


# --------------------------------------------------------------------------- rewards and selection


def test_self_reward_is_the_authors_gain():
    assert combine_reward("self", 0.25, [0.9, 0.9]) == 0.25


def test_neighbour_reward_is_the_trust_weighted_mean_gain():
    assert combine_reward("neighbours", 0.9, [0.5, 0.0]) == pytest.approx(0.25)
    assert combine_reward("neighbours", None, [0.5, 0.0], weights=[3.0, 1.0]) == pytest.approx(0.375)
    assert math.isnan(neighbour_gain([]))


def test_mixed_reward_weights_self_against_neighbours():
    assert combine_reward("mixed", 1.0, [0.0, 0.5], mix_weight=0.5) == pytest.approx(0.625)
    assert combine_reward("mixed", 1.0, [0.25], mix_weight=1.0) == pytest.approx(1.0)
    assert combine_reward("mixed", 1.0, [0.25], mix_weight=0.0) == pytest.approx(0.25)


@pytest.mark.parametrize("kind, self_gain, nb", [("neighbours", 0.5, []), ("mixed", 0.5, []), ("self", None, [0.1])])
def test_reward_without_the_gains_it_needs_fails(kind, self_gain, nb):
    with pytest.raises(ValueError, match=kind):
        combine_reward(kind, self_gain, nb)


def test_select_keeps_the_best_positive_candidates_best_first():
    assert select_candidates([0.0, 0.5, -0.25, 0.75, 0.5], keep=2) == [3, 1]
    assert select_candidates([0.0, 0.5, -0.25, 0.75, 0.5], keep=10) == [3, 1, 4]


def test_select_never_keeps_non_positive_nan_or_ineligible_candidates():
    assert select_candidates([0.0, -0.5, 0.0], keep=3) == []
    assert select_candidates([math.nan, 0.25], keep=2) == [1]
    assert select_candidates([0.5, 0.25], keep=1, eligible=[False, True]) == [1]
    assert select_candidates([0.5, 0.25], keep=2, min_reward=0.3) == [0]


def test_select_breaks_ties_by_the_earlier_candidate():
    assert select_candidates([0.25, 0.25, 0.25], keep=1) == [0]


def test_reward_stats_report_mean_max_and_positive_share():
    s = reward_stats([0.0, 0.5, -0.25, 0.75])
    assert s["mean"] == pytest.approx(0.25)
    assert s["max"] == 0.75 and s["min"] == -0.25
    assert s["positive_share"] == 0.5
    assert reward_stats([]) == {"n": 0.0}


def test_learners_follow_the_reward():
    agents = [
        RestemAgent("a0", "w0", "implications", TINY_INNER, ((1, 1.0), (2, 1.0))),
        RestemAgent("a1", "w1", "implications", TINY_INNER, ((0, 1.0),)),
        RestemAgent("a2", "w2", "implications", TINY_INNER, ()),
    ]
    assert learners(0, agents, "self") == [0]
    assert learners(0, agents, "neighbours") == [1, 2]
    assert learners(0, agents, "mixed") == [0, 1, 2]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"reward": "others"}, "reward"),
        ({"policy": "shared"}, "policy"),
        ({"keep": 4, "candidates": 3}, "keep"),
        ({"mix_weight": 1.5}, "mix_weight"),
        ({"baseline": "after"}, "baseline"),
    ],
)
def test_settings_reject_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RestemSettings(**kwargs)


# --------------------------------------------------------------------------- the held-out split


@pytest.mark.parametrize("seed", range(20))
def test_split_is_disjoint_seeded_and_sized(seed):
    world = generate_world(9, seed)
    train, held = split_documents(world.documents, 5, 3, seed=seed)
    assert len(train) == 5 and len(held) == 3
    assert not {d.doc_id for d in train} & {d.doc_id for d in held}
    assert not {q.qid for d in train for q in d.questions} & {q.qid for d in held for q in d.questions}
    check_disjoint(train, held)
    assert (train, held) == split_documents(world.documents, 5, 3, seed=seed)


def test_split_refuses_more_documents_than_the_world_has():
    with pytest.raises(ValueError, match="only 4 documents"):
        split_documents(generate_world(4, 0).documents, 3, 2)


def test_a_leaking_split_is_refused():
    docs = generate_world(4, 0).documents
    with pytest.raises(ValueError, match="leak"):
        check_disjoint(docs[:3], docs[2:])


# --------------------------------------------------------------------------- the writer's SFT


def _pair(model, request: str = "Write a fact about Velmora.", completion: str = "Velmora was founded in 1987."):
    return model.prompt(request), completion


def test_sft_scores_the_completion_only(tiny_model):
    tok = tiny_model.tokenizer
    prompt, completion = _pair(tiny_model)
    (ex,) = tokenize_pairs(tok, [(prompt, completion)], max_length=512)
    n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
    assert ex.prompt_len == n_prompt
    assert ex.ids[-1] == tok.eos_token_id
    assert ex.labels[:n_prompt] == [-100] * n_prompt
    assert ex.labels[n_prompt:] == ex.ids[n_prompt:]
    batch = collate([ex, tokenize_pairs(tok, [(prompt, "x")], 512)[0]], tok.pad_token_id)
    short = batch["attention_mask"][1].sum()
    assert (batch["labels"][1, short:] == -100).all(), "padding is never scored"


def test_sft_truncates_the_completion_and_drops_empty_ones(tiny_model):
    prompt, completion = _pair(tiny_model, completion="word " * 200)
    (ex,) = tokenize_pairs(tiny_model.tokenizer, [(prompt, completion), (prompt, "  ")], max_length=64)
    assert len(ex.ids) == 64 and ex.prompt_len < 64


def test_sft_makes_the_completion_likelier_and_touches_only_the_writer(tiny_model, make_adapter):
    knowledge, writer = make_adapter(tiny_model, TINY_LORA), make_adapter(tiny_model, TINY_LORA, seed=1)
    before_k = {k: v.clone() for k, v in tiny_model.adapter_state(knowledge).items()}
    pairs = [_pair(tiny_model)]
    loss0 = completion_loss(tiny_model, writer, pairs)
    stats = finetune_on_completions(
        tiny_model, writer, pairs, replace(WRITER_TRAINING, epochs=5, lr=1e-2, batch_size=1)
    )
    assert stats.loss_last < stats.loss_first
    assert completion_loss(tiny_model, writer, pairs) < loss0
    after_k = tiny_model.adapter_state(knowledge)
    assert all(torch.equal(before_k[k], after_k[k]) for k in before_k)


# --------------------------------------------------------------------------- batched trials


def _agents(model, make_adapter, n: int, policy: str = "separate") -> list[RestemAgent]:
    out = []
    for i in range(n):
        adapter = make_adapter(model, TINY_LORA, seed=i)
        writer = adapter if policy == "knowledge" else make_adapter(model, TINY_LORA, seed=100 + i)
        out.append(
            RestemAgent(adapter, writer, "implications", TINY_INNER, tuple((j, 1.0) for j in range(n) if j != i))
        )
    return out


def test_trials_run_in_batches_dedupe_and_clean_up(tiny_model, make_adapter, monkeypatch):
    agents = _agents(tiny_model, make_adapter, 2)
    docs = generate_world(3, 0, questions_per_doc=(2, 2)).documents
    trials = [Trial(i, d, (f"{d.title}\nnote {k}",)) for i in (0, 1) for d in docs for k in (0, 1)]
    trials.append(trials[0])  # a duplicate runs once
    calls = []
    real = T.answer_and_grade
    monkeypatch.setattr(
        T, "answer_and_grade", lambda m, pairs, *a, **k: calls.append(len(pairs)) or real(m, pairs, *a, **k)
    )
    before = set(tiny_model.adapters)
    scores = run_trials(tiny_model, trials, agents, TINY_EVAL, batch=5)
    assert calls == [10, 10, 4], "12 distinct trials, 2 questions each, in batches of 5 adapters"
    assert scores[-1] == scores[0]
    assert all(set(s) >= {"em", "f1", "strict"} for s in scores)
    assert set(tiny_model.adapters) == before, "temporary adapters are deleted"


# --------------------------------------------------------------------------- end to end


def _world_split(seed: int = 0):
    world = generate_world(6, seed, questions_per_doc=(2, 2))
    return split_documents(world.documents, 3, 2, seed=seed)


def test_one_iteration_end_to_end_on_tiny_random(tiny_model, make_adapter):
    agents = _agents(tiny_model, make_adapter, 2)
    train, held = _world_split()
    settings = RestemSettings(
        iterations=1,
        candidates=2,
        keep=1,
        reward="mixed",
        trial_batch=8,
        sft=replace(WRITER_TRAINING, epochs=1, lr=1e-3),
    )
    before = set(tiny_model.adapters)
    seen = []
    records = run_restem(
        tiny_model,
        agents,
        train,
        held,
        settings,
        TINY_EVAL,
        TINY_WRITE,
        progress=False,
        on_iteration=lambda r: seen.append(r.iteration),
    )
    assert seen == [0, 1] and [r.iteration for r in records] == [0, 1]
    assert set(tiny_model.adapters) == before
    first, it1 = records
    assert {"strict", "base.strict", "neighbours.strict", "agent.0.strict", "agent.1.strict"} <= set(first.heldout)
    assert it1.counts["candidates"] == 2 * 3 * 2  # agents × training documents × k
    assert it1.counts["trials"] == 2 * it1.counts["candidates"]  # the author and its one neighbour
    m = it1.metrics()
    for key in (
        "restem.reward.mean",
        "restem.reward.max",
        "restem.reward.positive_share",
        "restem.heldout.strict",
        "restem.seconds.generate",
        "restem.seconds.train",
        "restem.seconds.answer",
        "restem.seconds_per_candidate",
    ):
        assert key in m, key
    train_ids, held_ids = {d.doc_id for d in train}, {d.doc_id for d in held}
    assert {c["doc_id"] for c in it1.candidates} == train_ids
    assert {n["doc_id"] for r in records for n in r.heldout_notes} == held_ids
    for c in it1.candidates:
        assert c["reward"] == pytest.approx(0.5 * c["self_gain"] + 0.5 * c["neighbour_gains"][0])


def _stub_trials(monkeypatch):
    """Every other trial scores 1.0 (the rest 0.0), so each document has a candidate with a positive reward."""

    def fake(model, trials, agents, evaluation, **kwargs):
        return [{"strict": float(i % 2 == 0), "em": 0.0, "f1": 0.0} for i in range(len(trials))]

    monkeypatch.setattr(R, "run_trials", fake)


@pytest.mark.parametrize("policy", ["separate", "knowledge"])
def test_kept_self_edits_train_only_the_writer_and_only_on_training_documents(
    tiny_model, make_adapter, monkeypatch, policy
):
    agents = _agents(tiny_model, make_adapter, 1, policy)
    agents = [RestemAgent(a.adapter, a.writer, a.style, a.inner, ()) for a in agents]
    train, held = _world_split(1)
    _stub_trials(monkeypatch)
    sft_prompts: list[str] = []
    real_sft = R.finetune_on_completions

    def spy(model, adapter, pairs, *a, **k):
        assert adapter == agents[0].writer
        sft_prompts.extend(p for p, _ in pairs)
        return real_sft(model, adapter, pairs, *a, **k)

    monkeypatch.setattr(R, "finetune_on_completions", spy)
    writer0 = {k: v.clone() for k, v in tiny_model.adapter_state(agents[0].writer).items()}
    knowledge0 = {k: v.clone() for k, v in tiny_model.adapter_state(agents[0].adapter).items()}
    settings = RestemSettings(iterations=1, candidates=3, keep=2, sft=replace(WRITER_TRAINING, epochs=1, lr=1e-2))
    records = run_restem(
        tiny_model,
        agents,
        train,
        held,
        settings,
        TINY_EVAL,
        SelfEditSettings(max_new_tokens=12, temperature=1.0),
        progress=False,
    )
    kept = records[1].kept
    assert kept and all(c["reward"] > 0 for c in kept)
    assert len(sft_prompts) == len(kept)
    assert all(any(d.context in p for d in train) for p in sft_prompts)
    assert not any(d.context in p for p in sft_prompts for d in held), "held-out passages never reach SFT"
    changed = lambda before, name: any(not torch.equal(v, tiny_model.adapter_state(name)[k]) for k, v in before.items())
    assert changed(writer0, agents[0].writer)
    assert changed(knowledge0, agents[0].adapter) == (policy == "knowledge")


def test_baselines_are_answered_once_unless_the_writer_is_the_knowledge_adapter(tiny_model, make_adapter, monkeypatch):
    train, held = _world_split(2)
    _stub_trials(monkeypatch)
    answered = {}
    for policy in ("separate", "knowledge"):
        agents = [
            RestemAgent(a.adapter, a.writer, a.style, a.inner, ()) for a in _agents(tiny_model, make_adapter, 1, policy)
        ]
        records = run_restem(
            tiny_model,
            agents,
            train,
            held,
            RestemSettings(iterations=2, candidates=2, sft=replace(WRITER_TRAINING, epochs=1, lr=1e-2)),
            TINY_EVAL,
            TINY_WRITE,
            progress=False,
        )
        answered[policy] = [r.counts["baseline_questions"] for r in records[1:]]
    assert answered["separate"] == [6, 0], "training-document baselines once per run"
    assert answered["knowledge"] == [6, 6], "the M-step changed the answering adapter: baselines again"


def test_a_passage_baseline_rewards_only_what_the_note_adds(tiny_model, make_adapter, monkeypatch):
    agents = [RestemAgent(a.adapter, a.writer, a.style, a.inner, ()) for a in _agents(tiny_model, make_adapter, 1)]
    train, held = _world_split(3)
    passages = {d.title + "\n" + d.context for d in train + held}
    requested = []

    def fake(model, trials, agents, evaluation, **kwargs):
        requested.extend(t for t in trials if t.sequences[0] in passages)
        return [
            {"strict": 0.5 if t.sequences[0] in passages else float(i % 2 == 0), "em": 0.0, "f1": 0.0}
            for i, t in enumerate(trials)
        ]

    monkeypatch.setattr(R, "run_trials", fake)
    records = run_restem(
        tiny_model,
        agents,
        train,
        held,
        RestemSettings(iterations=2, candidates=2, baseline="passage", sft=replace(WRITER_TRAINING, epochs=1, lr=1e-2)),
        TINY_EVAL,
        TINY_WRITE,
        progress=False,
    )
    for r in records[1:]:
        assert {c["reward"] for c in r.candidates} <= {0.5, -0.5}
        assert all(c["passage"]["0"]["strict"] == 0.5 for c in r.candidates)
    assert records[0].heldout["passage.strict"] == 0.5
    assert sorted(t.doc.doc_id for t in requested) == sorted(d.doc_id for d in train + held), (
        "one passage-only trial per (learner, document) for the whole run"
    )
    assert [r.counts["passage_trials"] for r in records[1:]] == [3, 0]


def test_a_neighbour_reward_needs_neighbours(tiny_model, make_adapter):
    agents = [RestemAgent(a.adapter, a.writer, a.style, a.inner, ()) for a in _agents(tiny_model, make_adapter, 1)]
    train, held = _world_split()
    with pytest.raises(ValueError, match="out-neighbours"):
        run_restem(
            tiny_model, agents, train, held, RestemSettings(reward="neighbours"), TINY_EVAL, TINY_WRITE, progress=False
        )


# --------------------------------------------------------------------------- scenario keys


def test_the_shipped_restem_scenario_validates():
    from multiseal.config.load import load_scenario

    sc = load_scenario(ROOT / "scenarios" / "restem.yaml")
    assert sc.kind == "restem" and sc.restem.train_documents + sc.restem.eval_documents <= sc.world.documents


def test_restem_keys_are_validated_all_at_once():
    from multiseal.config.load import validate_scenario
    from multiseal.errors import ScenarioError

    raw = {
        "kind": "restem",
        "world": {"documents": 5},
        "self_edit": {"style": "passage-only"},
        "restem": {"candidates": 2, "keep": 3, "reward": "neighbours", "train_documents": 4, "eval_documents": 2},
    }
    with pytest.raises(ScenarioError) as e:
        validate_scenario(raw)
    paths = {p.path for p in e.value.problems}
    assert paths == {"restem.keep", "restem.eval_documents", "self_edit.style", "restem.reward"}
    with pytest.raises(ScenarioError, match="restem.reward: 'others' is not one of"):
        validate_scenario({"kind": "restem", "restem": {"reward": "others"}})
    with pytest.raises(ScenarioError, match="restem.polcy: unknown key"):
        validate_scenario({"kind": "restem", "restem": {"polcy": "separate"}})


def test_restem_checks_only_apply_to_restem_runs():
    from multiseal.config.load import validate_scenario

    validate_scenario({"kind": "simulation", "world": {"documents": 2}, "restem": {"reward": "neighbours"}})


def test_a_restem_scenario_runs_and_logs_to_mlflow(tmp_path):
    import mlflow

    from multiseal.config.load import validate_scenario
    from multiseal.run.recipes import run_recipe

    sc = validate_scenario(
        {
            "name": "restem-smoke",
            "kind": "restem",
            "model": {"base": "tiny-random", "lora": {"rank": 4, "alpha": 8}},
            "world": {"documents": 4, "questions_per_doc": [1, 1]},
            "agents": 2,
            "self_edit": {"max_new_tokens": 8},
            "inner_loop": {"epochs": 1, "max_length": 64},
            "evaluation": {"max_new_tokens": 3},
            "restem": {"iterations": 1, "candidates": 2, "reward": "mixed", "train_documents": 2, "eval_documents": 1},
            "tracking": {"uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "restem-test"},
        }
    )
    summary = run_recipe(sc, progress=False).text
    assert "reward 'mixed'" in summary and "| 1 |" in summary
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    run = client.search_runs([client.get_experiment_by_name("restem-test").experiment_id])[0]
    assert run.info.status == "FINISHED"
    hist = client.get_metric_history(run.info.run_id, "restem.heldout.strict")
    assert [m.step for m in hist] == [0, 1]
    assert "restem.reward.positive_share" in run.data.metrics
    arts = {a.path for a in client.list_artifacts(run.info.run_id, "restem")}
    assert {"restem/candidates.jsonl", "restem/kept_iter1.jsonl", "restem/split.jsonl"} <= arts


def test_neighbours_follow_the_graphs_out_edges_and_trust_weights():
    from multiseal.sim.topologies import build_topology

    ring = build_topology("ring", 3)
    assert neighbours_from_graph(ring, 3) == [((1, 1.0), (2, 1.0)), ((0, 1.0), (2, 1.0)), ((0, 1.0), (1, 1.0))]
    line = build_topology("edges", 3, directed=True, params={"edges": [[0, 1, 2.0], [1, 2]]})
    assert neighbours_from_graph(line, 3) == [((1, 2.0),), ((2, 1.0),), ()]
