"""Checkpoints that prove themselves and can never run code (issue 24).

The state format (:mod:`multiseal.run.statefile`) round-trips what a simulation holds and refuses
anything it was not told to allow; a run directory's checkpoints carry a manifest (sha256 per file,
round, seed, scenario hash); ``--resume`` passes over a damaged checkpoint, says so, and resumes from
the newest intact one with the uninterrupted run's result; a torn journal line is cut off; a pickled
checkpoint from an older multiseal is refused without being loaded. Real CLI processes on tiny-random.
"""

from __future__ import annotations

import collections
import json
import math
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from multiseal.run.rundir import CheckpointError, RunDir, find_runs
from multiseal.run.statefile import StateError, allowed_types, decode, dump_files, encode, load_files
from multiseal.sim.checkpoint import STATE_CLASSES
from multiseal.types import Fact, InboxItem, Note

# --- the state format --------------------------------------------------------------------------------


def _note(i: int) -> Note:
    return Note(
        note_id=f"n{i}",
        author=i % 3,
        doc_id=f"d{i}",
        round=1,
        style="rewrite",
        text=f"note {i}",
        sequences=(f"seq {i}",),
        tokens=3,
    )


def test_the_state_format_round_trips_what_a_simulation_holds():
    shared = [1, 2]
    note = _note(1)
    arrived = collections.defaultdict(list, {3: [InboxItem(note, 0, 1, 0.5, 1)]})
    state = {
        "ints": {1: "a", (2, "x"): {3, 4}},
        "frozen": frozenset({"p"}),
        "note_key": {note: [note, note]},
        "floats": [0.1, math.nan, math.inf, -math.inf, 2**80, True, None],
        "np": [np.float64(0.25), np.int64(7), np.arange(6, dtype=np.uint32).reshape(2, 3), np.zeros(0)],
        "torch": torch.arange(5, dtype=torch.uint8),
        "bf16": torch.ones(2, dtype=torch.bfloat16),
        "same": shared,
        "again": shared,
        "arrived": arrived,
        "fact": Fact("f1", "d1", "e", "born", "1900"),
        "$odd": "a key starting with $",
        "bytes": b"\x00\xff",
    }
    back = load_files(dump_files(state, STATE_CLASSES), STATE_CLASSES)
    assert back["ints"] == state["ints"] and back["frozen"] == state["frozen"]
    assert back["note_key"] == state["note_key"] and back["fact"] == state["fact"]
    assert back["floats"][0] == 0.1 and math.isnan(back["floats"][1]) and back["floats"][2:] == state["floats"][2:]
    assert type(back["np"][0]) is np.float64 and type(back["np"][1]) is np.int64
    np.testing.assert_array_equal(back["np"][2], state["np"][2])
    assert back["np"][2].dtype == np.uint32 and back["np"][3].shape == (0,)
    assert torch.equal(back["torch"], state["torch"]) and back["bf16"].dtype == torch.bfloat16
    assert back["same"] is back["again"], "a list held in two places is still one list"
    assert isinstance(back["arrived"], collections.defaultdict) and back["arrived"][3][0].note == note
    assert back["$odd"] == state["$odd"] and back["bytes"] == b"\x00\xff"


def test_the_state_format_refuses_classes_it_was_not_told_to_allow():
    class Gadget:
        pass

    with pytest.raises(StateError, match=r"state\.x\[0\].*Gadget cannot be stored"):
        encode({"x": [Gadget()]}, STATE_CLASSES)
    with pytest.raises(StateError, match="Python objects"):
        encode(np.array([object()]), STATE_CLASSES)
    # a crafted tree naming a callable is refused by name: nothing is imported or called
    for name in ("os:system", "builtins:eval", "subprocess:Popen", "multiseal.run.rundir:RunDir"):
        with pytest.raises(StateError, match="not allowed"):
            decode({"$obj": name, "state": {"$dict": {}}}, STATE_CLASSES, {}, {})
    with pytest.raises(StateError, match="defaultdict factory"):
        decode({"$defaultdict": "os.system", "items": []}, STATE_CLASSES, {}, {})
    with pytest.raises(StateError):
        decode({"$np": "O", "value": 1}, STATE_CLASSES, {}, {})


def test_an_npz_with_a_pickled_array_is_not_loaded(tmp_path):
    files = dump_files({"a": np.arange(3)}, STATE_CLASSES)
    import io

    buf = io.BytesIO()
    np.savez(buf, a0=np.array([{"x": 1}], dtype=object))  # numpy pickles object arrays
    with pytest.raises(StateError, match="cannot be read"):
        load_files({**files, "state.npz": buf.getvalue()}, STATE_CLASSES)


