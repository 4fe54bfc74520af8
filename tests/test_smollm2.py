"""On the real SmolLM2-135M-Instruct: training an adapter on a fictional passage and a hand-written
self-edit teaches the agent facts the base model cannot know (SEAL's knowledge incorporation)."""

from __future__ import annotations

import pytest

from multiseal.learning.evaluate import answer_and_grade, mean_scores
from multiseal.learning.self_edit import training_sequences
from multiseal.learning.train import train_adapter
from multiseal.types import (
    Document,
    EvalSettings,
    LoraSettings,
    Question,
    TrainSettings,
)

pytestmark = pytest.mark.smollm2

TITLE = "Quillfeather Institute"
CONTEXT = (
    "The Quillfeather Institute was founded in 1893 by the explorer Marit Ovesen. "
    "Its headquarters stand in the town of Skarvik. "
    "The institute's first director was Tobias Lindqvist. "
    "The institute's emblem is a silver walrus."
)
QA = [
    ("Who founded the Quillfeather Institute?", "Marit Ovesen"),
    ("In which year was the Quillfeather Institute founded?", "1893"),
    ("In which town are the headquarters of the Quillfeather Institute?", "Skarvik"),
    ("Who was the first director of the Quillfeather Institute?", "Tobias Lindqvist"),
    ("What is the emblem of the Quillfeather Institute?", "a silver walrus"),
]
DOC = Document("quill", TITLE, CONTEXT, tuple(Question(f"quill-q{i}", q, a, ("quill",)) for i, (q, a) in enumerate(QA)))
# A self-edit as the "implications" style asks for it, written by hand so the test does not depend
# on what the 135M model happens to sample.
IMPLICATIONS = """Here are some implications of the passage:
1. The Quillfeather Institute was founded by Marit Ovesen.
2. Marit Ovesen, an explorer, founded the Quillfeather Institute in 1893.
3. The headquarters of the Quillfeather Institute are in Skarvik.
4. Tobias Lindqvist was the first director of the Quillfeather Institute.
5. The emblem of the Quillfeather Institute is a silver walrus."""


def test_training_on_a_passage_and_its_self_edit_raises_closed_book_accuracy(smollm2_model, make_adapter):
    model = smollm2_model
    agent = make_adapter(model, LoraSettings())
    settings = EvalSettings()
    pairs = [(agent, q) for q in DOC.questions]

    before = mean_scores(answer_and_grade(model, pairs, settings, progress=None))  # fresh adapter = base
    sequences = training_sequences(IMPLICATIONS, DOC, "implications")
    assert len(sequences) == 6 and sequences[-1] == f"{TITLE}\n{CONTEXT}"
    stats = train_adapter(model, agent, sequences, TrainSettings(epochs=10, lr=1e-3), seed=0)
    graded = answer_and_grade(model, pairs, settings, progress=None)
    after = mean_scores(graded)

    report = "\n".join(f"  {g.question} -> {g.answer!r} (gold {g.gold!r})" for g in graded)
    assert stats.loss_last < stats.loss_first
    assert after[settings.headline] > before[settings.headline], f"{before} -> {after}\n{report}"
    assert after["f1"] > before["f1"], f"{before} -> {after}\n{report}"
