"""docs/extending.md's worked example runs: a user's module named under `plugins:` registers a
topology, a scheduler, a prompt style, a grader and a mitigation that a scenario then uses, through the CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"


def _cli(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(EXAMPLES), "MULTISEAL_RUNS": str(tmp / "runs"), "MULTISEAL_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "multiseal", *args], cwd=tmp, env=env, capture_output=True, text=True, timeout=600
    )


def test_the_page_shows_the_example_files_as_they_are():
    page = (ROOT / "docs" / "extending.md").read_text()
    blocks = re.findall(r"```(?:python|yaml)\n(.*?)```", page, flags=re.S)
    assert (EXAMPLES / "my_multiseal_plugin.py").read_text() in blocks
    assert (EXAMPLES / "plugin-demo.yaml").read_text() in blocks


def test_a_scenario_uses_the_plugins_kinds_end_to_end(tmp_path):
    scenario = str(EXAMPLES / "plugin-demo.yaml")
    assert _cli(tmp_path, "validate", scenario).returncode == 0
    bad = _cli(tmp_path, "validate", scenario, "--set", "topology.params.size=3")
    assert bad.returncode == 2 and "topology.params.size: must divide the number of agents (4)" in bad.stderr
    uri = f"sqlite:///{tmp_path}/m.db"
    done = _cli(
        tmp_path,
        "run",
        scenario,
        "--no-progress",
        "--tracking-uri",
        uri,
        "--set",
        "model.base=tiny-random",
        "--set",
        "self_edit.max_new_tokens=8",
        "--set",
        "inner_loop.epochs=1",
        "--set",
        "evaluation.max_new_tokens=4",
    )
    assert done.returncode == 0, done.stderr
    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("plugin-demo").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["topology.kind"] == "ring-of-cliques" and run.data.params["self_edit.style"] == "bullets"
    assert run.data.params["evaluation.headline"] == "contains"
    assert run.data.metrics["comm.notes"] > 0  # notes travelled over the plugin's graph
    assert run.data.params["arrivals.kind"] == "taking-turns"
    assert "agent.0.acc_own" in run.data.metrics and "agent.2.acc_own" not in run.data.metrics  # turns 0 and 1 only
    bad = _cli(tmp_path, "validate", scenario, "--set", "mitigations=[{kind: steady, params: {pul: 2}}]")
    assert bad.returncode == 2  # the plugin's parameter model checks its keys
    assert "mitigations.0.params.pul: unknown parameter for mitigation steady; allowed: replay, pull" in bad.stderr


def test_a_plugin_that_cannot_be_imported_is_an_input_error(tmp_path):
    (tmp_path / "s.yaml").write_text("plugins: [no_such_plugin_module]\ntopology: {kind: ring-of-cliques}\n")
    done = _cli(tmp_path, "validate", "s.yaml")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "plugins[0]: cannot import 'no_such_plugin_module'" in done.stderr
    assert "topology.kind: 'ring-of-cliques' is not one of" in done.stderr


def test_without_plugins_nothing_of_the_users_is_imported(tmp_path):
    (tmp_path / "s.yaml").write_text("topology: {kind: ring-of-cliques}\n")
    done = _cli(tmp_path, "validate", "s.yaml")
    assert done.returncode == 2 and "topology.kind" in done.stderr
