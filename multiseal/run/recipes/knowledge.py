"""Single-agent knowledge incorporation: the shape of SEAL's table for one agent.

For every document and seed: closed-book accuracy of the base model, after training a fresh adapter
on the passage only, and after training on the passage plus a self-edit in each prompt style. Each
(document, condition) gets its own temporary adapter, thrown away afterwards; all of a seed's
adapters answer their questions together in shared batches.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from multiseal.config.builders import (
    build_eval,
    build_inner_loop,
    build_lora,
    build_model,
    build_self_edit,
    build_world,
)
from multiseal.config.schema import Scenario
from multiseal.learning.evaluate import answer_and_grade, mean_scores
from multiseal.learning.model import SharedModel
from multiseal.learning.self_edit import (
    passage_sequence,
    sample_self_edits,
    training_sequences,
)
from multiseal.learning.train import train_adapter
from multiseal.run.recipes.registry import RECIPES, SUMMARY, Outcome
from multiseal.run.tracker import open_tracker
from multiseal.stats import cluster_bootstrap, holm, verdict
from multiseal.types import (
    Document,
    EvalSettings,
    Graded,
    LoraSettings,
    SelfEditSettings,
    TrainSettings,
)

BASE_CONDITION = "base"


@dataclass
class KnowledgeResult:
    """Per (condition, seed, document) mean grades, plus every answer and self-edit."""

    conditions: list[str]
    scores: dict[tuple[str, int, str], dict[str, float]] = field(default_factory=dict)
    answers: list[dict] = field(default_factory=list)
    self_edits: list[dict] = field(default_factory=list)

    def table(self, metric: str) -> list[dict]:
        """Rows ``{condition, mean, std, n}`` over documents × seeds, base first."""
        rows = []
        for cond in [BASE_CONDITION, *self.conditions]:
            vals = [s[metric] for (c, _, _), s in self.scores.items() if c == cond]
            if vals:
                std = statistics.pstdev(vals) if len(vals) > 1 else 0.0
                rows.append({"condition": cond, "mean": statistics.fmean(vals), "std": std, "n": len(vals)})
        return rows


def run_knowledge_experiment(
    model: SharedModel,
    documents: Sequence[Document],
    conditions: Sequence[str],
    seeds: Sequence[int],
    lora: LoraSettings,
    self_edit: SelfEditSettings,
    inner: TrainSettings,
    evaluation: EvalSettings,
    progress: bool = True,
    on_seed=None,
) -> KnowledgeResult:
    """Run every condition on every document for every seed (see module docstring)."""
    result = KnowledgeResult(list(conditions))
    questions = [(None, q) for d in documents for q in d.questions]
    base = answer_and_grade(model, questions, evaluation, progress="base answers" if progress else None)
    for seed in seeds:
        _record(result, BASE_CONDITION, seed, documents, base, lambda d: None)
    for seed in seeds:
        requests = [(d, None, c) for d in documents for c in conditions]
        samples = sample_self_edits(
            model,
            requests,
            SelfEditSettings(**{**self_edit.__dict__, "candidates": 1}),
            seed=seed,
            progress="writing self-edits" if progress else None,
        )
        names: dict[tuple[str, str], str] = {}
        for i, ((doc, _, cond), cands) in enumerate(zip(requests, samples)):
            completion = cands[0]
            if cond == "passage-only":
                seqs = [passage_sequence(doc)]
            else:
                seqs = training_sequences(completion, doc, cond)
            name = f"ki{seed}x{i}"
            model.add_adapter(name, lora, seed=seed)
            stats = train_adapter(
                model, name, seqs, inner, seed=seed, progress=f"training {doc.doc_id} {cond}" if progress else None
            )
            names[(doc.doc_id, cond)] = name
            result.self_edits.append(
                {
                    "seed": seed,
                    "doc_id": doc.doc_id,
                    "condition": cond,
                    "completion": completion,
                    "sequences": seqs,
                    "train_tokens": stats.tokens,
                    "loss_first": stats.loss_first,
                    "loss_last": stats.loss_last,
                }
            )
        pairs = [(names[(d.doc_id, c)], q) for d in documents for c in conditions for q in d.questions]
        graded = answer_and_grade(model, pairs, evaluation, progress="answers after training" if progress else None)
        by_adapter: dict[str, list[Graded]] = {}
        for g in graded:
            by_adapter.setdefault(g.adapter, []).append(g)
        for cond in conditions:
            _record(result, cond, seed, documents, graded, lambda d, c=cond, names=names: names[(d.doc_id, c)])
        for name in names.values():
            model.delete_adapter(name)
        if on_seed:
            on_seed(seed, result)
    return result


def _record(result: KnowledgeResult, cond: str, seed: int, documents, graded: Sequence[Graded], adapter_of) -> None:
    for d in documents:
        qids = {q.qid for q in d.questions}
        mine = [g for g in graded if g.qid in qids and g.adapter == adapter_of(d)]
        result.scores[(cond, seed, d.doc_id)] = mean_scores(mine)
        for g in mine:
            result.answers.append(
                {
                    "condition": cond,
                    "seed": seed,
                    "doc_id": d.doc_id,
                    "qid": g.qid,
                    "question": g.question,
                    "gold": g.gold,
                    "answer": g.answer,
                    **g.scores,
                }
            )


REFERENCE_CONDITION = "passage-only"


def paired_table(
    result: KnowledgeResult, metric: str, reference: str = REFERENCE_CONDITION, resamples: int = 4000
) -> list[dict]:
    """Every condition against ``reference`` (training on the passage alone), paired question by
    question: the same seed, document and question in both arms. The 95% interval comes from the
    two-level cluster bootstrap (seeds, then documents with all their questions); p-values are
    Holm-adjusted over the conditions compared. Rows ``{condition, mean, delta, lo, hi, p, p_holm,
    verdict, clusters}``; none when ``reference`` was not run."""
    grade = {(a["condition"], a["seed"], a["qid"]): a[metric] for a in result.answers}
    docs: dict[tuple[int, str], list[str]] = {}
    for a in result.answers:
        if a["condition"] == reference:
            docs.setdefault((a["seed"], a["doc_id"]), []).append(a["qid"])
    if not docs:
        return []
    seeds = sorted({seed for seed, _ in docs})
    rows = []
    for cond in [c for c in [BASE_CONDITION, *result.conditions] if c != reference]:
        per_seed = []
        for seed in seeds:
            clusters = [
                [grade.get((cond, seed, q), np.nan) - grade[(reference, seed, q)] for q in qids]
                for (s_, _), qids in sorted(docs.items())
                if s_ == seed
            ]
            width = max(len(c) for c in clusters)
            per_seed.append(np.array([c + [np.nan] * (width - len(c)) for c in clusters], dtype=float))
        boot = cluster_bootstrap(per_seed, resamples=resamples, seed=0)
        mean = float(np.mean([grade[k] for k in grade if k[0] == cond])) if any(k[0] == cond for k in grade) else np.nan
        rows.append(
            {
                "condition": cond,
                "mean": mean,
                "delta": boot.delta,
                "lo": boot.lo,
                "hi": boot.hi,
                "p": boot.p,
                "clusters": len(docs),
            }
        )
    for row, p_adj in zip(rows, holm([r["p"] for r in rows])):
        row["p_holm"] = float(p_adj)
        row["verdict"] = verdict(row["delta"], row["p_holm"])
    return rows


def format_paired(rows: list[dict], metric: str, reference: str = REFERENCE_CONDITION) -> str:
    """A Markdown table of ``paired_table`` rows."""
    lines = [
        f"| condition | {metric} mean | Δ vs {reference} [95% CI] | Holm p | verdict | documents × seeds |",
        "| --- | ---: | --- | ---: | --- | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['condition']} | {r['mean']:.3f} | {r['delta']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}] | "
            f"{r['p_holm']:.3f} | {r['verdict']} | {r['clusters']} |"
        )
    return "\n".join(lines)


def format_table(rows: list[dict], metric: str) -> str:
    """A Markdown table of ``KnowledgeResult.table`` rows."""
    lines = [f"| condition | {metric} mean | std | n |", "| --- | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['condition']} | {r['mean']:.3f} | {r['std']:.3f} | {r['n']} |")
    return "\n".join(lines)


@RECIPES.register("knowledge")
def run_knowledge(
    scenario: Scenario, source: str | Path | None = None, progress: bool = True, tags: Mapping[str, str] | None = None
) -> Outcome:
    """SEAL's knowledge-incorporation table for one agent, logged to MLflow."""
    world = build_world(scenario.world, scenario.seed, source)
    model = build_model(scenario.model, progress)
    evaluation = build_eval(scenario.evaluation)
    with open_tracker(scenario, source, tags) as tracker:
        result = run_knowledge_experiment(
            model,
            world.documents,
            scenario.experiment.conditions,
            scenario.experiment.seeds,
            build_lora(scenario.model.lora),
            build_self_edit(scenario.self_edit),
            build_inner_loop(scenario.inner_loop),
            evaluation,
            progress=progress,
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
        paired = {m: paired_table(result, m) for m in ("strict", "em", "f1")}
        for m, rows in paired.items():
            for r in rows:
                tracker.metrics(
                    {
                        f"{r['condition']}.{m}.delta": r["delta"],
                        f"{r['condition']}.{m}.delta_lo": r["lo"],
                        f"{r['condition']}.{m}.delta_hi": r["hi"],
                        f"{r['condition']}.{m}.p_holm": r["p_holm"],
                    },
                    step=0,
                )
            if rows:
                tables[m] += "\n\n" + format_paired(rows, m)
        tracker.artifact_text("table.md", "\n\n".join(tables.values()) + "\n")
        headline = scenario.evaluation.headline
        summary = (
            f"knowledge incorporation: {len(world.documents)} documents × {len(scenario.experiment.seeds)} seeds, "
            f"headline metric '{headline}' (MLflow run {tracker.run_id})\n" + tables[headline]
        )
        tracker.artifact_text(SUMMARY, summary + "\n")
    return Outcome(summary, tracker.run.path)