def test_allowed_types_are_only_named_classes():
    table = allowed_types([Note])
    assert list(table) == ["multiseal.types:Note"]
    with pytest.raises(StateError):
        encode(Fact("f", "d", "e", "r", "v"), table)


class _PluginCounter:  # a plugin scheduler's own state object (module level: it has an import path)
    def __init__(self, seen: int = 0):
        self.seen, self.history = seen, [seen]


def test_a_plugin_allows_its_own_class_and_it_comes_back_without_its_constructor(monkeypatch):
    from multiseal.sim import checkpoint

    monkeypatch.setattr(checkpoint, "STATE_CLASSES", dict(STATE_CLASSES))
    state = {"scheduler_state": {"counter": _PluginCounter(4)}}
    with pytest.raises(StateError, match=r"state\.scheduler_state\.counter.*_PluginCounter cannot be stored"):
        dump_files(state, checkpoint.STATE_CLASSES)
    assert checkpoint.allow_in_checkpoints(_PluginCounter) is _PluginCounter  # usable as a decorator
    back = load_files(dump_files(state, checkpoint.STATE_CLASSES), checkpoint.STATE_CLASSES)
    counter = back["scheduler_state"]["counter"]
    assert type(counter) is _PluginCounter and (counter.seen, counter.history) == (4, [4])
    assert "test_checkpoint_integrity:_PluginCounter" not in STATE_CLASSES  # allowed in that table only


# --- run directories: a 3-round run, then damage ------------------------------------------------------

SCENARIO = """\
name: proof
seed: 5
rounds: 3
model: {base: tiny-random, lora: {rank: 4, alpha: 8}}
world: {documents: 6, questions_per_doc: [2, 2]}
agents: 2
topology: {kind: ring}
scheduler: {kind: budgeted, params: {budget: 2}}
trust: {learn: true}
self_edit: {style: implications, max_new_tokens: 8}
inner_loop: {epochs: 1, batch_size: 2}
evaluation: {max_new_tokens: 4, retention_probe: 2, drift_passages: 1, drift_length: 16}
replay: {fraction: 0.5}
tracking: {experiment: proof}
"""
VOLATILE = ("seconds.", "checkpoint.")


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "MULTISEAL_RUNS": str(tmp / "runs"), "MULTISEAL_THREADS": "1"}


def _cli(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "multiseal", *args], cwd=tmp, env=_env(tmp), capture_output=True, text=True, timeout=600
    )


def _results(run: RunDir) -> list[tuple[int, dict]]:
    """Every journal line's step and metrics, timings left out: what must equal the uninterrupted run's."""
    return [(e["step"], {k: v for k, v in e["metrics"].items() if not k.startswith(VOLATILE)}) for e in run.journal()]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 3-round run directory and its journal's results."""
    tmp = tmp_path_factory.mktemp("whole")
    (tmp / "s.yaml").write_text(SCENARIO)
    done = _cli(tmp, "run", "s.yaml", "--no-progress", "--tracking-uri", f"sqlite:///{tmp}/m.db")
    assert done.returncode == 0, done.stderr
    (run,) = find_runs(tmp / "runs")
    return run, _results(run)


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _interrupted_copy(finished, tmp: Path, after: int) -> RunDir:
    """A copy of the finished run as if its process had died after round ``after`` was checkpointed."""
    src, _ = finished
    run = RunDir(shutil.copytree(src.path, tmp / "runs" / "proof" / src.path.name))
    (run.path / "mirror.json").unlink(missing_ok=True)  # mirrored afresh to this case's store
    lines = [e for e in run.journal() if e["step"] <= after]
    (run.path / "journal.jsonl").write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in lines))
    for folder in run.checkpoints():
        if int(folder.name.split("-")[1]) > after:
            shutil.rmtree(folder)
    meta = json.loads((run.path / "run.json").read_text())
    meta.update(status="RUNNING", pid=_dead_pid())
    meta.pop("finished", None)
    (run.path / "run.json").write_text(json.dumps(meta))
    return run


def _resume(tmp: Path, run: RunDir) -> subprocess.CompletedProcess:
    return _cli(tmp, "run", "--resume", str(run.path), "--no-progress", "--tracking-uri", f"sqlite:///{tmp}/case.db")


def _flip_a_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _zero_adapters(path: Path) -> None:
    from safetensors.torch import load_file, save_file

    save_file({k: torch.zeros_like(v) for k, v in load_file(str(path)).items()}, str(path))


