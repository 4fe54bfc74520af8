"""A ``kind: restem`` scenario, from typed settings to a finished MLflow run.

Metrics per iteration (step = iteration; step 0 is the held-out evaluation before any RL):
``restem.heldout.<metric>`` (and ``.base.``, ``.passage.``, ``.agent.<i>.``, ``.neighbours.``),
``restem.reward.{mean,max,min,std,positive_share}``, ``restem.gain.*``, ``restem.sft.*``,
``restem.seconds.<phase>`` and ``restem.seconds_per_candidate``. Artifacts: every candidate with
its gains and reward (``restem/candidates.jsonl``), the kept self-edits per iteration
(``restem/kept_iter<t>.jsonl``), the held-out notes and the summary table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from multiseal.config.builders import (
    agent_specs,
    build_eval,
    build_graphs,
    build_model,
    build_restem,
    build_self_edit,
    build_world,
)
from multiseal.config.schema import Scenario
from multiseal.rl.restem import run_restem
from multiseal.rl.restem_records import IterationRecord
from multiseal.rl.restem_setup import (
    make_agents,
    neighbours_from_graph,
    split_documents,
)
from multiseal.run.recipes.registry import RECIPES, SUMMARY, Outcome
from multiseal.run.tracker import open_tracker

METRICS = ("strict", "em", "f1")


def summary_table(records: Sequence[IterationRecord], headline: str) -> str:
    """One row per iteration: reward statistics and held-out accuracy (Markdown)."""
    nb = any(f"neighbours.{headline}" in r.heldout for r in records)
    head = (
        f"| iteration | reward mean | reward max | positive share | kept | held-out {headline} "
        f"| held-out passage-only {headline} | held-out base {headline} |"
        + (f" held-out neighbours {headline} |" if nb else "")
        + " seconds |"
    )
    lines = [head, "|" + " ---: |" * (head.count("|") - 1)]
    for r in records:
        rw = r.rewards
        cells = [
            str(r.iteration),
            f"{rw['mean']:.3f}" if "mean" in rw else "–",
            f"{rw['max']:.3f}" if "max" in rw else "–",
            f"{rw['positive_share']:.2f}" if "positive_share" in rw else "–",
            str(int(r.counts["kept"])) if "kept" in r.counts else "–",
            f"{r.heldout.get(headline, float('nan')):.3f}",
            f"{r.heldout.get(f'passage.{headline}', float('nan')):.3f}",
            f"{r.heldout.get(f'base.{headline}', float('nan')):.3f}",
        ]
        if nb:
            cells.append(f"{r.heldout.get(f'neighbours.{headline}', float('nan')):.3f}")
        cells.append(f"{sum(r.seconds.values()):.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@RECIPES.register("restem")
def run_restem_scenario(
    scenario: Scenario, source: str | Path | None = None, progress: bool = True, tags: Mapping[str, str] | None = None
) -> Outcome:
    """Run a ``kind: restem`` scenario under MLflow; returns the per-iteration summary table."""
    cfg = scenario.restem
    settings = build_restem(cfg, together=scenario.inner_loop.batching == "together")
    world = build_world(scenario.world, scenario.seed, source)
    train_docs, eval_docs = split_documents(
        world.documents, cfg.train_documents, cfg.eval_documents, seed=scenario.seed
    )
    model = build_model(scenario.model, progress)
    n = scenario.agents.count
    graph = build_graphs(scenario, source).at(0)
    agents = make_agents(
        model, agent_specs(scenario), neighbours_from_graph(graph, n), settings.policy, seed=scenario.seed
    )
    evaluation = build_eval(scenario.evaluation)
    headline = scenario.evaluation.headline
    with open_tracker(scenario, source, tags) as tracker:
        tracker.artifact_jsonl(
            "split.jsonl",
            [
                {"doc_id": d.doc_id, "title": d.title, "split": s}
                for s, docs in (("train", train_docs), ("eval", eval_docs))
                for d in docs
            ],
            "restem",
        )

        def log(rec: IterationRecord) -> None:
            tracker.metrics(rec.metrics(), step=rec.iteration)
            if rec.iteration:
                tracker.artifact_jsonl(f"kept_iter{rec.iteration}.jsonl", rec.kept, "restem")
            if progress:
                rw = rec.rewards
                print(
                    f"iteration {rec.iteration}: held-out {headline} {rec.heldout.get(headline, float('nan')):.3f}"
                    + (
                        f", reward mean {rw['mean']:.3f} max {rw['max']:.3f} positive {rw['positive_share']:.2f}"
                        if "mean" in rw
                        else ""
                    ),
                    flush=True,
                )

        records = run_restem(
            model,
            agents,
            train_docs,
            eval_docs,
            settings,
            evaluation,
            build_self_edit(scenario.self_edit),
            seed=scenario.seed,
            progress=progress,
            on_iteration=log,
        )
        tracker.artifact_jsonl("candidates.jsonl", [c for r in records for c in r.candidates], "restem")
        tracker.artifact_jsonl("heldout_notes.jsonl", [x for r in records for x in r.heldout_notes], "restem")
        tables = {m: summary_table(records, m) for m in METRICS}
        tracker.artifact_text("table.md", "\n\n".join(tables.values()) + "\n", "restem")
        summary = (
            f"ReST-EM: {n} agent(s), {len(train_docs)} training / {len(eval_docs)} held-out documents, "
            f"reward '{settings.reward}' over '{settings.baseline}', policy '{settings.policy}' (MLflow run "
            f"{tracker.run_id}, experiment '{scenario.tracking.experiment}')\n" + tables[headline]
        )
        tracker.artifact_text(SUMMARY, summary + "\n")
    return Outcome(summary, tracker.run.path)
