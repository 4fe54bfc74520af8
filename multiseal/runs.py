"""Running a validated scenario end to end, with MLflow tracking around it.

One function per scenario kind. Each returns a small summary that the CLI prints; everything else
goes to the MLflow run.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

from multiseal import build
from multiseal.experiment import format_table, run_knowledge_experiment
from multiseal.scenario import Scenario, flatten
from multiseal.tracking import Tracker


def run_scenario(scenario: Scenario, source: str | Path | None = None, progress: bool = True,
                 tags: Mapping[str, str] | None = None) -> str:
    """Run ``scenario`` (loaded from ``source``); returns the end-of-run summary text.

    ``tags`` are added to the MLflow run (a sweep marks its points this way)."""
    if scenario.kind == "knowledge":
        return run_knowledge(scenario, source, progress, tags)
    if scenario.kind == "restem":
        from multiseal.restem_run import run_restem_scenario

        return run_restem_scenario(scenario, source, progress, tags)
    from multiseal.simulate import run_simulation

    return run_simulation(scenario, source, progress, tags)


def open_tracker(scenario: Scenario, source: str | Path | None, tags: Mapping[str, str] | None = None) -> Tracker:
    tracker = Tracker(
        scenario.tracking.uri, scenario.tracking.experiment, build.run_name(scenario),
        params=flatten(scenario),
        tags={"multiseal.kind": scenario.kind, "multiseal.scenario": scenario.name, **(tags or {})},
    )
    if source is not None and Path(source).exists():
        tracker.artifact_file(source, "scenario")
    tracker.artifact_text("scenario.resolved.json", json.dumps(scenario.model_dump(mode="json"), indent=2), "scenario")
    return tracker


def run_knowledge(scenario: Scenario, source: str | Path | None = None, progress: bool = True,
                  tags: Mapping[str, str] | None = None) -> str:
    """SEAL's knowledge-incorporation table for one agent (see ``multiseal.experiment``)."""
    world = build.build_world(scenario.world, scenario.seed, source)
    model = build.build_model(scenario.model, progress)
    evaluation = build.build_eval(scenario.evaluation)
    with open_tracker(scenario, source, tags) as tracker:
        result = run_knowledge_experiment(
            model, world.documents, scenario.experiment.conditions, scenario.experiment.seeds,
            build.build_lora(scenario.model.lora), build.build_self_edit(scenario.self_edit),
            build.build_inner_loop(scenario.inner_loop), evaluation, progress=progress,
        )
        metrics = {}
        for metric in ("strict", "em", "f1"):
            for row in result.table(metric):
                metrics[f"{row['condition']}.{metric}.mean"] = row["mean"]
                metrics[f"{row['condition']}.{metric}.std"] = row["std"]
        tracker.metrics(metrics, step=0)
        for (cond, seed, doc_id), s in result.scores.items():
            tracker.metrics({f"doc.{doc_id}.{cond}.{k}": v for k, v in s.items()}, step=seed)
        tracker.artifact_jsonl("self_edits.jsonl", result.self_edits)
        tracker.artifact_jsonl("answers.jsonl", result.answers)
        tables = {m: format_table(result.table(m), m) for m in ("strict", "em", "f1")}
        tracker.artifact_text("table.md", "\n\n".join(tables.values()) + "\n")
        headline = scenario.evaluation.headline
        summary = (
            f"knowledge incorporation: {len(world.documents)} documents × {len(scenario.experiment.seeds)} seeds, "
            f"headline metric '{headline}' (MLflow run {tracker.run_id})\n" + tables[headline]
        )
    return summary
