"""End to end through the CLI on tiny-random: the knowledge experiment and a multi-agent run."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np

from multiseal.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "--set",
    "model.base=tiny-random",
    "--set",
    "model.lora.rank=4",
    "--set",
    "self_edit.max_new_tokens=6",
    "--set",
    "inner_loop.epochs=1",
    "--set",
    "evaluation.max_new_tokens=4",
    "--no-progress",
]


def _runs(uri, experiment):
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id])


def test_knowledge_experiment_on_the_squad_file(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert main(["run", str(ROOT / "scenarios/knowledge-squad.yaml"), "--tracking-uri", uri, *TINY]) == 0
    out = capsys.readouterr().out
    for cond in ("base", "passage-only", "implications", "self-qa"):
        assert f"| {cond} |" in out
    client, runs = _runs(uri, "knowledge")
    (run,) = runs
    assert run.info.status == "FINISHED"
    assert "passage-only.strict.mean" in run.data.metrics and "self-qa.f1.std" in run.data.metrics
    arts = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"self_edits.jsonl", "answers.jsonl", "table.md", "scenario"} <= arts
    local = client.download_artifacts(run.info.run_id, "self_edits.jsonl", str(tmp_path))
    rows = [json.loads(x) for x in Path(local).read_text().splitlines()]
    assert len(rows) == 6 * 3  # 6 documents x 3 conditions x 1 seed
    assert all(r["sequences"][-1].startswith(r["sequences"][-1].split("\n")[0]) for r in rows)


def test_simulation_run_logs_per_agent_metrics_and_artifacts(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert main(["run", str(ROOT / "scenarios/quickstart.yaml"), "--tracking-uri", uri, *TINY]) == 0
    assert "final round 2 of 2" in capsys.readouterr().out
    client, (run,) = _runs(uri, "quickstart")
    assert run.info.status == "FINISHED"
    hist = client.get_metric_history(run.info.run_id, "agent.1.acc_all")
    assert [m.step for m in hist] == [1, 2]
    arts = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"accuracy.npz", "graph.graphml", "graph.png", "notes.jsonl", "answers.jsonl", "probe.jsonl"} <= arts
    npz = np.load(client.download_artifacts(run.info.run_id, "accuracy.npz", str(tmp_path)))
    assert npz["acc"].shape == (3, 3, 6)
