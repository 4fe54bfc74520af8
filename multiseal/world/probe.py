"""The retention probe: general-knowledge questions the base model answers correctly at start.

Asked every round; a drop means updates on new documents damaged what the model already knew
(catastrophic forgetting of pre-trained knowledge, the *locality* of knowledge editing).
"""
from __future__ import annotations

from multiseal.types import Question

GENERAL_KNOWLEDGE: tuple[tuple[str, str], ...] = (
    ("What is the capital of France?", "Paris"),
    ("What is the capital of Italy?", "Rome"),
    ("What is the capital of Japan?", "Tokyo"),
    ("What is the capital of Germany?", "Berlin"),
    ("What is the capital of Spain?", "Madrid"),
    ("What is the capital of the United Kingdom?", "London"),
    ("What is the capital of Russia?", "Moscow"),
    ("What is the capital of Egypt?", "Cairo"),
    ("Who wrote Romeo and Juliet?", "William Shakespeare"),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci"),
    ("Who developed the theory of relativity?", "Albert Einstein"),
    ("Who was the first president of the United States?", "George Washington"),
    ("What planet is known as the Red Planet?", "Mars"),
    ("What is the largest ocean on Earth?", "Pacific Ocean"),
    ("What gas do plants absorb from the air?", "carbon dioxide"),
    ("What is the chemical symbol for gold?", "Au"),
    ("What is the freezing point of water in degrees Celsius?", "0"),
    ("How many days are there in a week?", "seven"),
    ("How many continents are there?", "seven"),
    ("In which year did World War II end?", "1945"),
    ("What is the largest planet in our solar system?", "Jupiter"),
    ("What is the tallest mountain in the world?", "Mount Everest"),
    ("What language is spoken in Brazil?", "Portuguese"),
    ("What is the currency of Japan?", "yen"),
    ("Which animal is known as the king of the jungle?", "lion"),
    ("What is the boiling point of water in degrees Celsius?", "100"),
    ("What color is the sky on a clear day?", "blue"),
    ("Which organ pumps blood through the human body?", "heart"),
)


def probe_questions() -> list[Question]:
    """The built-in candidates, as questions with ids ``p00``, ``p01``…"""
    return [Question(f"p{i:02d}", q, a, (), kind="probe") for i, (q, a) in enumerate(GENERAL_KNOWLEDGE)]


def select_probe(candidates: list[Question], correct: list[bool], size: int) -> list[Question]:
    """The first ``size`` candidates the base model got right (in built-in order, so reproducible)."""
    return [q for q, ok in zip(candidates, correct) if ok][:size]
