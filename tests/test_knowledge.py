"""The knowledge table's paired comparison against passage-only, on hand-made results (no model)."""

from __future__ import annotations

import numpy as np

from multiseal.run.recipes.knowledge import KnowledgeResult, format_paired, paired_table


def result(planted: dict[str, float], seeds=(0, 1), docs=6, questions=4, noise=0.3) -> KnowledgeResult:
    """passage-only grades are random 0/1; each other condition gets the same grades, each flipped
    up with probability ``planted[cond]``."""
    rng = np.random.default_rng(0)
    r = KnowledgeResult(["passage-only", *planted])
    for seed in seeds:
        for d in range(docs):
            for q in range(questions):
                ref = float(rng.random() < noise)
                r.answers.append(
                    {"condition": "passage-only", "seed": seed, "doc_id": f"d{d}", "qid": f"q{d}.{q}", "strict": ref}
                )
                for cond, p in planted.items():
                    up = float(ref == 0.0 and rng.random() < p)
                    r.answers.append(
                        {"condition": cond, "seed": seed, "doc_id": f"d{d}", "qid": f"q{d}.{q}", "strict": ref + up}
                    )
    return r


def test_identical_conditions_are_not_distinguishable_and_a_planted_gain_is_higher():
    rows = {r["condition"]: r for r in paired_table(result({"same": 0.0, "better": 0.9}), "strict")}
    assert rows["same"]["delta"] == 0 and rows["same"]["verdict"] == "not distinguishable"
    assert rows["better"]["delta"] > 0.5 and rows["better"]["lo"] > 0 and rows["better"]["verdict"] == "higher"
    assert rows["better"]["clusters"] == 12  # documents × seeds
    assert rows["better"]["p_holm"] >= rows["better"]["p"]
    assert "Δ vs passage-only" in format_paired(list(rows.values()), "strict")


def test_no_reference_condition_gives_no_paired_table():
    r = KnowledgeResult(["implications"])
    r.answers.append({"condition": "implications", "seed": 0, "doc_id": "d0", "qid": "q", "strict": 1.0})
    assert paired_table(r, "strict") == []
