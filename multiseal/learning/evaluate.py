"""Closed-book evaluation: questions asked without the passage, greedy decoding, short answers.

All (adapter, question) pairs of a round go through the shared base in the same batches (peft's
mixed-adapter inference), instead of one pass per agent.
"""

from __future__ import annotations

from collections.abc import Sequence

from multiseal.learning.grading import grade_all
from multiseal.types import EvalSettings, Graded, Question

QA_INSTRUCTION = "Answer the question with a short phrase, without explanation."


def question_prompt(model, question: Question) -> str:
    """The closed-book prompt: the question alone, with a request for a short answer."""
    return model.prompt(f"{QA_INSTRUCTION}\nQuestion: {question.question}")


def answer_and_grade(
    model,  # multiseal.learning.model.SharedModel
    pairs: Sequence[tuple[str | None, Question]],
    settings: EvalSettings,
    progress: str | None = "answering",
) -> list[Graded]:
    """Answer every (adapter, question) pair in shared batches and grade with every grader."""
    prompts = [question_prompt(model, q) for _, q in pairs]
    answers = model.generate(
        prompts,
        [a for a, _ in pairs],
        max_new_tokens=settings.max_new_tokens,
        temperature=0.0,
        batch_size=settings.batch_size,
        progress=progress,
    )
    return [
        Graded(a, q.qid, q.question, q.answer, ans, grade_all(ans, q.answer, q.question))
        for (a, q), ans in zip(pairs, answers)
    ]


def mean_scores(graded: Sequence[Graded]) -> dict[str, float]:
    """Mean of each grader over ``graded`` (empty → empty dict)."""
    if not graded:
        return {}
    keys = graded[0].scores
    return {k: sum(g.scores[k] for g in graded) / len(graded) for k in keys}
