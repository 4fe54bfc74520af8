"""Metric formulas on small hand-built accuracy tensors, values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from multiseal.sim.accuracy import (
    accuracy_all,
    accuracy_future,
    accuracy_on,
    accuracy_own,
    accuracy_received,
    accuracy_unreached,
)
from multiseal.sim.continual import (
    backward_transfer,
    forgetting,
    forgetting_max,
    forgetting_per_doc,
    forward_transfer,
    item_churn,
    retention,
)
from multiseal.sim.diffusion import diffusion, diffusion_by_distance
from multiseal.sim.metrics import (
    METRIC_NAMES,
    agent_metrics,
    population_metrics,
    population_summary,
)
from multiseal.stats import mean_ci, t_critical

# Any RuntimeWarning (mean of empty slice, invalid value) fails the test.
pytestmark = pytest.mark.filterwarnings("error")

NAN = math.nan

# Two rounds (rows 0, 1, 2), two agents, three documents.
# doc 0 enters the world in round 1 at agent 0 and reaches agent 1 as a note in round 2;
# doc 1 enters in round 2 at agent 1 and reaches agent 0 as a note in round 2;
# doc 2 is never introduced.
ACC = np.array(
    [
        [[0.2, 0.1, 0.3], [0.0, 0.4, 0.5]],  # row 0: base
        [[0.8, 0.3, 0.2], [0.1, 0.4, 0.5]],  # row 1
        [[0.5, 0.6, 0.4], [0.9, 0.7, 0.6]],  # row 2
    ]
)
INTRODUCED = np.array([[False, False, False], [True, False, False], [True, True, False]])
LEARNT = np.array([[1, 2, -1], [2, 2, -1]])
OWN = np.array([[True, False, False], [False, True, False]])
# hops from each document's first recipient (doc 0: agent 0, doc 1: agent 1, doc 2: nobody)
DISTANCE = np.array([[0, 1, -1], [1, 0, -1]])


def assert_agents(actual: np.ndarray, expected: list[float]) -> None:
    np.testing.assert_allclose(actual, np.array(expected), equal_nan=True, atol=1e-12)


def test_accuracy_groups_after_round_2() -> None:
    assert_agents(accuracy_own(ACC, 2, OWN, LEARNT), [0.5, 0.7])
    assert_agents(accuracy_received(ACC, 2, OWN, LEARNT), [0.6, 0.9])
    assert_agents(accuracy_all(ACC, 2, INTRODUCED), [0.55, 0.8])
    assert_agents(accuracy_unreached(ACC, 2, INTRODUCED, LEARNT), [NAN, NAN])  # everything reached
    assert_agents(accuracy_future(ACC, 2, INTRODUCED), [0.4, 0.6])


def test_accuracy_groups_after_round_1() -> None:
    assert_agents(accuracy_own(ACC, 1, OWN, LEARNT), [0.8, NAN])  # agent 1's own doc not yet arrived
    assert_agents(accuracy_received(ACC, 1, OWN, LEARNT), [NAN, NAN])
    assert_agents(accuracy_all(ACC, 1, INTRODUCED), [0.8, 0.1])
    assert_agents(accuracy_unreached(ACC, 1, INTRODUCED, LEARNT), [NAN, 0.1])  # doc 0 not at agent 1 yet
    assert_agents(accuracy_future(ACC, 1, INTRODUCED), [0.25, 0.45])


def test_nothing_introduced_at_the_base_row() -> None:
    assert_agents(accuracy_all(ACC, 0, INTRODUCED), [NAN, NAN])
    assert_agents(accuracy_future(ACC, 0, INTRODUCED), [0.2, 0.3])


def test_accuracy_on_masks_and_skips_unmeasured() -> None:
    mask = np.array([[True, True, False], [False, False, False]])
    assert_agents(accuracy_on(ACC, 2, mask), [0.55, NAN])
    acc = ACC.copy()
    acc[2, 0, 1] = np.nan  # not measured: left out of the mean
    assert_agents(accuracy_on(acc, 2, mask), [0.5, NAN])


def test_forgetting_bwt_fwt_on_the_shared_example() -> None:
    # agent 0 learnt doc 0 at row 1: best since then 0.8, now 0.5 → forgets 0.3; agent 1 learnt
    # nothing before row 2 → undefined.
    assert_agents(forgetting(ACC, 2, LEARNT), [0.3, NAN])
    assert_agents(forgetting_max(ACC, 2, LEARNT), [0.3, NAN])
    assert_agents(backward_transfer(ACC, 2, LEARNT), [-0.3, NAN])
    # FWT uses documents learnt at row >= 2: agent 0 doc 1: 0.3 - 0.1; agent 1 doc 0: 0.1 - 0.0,
    # doc 1: 0.4 - 0.4.
    assert_agents(forward_transfer(ACC, LEARNT), [0.2, 0.05])
    assert_agents(forward_transfer(ACC, LEARNT, t=2), [0.2, 0.05])
    assert_agents(forward_transfer(ACC, LEARNT, t=1), [NAN, NAN])
    assert_agents(forgetting(ACC, 1, LEARNT), [NAN, NAN])  # learnt at t itself: not counted
    assert_agents(backward_transfer(ACC, 1, LEARNT), [NAN, NAN])


def test_forgetting_takes_the_max_from_learning_on() -> None:
    # one agent, two docs, four rows. doc 0 learnt at row 1; the base row (0.95) is before learning
    # and must not count as "forgotten". doc 1 learnt at row 2.
    acc = np.array([[[0.95, 0.0]], [[0.5, 0.1]], [[0.9, 0.6]], [[0.4, 0.2]]])
    learnt = np.array([[1, 2]])
    per_doc = forgetting_per_doc(acc, 3, learnt)
    np.testing.assert_allclose(per_doc, [[0.9 - 0.4, 0.6 - 0.2]])
    assert_agents(forgetting(acc, 3, learnt), [(0.5 + 0.4) / 2])
    assert_agents(forgetting_max(acc, 3, learnt), [0.5])
    assert_agents(backward_transfer(acc, 3, learnt), [((0.4 - 0.5) + (0.2 - 0.6)) / 2])
    # FWT: doc 1 learnt at row 2 → acc[1] - acc[0] = 0.1; doc 0 learnt at row 1 is left out
    assert_agents(forward_transfer(acc, learnt), [0.1])
    # at row 2 only doc 0 counts: max(0.5) - 0.9 < 0 (answered better than ever: negative forgetting)
    np.testing.assert_allclose(forgetting_per_doc(acc, 2, learnt), [[0.5 - 0.9, NAN]])


def test_forgetting_skips_unmeasured_rows() -> None:
    acc = np.array([[[0.0]], [[0.6]], [[np.nan]], [[0.2]]])
    assert_agents(forgetting(acc, 3, np.array([[1]])), [0.4])
    acc_now_missing = np.array([[[0.0]], [[0.6]], [[np.nan]]])
    assert_agents(forgetting(acc_now_missing, 2, np.array([[1]])), [NAN])


def test_never_learnt_documents_give_nan() -> None:
    learnt = np.full((2, 3), -1)
    for metric in (forgetting, forgetting_max, backward_transfer):
        assert_agents(metric(ACC, 2, learnt), [NAN, NAN])
    assert_agents(forward_transfer(ACC, learnt), [NAN, NAN])
    assert_agents(accuracy_own(ACC, 2, OWN, learnt), [NAN, NAN])
    assert_agents(accuracy_unreached(ACC, 2, INTRODUCED, learnt), [0.55, 0.8])


def test_retention_is_share_of_probe_still_correct() -> None:
    probe = np.array([[1, 1, 0, 1], [0, np.nan, 1, 1]])
    assert_agents(retention(probe), [0.75, 2 / 3])
    assert float(retention([1, 0])) == 0.5
    assert math.isnan(float(retention(np.zeros(0))))


def test_item_churn_counts_flips_over_questions() -> None:
    prev = np.array([[1, 1, 0, 0], [1, 0, np.nan, 1]])
    cur = np.array([[1, 0, 1, 0], [0, 0, 1, np.nan]])
    lost, gained = item_churn(prev, cur)
    assert_agents(lost, [0.25, 0.5])  # agent 1: only q0, q1 graded at both steps
    assert_agents(gained, [0.25, 0.0])
    lost, gained = item_churn([np.nan], [1.0])
    assert math.isnan(float(lost)) and math.isnan(float(gained))
    with pytest.raises(ValueError, match="same shape"):
        item_churn([1, 0], [1])


def test_population_summary_ignores_nan() -> None:
    assert population_summary([1.0, NAN, 3.0]) == {"mean": 2.0, "std": 1.0, "min": 1.0, "max": 3.0}
    assert all(math.isnan(v) for v in population_summary([NAN, NAN]).values())
    assert all(math.isnan(v) for v in population_summary([]).values())


def test_diffusion_threshold_and_mean() -> None:
    assert diffusion(ACC, 2, INTRODUCED) == pytest.approx(1.0)  # 0.5, 0.6, 0.9, 0.7 all >= 0.5
    assert diffusion(ACC, 2, INTRODUCED, threshold=0.65) == pytest.approx(0.5)
    assert diffusion(ACC, 2, INTRODUCED, threshold=None) == pytest.approx(0.675)
    assert diffusion(ACC, 1, INTRODUCED) == pytest.approx(0.5)  # doc 0: 0.8 yes, 0.1 no
    assert math.isnan(diffusion(ACC, 0, INTRODUCED))


def test_diffusion_by_distance() -> None:
    by_d = diffusion_by_distance(ACC, 2, DISTANCE, threshold=0.55, introduced=INTRODUCED)
    # d=0: (a0, doc0) 0.5 no, (a1, doc1) 0.7 yes; d=1: (a1, doc0) 0.9 yes, (a0, doc1) 0.6 yes
    assert by_d == {0: pytest.approx(0.5), 1: pytest.approx(1.0)}
    by_d = diffusion_by_distance(ACC, 2, DISTANCE, threshold=0.55)
    assert list(by_d) == [-1, 0, 1]
    assert by_d[-1] == pytest.approx(0.5)  # doc 2: 0.4 no, 0.6 yes
    means = diffusion_by_distance(ACC, 2, DISTANCE, threshold=None, introduced=INTRODUCED)
    assert means == {0: pytest.approx(0.6), 1: pytest.approx(0.75)}
    assert diffusion_by_distance(ACC, 0, DISTANCE, introduced=INTRODUCED) == {}


@pytest.mark.parametrize(
    "confidence, df, expected",
    [
        (0.95, 1, 12.7062047),
        (0.95, 2, 4.3026527),
        (0.95, 9, 2.2621572),
        (0.95, 30, 2.0422725),
        (0.99, 4, 4.6040949),
        (0.90, 5, 2.0150484),
        (0.95, 1000, 1.9623391),
        (0.95, 201, 1.9718365),
    ],
)
def test_t_critical_matches_tables(confidence: float, df: int, expected: float) -> None:
    assert t_critical(confidence, df) == pytest.approx(expected, abs=1e-6)


def test_t_critical_matches_scipy_when_available() -> None:
    stats = pytest.importorskip("scipy.stats")
    for confidence in (0.8, 0.9, 0.95, 0.99):
        for df in (1, 2, 3, 4, 7, 10, 31, 100, 199, 200, 201, 500, 10_000):
            expected = stats.t.ppf((1 + confidence) / 2, df)
            assert t_critical(confidence, df) == pytest.approx(expected, rel=1e-8), (confidence, df)


def test_mean_ci_student_t() -> None:
    mean, lo, hi = mean_ci([1.0, 2.0, 3.0])
    half = 4.302652729749464 * 1.0 / math.sqrt(3)  # sample std of [1, 2, 3] is 1
    assert (mean, lo, hi) == pytest.approx((2.0, 2.0 - half, 2.0 + half))
    assert mean_ci([1.0, 2.0, 3.0, NAN])[1] == pytest.approx(lo)
    m, lo1, hi1 = mean_ci([5.0])
    assert m == 5.0 and math.isnan(lo1) and math.isnan(hi1)
    assert all(math.isnan(x) for x in mean_ci([]))
    with pytest.raises(ValueError, match="confidence"):
        mean_ci([1.0, 2.0], confidence=95)


def test_agent_metrics_collects_every_metric() -> None:
    probe = np.array([[1, 1, 0, 1], [1, 1, 1, 1]])
    prev = np.array([[1, 0], [0, 0]])
    cur = np.array([[0, 0], [1, 1]])
    per_agent = agent_metrics(ACC, 2, INTRODUCED, OWN, LEARNT, probe, prev, cur)
    assert list(per_agent) == [0, 1]
    assert list(per_agent[0]) == list(METRIC_NAMES)
    expected0 = {
        "acc_own": 0.5,
        "acc_received": 0.6,
        "acc_all": 0.55,
        "acc_future": 0.4,
        "forgetting": 0.3,
        "forgetting_max": 0.3,
        "bwt": -0.3,
        "fwt": 0.2,
        "retention": 0.75,
        "churn_lost": 0.5,
        "churn_gained": 0.0,
    }
    for name, value in expected0.items():
        assert per_agent[0][name] == pytest.approx(value), name
    assert math.isnan(per_agent[0]["acc_unreached"])
    assert per_agent[1]["churn_gained"] == 1.0
    assert math.isnan(per_agent[1]["forgetting"])
    assert all(isinstance(v, float) for m in per_agent.values() for v in m.values())


def test_agent_metrics_without_probe_or_items_gives_nan_and_names() -> None:
    per_agent = agent_metrics(ACC, 1, INTRODUCED, OWN, LEARNT, agent_names=["alice", "bob"])
    assert list(per_agent) == ["alice", "bob"]
    for name in ("retention", "churn_lost", "churn_gained"):
        assert math.isnan(per_agent["alice"][name])
    with pytest.raises(ValueError, match="both prev_item and cur_item"):
        agent_metrics(ACC, 1, INTRODUCED, OWN, LEARNT, prev_item=np.zeros((2, 1)))


def test_agent_metrics_reads_only_rows_up_to_t() -> None:
    acc = ACC.copy()
    acc[2] = np.nan  # round 2 not evaluated yet
    per_agent = agent_metrics(acc, 1, INTRODUCED, OWN, LEARNT)
    assert per_agent[0]["acc_all"] == pytest.approx(0.8)
    assert math.isnan(per_agent[0]["fwt"])  # only docs learnt by row 1 count, none at row >= 2


def test_population_metrics_mean_std_and_diffusion() -> None:
    per_agent = agent_metrics(ACC, 2, INTRODUCED, OWN, LEARNT)
    pop = population_metrics(per_agent, acc=ACC, t=2, introduced=INTRODUCED)
    assert pop["pop.acc_all.mean"] == pytest.approx(0.675)
    assert pop["pop.acc_all.std"] == pytest.approx(0.125)
    assert pop["pop.forgetting.mean"] == pytest.approx(0.3)  # agent 1's NaN ignored
    assert pop["pop.forgetting.std"] == pytest.approx(0.0)
    assert pop["pop.fwt.mean"] == pytest.approx(0.125)
    assert math.isnan(pop["pop.acc_unreached.mean"])
    assert pop["pop.diffusion"] == pytest.approx(1.0)
    assert set(pop) == {f"pop.{n}.{s}" for n in METRIC_NAMES for s in ("mean", "std")} | {"pop.diffusion"}
    assert "pop.diffusion" not in population_metrics(per_agent)
    with pytest.raises(ValueError, match="acc, t and introduced"):
        population_metrics(per_agent, acc=ACC)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: accuracy_all(ACC[0], 0, INTRODUCED), "acc must have shape"),
        (lambda: accuracy_all(ACC, 3, INTRODUCED), "row t=3 is outside"),
        (lambda: accuracy_all(ACC, 1, INTRODUCED[:, :2]), "introduced must have shape"),
        (lambda: forgetting(ACC, 2, LEARNT[:1]), "learnt_round must have shape"),
        (lambda: accuracy_on(ACC, 2, OWN.T), "mask must have shape"),
        (lambda: agent_metrics(ACC, 2, INTRODUCED, OWN, LEARNT, probe_correct=np.ones(4)), "probe_correct"),
    ],
)
def test_bad_shapes_are_named(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