def _round_1_in_round_2(run: RunDir) -> None:
    two = run.path / "checkpoints" / "round-0002"
    shutil.rmtree(two)
    shutil.copytree(run.path / "checkpoints" / "round-0001", two)


def _only_state_from_round_1(run: RunDir) -> None:
    """Round 1's state.json in round 2's folder, with a manifest rewritten to match (a careless copy)."""
    one, two = run.path / "checkpoints" / "round-0001", run.path / "checkpoints" / "round-0002"
    shutil.copy(one / "state.json", two / "state.json")
    import hashlib

    manifest = json.loads((two / "manifest.json").read_text())
    data = (two / "state.json").read_bytes()
    manifest["files"]["state.json"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (two / "manifest.json").write_text(json.dumps(manifest))


DAMAGE = {
    "bit-flip-in-adapters": (
        lambda run: _flip_a_bit(run.path / "checkpoints/round-0002/adapters.safetensors"),
        "round-0002/adapters.safetensors: sha256 mismatch",
        1,
    ),
    "zeroed-adapters": (
        lambda run: _zero_adapters(run.path / "checkpoints/round-0002/adapters.safetensors"),
        "round-0002/adapters.safetensors: sha256 mismatch",
        1,
    ),
    "round-1-folder-as-round-2": (_round_1_in_round_2, "written for round 1, found in the folder of round 2", 1),
    "round-1-state-with-its-hash": (_only_state_from_round_1, "the state of round 1, not of round 2", 1),
    "truncated-state": (
        lambda run: (run.path / "checkpoints/round-0002/state.json").write_text('{"format": "mul'),
        "round-0002/state.json: sha256 mismatch",
        1,
    ),
    "missing-state": (
        lambda run: (run.path / "checkpoints/round-0002/state.json").unlink(),
        "round-0002/state.json: unreadable",
        1,
    ),
    "missing-manifest": (
        lambda run: (run.path / "checkpoints/round-0002/manifest.json").unlink(),
        "round-0002/manifest.json: unreadable",
        1,
    ),
    "every-checkpoint": (
        lambda run: [_flip_a_bit(f / "state.safetensors") for f in run.checkpoints()],
        "round-0001/state.safetensors: sha256 mismatch",
        0,
    ),
    "another-scenario": (
        lambda run: (run.path / "scenario.json").write_text(
            (run.path / "scenario.json").read_text().replace('"seed": 5', '"seed": 6')
        ),
        "seed 5 belongs to another run",
        0,
    ),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_checkpoint_is_passed_over_and_named_and_the_result_is_the_uninterrupted_one(
    finished, tmp_path, damage
):
    spoil, named, resumed_from = DAMAGE[damage]
    run = _interrupted_copy(finished, tmp_path, after=2)
    spoil(run)
    done = _resume(tmp_path, run)
    assert done.returncode == 0, done.stderr
    assert named in done.stderr, done.stderr
    where = f"round {resumed_from}, the newest intact checkpoint" if resumed_from else "its start: no intact checkpoint"
    assert f"resuming {run.path} from {where}" in done.stderr
    assert run.meta["status"] == "FINISHED" and run.last_complete_round() == 3
    if damage != "another-scenario":  # (that one resumed another seed: its own result, not the original's)
        assert _results(run) == finished[1], "the resumed run's metrics differ from the uninterrupted run's"


def test_an_intact_checkpoint_resumes_silently(finished, tmp_path):
    run = _interrupted_copy(finished, tmp_path, after=2)
    done = _resume(tmp_path, run)
    assert done.returncode == 0, done.stderr
    assert "passed over" not in done.stderr and "intact" not in done.stderr
    assert _results(run) == finished[1]
    manifest = json.loads((run.path / "checkpoints/round-0003/manifest.json").read_text())
    assert manifest["round"] == 3 and manifest["seed"] == 5 and len(manifest["scenario_sha256"]) == 64
    assert set(manifest["files"]) == {"state.json", "state.npz", "state.safetensors", "adapters.safetensors"}
    assert not list(run.path.rglob("*.pkl")), "nothing in a run directory is a pickle"
    run.verify_checkpoint(3)


def test_a_torn_journal_line_is_cut_off_before_the_next_round_is_appended(finished, tmp_path):
    run = _interrupted_copy(finished, tmp_path, after=2)
    with open(run.path / "journal.jsonl", "a") as f:
        f.write('{"step": 3, "metr')  # the process died mid-write
    assert [e["step"] for e in run.journal()] == [0, 1, 2]
    done = _resume(tmp_path, run)
    assert done.returncode == 0, done.stderr
    text = (run.path / "journal.jsonl").read_text()
    assert text.endswith("\n") and '"metr{' not in text and text.count("\n") == 4
    assert _results(run) == finished[1]
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/case.db")
    (exp,) = [e for e in client.search_experiments() if e.name == "proof"]
    (got,) = client.search_runs([exp.experiment_id])
    history = client.get_metric_history(got.info.run_id, "pop.acc_all.mean")
    assert sorted(m.step for m in history) == [1, 2, 3], "MLflow has every round"


def test_append_cuts_only_the_torn_tail(tmp_path):
    run = RunDir(tmp_path)
    (tmp_path / "journal.jsonl").write_text('{"step": 0}\n{"step": 1}\n{"st')
    run.append({"step": 2})
    assert (tmp_path / "journal.jsonl").read_text() == '{"step": 0}\n{"step": 1}\n{"step": 2}\n'
    (tmp_path / "journal.jsonl").write_text('{"step": 0}')  # complete JSON, but no newline: not written through
    assert run.journal() == []
    run.append({"step": 0})
    assert [e["step"] for e in run.journal()] == [0]


class _Payload:
    """What an attacker pickles: loading it runs a shell command that leaves a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _plant_pickle(run: RunDir, marker: Path) -> None:
    """The run's newest checkpoint as an older multiseal wrote it (state.pkl, no manifest), crafted."""
    folder = run.checkpoints()[-1]
    for f in folder.iterdir():
        f.unlink()
    (folder / "state.pkl").write_bytes(pickle.dumps({"round": 2, "x": _Payload(marker)}))
    from safetensors.torch import save_file

    save_file({"0/w": torch.zeros(1)}, str(folder / "adapters.safetensors"))


def test_a_pickled_checkpoint_is_refused_and_never_loaded(finished, tmp_path):
    run = _interrupted_copy(finished, tmp_path, after=2)
    marker = tmp_path / "PWNED"
    _plant_pickle(run, marker)
    for args in (["run", "--resume", str(run.path), "--no-progress"], ["runs", "--resume"]):
        done = _cli(tmp_path, *args)
        assert "state.pkl: a checkpoint pickled by an older multiseal" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
        assert not marker.exists(), f"{args}: the pickle ran"
    assert _cli(tmp_path, "run", "--resume", str(run.path), "--no-progress").returncode == 2
    assert run.meta["status"] == "RUNNING", "a refused resume changes nothing"
    with pytest.raises(CheckpointError):
        run.verify_checkpoint(2)
    assert not marker.exists()


def test_a_sweep_adopts_only_a_run_of_its_own_scenario(tmp_path):
    """A folder tagged with the sweep's name and point id, but of another scenario (or with a pickled
    checkpoint), is not resumed by a re-run of the sweep: the point starts over."""
    from multiseal.run.sweep import interrupted_run
    from multiseal.run.sweep_file import load_sweep

    (tmp_path / "s.yaml").write_text(SCENARIO.replace("rounds: 3", "rounds: 2"))
    (tmp_path / "sw.yaml").write_text("name: adopt\nbase: s.yaml\ngrid: {seed: [5]}\n")
    sweep = load_sweep(tmp_path / "sw.yaml", tracking_uri=f"sqlite:///{tmp_path}/m.db")
    (point,) = sweep.points
    done = _cli(tmp_path, "sweep", "sw.yaml", "--tracking-uri", f"sqlite:///{tmp_path}/m.db")
    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = find_runs(tmp_path / "runs")
    meta = json.loads((run.path / "run.json").read_text())
    meta.update(status="RUNNING", pid=_dead_pid())
    (run.path / "run.json").write_text(json.dumps(meta))
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        os.environ["MULTISEAL_RUNS"] = str(tmp_path / "runs")
        assert interrupted_run(sweep, point) is not None and interrupted_run(sweep, point).path == run.path
        scenario = json.loads((run.path / "scenario.json").read_text())
        (run.path / "scenario.json").write_text(json.dumps({**scenario, "rounds": 9}))
        assert interrupted_run(sweep, point) is None, "another scenario under the same tags"
        (run.path / "scenario.json").write_text(json.dumps(scenario))
        _plant_pickle(run, tmp_path / "PWNED")
        assert interrupted_run(sweep, point) is None, "a pickled checkpoint"
        assert not (tmp_path / "PWNED").exists()
    finally:
        os.environ.pop("MULTISEAL_RUNS", None)
        os.chdir(old)
