"""Sweep files: points from a grid and a list, validation naming the sweep-file key, stable point ids,
the command line each point runs, and skip-on-resume against a real (temporary) MLflow store."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from multiseal.cli import _parse_tags, _parser, main
from multiseal.config.load import load_scenario
from multiseal.config.overrides import parse_assignments, parse_value
from multiseal.errors import ScenarioError
from multiseal.run import sweep as sw
from multiseal.run import sweep_file as swf
from multiseal.run.tracker import Tracker

ROOT = Path(__file__).resolve().parents[1]
BASE = {
    "name": "tiny",
    "rounds": 2,
    "agents": 3,
    "model": {"base": "tiny-random"},
    "world": {"documents": 6, "questions_per_doc": [2, 2]},
    "self_edit": {"max_new_tokens": 8},
    "inner_loop": {"epochs": 1},
    "evaluation": {"max_new_tokens": 4},
}


def write_sweep(folder: Path, body: str, base: dict | None = None) -> Path:
    (folder / "base.yaml").write_text(yaml.safe_dump(base or BASE))
    path = folder / "sweep.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def problems_of(path: Path, **kw) -> dict[str, str]:
    with pytest.raises(ScenarioError) as e:
        swf.load_sweep(path, **kw)
    assert str(path) in str(e.value)
    return {p.path: p.message for p in e.value.problems}


# ----------------------------------------------------------------------------- points


def test_points_are_each_listed_point_crossed_with_the_grid(tmp_path):
    path = write_sweep(
        tmp_path,
        """
        name: s
        base: base.yaml
        set: {inner_loop.lr: 0.01}
        grid: {topology.kind: [ring, complete], seed: [0, 1]}
        points:
          - {scheduler.kind: synchronous}
          - {scheduler.kind: isolated}
    """,
    )
    sweep = swf.load_sweep(path)
    assert len(sweep.points) == 8
    assert sweep.experiment == "s" and sweep.base == tmp_path / "base.yaml"
    first = sweep.points[0]
    assert first.overrides == {"scheduler.kind": "synchronous", "topology.kind": "ring", "seed": 0}
    assert first.label == "scheduler.kind=synchronous topology.kind=ring seed=0"
    assert first.origin == {
        "scheduler.kind": "points[0].scheduler.kind",
        "topology.kind": "grid.topology.kind",
        "seed": "grid.seed",
    }
    assert len({p.id for p in sweep.points}) == 8
    assert first.tags("s") == {
        "multiseal.sweep": "s",
        "multiseal.point": first.id,
        "multiseal.point.scheduler.kind": "synchronous",
        "multiseal.point.topology.kind": "ring",
        "multiseal.point.seed": "0",
    }


def test_a_sweep_without_grid_or_points_is_the_base_alone(tmp_path):
    sweep = swf.load_sweep(write_sweep(tmp_path, "base: base.yaml\n"))
    assert [p.overrides for p in sweep.points] == [{}]
    assert sweep.name == "sweep" and sweep.experiment == "sweep"  # the file's stem


def test_point_ids_are_stable_and_ignore_key_order(tmp_path):
    a = swf.load_sweep(write_sweep(tmp_path, "base: base.yaml\ngrid: {topology.kind: [ring, star], seed: [0, 1]}\n"))
    b = swf.load_sweep(write_sweep(tmp_path, "base: base.yaml\ngrid: {seed: [0, 1], topology.kind: [ring, star]}\n"))
    assert {p.id for p in a.points} == {p.id for p in b.points}
    assert swf.point_id({"seed": 0, "topology.kind": "ring"}) == swf.point_id({"topology.kind": "ring", "seed": 0})
    assert swf.point_id({"seed": 0}) != swf.point_id({"seed": 1})


def test_the_file_sets_experiment_and_jobs_and_the_command_line_wins(tmp_path):
    path = write_sweep(tmp_path, "name: s\nbase: base.yaml\nexperiment: exp\njobs: 3\n")
    sweep = swf.load_sweep(path)
    assert (sweep.experiment, sweep.jobs) == ("exp", 3)
    assert swf.load_sweep(path, jobs=1, tracking_uri="sqlite:///x.db").jobs == 1


# ----------------------------------------------------------------------------- validation


def test_a_bad_key_path_is_an_error_naming_the_key_where_the_sweep_file_sets_it(tmp_path):
    path = write_sweep(
        tmp_path,
        """
        base: base.yaml
        set: {inner_loop.epoch: 1}
        grid: {topology.knd: [ring], seed: [0, 1]}
        points: [{schedular.kind: isolated}]
    """,
    )
    problems = problems_of(path)
    assert set(problems) == {"set.inner_loop.epoch", "grid.topology.knd", "points[0].schedular.kind"}
    assert "unknown key 'topology.knd'" in problems["grid.topology.knd"]
    assert "known here" in problems["grid.topology.knd"]


def test_bad_keys_and_bad_values_are_reported_together(tmp_path):
    path = write_sweep(
        tmp_path,
        """
        base: base.yaml
        grid: {topology.knd: [ring]}
        points: [{scheduler.kind: synchronous}, {scheduler.kind: budgetd}]
    """,
    )
    problems = problems_of(path)
    assert set(problems) == {"grid.topology.knd", "points[1].scheduler.kind"}
    assert "'budgetd' is not one of" in problems["points[1].scheduler.kind"]


def test_a_bad_value_is_reported_once_at_its_grid_key_before_anything_runs(tmp_path):
    path = write_sweep(
        tmp_path,
        """
        base: base.yaml
        grid: {topology.kind: [ring, rng], seed: [0, 1, 2], inner_loop.epochs: [1, -1]}
    """,
    )
    problems = problems_of(path)
    assert set(problems) == {"grid.topology.kind", "grid.inner_loop.epochs"}
    assert "'rng' is not one of" in problems["grid.topology.kind"]


def test_a_problem_from_the_combination_names_the_base_file_and_the_point(tmp_path):
    base = {**BASE, "topology": {"kind": "small-world", "params": {"k": 2}}}
    path = write_sweep(tmp_path, "base: base.yaml\ngrid: {agents: [2, 3]}\n", base)
    problems = problems_of(path)
    assert any("agents=2" in m for m in problems.values()), problems


def test_the_sweep_file_itself_forbids_unknown_keys_and_empty_value_lists(tmp_path):
    problems = problems_of(write_sweep(tmp_path, "base: base.yaml\ngird: {seed: [0]}\njobs: 0\n"))
    assert problems["gird"] == "unknown key"
    assert "jobs" in problems
    problems = problems_of(write_sweep(tmp_path, "base: base.yaml\ngrid: {seed: []}\n"))
    assert "seed: needs at least one value" in problems["grid"]
    problems = problems_of(write_sweep(tmp_path, "base: base.yaml\ngrid: {seed: 3}\n"))
    assert "grid.seed" in problems


def test_conflicting_reserved_and_duplicate_points_are_errors(tmp_path):
    problems = problems_of(
        write_sweep(
            tmp_path,
            """
        base: base.yaml
        set: {seed: 1, tracking.experiment: x}
        grid: {seed: [0, 1], topology.kind: [ring]}
        points: [{topology.kind: star}]
    """,
        )
    )
    assert problems["grid.seed"] == "is also under `set:`"
    assert problems["points[0].topology.kind"] == "is also in `grid:`"
    assert "set by the sweep" in problems["set.tracking.experiment"]
    problems = problems_of(write_sweep(tmp_path, "base: base.yaml\npoints: [{seed: 1}, {seed: 1}]\n"))
    assert "appears twice" in problems["points[1].seed"]


def test_a_missing_base_names_the_base_key(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("base: nowhere.yaml\n")
    assert "no such scenario file" in problems_of(path)["base"]


def test_cli_sweep_with_a_bad_key_exits_2_naming_the_key(tmp_path, capsys):
    path = write_sweep(tmp_path, "base: base.yaml\ngrid: {topology.knd: [ring]}\n")
    assert main(["sweep", str(path), "--dry-run"]) == 2
    assert "grid.topology.knd: unknown key 'topology.knd'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- command line of a point


@pytest.mark.parametrize("value", ["ring", "1e-3", "yes", 3, 0.5, 1e-05, True, None, [0, 1], {"k": 2}, "a: b"])
def test_override_values_survive_the_command_line(value):
    assert parse_value(swf.yaml_value(value)) == value


def test_a_points_command_line_runs_its_scenario_with_its_tags(tmp_path):
    path = write_sweep(
        tmp_path, "name: s\nbase: base.yaml\nset: {inner_loop.lr: 1.0e-5}\ngrid: {topology.kind: [star], seed: [7]}\n"
    )
    sweep = swf.load_sweep(path, tracking_uri="sqlite:////tmp/x.db")
    point = sweep.points[0]
    cmd = sw.point_command(sweep, point)
    assert cmd[:4] == [sys.executable, "-m", "multiseal", "run"]
    args = _parser().parse_args(cmd[3:])
    scenario = load_scenario(args.scenario, parse_assignments(args.overrides))
    assert (scenario.topology.kind, scenario.seed, scenario.inner_loop.lr) == ("star", 7, 1e-5)
    assert scenario.tracking.experiment == "s" and scenario.tracking.uri == "sqlite:////tmp/x.db"
    assert scenario.tracking.run_name == "s: topology.kind=star seed=7"
    assert _parse_tags(args.tags) == point.tags("s")


def test_the_reference_point_is_tagged_on_every_run(tmp_path):
    path = write_sweep(
        tmp_path,
        "name: s\nbase: base.yaml\nreference: {topology.kind: none}\n"
        "grid: {topology.kind: [none, star], seed: [0, 1]}\n",
    )
    sweep = swf.load_sweep(path)
    assert sweep.reference == {"topology.kind": "none"}
    assert sweep.reference_tags() == {"multiseal.reference.topology.kind": "none"}
    for point in sweep.points:
        args = _parser().parse_args(sw.point_command(sweep, point)[3:])
        assert _parse_tags(args.tags) == {**point.tags("s"), "multiseal.reference.topology.kind": "none"}
    assert "reference (paired comparisons in the report): topology.kind=none" in sw.describe(sweep, done=set())
    no_ref = swf.load_sweep(
        write_sweep(tmp_path, "name: s\nbase: base.yaml\ngrid: {topology.kind: [none, star], seed: [0, 1]}\n")
    )
    assert [p.id for p in no_ref.points] == [p.id for p in sweep.points]  # a reference does not change point ids
    assert no_ref.reference_tags() == {}


def test_a_bad_reference_is_an_error_naming_it(tmp_path):
    problems = problems_of(
        write_sweep(
            tmp_path,
            """
        base: base.yaml
        reference: {topology.kind: nne, scheduler.kind: isolated, seed: 0}
        grid: {topology.kind: [none, ring], seed: [0, 1]}
    """,
        )
    )
    assert problems["reference.topology.kind"] == "'nne' is not one of the values the sweep gives it: none, ring"
    assert "is not a key the grid or points vary (they vary: topology.kind)" in problems["reference.scheduler.kind"]
    assert "paired by seed" in problems["reference.seed"]
    problems = problems_of(
        write_sweep(
            tmp_path,
            """
        base: base.yaml
        reference: {topology.kind: none, scheduler.kind: isolated}
        points: [{topology.kind: none, scheduler.kind: synchronous}, {topology.kind: ring, scheduler.kind: isolated}]
    """,
        )
    )
    assert problems == {"reference": "no point has topology.kind=none scheduler.kind=isolated"}


def test_run_tags_are_checked_and_reach_the_mlflow_run(tmp_path):
    from multiseal.config.load import validate_scenario
    from multiseal.run.tracker import open_tracker

    with pytest.raises(ScenarioError, match="expected KEY=VALUE"):
        _parse_tags(["novalue"])
    with pytest.raises(ScenarioError, match="letters, digits"):
        _parse_tags(["bad!key=1"])
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri).create_experiment("tagged", artifact_location=(tmp_path / "art").as_uri())
    scenario = validate_scenario({**BASE, "tracking": {"uri": uri, "experiment": "tagged"}})
    with open_tracker(scenario, None, _parse_tags(["team=a=b", "multiseal.point=abc"])) as t:
        run_id = t.run_id
    tags = MlflowClient(uri).get_run(run_id).data.tags
    assert tags["team"] == "a=b" and tags["multiseal.point"] == "abc" and tags["multiseal.kind"] == "simulation"


# ----------------------------------------------------------------------------- resuming

FAKE_RUN = """
import sys
from multiseal.cli import _parser, _parse_tags
from multiseal.config.overrides import parse_assignments
from multiseal.run.tracker import Tracker
args = _parser().parse_args(sys.argv[1:])
sets = parse_assignments(args.overrides)
Tracker(sets["tracking.uri"], sets["tracking.experiment"], sets["tracking.run_name"], tags=_parse_tags(args.tags)).end()
print("fake run done")
"""


@pytest.fixture
def store(tmp_path) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri).create_experiment("resume", artifact_location=(tmp_path / "art").as_uri())
    return uri


def test_finished_points_are_skipped_and_the_rest_run(tmp_path, store, monkeypatch, capsys):
    path = write_sweep(
        tmp_path, "name: r\nexperiment: resume\nbase: base.yaml\ngrid: {topology.kind: [ring, star, complete]}\n"
    )
    sweep = swf.load_sweep(path, tracking_uri=store, jobs=2)
    ring, star, complete = sweep.points
    Tracker(store, "resume", "done before", tags=ring.tags("r")).end()  # finished earlier
    Tracker(store, "resume", "crashed before", tags=star.tags("r")).end("FAILED")  # must run again
    assert sw.finished_points(sweep) == {ring.id}
    assert "finished  topology.kind=ring" in sw.describe(sweep)

    started: list[str] = []
    real = sw.point_command

    def fake(sweep_, point, progress=False):
        started.append(point.id)
        return [sys.executable, "-c", FAKE_RUN, *real(sweep_, point, progress)[3:]]

    monkeypatch.setattr(sw, "point_command", fake)
    result = sw.run_sweep(sweep)
    assert sorted(started) == sorted([star.id, complete.id])
    assert {r.point.id: r.status for r in result.results} == {
        ring.id: "skipped",
        star.id: "finished",
        complete.id: "finished",
    }
    assert "fake run done" in capsys.readouterr().out
    assert sw.finished_points(sweep) == {ring.id, star.id, complete.id}

    started.clear()
    again = sw.run_sweep(sweep)
    assert started == [] and {r.status for r in again.results} == {"skipped"}


def test_a_failed_point_is_reported_and_does_not_stop_the_others(tmp_path, store, monkeypatch, capsys):
    path = write_sweep(tmp_path, "name: f\nexperiment: resume\nbase: base.yaml\ngrid: {seed: [0, 1]}\n")
    sweep = swf.load_sweep(path, tracking_uri=store)
    bad = sweep.points[0].id
    monkeypatch.setattr(
        sw,
        "point_command",
        lambda s, p, progress=False: [
            sys.executable,
            "-c",
            f"import sys; print('boom'); sys.exit({3 if p.id == bad else 0})",
        ],
    )
    result = sw.run_sweep(sweep)
    assert [r.point.id for r in result.failed] == [bad]
    out = capsys.readouterr().out
    assert f"{bad} FAILED (exit 3)" in out and "1 failed" in out


def test_dry_run_lists_every_point_and_starts_nothing(tmp_path, capsys):
    path = write_sweep(tmp_path, "name: d\nbase: base.yaml\ngrid: {topology.kind: [ring, star], seed: [0, 1, 2]}\n")
    db = tmp_path / "none.db"
    assert main(["sweep", str(path), "--dry-run", "--tracking-uri", f"sqlite:///{db}"]) == 0
    out = capsys.readouterr().out
    assert out.count("to run") == 6 and "topology.kind=star seed=2" in out
    assert not db.exists()  # looking did not create a store


# ----------------------------------------------------------------------------- the shipped sweep


def test_the_shipped_topology_sweep_is_valid_and_big_enough():
    sweep = swf.load_sweep(ROOT / "scenarios" / "sweeps" / "topologies.yaml", tracking_uri="sqlite:////tmp/unused.db")
    topologies = {p.overrides["topology.kind"] for p in sweep.points}
    seeds = {p.overrides["seed"] for p in sweep.points}
    assert len(topologies) >= 4 and len(seeds) >= 3
    assert len(sweep.points) == len(topologies) * len(seeds)


def test_a_failed_point_is_retried_as_the_sweep_file_asks(tmp_path, store, monkeypatch, capsys):
    path = write_sweep(tmp_path, "name: f\nexperiment: resume\nbase: base.yaml\ngrid: {seed: [0, 1]}\nretries: 2\n")
    sweep = swf.load_sweep(path, tracking_uri=store)
    bad = sweep.points[0].id
    monkeypatch.setattr(
        sw,
        "point_command",
        lambda s, p, progress=False: [sys.executable, "-c", f"import sys; sys.exit({3 if p.id == bad else 0})"],
    )
    result = sw.run_sweep(sweep)
    assert [r.point.id for r in result.failed] == [bad] and len(result.results) == 2
    out = capsys.readouterr().out
    assert out.count(f"{bad} FAILED (exit 3)") == 3 and f"{bad}: retry 2 of 2" in out
