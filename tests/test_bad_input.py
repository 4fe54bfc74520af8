"""A corpus of bad inputs, each run through the command line as a user would.

Every case must exit with status 2, print a message naming the file and the key path (or the line, for
a file that is not YAML at all) and no traceback, and ``run`` must fail before any model loads: in
seconds, with no model-loading line, and without creating an MLflow store or a run directory.
``validate`` and ``run`` of a case start together (two processes; the suite runs on two cores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 90  # a case that hangs (a huge size that slipped through) fails here instead of blocking
RUN_LIMIT_S = 30  # `run` must fail before loading a model: well under the time a model load takes
MODEL_LINES = ("loading smollm2", "loading tiny", "converting", "downloading")


@dataclass(frozen=True)
class Case:
    id: str
    text: str | bytes
    expect: tuple[str, ...]  # substrings of stderr: the key path and what is wrong
    set: tuple[str, ...] = ()  # --set arguments (for both commands)
    names_file: bool = True  # the message names the scenario file (not for a bad --set value)
    run_uri: str | None = "sqlite"  # --tracking-uri of `run`: "sqlite" = a store in the case's folder
    validate_set: tuple[str, ...] = ()  # what `validate` is given instead of run's --tracking-uri
    files: tuple[tuple[str, str | bytes], ...] = ()  # more files in the case's folder ({in} in text: that folder)
    scenario: str | None = None  # the scenario path given, instead of the case's own file (/dev/zero)


def _bomb(levels: int = 7, width: int = 9, indent: str = "") -> str:
    """A YAML alias bomb ("billion laughs"): a few hundred bytes, ``width ** levels`` values once expanded
    (with 9 and 7: a5 is the first anchor over 200,000 values, 597,871)."""
    lines = [f"{indent}a0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"{indent}a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def _inline_bomb(levels: int = 7, width: int = 9) -> str:
    parts = [f"&a0 [{','.join(['1'] * width)}]"]
    parts += [f"&a{i} [{','.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    return f"[{', '.join(parts)}]"


def _no_gpu() -> bool:
    import torch

    return not torch.cuda.is_available()


TINY = "model: {base: tiny-random}\n"
CASES = [
    Case(
        "lora-target",
        "model: {base: tiny-random, lora: {target_modules: [q_proj, nope]}}\n",
        ("model.lora.target_modules[1]: 'nope' is not a linear module of tiny-random", "q_proj, up_proj, v_proj"),
    ),
    Case("tracking-uri", TINY + "tracking: {uri: 'bogus://x'}\n", ("tracking.uri:", "'bogus'"), run_uri=None),
    Case(
        "tracking-uri-flag",
        TINY,
        ("tracking.uri:", "'bogus'"),
        run_uri="bogus://x",
        validate_set=("--set", "tracking.uri=bogus://x"),
    ),
    Case("seed-2**70", TINY + "seed: 1180591620717411303424\n", ("seed:", "less than or equal to 2147483647")),
    Case("lr-inf", TINY + "inner_loop: {lr: .inf}\n", ("inner_loop.lr:", "finite")),
    Case(
        "model-missing",
        "model: {base: no/such-model}\n",
        ("model.base: 'no/such-model' is not an alias", "local Hugging Face cache", "model.allow_download: true"),
    ),
    Case("max-new-tokens-1e9", TINY + "self_edit: {max_new_tokens: 1000000000}\n", ("self_edit.max_new_tokens:",)),
    Case("epochs-1e9", TINY + "inner_loop: {epochs: 1000000000}\n", ("inner_loop.epochs:",)),
    Case("documents-1e9", TINY + "world: {documents: 1000000000}\n", ("world.documents:",)),
    Case(
        "duplicate-section",
        "model: {base: tiny-random}\nmodel: {base: smollm2-135m}\n",
        ("key 'model' appears twice", "lines 1 and 2"),
    ),
    Case(
        "duplicate-key",
        "model:\n  base: tiny-random\n  base: smollm2-135m\n",
        ("key 'base' appears twice", "lines 2 and 3"),
    ),
    Case("rounds-true", TINY + "rounds: true\n", ("rounds:", "valid integer")),
    Case("not-utf8", b"name: caf\xe9\n", ("not UTF-8", "line 1")),
    Case("binary", bytes(range(256)) * 4, ("binary file",)),
    Case("bad-set", TINY, ("rounds:", "'[1,' is not valid YAML"), set=("--set", "rounds=[1,"), names_file=False),
    Case("malformed-yaml", "model: [1, 2\nrounds: 3\n", ("not valid YAML (line 2",)),
    Case("unknown-top", "modle: {base: tiny-random}\n", ("modle: unknown key",)),
    Case("unknown-model", "model: {bse: tiny-random}\n", ("model.bse: unknown key",)),
    Case("unknown-lora", TINY.replace("}", ", lora: {rnk: 8}}"), ("model.lora.rnk: unknown key",)),
    Case(
        "topology-k",
        TINY + "agents: 4\ntopology: {kind: small-world, params: {k: 5}}\n",
        ("topology.params.k: must be an even int >= 2, got 5",),
    ),
    Case(
        "squad-file",
        TINY + "kind: knowledge\nworld: {kind: squad, path: bad.json}\n",
        ("world.path:", "bad.json: item 0: key 'context': missing key"),
    ),
    Case(
        "python-tag", 'name: !!python/object/apply:os.system ["echo hi"]\n', ("not valid YAML", "python/object/apply")
    ),
    # within the schema's bounds, but a run that would not end: the estimate stops it
    Case(
        "over-time",
        TINY + "rounds: 100000\nworld: {documents: 100000}\n",
        ("limits.max_hours: the estimated run time is", "> 72 h; lower rounds (100000)"),
    ),
    Case(
        "over-time-epochs",
        "rounds: 8\nagents: 8\nworld: {documents: 64}\ninner_loop: {epochs: 10000}\n",
        ("limits.max_hours:", "lower inner_loop.epochs (10000) or raise limits.max_hours"),
    ),
    # k notes per document written greedily would be k copies of one note
    Case(
        "greedy-candidates",
        TINY + "self_edit: {candidates: 3, temperature: 0}\n",
        ("self_edit:", "candidates: 3 notes written greedily (temperature 0) are identical"),
    ),
    Case(
        "greedy-restem",
        TINY + "kind: restem\nself_edit: {temperature: 0}\n",
        ("self_edit.temperature:", "ReST-EM samples several notes per document"),
    ),
    Case(
        "writer-restem",
        TINY + "kind: restem\nself_edit: {writer: base}\n",
        ("self_edit.writer:", "ReST-EM trains each agent's writer"),
    ),
    Case(
        "over-memory",
        TINY + "limits: {max_memory_gb: 0.01}\n",
        ("limits.max_memory_gb: the estimated memory is", "lower"),
    ),
    # files that never end, or that are not what they claim: refused before a byte is read, or within a limit
    Case("scenario-dev-zero", "", ("/dev/zero", "a device, not a regular file"), scenario="/dev/zero"),
    Case(
        "squad-dev-zero",
        TINY + "kind: knowledge\nworld: {kind: squad, path: /dev/zero}\n",
        ("world.path:", "/dev/zero: a device, not a regular file"),
    ),
    Case(
        "adjacency-dev-zero",
        TINY + "agents: 3\ntopology: {kind: adjacency, params: {file: /dev/zero}}\n",
        ("topology.params.file:", "/dev/zero: a device, not a regular file"),
    ),
    Case(
        "adjacency-binary",
        TINY + "agents: 3\ntopology: {kind: adjacency, params: {file: '{in}/adj.bin'}}\n",
        ("topology.params.file:", "adj.bin: a binary file"),
        files=(("adj.bin", bytes(range(256)) * 8),),
    ),
    Case(
        "squad-nested-200000",
        TINY + "kind: knowledge\nworld: {kind: squad, path: '{in}/deep.json'}\n",
        ("world.path:", "deep.json: nested too deeply"),
        files=(("deep.json", "[" * 200_000 + "]" * 200_000),),
    ),
    Case(
        "alias-bomb-params",
        TINY + "agents: 4\ntopology:\n  kind: ring\n  params:\n" + _bomb(indent="    "),
        ("topology.params.a5:", "more than 200,000 values once its aliases", "alias bomb"),
    ),
    Case(
        "alias-bomb-set",
        TINY,
        ("rounds[5]:", "more than 200,000 values once its aliases"),
        set=("--set", f"rounds={_inline_bomb()}"),
        names_file=False,
    ),
    # settings that validate once failed only after the model loaded
    *(
        [Case("device-cuda", TINY.replace("}", ", device: cuda}"), ("model.device: 'cuda': torch sees no CUDA GPU",))]
        if _no_gpu()
        else []
    ),
    Case("device-mps", TINY.replace("}", ", device: mps}"), ("model.device: 'mps': torch sees no Apple GPU",)),
    Case(
        "run-dir-a-file",
        TINY + "tracking: {run_dir: '{in}/afile'}\n",
        ("tracking.run_dir:", "afile: a file, not a folder"),
        files=(("afile", "not a folder\n"),),
    ),
    Case(
        "run-dir-uncreatable",
        TINY + "tracking: {run_dir: /proc/multiseal-runs}\n",
        ("tracking.run_dir: /proc/multiseal-runs: cannot create the folder",),
    ),
    Case(
        "store-unwritable",
        TINY + "tracking: {uri: 'sqlite:////proc/multiseal/m.db'}\n",
        ("tracking.uri: sqlite:////proc/multiseal/m.db:", "cannot"),
        run_uri=None,
    ),
    Case("experiment-empty", TINY + "tracking: {experiment: ''}\n", ("tracking.experiment: must not be empty",)),
    Case(
        "experiment-dotdot",
        TINY + "tracking: {experiment: '..'}\n",
        ("tracking.experiment: '..' must name one folder",),
    ),
    Case(
        "experiment-slash", TINY + "tracking: {experiment: a/b}\n", ("tracking.experiment: 'a/b' must name one folder",)
    ),
    Case(
        "weights-ranks",
        "model: {base: tiny-random, lora: {rank: 4}}\nagents: {count: 3, overrides: {1: {rank: 8}}}\n"
        "sharing: {mode: weights}\n",
        ("agents.overrides.1.rank: 8 differs from model.lora.rank (4)",),
    ),
    Case(
        "weights-relay-delay",
        TINY + "sharing: {mode: weights, relay: true, delay: 3}\n",
        ("sharing.delay: 3 applies to notes on the move", "sharing.relay: true applies to notes"),
    ),
    Case("weights-loss", TINY + "sharing: {mode: weights, loss: 0.5}\n", ("sharing.loss: 0.5 applies to notes",)),
    Case(
        "weights-retell",
        TINY + "sharing: {mode: weights, retell: true}\n",
        ("sharing.retell: true applies to notes on the move",),
    ),
    Case(
        "retell-relay", TINY + "sharing: {retell: true, relay: true}\n", ("sharing.retell: true together with relay",)
    ),
    Case(
        "retell-none", TINY + "sharing: {mode: none, retell: true}\n", ("sharing.retell: true with sharing.mode: none",)
    ),
    Case(
        "retell-shuffled",
        TINY + "sharing: {retell: true, content: shuffled}\n",
        ("sharing.retell: true with content: shuffled",),
    ),
    Case(
        "hops-zero", TINY + "sharing: {retell: true, max_hops: 0}\n", ("sharing.max_hops", "greater than or equal to 1")
    ),
]
STDERR_LIMIT = 4000  # bytes: a message never echoes unbounded input (an alias bomb once printed 225 MB)


def _env(folder: Path) -> dict[str, str]:
    env = dict(
        os.environ,
        MULTISEAL_RUNS=str(folder / "runs"),
        HF_HUB_CACHE=str(folder.parent / "hf-empty"),
        PYTHONPATH=str(ROOT),
    )
    env.pop("MLFLOW_TRACKING_URI", None)  # the default store would be ./mlflow.db in the case's folder
    return env


def _start(args: list[str], folder: Path) -> tuple[subprocess.Popen, float]:
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "multiseal", *args],
        cwd=folder,
        env=_env(folder),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, time.monotonic()


def _finish(started: tuple[subprocess.Popen, float]) -> tuple[int, str, str, float]:
    proc, t0 = started
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"{proc.args[3:]} still running after {TIMEOUT_S} s: bad input must fail fast")
    return proc.returncode, out, err, time.monotonic() - t0


def _write(case: Case, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bad.json").write_text(json.dumps([{"title": "A", "questions": [{"question": "Q?", "answer": "a"}]}]))
    for name, data in case.files:
        (folder / name).write_bytes(data if isinstance(data, bytes) else data.encode())
    if case.scenario:
        return Path(case.scenario)
    path = folder / f"{case.id}.yaml"
    text = case.text if isinstance(case.text, bytes) else case.text.replace("{in}", str(folder)).encode()
    path.write_bytes(text)
    return path


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_exits_2_with_a_named_problem_and_creates_nothing(case, tmp_path):
    path = _write(case, tmp_path / "in")
    work = tmp_path / "run"
    run_args = ["run", str(path), *case.set, "--no-progress"]
    if case.run_uri == "sqlite":
        run_args += ["--tracking-uri", f"sqlite:///{work}/m.db"]
    elif case.run_uri:
        run_args += ["--tracking-uri", case.run_uri]
    started = {
        "validate": _start(["validate", str(path), *case.set, *case.validate_set], tmp_path / "validate"),
        "run": _start(run_args, work),
    }
    results = {cmd: _finish(p) for cmd, p in started.items()}
    for cmd, (rc, out, err, seconds) in results.items():
        where = f"{cmd} {case.id}: rc {rc}, {seconds:.1f} s\nstdout: {out}\nstderr: {err}"
        assert rc == 2, where
        assert len(err) < STDERR_LIMIT, f"{cmd} {case.id}: {len(err)} bytes of stderr"
        assert "Traceback" not in err, where
        assert err.startswith("multiseal: error: "), where
        assert (str(path) if case.names_file else "--set") in err, where
        for text in case.expect:
            assert text in err, where
        assert "hi" not in out.split(), where  # the python tag ran nothing
    rc, out, err, seconds = results["run"]
    assert seconds < RUN_LIMIT_S, f"run took {seconds:.1f} s to reject bad input"
    assert not any(line in err for line in MODEL_LINES), err
    made = sorted(p.name for p in work.iterdir())
    assert made == [], f"run of bad input created {made}"  # no m.db, mlflow.db, mlruns/ or runs/


def test_validate_checks_every_file_and_reports_only_the_bad_one(tmp_path):
    good = _write(Case("good", TINY, ()), tmp_path)
    bad = _write(CASES[0], tmp_path)
    quickstart = ROOT / "scenarios" / "quickstart.yaml"
    rc, out, err, _ = _finish(_start(["validate", str(good), str(bad), str(quickstart)], tmp_path / "w"))
    assert rc == 2, err
    assert "Traceback" not in err
    lines = out.splitlines()
    assert [line.split(": ok (")[0] for line in lines] == [str(good), str(quickstart)], out
    assert "generated tokens" in lines[1] and "trained tokens" in lines[1] and "answers" in lines[1], out
    assert f"{bad}: 1 problem" in err and "model.lora.target_modules[1]" in err, err
    assert str(good) not in err and str(quickstart) not in err, err


GRID_1E6 = "name: huge\nbase: base.yaml\ngrid:\n" + "".join(
    f"  {key}: [{', '.join(str(i + 1) for i in range(10))}]\n"
    for key in ("seed", "rounds", "inner_loop.epochs", "inner_loop.batch_size", "world.documents", "agents")
)


@pytest.mark.parametrize(
    "args",
    [
        ("sweep", "huge.yaml", "--dry-run"),
        ("sweep", "huge.yaml"),
        ("report", "--experiment", "nope"),
        ("sync", "broken"),
        ("sync", "linked"),
    ],
    ids=lambda a: "-".join(a).replace(".yaml", ""),
)
def test_other_commands_refuse_bad_input_before_creating_anything(args, tmp_path):
    """A sweep of 10⁶ points is refused from the sizes of its lists, before one point is made; a report on
    a store that does not exist and a sync of a broken run directory create no store (mlflow.db)."""
    work = tmp_path / "w"
    work.mkdir()
    (work / "base.yaml").write_text(TINY)
    (work / "huge.yaml").write_text(GRID_1E6)
    (work / "broken").mkdir()
    (work / "broken" / "run.json").write_text('{"uid": "abc", "status": "RUNN')  # torn
    (work / "linked").mkdir()
    (work / "linked" / "run.json").symlink_to(work / "broken" / "run.json")
    before = sorted(p.name for p in work.iterdir())
    rc, out, err, seconds = _finish(_start(list(args), work))
    where = f"{args}: rc {rc}, {seconds:.1f} s\nstdout: {out}\nstderr: {err}"
    assert rc == 2, where
    assert "Traceback" not in err and err.startswith("multiseal: error: ") and len(err) < STDERR_LIMIT, where
    assert seconds < RUN_LIMIT_S, where
    expect = {
        "sweep": ("huge.yaml", "grid: 1,000,000 points", "more than 1,000"),
        "report": ("mlflow.db does not exist",),
        "sync": (f"{args[-1]}/run.json: corrupt",),
    }[args[0]]
    for text in expect:
        assert text in err, where
    assert sorted(p.name for p in work.iterdir()) == before, where  # no mlflow.db, no runs/
