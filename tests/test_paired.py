"""Paired comparisons against a reference point: the cluster bootstrap on synthetic outcomes, Holm, the
power formula, and the report's paired table on a small MLflow store filled here (no model)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from test_sweep import write_sweep

from multiseal.analysis import load_experiment
from multiseal.analysis import report as report_module
from multiseal.analysis.paired import (
    check_reference,
    format_paired,
    paired_comparisons,
    parse_reference,
    power_table,
    reference_from_tags,
)
from multiseal.analysis.report import write_report
from multiseal.cli import main
from multiseal.errors import InputError
from multiseal.run.tracker import Tracker
from multiseal.stats import cluster_bootstrap, holm, mdd, seeds_needed, verdict

EXPERIMENT = "paired"
KINDS = ("none", "ring", "star")  # none: the reference; ring: +0.3 on received cells; star: identical to none
SEEDS = (0, 1, 2)
AGENTS, ROUNDS, DOCS = 3, 2, 6
PLANT = 0.3
HEADER = (
    "| point | metric | reference mean | point mean | Δ [95% CI] | Holm p | verdict | MDD (80%) | "
    "seeds needed | seeds × cells |"
)


# ----------------------------------------------------------------------------- the bootstrap


def test_identical_arms_are_not_distinguishable():
    diffs = [np.zeros((8, 3)) for _ in range(4)]
    boot = cluster_bootstrap(diffs)
    assert (boot.delta, boot.lo, boot.hi, boot.p) == (0.0, 0.0, 0.0, 1.0)
    assert verdict(boot.delta, boot.p) == "not distinguishable"


def test_a_large_planted_difference_is_higher_and_its_negative_lower():
    rng = np.random.default_rng(0)
    diffs = [0.3 + rng.normal(0, 0.05, size=(10, 4)) for _ in range(3)]
    up = cluster_bootstrap(diffs, resamples=2000, seed=1)
    assert up.lo < 0.3 < up.hi and up.lo > 0.2
    assert up.p == pytest.approx(2 / 2001)  # no resample at or below zero
    assert verdict(up.delta, up.p) == "higher"
    down = cluster_bootstrap([-d for d in diffs], resamples=2000, seed=1)
    assert down.delta == pytest.approx(-up.delta) and verdict(down.delta, down.p) == "lower"


def test_small_noisy_differences_are_not_distinguishable():
    rng = np.random.default_rng(3)
    boot = cluster_bootstrap([rng.normal(0.01, 0.3, size=(5, 2)) for _ in range(3)])
    assert boot.lo < 0 < boot.hi and boot.p > 0.05
    assert verdict(boot.delta, boot.p) == "not distinguishable"


def test_a_cluster_is_resampled_as_a_unit():
    rng = np.random.default_rng(1)
    z = rng.normal(size=12)
    # four identical cells per cluster resample exactly like one cell per cluster: never split
    whole = cluster_bootstrap([np.repeat(z[:, None], 4, axis=1)], seed=5)
    single = cluster_bootstrap([z[:, None]], seed=5)
    assert (whole.delta, whole.lo, whole.hi, whole.p) == pytest.approx((single.delta, single.lo, single.hi, single.p))
    # perfectly correlated cells within a cluster give a wider interval than the same values spread
    # independently over clusters (the seed's mean, hence the seed level, is the same in both)
    z = rng.normal(size=30)
    correlated = np.repeat(z[:, None], 4, axis=1)
    independent = rng.permutation(correlated.ravel()).reshape(correlated.shape)
    wide, narrow = cluster_bootstrap([correlated], seed=2), cluster_bootstrap([independent], seed=2)
    assert wide.delta == pytest.approx(narrow.delta)
    assert (wide.hi - wide.lo) > 1.5 * (narrow.hi - narrow.lo)


def test_seeds_are_resampled_too_and_missing_cells_are_left_out():
    # no spread within a seed, all of it between seeds: only seed resampling gives an interval
    boot = cluster_bootstrap([np.zeros((5, 2)), np.ones((5, 2))])
    assert boot.delta == pytest.approx(0.5)
    assert (boot.lo, boot.hi) == (0.0, 1.0)
    with_nan = np.array([[1.0, np.nan], [np.nan, np.nan], [3.0, 1.0]])
    assert cluster_bootstrap([with_nan]).delta == pytest.approx(5 / 3)


def test_holm_on_the_textbook_example():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = holm([0.5, np.nan, 0.01])
    assert adjusted[0] == pytest.approx(0.5) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])


def test_minimum_detectable_difference_by_hand():
    by_hand = (2.7764451 + 0.9409646) * 0.1 / math.sqrt(5)  # t_{0.975,4} + t_{0.8,4}
    assert mdd(0.1, 5) == pytest.approx(by_hand, rel=1e-6)
    assert mdd(0.1, 5) == pytest.approx((stats.t.ppf(0.975, 4) + stats.t.ppf(0.8, 4)) * 0.1 / math.sqrt(5))
    assert math.isnan(mdd(0.1, 1))
    assert seeds_needed(0.1, by_hand + 1e-9) == 5
    assert seeds_needed(0.1, -0.16) == 6  # mdd(0.1, 5) = 0.166 > 0.16 >= mdd(0.1, 6) = 0.142
    assert seeds_needed(0.1, 0.0) is None
    assert seeds_needed(1.0, 0.001, cap=50) == 51


# ----------------------------------------------------------------------------- a small MLflow store


def outcome(kind: str, seed: int):
    rng = np.random.default_rng(100 + seed)  # the seed fixes the world: both arms start from it
    acc = rng.uniform(0.0, 0.6, size=(ROUNDS + 1, AGENTS, DOCS))
    own = np.arange(DOCS)[None, :] % AGENTS == np.arange(AGENTS)[:, None]
    if kind == "ring":
        acc[-1][~own] += PLANT
    retention = 0.9 - 0.1 * np.arange(AGENTS) - (0.05 * (seed + 1) if kind == "ring" else 0.0)
    return acc, own, retention


def fill_store(root, reference_tag: bool = True) -> str:
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    MlflowClient(uri).create_experiment(EXPERIMENT, artifact_location=(root / "artifacts").as_uri())
    introduced = np.array([[False] * DOCS, [True] * 3 + [False] * 3, [True] * DOCS])
    for kind in KINDS:
        for seed in SEEDS:
            tags = {
                "multiseal.sweep": "p",
                "multiseal.point": f"{kind}{seed}",
                "multiseal.point.topology.kind": kind,
                "multiseal.point.seed": str(seed),
            }
            if reference_tag:
                tags["multiseal.reference.topology.kind"] = "none"
            acc, own, retention = outcome(kind, seed)
            with Tracker(uri, EXPERIMENT, f"p: {kind} {seed}", params={"seed": seed}, tags=tags) as t:
                for step in range(1, ROUNDS + 1):
                    metrics = {"pop.acc_all.mean": float(acc[step].mean())}
                    for a in range(AGENTS):
                        metrics |= {
                            f"agent.{a}.retention": retention[a] + (ROUNDS - step),
                            f"agent.{a}.forgetting": 0.1 * a,
                            f"agent.{a}.bwt": -0.05 * a,
                        }
                    t.metrics(metrics, step=step)
                folder = t.artifact_dir()
                np.savez_compressed(
                    folder / "accuracy.npz",
                    acc=acc,
                    own=own,
                    introduced=introduced,
                    learnt_round=np.where(own, 1, 2),
                    composition=np.full((ROUNDS + 1, AGENTS), 0.4),
                    doc_ids=np.array([f"d{j}" for j in range(DOCS)]),
                )
                t.artifact_file(folder / "accuracy.npz")
    return uri


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return fill_store(tmp_path_factory.mktemp("paired-store"))


@pytest.fixture
def no_figures(monkeypatch):
    """The report's figures are tested elsewhere; here only its tables matter."""
    monkeypatch.setattr(report_module, "comparison_figures", lambda *a, **k: {})
    monkeypatch.setattr(report_module, "run_figures", lambda *a, **k: {})


