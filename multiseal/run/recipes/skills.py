"""A ``kind: skills`` scenario: SEAL's few-shot table for one agent, logged to MLflow.

The tasks are split per family into training tasks (ReST-EM's) and held-out tasks (the table's).
On the held-out tasks, each arm of ``skills.arms`` is scored (success = every test output exact):
``in-context``, ``random`` (a random valid configuration), ``self-edit`` (the model's own
configuration, untrained: ``self-edit``; and after ``skills.iterations`` of ReST-EM over
configurations: ``self-edit-restem``), ``oracle`` (the best of a grid of configurations in
hindsight). Every arm is paired by task with ``skills.reference``: per-task differences, a cluster
bootstrap over tasks within families (one cluster per family), Holm-corrected.

Metrics (step 0): ``skills.<arm>.success``, ``skills.<arm>.family.<family>``,
``skills.<arm>.config_invalid``, ``skills.<arm>.delta`` / ``.delta_lo`` / ``.delta_hi`` / ``.p_holm``;
per ReST-EM iteration (step = iteration): ``restem.reward.mean``, ``restem.config_invalid``,
``restem.kept``. Artifacts (``skills/``): ``split.jsonl``, ``attempts.jsonl`` (every reply and
configuration), ``candidates.jsonl``, ``menu.jsonl`` (how often each menu choice was written,
untrained and trained), ``table.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from multiseal.config.builders import build_model, build_skills, build_tasks
from multiseal.config.schema import Scenario
from multiseal.learning.skill_config import config_text
from multiseal.rl.skill_restem import ArmResult, evaluate_arm, menu_counts, run_skill_restem
from multiseal.run.recipes.registry import RECIPES, SUMMARY, Outcome
from multiseal.run.tracker import open_tracker
from multiseal.stats import cluster_bootstrap, holm, verdict
from multiseal.types import SkillTask

TRAINED = "self-edit-restem"


def paired_rows(
    results: Mapping[str, ArmResult], tasks: Sequence[SkillTask], reference: str, resamples: int = 2000
) -> list[dict]:
    """Every arm against ``reference``, paired by task, clusters = families (Holm over the arms)."""
    families = list(dict.fromkeys(t.family for t in tasks))
    ref = results[reference]
    rows = []
    for arm, res in results.items():
        if arm == reference:
            continue
        clusters = [
            [float(res.solved[t.task_id]) - float(ref.solved[t.task_id]) for t in tasks if t.family == f]
            for f in families
        ]
        width = max(len(c) for c in clusters)
        diffs = np.array([c + [np.nan] * (width - len(c)) for c in clusters], dtype=float)
        boot = cluster_bootstrap([diffs], resamples=resamples, seed=0)
        rows.append(
            {
                "arm": arm,
                "success": res.success,
                "delta": boot.delta,
                "lo": boot.lo,
                "hi": boot.hi,
                "p": boot.p,
                "tasks": len(tasks),
                "families": len(families),
            }
        )
    for row, p_adj in zip(rows, holm([r["p"] for r in rows])):
        row["p_holm"] = float(p_adj)
        row["verdict"] = verdict(row["delta"], row["p_holm"])
    return rows


def table(results: Mapping[str, ArmResult], tasks: Sequence[SkillTask], reference: str) -> str:
    """Markdown: success per arm and family, invalid configurations, and the paired comparison."""
    families = list(dict.fromkeys(t.family for t in tasks))
    head = "| arm | success | " + " | ".join(f or "tasks" for f in families) + " | invalid configs |"
    lines = [head, "| --- |" + " ---: |" * (len(families) + 2)]
    for arm, res in results.items():
        per = [sum(res.solved[t.task_id] for t in tasks if t.family == f) for f in families]
        n = [sum(t.family == f for t in tasks) for f in families]
        lines.append(
            f"| {arm} | {res.success:.3f} | "
            + " | ".join(f"{a}/{b}" for a, b in zip(per, n))
            + f" | {'–' if not res.written else f'{res.invalid}/{res.written}'} |"
        )
    rows = paired_rows(results, tasks, reference)
    lines += [
        "",
        f"| arm | success | Δ vs {reference} [95% CI] | Holm p | verdict | tasks (families) |",
        "| --- | ---: | --- | ---: | --- | ---: |",
    ]
    lines += [
        f"| {r['arm']} | {r['success']:.3f} | {r['delta']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}] | "
        f"{r['p_holm']:.3f} | {r['verdict']} | {r['tasks']} ({r['families']}) |"
        for r in rows
    ]
    return "\n".join(lines)


@RECIPES.register("skills")
def run_skills(
    scenario: Scenario, source: str | Path | None = None, progress: bool = True, tags: Mapping[str, str] | None = None
) -> Outcome:
    """SEAL's few-shot table on held-out tasks, logged to MLflow; returns the table."""
    train, held = build_tasks(scenario.tasks, scenario.seed, source)
    settings = build_skills(scenario)
    arms = scenario.skills.arms
    model = build_model(scenario.model, progress)
    seed = scenario.seed
    with open_tracker(scenario, source, tags) as tracker:
        tracker.artifact_jsonl(
            "split.jsonl",
            [
                {"task_id": t.task_id, "family": t.family, "split": split}
                for split, ts in (("train", train), ("held-out", held))
                for t in ts
            ],
            "skills",
        )
        results: dict[str, ArmResult] = {}
        for arm in arms:
            results[arm] = evaluate_arm(model, arm, held, settings, seed=seed, progress=progress)
            if progress:
                print(f"{arm}: {results[arm].success:.3f} of {len(held)} held-out tasks solved", flush=True)
        records = []
        if "self-edit" in arms and settings.iterations > 0:

            def log(rec) -> None:
                tracker.metrics(rec.metrics(), step=rec.iteration)
                if progress:
                    m = rec.metrics()
                    print(
                        f"ReST-EM iteration {rec.iteration}: reward {m['restem.reward.mean']:.3f}, invalid "
                        f"{m['restem.config_invalid']:.3f}, kept {len(rec.kept)}",
                        flush=True,
                    )

            records = run_skill_restem(model, train, settings, seed=seed, progress=progress, on_iteration=log)
            results[TRAINED] = evaluate_arm(
                model, "self-edit", held, settings, writer="skill_writer", seed=seed, progress=progress
            )
            results[TRAINED].arm = TRAINED
            if progress:
                print(f"{TRAINED}: {results[TRAINED].success:.3f} of {len(held)} held-out tasks solved", flush=True)
        metrics: dict[str, float] = {}
        for arm, res in results.items():
            metrics[f"skills.{arm}.success"] = res.success
            for fam in dict.fromkeys(t.family for t in held):
                members = [t for t in held if t.family == fam]
                metrics[f"skills.{arm}.family.{fam or 'tasks'}"] = sum(res.solved[t.task_id] for t in members) / len(
                    members
                )
            if res.written:
                metrics[f"skills.{arm}.config_invalid"] = res.invalid_share
        reference = scenario.skills.reference
        for r in paired_rows(results, held, reference):
            metrics.update(
                {
                    f"skills.{r['arm']}.delta": r["delta"],
                    f"skills.{r['arm']}.delta_lo": r["lo"],
                    f"skills.{r['arm']}.delta_hi": r["hi"],
                    f"skills.{r['arm']}.p_holm": r["p_holm"],
                }
            )
        tracker.metrics(metrics, step=0)
        tracker.artifact_jsonl(
            "attempts.jsonl",
            [
                {
                    "arm": arm,
                    "task_id": a.task_id,
                    "config": config_text(a.config) if a.config else None,
                    "replies": list(a.replies),
                    "correct": list(a.correct),
                    "trained_tokens": a.trained_tokens,
                }
                for arm, res in results.items()
                for a in res.attempts
            ],
            "skills",
        )
        tracker.artifact_jsonl("candidates.jsonl", [row for rec in records for row in rec.rows], "skills")
        menus = {
            arm: menu_counts([a.config for a in results[arm].attempts])
            for arm in ("self-edit", TRAINED)
            if arm in results
        }
        tracker.artifact_jsonl(
            "menu.jsonl",
            [{"arm": arm, "choice": k, "count": v} for arm, c in menus.items() for k, v in sorted(c.items())],
            "skills",
        )
        text = table(results, held, reference)
        tracker.artifact_text("table.md", text + "\n", "skills")
        summary = (
            f"skills: {len(train)} training / {len(held)} held-out tasks, {settings.iterations} ReST-EM "
            f"iteration(s) (MLflow run {tracker.run_id}, experiment '{scenario.tracking.experiment}')\n" + text
        )
        tracker.artifact_text(SUMMARY, summary + "\n")
    return Outcome(summary, tracker.run.path)
