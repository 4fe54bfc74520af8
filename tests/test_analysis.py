"""The analysis package on a synthetic MLflow store: runs logged here with multiseal's Tracker, with
known metric values, a fake accuracy tensor and graph, so every number can be checked by hand."""

from __future__ import annotations

import math
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from multiseal.analysis import (
    compare,
    comparison_figures,
    comparison_table,
    curves,
    format_markdown,
    load_experiment,
    run_figures,
    to_frame,
)
from multiseal.analysis.compare import diffusion_by_distance
from multiseal.errors import InputError
from multiseal.run.tracker import Tracker
from multiseal.stats import mean_ci

EXPERIMENT = "synthetic"
SWEEP = "syn"
TOPOLOGIES = ("ring", "star")
SEEDS = (0, 1)
AGENTS, ROUNDS, DOCS = 3, 2, 4


def final_accuracy(topology: str, seed: int) -> float:
    return 0.5 + 0.1 * TOPOLOGIES.index(topology) + 0.02 * seed


def fill_store(root: Path, experiment: str = EXPERIMENT) -> str:
    """A tracking URI whose ``experiment`` holds one FINISHED run per (topology, seed) shaped like a
    sweep's, plus one FAILED run that analysis must leave out."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    MlflowClient(uri).create_experiment(experiment, artifact_location=(root / "artifacts").as_uri())
    for topology in TOPOLOGIES:
        for seed in SEEDS:
            tags = {
                "multiseal.sweep": SWEEP,
                "multiseal.point": f"{topology}{seed}",
                "multiseal.point.topology.kind": topology,
                "multiseal.point.seed": str(seed),
            }
            with Tracker(uri, experiment, f"{SWEEP}: {topology} {seed}", params={"seed": seed}, tags=tags) as t:
                _log_fake_run(t, final_accuracy(topology, seed), seed)
    Tracker(uri, experiment, "crashed", tags={"multiseal.sweep": SWEEP, "multiseal.point": "x"}).end("FAILED")
    return uri


def _log_fake_run(t: Tracker, final: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for step in range(1, ROUNDS + 1):
        scale = step / ROUNDS
        metrics = {f"agent.{a}.acc_all": final * scale + 0.01 * a for a in range(AGENTS)}
        metrics.update({f"agent.{a}.forgetting": 0.1 * (step - 1) * a for a in range(AGENTS)})
        metrics.update(
            {
                "pop.acc_all.mean": final * scale + 0.01,
                "pop.forgetting.mean": 0.1 * (step - 1),
                "pop.diffusion": 0.4 * scale,
                "pop.diffusion.d0": 0.8 * scale,
                "pop.diffusion.d1": 0.3 * scale,
            }
        )
        t.metrics(metrics, step=step)
    folder = t.artifact_dir()
    acc = rng.uniform(0, 1, size=(ROUNDS + 1, AGENTS, DOCS))
    acc[0, :, 3] = np.nan
    learnt = np.array([[1, 1, 2, -1], [1, 2, 2, -1], [2, 1, 1, 2]])
    introduced = np.array([[False] * DOCS, [True, True, False, False], [True] * DOCS])
    np.savez_compressed(
        folder / "accuracy.npz",
        acc=acc,
        introduced=introduced,
        own=learnt == 1,
        learnt_round=learnt,
        doc_ids=np.array([f"d{j:03d}" for j in range(DOCS)]),
    )
    t.artifact_file(folder / "accuracy.npz")
    g = nx.DiGraph(nx.cycle_graph(AGENTS))
    for a in g.nodes:
        g.nodes[a]["final_accuracy"] = float(acc[-1, a].mean())
    nx.write_graphml(g, folder / "graph.graphml")
    t.artifact_file(folder / "graph.graphml")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return fill_store(tmp_path_factory.mktemp("store"))


@pytest.fixture
def data(store):
    with load_experiment(EXPERIMENT, store) as d:
        yield d


def test_loads_only_finished_runs_with_their_sweep_points(data):
    assert len(data.all_runs) == len(TOPOLOGIES) * len(SEEDS) + 1
    assert len(data.runs) == len(TOPOLOGIES) * len(SEEDS)
    assert {r.status for r in data.runs} == {"FINISHED"}
    run = data.runs[0]
    assert run.point == {"topology.kind": "ring", "seed": "0"}
    assert run.seed == 0
    assert run.group() == "topology.kind=ring"
    assert run.metrics["pop.acc_all.mean"] == pytest.approx(final_accuracy("ring", 0) + 0.01)


def test_history_and_per_agent_series_are_by_round(data):
    run = data.runs[0]
    assert [s for s, _ in data.history(run, "pop.acc_all.mean")] == [1, 2]
    per_agent = data.agent_history(run, "acc_all")
    assert sorted(per_agent) == list(range(AGENTS))
    assert per_agent[2][-1][1] == pytest.approx(final_accuracy("ring", 0) + 0.02)
    assert sorted(data.diffusion_history(run)) == [0, 1]


def test_tidy_table_has_one_row_per_run_metric_and_round(data):
    rows = data.tidy(["acc_all"])
    assert len(rows) == len(data.runs) * AGENTS * ROUNDS
    assert {r["agent"] for r in rows} == set(range(AGENTS))
    assert {r["metric"] for r in rows} == {"acc_all"}
    assert {r["point.topology.kind"] for r in rows} == set(TOPOLOGIES)
    frame = to_frame(rows)
    assert len(frame) == len(rows)


def test_artifacts_come_back_from_the_store(data):
    run = data.runs[0]
    tensor = data.accuracy(run)
    assert tensor["acc"].shape == (ROUNDS + 1, AGENTS, DOCS)
    assert list(tensor["doc_ids"]) == ["d000", "d001", "d002", "d003"]
    graph = data.graph(run)
    assert sorted(graph.nodes) == list(range(AGENTS))
    assert "final_accuracy" in graph.nodes[0]
    assert data.artifact(run, "no-such-file.txt") is None


def test_comparison_is_mean_and_ci_over_seeds(data):
    summaries = {s.group: s for s in compare(data.runs, "pop.acc_all.mean")}
    assert set(summaries) == {f"topology.kind={t}" for t in TOPOLOGIES}
    star = summaries["topology.kind=star"]
    expected = mean_ci([final_accuracy("star", s) + 0.01 for s in SEEDS])
    assert star.n == len(SEEDS)
    assert (star.mean, star.lo, star.hi) == pytest.approx(expected)
    assert star.lo < star.mean < star.hi
    table = format_markdown(comparison_table(data.runs))
    assert "topology.kind=ring" in table and "pop.acc_all.mean" in table
    assert f"{star.mean:.3f} [{star.lo:.3f}, {star.hi:.3f}]" in table


def test_comparison_table_leaves_out_metrics_no_run_logged(data):
    rows = comparison_table(data.runs)
    assert "pop.retention.mean" not in rows[0]
    assert "pop.diffusion" in rows[0]


def test_curves_and_diffusion_by_distance_average_over_seeds(data):
    by_round = curves(data, "pop.forgetting.mean")
    assert list(by_round["topology.kind=ring"]) == [1, 2]
    assert by_round["topology.kind=ring"][2][0] == pytest.approx(0.1)
    by_distance = diffusion_by_distance(data)
    assert by_distance["topology.kind=star"][0][0] == pytest.approx(0.8)
    assert by_distance["topology.kind=star"][1][0] == pytest.approx(0.3)


def test_every_run_figure_is_written_and_not_empty(data, tmp_path):
    figs = run_figures(data, data.runs[0], tmp_path)
    assert set(figs) == {"accuracy", "heatmaps", "forgetting", "diffusion", "graph"}
    for path in figs.values():
        assert path.is_file() and path.stat().st_size > 1000, path


def test_every_comparison_figure_is_written_and_not_empty(data, tmp_path):
    figs = comparison_figures(data, tmp_path, "pop.diffusion")
    assert set(figs) == {"bars", "accuracy", "forgetting", "diffusion"}
    for path in figs.values():
        assert path.is_file() and path.stat().st_size > 1000, path


def test_unknown_experiment_is_an_input_error_naming_it(store):
    with pytest.raises(InputError, match=r"no MLflow experiment 'nope'.*synthetic"):
        load_experiment("nope", store)


def test_retention_curve_follows_documents_from_the_round_they_were_learnt():
    from multiseal.analysis.figures import retention_curve

    acc = np.array([[[0.0, 0.0]], [[1.0, 0.0]], [[0.5, 1.0]]])  # rows × 1 agent × 2 docs
    learnt = np.array([[1, 2]])
    curve = retention_curve(acc, learnt)[0]
    assert curve[0] == (0, pytest.approx(1.0))  # just after learning: 1.0 and 1.0
    assert curve[1] == (1, pytest.approx(0.5))  # one round later: only doc 0 has a row
    assert not any(math.isnan(v) for _, v in curve)


def test_a_point_that_ran_twice_counts_once_and_the_duplicate_is_named(tmp_path):
    uri = fill_store(tmp_path)
    tags = {
        "multiseal.sweep": SWEEP,
        "multiseal.point": "ring1",
        "multiseal.point.topology.kind": "ring",
        "multiseal.point.seed": "1",
    }
    with Tracker(uri, EXPERIMENT, f"{SWEEP}: ring 1 again", params={"seed": 1}, tags=tags) as t:
        _log_fake_run(t, 0.99, 1)
    with load_experiment(EXPERIMENT, uri) as data:
        assert len(data.runs) == len(TOPOLOGIES) * len(SEEDS)  # not one more "seed"
        (dup,) = data.duplicates
        assert dup.name == f"{SWEEP}: ring 1"  # the older run of the pair is left out
        ring = compare(data.runs, "pop.acc_all.mean")
        assert [s for s in ring if s.group.endswith("ring")][0].n == len(SEEDS)
