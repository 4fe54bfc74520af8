"""Grading: SQuAD EM/F1 on known cases, the strict first-sentence grader, the grader registry."""

from __future__ import annotations

import pytest

from multiseal.learning.grading import (
    GRADERS,
    exact_match,
    first_sentence,
    grade_all,
    lists_candidates,
    normalize_answer,
    strict_match,
    token_f1,
)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("The Eiffel Tower!", "eiffel tower"),
        ("  a   cat, an  owl and THE dog. ", "cat owl and dog"),
        ("state-of-the-art", "stateoftheart"),
        ("Theatre", "theatre"),  # "the" only as a whole word
        ("", ""),
    ],
)
def test_normalize_answer_is_squad_normalisation(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


@pytest.mark.parametrize(
    "pred, gold, em",
    [
        ("Denver Broncos", "Denver Broncos", 1.0),
        ("the Denver Broncos.", "Denver Broncos", 1.0),
        ("DENVER  broncos", "denver broncos", 1.0),
        ("Denver", "Denver Broncos", 0.0),
        ("It was the Denver Broncos", "Denver Broncos", 0.0),
    ],
)
def test_exact_match_squad_cases(pred: str, gold: str, em: float) -> None:
    assert exact_match(pred, gold) == em


@pytest.mark.parametrize(
    "pred, gold, f1",
    [
        ("Denver Broncos", "Denver Broncos", 1.0),
        ("Denver", "Denver Broncos", 2 * 1.0 * 0.5 / 1.5),  # P=1, R=1/2
        ("the Denver Broncos won", "Denver Broncos", 2 * (2 / 3) * 1.0 / (2 / 3 + 1.0)),  # P=2/3, R=1
        ("Carolina Panthers", "Denver Broncos", 0.0),
        ("a a b", "a b b", 2 / 3),  # articles vanish: [b] vs [b, b] → P=1, R=1/2
        ("x x y", "x y y", 2 * (2 / 3) * (2 / 3) / (4 / 3)),  # multiset overlap {x, y} = 2
        ("the", "the", 1.0),  # both empty after normalisation (SQuAD v2 rule)
        ("the", "Denver", 0.0),
    ],
)
def test_token_f1_squad_cases(pred: str, gold: str, f1: float) -> None:
    assert token_f1(pred, gold) == pytest.approx(f1)


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("Paris. Or London.", "Paris."),
        ("It was founded in 3.5 hours. Then more.", "It was founded in 3.5 hours."),
        ("He lived on St. Mary Street. Later elsewhere.", "He lived on St. Mary Street."),
        ("J. K. Rowling wrote it. Yes.", "J. K. Rowling wrote it."),
        ("Made in the U.S. and sold. More.", "Made in the U.S. and sold."),
        ("Brindemoor... or maybe Karsk. Sure.", "Brindemoor... or maybe Karsk."),
        ("\n\n  First line\nsecond line", "First line"),
        ("Really? Maybe.", "Really?"),
        ('He said "Karsk." Then left.', 'He said "Karsk."'),
        ("", ""),
    ],
)
def test_first_sentence(reply: str, expected: str) -> None:
    assert first_sentence(reply) == expected


def test_first_sentence_never_cuts_inside_the_gold() -> None:
    reply = "Acme Co. Holdings built it. Later Karsk."
    assert first_sentence(reply) == "Acme Co. Holdings built it."  # "Co." is an abbreviation
    reply = "It is Xy. Zed Labs. Then more."
    assert first_sentence(reply) == "It is Xy."
    assert first_sentence(reply, protect="Xy. Zed") == "It is Xy. Zed Labs."