def rows_by(result):
    return {(r.point, r.metric): r for r in result.rows}


def test_paired_comparisons_find_the_planted_difference_and_only_it(store):
    with load_experiment(EXPERIMENT, store) as data:
        result = paired_comparisons(data, {"topology.kind": "none"})
    rows = rows_by(result)
    ring, star = "topology.kind=ring", "topology.kind=star"
    received = rows[ring, "acc_received"]
    assert received.reference == "topology.kind=none" and received.seeds == 3
    assert received.cells == (12, 12, 12)  # 3 agents × 4 documents each does not own
    assert received.delta == pytest.approx(PLANT) and received.lo == pytest.approx(PLANT)
    assert received.verdict == "higher" and received.p_holm == pytest.approx(2 * 2 / 2001)  # Holm over 2 points
    assert received.point_mean - received.reference_mean == pytest.approx(PLANT)
    assert received.seeds_needed == 2 and received.mdd == pytest.approx(0, abs=1e-9)
    assert rows[ring, "acc_all"].verdict == "higher" and rows[ring, "acc_all"].cells == (18, 18, 18)
    assert rows[ring, "acc_all"].delta == pytest.approx(PLANT * 12 / 18)
    assert rows[ring, "acc_own"].verdict == "not distinguishable" and rows[ring, "acc_own"].delta == 0
    assert rows[ring, "acc_own"].seeds_needed is None
    for metric in ("acc_all", "acc_own", "acc_received", "acc_composition", "retention", "forgetting", "bwt"):
        assert rows[star, metric].verdict == "not distinguishable", metric
        assert rows[star, metric].delta == 0 and rows[star, metric].p_holm == 1.0
    # agent-level: one cell per agent, final round; ring's retention is 0.05, 0.10, 0.15 lower by seed
    retention = rows[ring, "retention"]
    assert retention.cells == (3, 3, 3) and retention.verdict == "lower"
    assert retention.delta == pytest.approx(-0.10)
    assert retention.sd == pytest.approx(0.05)
    assert retention.mdd == pytest.approx(mdd(0.05, 3))
    assert retention.seeds_needed == seeds_needed(0.05, -0.10)
    table = format_paired(result)
    assert table.splitlines()[0] == HEADER
    assert "| topology.kind=ring | acc_received | " in table and "| higher |" in table and "| 3 × 12 |" in table


