"""Metric transcripts of shipped scenarios on tiny-random, recorded through the CLI and MLflow only.

The architecture refactor (issue 9) promised *no behaviour change*: these transcripts were recorded
before any module moved, and ``tests/test_transcripts.py`` replays them. They go through the command
line and the MLflow store only, so they do not depend on where anything lives inside the package.

Record anew (only when a behaviour change is intended, and say so in the commit)::

    python tests/transcripts/cases.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).with_name("transcripts.json")

# notes sampled at temperature 1 by each agent's own adapter, as every shipped scenario wrote them when
# these were recorded (the multi-agent scenarios now write greedy notes, some with the base as writer)
_SMALL = [
    "model.base=tiny-random",
    "model.lora.rank=4",
    "model.lora.alpha=8",
    "self_edit.max_new_tokens=8",
    "self_edit.temperature=1.0",
    "self_edit.writer=adapter",
    "inner_loop.epochs=1",
    "evaluation.max_new_tokens=4",
]

CASES: dict[str, tuple[str, list[str]]] = {
    "quickstart": ("scenarios/quickstart.yaml", _SMALL),
    "policy-greedy": ("scenarios/policy-greedy.yaml", _SMALL),
    # the world and arrivals notes-vs-weights.yaml had when this was recorded (it now gives each agent one
    # document in round 1)
    "notes-vs-weights": (
        "scenarios/notes-vs-weights.yaml",
        _SMALL
        + [
            "sharing.mode=weights",
            "world.documents=8",
            "world.questions_per_doc=[3, 3]",
            "arrivals={kind: disjoint, docs_per_round: 1}",
        ],
    ),
    "forgetting-replay": ("scenarios/forgetting.yaml", _SMALL + ["rounds=3", "replay.fraction=0.5"]),
    # batch 8 as knowledge.yaml had when this was recorded (the file now says SEAL's batch 1)
    "knowledge": (
        "scenarios/knowledge.yaml",
        _SMALL
        + [
            "inner_loop.batch_size=8",
            "world.documents=2",
            "experiment.seeds=[0]",
            "experiment.conditions=[passage-only,implications]",
        ],
    ),
    "restem": (
        "scenarios/restem.yaml",
        _SMALL
        + [
            "restem.iterations=1",
            "restem.candidates=2",
            "restem.train_documents=2",
            "restem.eval_documents=1",
            "restem.eval_samples=1",
            "restem.policy_epochs=1",
        ],
    ),
}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def transcript(name: str, workdir: Path) -> dict:
    """Run case ``name`` through the CLI into a fresh store under ``workdir``; its metrics (every step,
    timings left out) and its notes, self-edits and answers artifacts."""
    import mlflow

    scenario, sets = CASES[name]
    uri = f"sqlite:///{workdir / (name + '.db')}"
    cmd = [sys.executable, "-m", "multiseal", "run", str(ROOT / scenario), "--no-progress", "--tracking-uri", uri]
    for s in sets:
        cmd += ["--set", s]
    env = {**os.environ, "MULTISEAL_THREADS": "1"}
    done = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{name}: exit {done.returncode}\n{done.stderr[-3000:]}")
    client = mlflow.MlflowClient(uri)
    (exp,) = [e for e in client.search_experiments() if e.name != "Default"]
    (run,) = client.search_runs([exp.experiment_id])
    metrics = {}
    for key in sorted(run.data.metrics):
        if "seconds" in key:  # wall-clock timings differ from run to run
            continue
        metrics[key] = [
            [m.step, m.value]
            for m in sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: (m.step, m.timestamp))
        ]
    art = Path(client.download_artifacts(run.info.run_id, "", str(workdir / (name + "-art"))))
    files = {}
    for rel in (
        "notes.jsonl",
        "answers.jsonl",
        "probe.jsonl",
        "self_edits.jsonl",
        "restem/candidates.jsonl",
        "restem/heldout_notes.jsonl",
        "restem/kept_iter0.jsonl",
        "restem/split.jsonl",
    ):
        rows = _jsonl(art / rel)
        if rows:
            files[rel] = rows
    return {"metrics": metrics, "artifacts": files, "status": run.info.status}


def main() -> None:
    out = {}
    for name in CASES:
        with tempfile.TemporaryDirectory() as d:
            out[name] = transcript(name, Path(d))
            print(name, len(out[name]["metrics"]), "metrics", sorted(out[name]["artifacts"]), flush=True)
    FIXTURE.write_text(json.dumps(out, indent=0, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