@pytest.mark.parametrize(
    "reply, gold, score",
    [
        # the brief's cases
        ("Brindemoor, Karsk or Tellow", "Brindemoor", 0.0),
        ("It was Brindemoor or maybe Karsk.", "Brindemoor", 0.0),
        ("The institute was founded in Brindemoor.", "Brindemoor", 1.0),
        ("Paris. Or London.", "Paris", 1.0),
        # gold must be in the first sentence, as whole words
        ("I am not sure.\nBrindemoor.", "Brindemoor", 0.0),
        ("Brindemoorian traders", "Brindemoor", 0.0),
        ("the brindemoor", "Brindemoor", 1.0),
        ("It was the Denver Broncos.", "Denver Broncos", 1.0),
        ("Denver won.", "Denver Broncos", 0.0),
        # enumerations
        ("Brindemoor, Karsk, Tellow", "Brindemoor", 0.0),
        ("Karsk, Tellow and Brindemoor.", "Brindemoor", 0.0),
        ("It was Brindemoor and Karsk.", "Brindemoor", 0.0),
        ("Brindemoor; Karsk", "Brindemoor", 0.0),
        ("Brindemoor / Karsk", "Brindemoor", 0.0),
        ("Brindemoor/Karsk", "Brindemoor", 0.0),
        ("Either Brindemoor or Karsk.", "Brindemoor", 0.0),
        ("In 1850, 1851 and 1852.", "1850", 0.0),
        ("Probably 3, maybe 4 and 5.", "3", 0.0),
        ("Maybe Brindemoor, perhaps Karsk.", "Brindemoor", 0.0),
        ("Brindemoor & Karsk", "Brindemoor", 0.0),
        ("Brindemoor, not Karsk.", "Brindemoor", 1.0),
        ("Brindemoor, Karsk.", "Brindemoor", 1.0),  # two items, one comma: read as an apposition
        # not enumerations
        ("Paris, France.", "Paris", 1.0),
        ("Brindemoor, a city in the north.", "Brindemoor", 1.0),
        ("In 1850, Brindemoor was founded.", "Brindemoor", 1.0),
        ("The founder, John Smith, lived in Brindemoor.", "Brindemoor", 1.0),
        ("It was founded in Brindemoor and funded by Karsk.", "Brindemoor", 1.0),
        ("Well, Brindemoor, I think.", "Brindemoor", 1.0),
        ("Brindemoor and its surroundings.", "Brindemoor", 1.0),
        ("The car reached 120 km/h.", "120", 1.0),
        ("About 1,000 people.", "1,000", 1.0),
        # a gold answer that itself contains "or", commas, slashes or abbreviations
        ("Tom or Jerry, the cartoon.", "Tom or Jerry", 1.0),
        ("It was Smith, Jones and Co.", "Smith, Jones and Co.", 1.0),
        ("It was AT&T.", "AT&T", 1.0),
        ("The team moved to St. Louis. Then Karsk.", "St. Louis", 1.0),
        ("It moved to St. Louis or Karsk.", "St. Louis", 0.0),
        ("The ratio was 1/2.", "1/2", 1.0),
        # degenerate
        ("", "Brindemoor", 0.0),
        ("the", "the", 1.0),  # gold normalises to nothing → exact match
    ],
)
def test_strict_match(reply: str, gold: str, score: float) -> None:
    assert strict_match(reply, gold) == score


def test_lists_candidates_ignores_sentences_without_the_gold() -> None:
    assert not lists_candidates("Karsk or Tellow", "Brindemoor")
    assert lists_candidates("Karsk or Brindemoor", "Brindemoor")


def test_registry_has_the_string_graders() -> None:
    assert {"em", "f1", "strict"} <= set(GRADERS.names())


def test_grade_all_reports_every_grader() -> None:
    scores = grade_all("The Denver Broncos won it.", "Denver Broncos", "Who won Super Bowl 50?")
    assert scores["em"] == 0.0
    assert scores["f1"] == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    assert scores["strict"] == 1.0
    assert set(scores) == set(GRADERS.names())
    assert grade_all("x", "x", "q", names=["strict", "em"]) == {"strict": 1.0, "em": 1.0}
    with pytest.raises(KeyError, match="unknown grader 'judge'"):
        grade_all("x", "x", "q", names=["judge"])


def test_a_judge_with_the_same_signature_fits_the_registry() -> None:
    seen: list[str] = []

    def judge(prediction: str, gold: str, question: str) -> float:
        seen.append(question)
        return 1.0 if gold.lower() in prediction.lower() else 0.0

    name = "test-judge"
    GRADERS.register(name, judge)
    try:
        assert grade_all("brindemoor", "Brindemoor", "Where?")[name] == 1.0
        assert seen == ["Where?"]
    finally:
        GRADERS._items.pop(name)  # keep the shared registry clean for other tests