def test_the_reference_is_checked_and_read_from_the_sweeps_tags(store):
    with load_experiment(EXPERIMENT, store) as data:
        assert reference_from_tags(data.runs) == {"topology.kind": "none"}
        with pytest.raises(
            InputError,
            match=r"no run has topology.kind=nne \(values of topology.kind in the runs: "
            r"none, ring, star\)",
        ):
            check_reference(data.runs, {"topology.kind": "nne"})
        with pytest.raises(InputError, match="'scheduler.kind' is not a key the runs vary"):
            check_reference(data.runs, {"scheduler.kind": "x"})
        with pytest.raises(InputError, match="paired by seed"):
            check_reference(data.runs, {"seed": "0"})
    assert parse_reference(["topology.kind=none", "a.b = 2"]) == {"topology.kind": "none", "a.b": "2"}
    with pytest.raises(InputError, match="expected KEY=VALUE"):
        parse_reference(["topology.kind"])


def test_the_report_has_the_paired_table_only_with_a_reference(store, tmp_path, no_figures):
    text = write_report(EXPERIMENT, store, tmp_path / "a", log_artifacts=False).read_text()
    assert "## Paired comparison against topology.kind=none" in text  # from the runs' sweep tags
    assert HEADER in text and "## Comparison" in text  # the unpaired table stays
    assert "(figures/paired.png)" in text and (tmp_path / "a" / "figures" / "paired.png").stat().st_size > 0
    text = write_report(
        EXPERIMENT, store, tmp_path / "b", log_artifacts=False, reference={"topology.kind": "star"}
    ).read_text()
    assert "## Paired comparison against topology.kind=star" in text  # the caller's reference wins
    assert "| topology.kind=ring | acc_received |" in text and "| topology.kind=none | acc_received |" in text


def test_no_reference_no_paired_section(tmp_path, no_figures):
    uri = fill_store(tmp_path, reference_tag=False)
    text = write_report(EXPERIMENT, uri, tmp_path / "rep", log_artifacts=False).read_text()
    assert "Paired comparison" not in text and "## Comparison" in text


