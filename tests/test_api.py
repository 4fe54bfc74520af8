"""The public Python API (``import multiseal``) on tiny-random: load, validate, run, open_run, compare,
sweep — each returning data, each checked against what the run directory and MLflow hold."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import multiseal as ms
from multiseal.errors import InputError, Problem, ScenarioError

SMALL = {
    "rounds": 2,
    "seed": 0,
    "model": {"base": "tiny-random", "lora": {"rank": 4, "alpha": 8}},
    "world": {"documents": 6, "questions_per_doc": [2, 2]},
    "agents": 3,
    "arrivals": {"kind": "overlapping", "copies": 1},
    "topology": {"kind": "ring"},
    "self_edit": {"max_new_tokens": 8},
    "inner_loop": {"epochs": 1, "max_length": 32},
    "evaluation": {"max_new_tokens": 4, "retention_probe": 0},
}


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("MULTISEAL_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("MULTISEAL_THREADS", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _tracked(tmp_path, **changes):
    return {**SMALL, "tracking": {"uri": f"sqlite:///{tmp_path}/m.db", "experiment": "api"}, **changes}


def test_import_multiseal_is_light_and_lists_the_api():
    code = (
        "import sys, multiseal; print(sorted(m for m in ('torch', 'ray', 'mlflow', 'transformers', 'pandas') "
        "if m in sys.modules)); print(sorted(multiseal.__all__))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    loaded, names = out.splitlines()
    assert loaded == "[]"
    assert all(n in names for n in ("load", "validate", "run_scenario", "open_run", "compare", "sweep", "RunResult"))
    with pytest.raises(AttributeError):
        ms.not_a_function  # noqa: B018


def test_load_from_a_file_or_a_dict_with_overrides(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("rounds: 3\nmodel: {base: tiny-random}\ntopology: {kind: ring}\n")
    sc = ms.load(path, overrides={"topology.kind": "complete", "rounds": 1})
    assert (sc.topology.kind, sc.rounds) == ("complete", 1)
    assert ms.load({**SMALL}, {"topology.kind": "complete"}).topology.kind == "complete"
    assert ms.load(sc, {"rounds": 2}).rounds == 2  # a Scenario again, changed
    with pytest.raises(ScenarioError) as e:
        ms.load(path, {"topology.knd": "ring"})
    assert e.value.problems[0].path == "topology.knd"


def test_validate_returns_the_problems_and_the_cost_as_data(tmp_path):
    good = ms.validate(SMALL)
    assert good.ok and good.problems == () and "min" in good.cost and good.scenario.rounds == 2
    bad = ms.validate({**SMALL, "rounds": 0, "topology": {"kind": "small-world", "params": {"k": 6}}})
    assert not bad.ok and bad.scenario is None
    assert {p.path for p in bad.problems} >= {"rounds", "topology.params.k"}
    missing = ms.validate(tmp_path / "nope.yaml")
    assert not missing.ok and missing.problems[0].path == "" and "nope.yaml" in missing.message
    # the command line prints the same problems
    out = subprocess.run(
        [sys.executable, "-m", "multiseal", "validate", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and missing.message in out.stderr
    assert isinstance(bad.problems[0], Problem)


def test_run_returns_a_result_that_open_run_reads_back_the_same(tmp_path):
    import mlflow

    result = ms.run_scenario(_tracked(tmp_path))
    assert result.status == "FINISHED" and result.kind == "simulation" and result.path.is_dir()
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/m.db")
    logged = client.get_run(result.run_id)
    frame = result.metrics
    assert list(frame.index) == [0, 1, 2]  # row 0 (the base model) and two rounds
    for key in ("agent.0.acc_all", "pop.acc_all.mean"):
        assert frame[key].iloc[-1] == pytest.approx(logged.data.metrics[key])
        assert result.final(key) == pytest.approx(logged.data.metrics[key])
    acc = result.acc
    assert acc.shape == (3, 3, 6) and np.nanmax(acc) <= 1
    assert result.accuracy["introduced"].shape[0] == 3
    assert result.notes and {"author", "doc_id", "text"} <= set(result.notes[0])
    assert result.answers and result.cost.startswith("cost: 2 round(s)")
    assert f"run directory {result.path}" in result.summary
    assert result.setting("topology.kind") == "ring" and result.seed == 0
    for ref in (result.path, result.uid, result.run_id):
        again = ms.open_run(ref)
        assert again.path == result.path and again.summary == result.summary
        assert again.metrics.equals(frame)
    with pytest.raises(InputError):
        result.artifact("../run.json")
    (result.path / "artifacts" / "elsewhere.jsonl").symlink_to(result.path / "run.json")
    with pytest.raises(InputError, match="symbolic link"):
        result.records("elsewhere.jsonl")


def test_the_command_line_run_prints_what_the_result_holds(tmp_path):
    import yaml

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_tracked(tmp_path, rounds=1)))
    env = {**os.environ, "MULTISEAL_RUNS": str(tmp_path / "runs"), "MULTISEAL_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "multiseal", "run", str(path), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (folder,) = (tmp_path / "runs" / "api").iterdir()
    assert ms.open_run(folder).summary in out.stdout


def test_compare_pairs_groups_of_runs_by_seed(tmp_path):
    runs = {
        kind: [ms.run_scenario(_tracked(tmp_path, seed=s, topology={"kind": kind})) for s in (0, 1)]
        for kind in ("none", "complete")
    }
    cmp = ms.compare(
        {"isolated": runs["none"], "complete": [r.path for r in runs["complete"]]},
        reference="isolated",
        metrics=["acc_all", "acc_own"],
        resamples=200,
    )
    rows = {r.metric: r for r in cmp.rows}
    assert set(rows) == {"acc_all", "acc_own"}
    for r in rows.values():
        assert r.point == "group=complete" and r.reference == "group=isolated" and r.seeds == 2
        assert r.lo <= r.delta <= r.hi
    # the paired difference is the mean over the cells of (complete - isolated), seed by seed
    diffs = []
    for a, b in zip(runs["none"], runs["complete"]):
        ta, tb = a.accuracy, b.accuracy
        cells = ta["introduced"][-1][None, :] & np.ones_like(ta["own"], dtype=bool)
        diffs.append((tb["acc"][-1] - ta["acc"][-1])[cells])
    assert rows["acc_all"].delta == pytest.approx(float(np.mean(np.concatenate(diffs))), abs=1e-12)
    assert "group=complete" in cmp.table() and len(cmp.frame()) == 2
    with pytest.raises(InputError, match="two runs with seed 0"):
        ms.compare({"a": runs["none"][:1] * 1 + runs["complete"][:1], "b": runs["complete"][1:]}, reference="a")
    with pytest.raises(InputError, match="not one of the groups"):
        ms.compare({"a": runs["none"], "b": runs["complete"]}, reference="c")


def test_sweep_runs_the_points_and_groups_their_runs(tmp_path):
    import yaml

    (tmp_path / "base.yaml").write_text(yaml.safe_dump({**SMALL, "rounds": 1}))
    (tmp_path / "sweep.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "api-sweep",
                "base": "base.yaml",
                "experiment": "api-sweep",
                "grid": {"topology.kind": ["none", "complete"], "seed": [0, 1]},
                "reference": {"topology.kind": "none"},
            }
        )
    )
    with open(os.devnull, "w") as quiet:
        done = ms.sweep(tmp_path / "sweep.yaml", tracking_uri=f"sqlite:///{tmp_path}/m.db", out=quiet)
    assert not done.failed
    assert sorted(done.groups) == ["topology.kind=complete", "topology.kind=none"]
    assert done.reference == "topology.kind=none"
    assert all(sorted(r.seed for r in runs) == [0, 1] for runs in done.groups.values())
    cmp = ms.compare(done.groups, reference=done.reference, metrics=["acc_all"], resamples=200)
    assert [r.point for r in cmp.rows] == ["group=topology.kind=complete"]


def test_a_skills_run_reads_back_its_table_and_attempts(tmp_path):
    result = ms.run_scenario(
        {
            "kind": "skills",
            "model": {"base": "tiny-random", "lora": {"rank": 4, "alpha": 8}},
            "tasks": {"families": ["shift"], "per_family": 2, "width": [3, 3], "height": [2, 2], "demonstrations": 2},
            "skills": {
                "arms": ["in-context", "oracle"],
                "reference": "in-context",
                "iterations": 0,
                "oracle": [{"epochs": 1}],
                "max_length": 128,
            },
            "tracking": {"uri": f"sqlite:///{tmp_path}/m.db", "experiment": "api-skills"},
        }
    )
    assert result.kind == "skills" and "| in-context |" in result.summary
    assert {a["arm"] for a in result.answers} == {"in-context", "oracle"}
    assert "skills.oracle.success" in result.metrics.columns and result.acc is None
