"""The evaluation budget (issue 13): a stratified sample of the documents an agent does not hold,
estimates for the rest, and their sampling intervals."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from multiseal.config.builders import build_simulation
from multiseal.config.load import validate_scenario
from multiseal.sim.sampling import Sample, allocate, draw, halfwidth, impute, variance


def test_allocation_is_proportional_with_one_per_stratum():
    rng = random.Random(0)
    assert allocate({(True, 1): 2, (True, 2): 10, (False, -1): 8}, 5, rng) == {
        (False, -1): 2,
        (True, 1): 1,
        (True, 2): 2,
    }
    assert allocate({(True, 1): 2, (True, 2): 3}, 9, rng) == {(True, 1): 2, (True, 2): 3}  # all of them
    few = allocate({(True, 1): 2, (True, 2): 3, (False, -1): 4}, 2, rng)
    assert sum(few.values()) == 2 and set(few.values()) == {1}
    sizes = {(True, 1): 3, (True, 2): 7, (True, 3): 1, (False, -1): 9}
    for n in range(1, 25):
        got = allocate(sizes, n, random.Random(n))
        assert sum(got.values()) == min(n, 20)
        assert all(got[k] <= sizes[k] for k in got)
        if n >= len(sizes):
            assert set(got) == set(sizes)


def test_draw_is_seeded_and_stays_in_its_strata():
    strata = {(True, 1): [0, 1, 2, 3], (True, 2): [4, 5, 6], (False, -1): [7, 8]}
    a = draw([9], strata, 4, random.Random("x"))
    assert a == draw([9], strata, 4, random.Random("x"))
    assert a.held == (9,) and len(a.documents) == 5 and 9 in a.documents
    for k, js in a.asked.items():
        assert set(js) <= set(strata[k])


def test_imputed_cells_and_variance_by_hand():
    # stratum A = docs 0-3 (asked 0, 1: accuracies 1.0 and 0.5), stratum B = docs 4-5 (asked 4: 0.0),
    # stratum C = doc 6 (not introduced, none asked); doc 7 held (0.75)
    sample = Sample(
        held=(7,),
        strata={(True, 1): (0, 1, 2, 3), (True, 2): (4, 5), (False, -1): (6,)},
        asked={(True, 1): (0, 1), (True, 2): (4,), (False, -1): ()},
    )
    row = np.array([1.0, 0.5, np.nan, np.nan, 0.0, np.nan, np.nan, 0.75])
    filled = impute(row, sample)
    assert filled[2] == filled[3] == 0.75 and filled[5] == 0.0
    assert filled[6] == pytest.approx(0.5)  # the pooled sampled mean: (1 + 0.5 + 0) / 3
    introduced = np.array([True] * 6 + [False, True])
    # N = 7 introduced docs; A: (4/7)^2 (1 - 2/4) s^2/2 with s^2 = var([1, .5], ddof=1) = 0.125;
    # B: one draw -> s^2 = 0.25: (2/7)^2 (1 - 1/2) 0.25 / 1
    want = (4 / 7) ** 2 * 0.5 * 0.125 / 2 + (2 / 7) ** 2 * 0.5 * 0.25
    assert variance(filled, sample, introduced) == pytest.approx(want)
    assert halfwidth(want) == pytest.approx(1.959963984540054 * math.sqrt(want))
    # stratum A only partly inside (docs 0 and 2: one asked, one estimated) counts with that part:
    # N = 5 inside docs; A: (2/5)^2 (1 - 1/2) 0.25 (one draw); B as before with n = 5
    part = np.array([True, False, True, False, True, True, False, True])
    want = (2 / 5) ** 2 * 0.5 * 0.25 + (2 / 5) ** 2 * 0.5 * 0.25
    assert variance(filled, sample, part) == pytest.approx(want)


TINY = {
    "model": {"base": "tiny-random", "lora": {"rank": 4, "alpha": 8}},
    "world": {"documents": 12, "questions_per_doc": [2, 2]},
    "agents": 4,
    "rounds": 3,
    "arrivals": {"kind": "disjoint", "docs_per_round": 1},
    "topology": {"kind": "ring"},
    "self_edit": {"style": "implications", "max_new_tokens": 6},
    "inner_loop": {"epochs": 1, "batch_size": 4},
    "evaluation": {"max_new_tokens": 4, "retention_probe": 2},
}


def _run(tiny_model, **evaluation):
    sc = validate_scenario({**TINY, "evaluation": {**TINY["evaluation"], **evaluation}})
    sim = build_simulation(sc, tiny_model, progress=False)
    sim.run()
    sim.close()
    return sim


def test_a_budgeted_run_answers_what_it_holds_plus_its_sample(tiny_model):
    sim = _run(tiny_model, sample_documents=2)
    full = _run(tiny_model)
    questions_per_doc = 2
    for row in (1, 2):
        for a in range(4):
            sample = sim.state.samples[(row, a)]
            reached = set(np.flatnonzero((sim.state.learnt[a] >= 0) & (sim.state.learnt[a] <= row)))
            assert reached and reached <= set(sample.held)  # its own documents and what its notes reached
            assert len(sample.documents - set(sample.held)) == 2
            assert sim.state.asked[row, a].sum() == len(sample.documents)
            for j in range(12):  # an estimated cell holds its stratum's sampled mean
                if not sim.state.asked[row, a, j]:
                    k = next(k for k, js in sample.strata.items() if j in js)
                    if sample.asked[k]:
                        assert sim.state.acc[row, a, j] == pytest.approx(
                            np.mean([sim.state.acc[row, a, i] for i in sample.asked[k]])
                        )
            rec = sim.records[row - 1]
            assert rec.agents[a]["acc_all_ci95"] >= 0
        assert sim.state.answered[row] == 4 * (
            questions_per_doc * sum(len(sim.state.samples[(row, a)].documents) for a in range(4)) // 4
            + len(sim.state.probe)
        )
    assert sim.state.answered[1] < full.state.answered[1]
    # the final round is answered in full: exact, with a zero interval, and equal to the exhaustive run
    assert sim.state.asked[3].all() and (3, 0) not in sim.state.samples
    assert sim.records[-1].agents[0]["acc_all_ci95"] == 0.0
    assert sim.records[-1].population["pop.acc_all.mean.ci95"] == 0.0
    np.testing.assert_array_equal(sim.state.acc[3], full.state.acc[3])
    assert "acc_all_ci95" not in full.records[0].agents[0], "no budget, no interval"


def test_a_budget_larger_than_the_world_is_the_exhaustive_run(tiny_model):
    sim = _run(tiny_model, sample_documents=100)
    full = _run(tiny_model)
    np.testing.assert_array_equal(sim.state.acc, full.state.acc)
    assert sim.state.asked[1:].all()
    assert sim.records[0].population["pop.acc_all.mean.ci95"] == 0.0


def test_the_estimate_counts_fewer_answers_under_a_budget():
    from multiseal.config.estimate import estimate

    big = {**TINY, "agents": 16, "world": {"documents": 48, "questions_per_doc": [2, 2]}}
    full = estimate(validate_scenario(big))
    budget = estimate(validate_scenario({**big, "evaluation": {**TINY["evaluation"], "sample_documents": 4}}))
    assert budget.answers < full.answers
    assert budget.generated_tokens == full.generated_tokens and budget.trained_tokens == full.trained_tokens


def test_a_run_ends_with_its_cost_line(tiny_model):
    from multiseal.run.recipes.simulation import cost_summary

    sim = _run(tiny_model)
    line = cost_summary(sim.records, tracking_seconds=0.5)
    assert line.startswith("cost: 3 round(s) in ")
    trained = sum(r.work["trained_tokens"] for r in sim.records)
    assert trained > 0 and f"{trained:,} tokens trained" in line
    assert f"{int(sim.state.answered[1:].sum()):,} answers" in line
    assert all({"self_edit", "sharing", "adapt", "evaluate", "metrics"} <= set(r.seconds) for r in sim.records)


def test_an_agent_that_does_not_change_keeps_its_row_while_documents_arrive(tiny_model):
    """Agent 1 gets nothing in round 2 while agent 0 gets a new document: agent 1's row and draw carry
    over, and its interval is computed over the documents introduced by then."""
    table = [
        {"round": 0, "agent": 0, "docs": ["d000"]},
        {"round": 0, "agent": 1, "docs": ["d001"]},
        {"round": 1, "agent": 0, "docs": ["d002"]},
        {"round": 2, "agent": 1, "docs": ["d003"]},
    ]
    sc = validate_scenario(
        {
            **TINY,
            "agents": 2,
            "world": {"documents": 8, "questions_per_doc": [2, 2]},
            "arrivals": {"kind": "table", "table": table},
            "topology": {"kind": "none"},
            "scheduler": {"kind": "isolated"},
            "evaluation": {**TINY["evaluation"], "sample_documents": 2},
        }
    )
    sim = build_simulation(sc, tiny_model, progress=False)
    sim.run()
    sim.close()
    assert sim.state.samples[(2, 1)] is sim.state.samples[(1, 1)]  # unchanged in round 2: row and draw carried over
    np.testing.assert_array_equal(sim.state.acc[2, 1], sim.state.acc[1, 1])
    ci = sim.records[1].agents[1]["acc_all_ci95"]
    assert math.isfinite(ci) and ci >= 0