def test_cli_report_with_a_reference(store, tmp_path, capsys, no_figures):
    out = tmp_path / "cli"
    assert (
        main(
            [
                "report",
                "--experiment",
                EXPERIMENT,
                "--tracking-uri",
                store,
                "--out",
                str(out),
                "--no-log",
                "--reference",
                "topology.kind=none",
            ]
        )
        == 0
    )
    text = (out / "report.md").read_text()
    assert "## Paired comparison against topology.kind=none" in text and HEADER in text
    ring = next(line for line in text.splitlines() if line.startswith("| topology.kind=ring | acc_received |"))
    assert "| higher |" in ring
    star = next(line for line in text.splitlines() if line.startswith("| topology.kind=star | acc_received |"))
    assert "| not distinguishable |" in star


def test_cli_report_with_a_bad_reference_exits_2(store, tmp_path, capsys):
    assert (
        main(
            [
                "report",
                "--experiment",
                EXPERIMENT,
                "--tracking-uri",
                store,
                "--out",
                str(tmp_path),
                "--no-log",
                "--reference",
                "topology.kind=nne",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "--reference: no run has topology.kind=nne" in err and "none, ring, star" in err
    assert (
        main(
            [
                "report",
                "--experiment",
                EXPERIMENT,
                "--tracking-uri",
                store,
                "--out",
                str(tmp_path),
                "--no-log",
                "--reference",
                "topology.kind",
            ]
        )
        == 2
    )
    assert "expected KEY=VALUE" in capsys.readouterr().err


# ----------------------------------------------------------------------------- sizing a sweep


def test_power_table_from_a_pilot(store):
    with load_experiment(EXPERIMENT, store) as data:
        text = power_table(data, {"topology.kind": "none"}, target=0.05, seeds=5)
    lines = {line.split()[0]: line for line in text.splitlines()[2:-1]}
    assert "2 point(s) compared, 3 seed(s) each" in text
    retention = lines["retention"].split()
    assert float(retention[1]) == pytest.approx(0.05)
    assert float(retention[2]) == pytest.approx(mdd(0.05, 5), abs=5e-4)
    assert int(retention[3]) == seeds_needed(0.05, 0.05)


def test_cli_sweep_dry_run_power_from_an_earlier_experiment(store, tmp_path, capsys):
    path = write_sweep(
        tmp_path,
        "name: next\nbase: base.yaml\nreference: {topology.kind: none}\n"
        "grid: {topology.kind: [none, ring], seed: [0, 1, 2, 3]}\n",
    )
    assert (
        main(["sweep", str(path), "--dry-run", "--tracking-uri", store, "--power-from", EXPERIMENT, "--target", "0.1"])
        == 0
    )
    out = capsys.readouterr().out
    assert "reference (paired comparisons in the report): topology.kind=none" in out
    assert "power from experiment 'paired'" in out and "MDD @ 4 seeds" in out and "seeds for Δ=0.1" in out
    retention = next(line for line in out.splitlines() if line.startswith("retention")).split()
    assert int(retention[3]) == seeds_needed(0.05, 0.1)
    assert main(["sweep", str(path), "--tracking-uri", store, "--power-from", EXPERIMENT]) == 2
    assert "only with --dry-run" in capsys.readouterr().err
    assert main(["sweep", str(path), "--dry-run", "--tracking-uri", store, "--power-from", "nope"]) == 2
    assert "no MLflow experiment 'nope'" in capsys.readouterr().err


def test_a_point_without_a_counterpart_is_compared_with_the_reference_itself():
    from multiseal.analysis.load import RunRecord
    from multiseal.analysis.paired import pairings

    def run(i, seed, **point):
        tags = {f"multiseal.point.{k}": v for k, v in {**point, "seed": str(seed)}.items()}
        return RunRecord(f"r{i}", f"r{i}", "FINISHED", i, {}, tags, {})

    runs = [
        run(0, 0, **{"topology.kind": "none"}),
        run(1, 0, **{"topology.kind": "complete"}),
        run(2, 0, **{"topology.kind": "complete", "sharing.content": "passage"}),
        run(3, 0, **{"topology.kind": "ring", "scheduler.kind": "budgeted"}),
    ]
    got, notes = pairings(runs, {"topology.kind": "none"})
    by_point = {p.point: p.runs[0][1].run_id for p in got}
    assert by_point == {
        "topology.kind=complete": "r0",
        "topology.kind=complete sharing.content=passage": "r0",
        "topology.kind=ring scheduler.kind=budgeted": "r0",
    }
    assert len(notes) == 2 and all("compared with topology.kind=none itself" in n for n in notes)
