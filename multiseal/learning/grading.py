"""Grading closed-book answers against a gold answer: SQuAD exact match and token F1, and a strict
first-sentence match that refuses replies hedging over several candidates.

The SEAL paper grades with an LLM judge (GPT-4.1: yes/no given question, gold and answer); multiseal
must run offline, so its graders are string-based. Every grader has the same signature,
``fn(prediction, gold, question) -> float`` in [0, 1]; ``question`` is unused by the string graders
but lets a judge take its place. Adding a grader, for instance a local LLM judge, is one function::

    from multiseal.learning.grading import GRADERS

    @GRADERS.register("judge")
    def judge(prediction: str, gold: str, question: str) -> float:
        verdict = my_local_model.ask(f"Question: {question}\\nGold: {gold}\\nAnswer: {prediction}\\n"
                                     "Is the answer correct? yes/no")
        return 1.0 if verdict.strip().lower().startswith("yes") else 0.0

after which ``grade_all`` reports it next to ``em``, ``f1`` and ``strict``.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence

from multiseal.registry import Registry

Grader = Callable[[str, str, str], float]

GRADERS: Registry[Grader] = Registry("grader")

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


# --------------------------------------------------------------------------------------------
# SQuAD v1.1/v2.0 official metrics


def normalize_answer(s: str) -> str:
    """SQuAD normalisation: lowercase, drop ASCII punctuation, drop articles (a/an/the), collapse
    whitespace. Identical to the official SQuAD evaluation script, so numbers are comparable."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def exact_match(prediction: str, gold: str) -> float:
    """SQuAD exact match: 1.0 if the normalised prediction equals the normalised gold, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD token F1 over normalised tokens (bag-of-words overlap).

    ``F1 = 2 P R / (P + R)`` with ``P = |common| / |pred tokens|``, ``R = |common| / |gold tokens|``
    and ``common`` the multiset intersection. As in SQuAD v2.0, if either side normalises to no
    tokens the score is 1.0 when both are empty and 0.0 otherwise.
    """
    pred_toks = normalize_answer(prediction).split()
    gold_toks = normalize_answer(gold).split()
    if not pred_toks or not gold_toks:
        return float(pred_toks == gold_toks)
    num_same = sum((Counter(pred_toks) & Counter(gold_toks)).values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_toks)
    recall = num_same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


# --------------------------------------------------------------------------------------------
# Strict first-sentence match

# Words whose trailing "." is not a sentence end (compared lowercased, without the dot).
_ABBREVIATIONS = frozenset(
    "st mr mrs ms dr prof jr sr vs etc eg ie mt ft inc ltd co corp gen col lt sgt capt rev hon "
    "fig approx ca cf al dept est univ ave blvd rd jan feb mar apr jun jul aug sep sept oct nov dec".split()
)
# A sentence end: one of . ! ? (not an ellipsis) possibly followed by closing quotes or brackets,
# then whitespace or the end of the text.
_SENT_END = re.compile(r"(?<!\.)[.!?](?!\.)[\"'”’)\]]*(?=\s|$)")
# Words and separators of a sentence. Commas and slashes between digits stay inside a word (1,000 1/2).
_LEX = re.compile(r"(?P<word>(?:[^\s,;/|&]|(?<=\d)[,/](?=\d))+)|(?P<sep>[,;/|&])")
# Capitalised words that open clauses rather than name a candidate.
_NOT_NAMES = frozenset(
    "i it its this that these those there here he she they we you his her their our your my "
    "yes no well so but also maybe perhaps possibly probably likely either both neither then "
    "answer in on at of by for from to with as is was were are be the a an".split()
)
# Filler words skipped when asking whether an item starts with a name ("maybe Karsk").
_FILLERS = frozenset("a an the maybe perhaps possibly probably likely either also even just".split())
# Fillers that mark an item as an alternative ("Brindemoor, maybe Karsk").
_HEDGES = frozenset("maybe perhaps possibly probably likely".split())


def _is_abbreviation(text: str, dot: int) -> bool:
    """True if the '.' at ``text[dot]`` ends an abbreviation or an initial ("St.", "J.", "U.S.")."""
    m = re.search(r"[\w.]+$", text[:dot])
    if not m:
        return False
    word = m.group(0).lower()
    return (
        word.replace(".", "") in _ABBREVIATIONS
        or (len(word) == 1 and word.isalpha())
        or re.fullmatch(r"(?:[a-z]\.)+[a-z]", word) is not None
    )


def first_sentence(reply: str, protect: str = "") -> str:
    """The first non-empty sentence of ``reply``.

    A sentence ends at a newline, or at ``.``, ``!`` or ``?`` followed by whitespace or the end of
    the text, except: an ellipsis ("..."), the dot of a known abbreviation ("St.", "Dr.", "e.g.")
    or of an initial ("J. K. Rowling", "U.S."), and any end mark inside an occurrence of
    ``protect`` (case-insensitive; the gold answer, so that "St. Louis" or "Acme Inc. Ltd" is never
    cut). Decimals ("3.5") never split because no whitespace follows their dot.
    """
    protected: list[tuple[int, int]] = []
    if protect.strip():
        needle, hay = protect.strip().lower(), reply.lower()
        start = hay.find(needle)
        while start >= 0:
            protected.append((start, start + len(needle)))
            start = hay.find(needle, start + 1)
    for m_line in re.finditer(r"[^\r\n]+", reply):
        line, offset = m_line.group(0), m_line.start()
        for m in _SENT_END.finditer(line):
            pos = m.start()
            if line[pos] == "." and _is_abbreviation(line, pos):
                continue
            if any(s <= offset + pos < e for s, e in protected):
                continue
            line = line[: m.end()]
            break
        if line.strip():
            return line.strip()
    return ""


def _lex(sentence: str) -> list[tuple[str, str, list[str]]]:
    """Split a sentence into ('word', raw, normalised words) and ('sep', char, []) tokens.

    The words "and" and "or" become separators too. Words that normalise to nothing (articles,
    bare punctuation) are dropped.
    """
    out: list[tuple[str, str, list[str]]] = []
    for m in _LEX.finditer(sentence):
        if m.group("sep"):
            out.append(("sep", m.group("sep"), []))
            continue
        raw = m.group("word")
        norm = normalize_answer(raw).split()
        if norm in (["and"], ["or"]):
            out.append(("sep", norm[0], []))
        elif norm:
            out.append(("word", raw, norm))
    return out


def _gold_words(gold: str) -> list[str]:
    """The gold answer's normalised words, lexed the same way as a reply (separators dropped)."""
    words: list[str] = []
    for m in _LEX.finditer(gold):
        if m.group("word"):
            words.extend(normalize_answer(m.group("word")).split())
    return words


def _find_gold(tokens: list[tuple[str, str, list[str]]], gold: list[str]) -> list[tuple[int, int]]:
    """Token index spans [i, j] (inclusive) where the gold words appear contiguously.

    Separators between gold words are allowed inside a span (gold "Tom or Jerry", "AT&T").
    """
    flat: list[tuple[str, int]] = []  # (normalised word or sep marker, token index)
    for i, (kind, raw, norm) in enumerate(tokens):
        if kind == "sep":
            flat.append((raw if raw in ("and", "or") else "", i))
        else:
            flat.extend((w, i) for w in norm)
    words = [(w, i) for w, i in flat if w]
    spans = []
    n = len(gold)
    for k in range(len(words) - n + 1):
        if [w for w, _ in words[k : k + n]] == gold:
            spans.append((words[k][1], words[k + n - 1][1]))
    return spans


def _name_like(raw: str) -> bool:
    """A word that could be a candidate answer: a capitalised word (not a clause opener) or a number."""
    core = raw.strip(string.punctuation + "“”‘’")
    if not core:
        return False
    if any(ch.isdigit() for ch in core):
        return True
    return core[0].isupper() and core.lower() not in _NOT_NAMES


def lists_candidates(sentence: str, gold: str) -> bool:
    """True if ``sentence`` offers several candidate answers besides the gold.

    The sentence is lexed into words and separators (``, ; / | &`` and the words ``and``/``or``);
    the gold's occurrences (as normalised words) are masked as one item ``G`` so that an "or", a
    comma or a slash inside the gold answer itself never counts. An *item* is a maximal run of words
    between separators. The sentence lists several candidates if any of:

    1. the word "or" appears outside the gold ("Brindemoor or maybe Karsk", "either X or Y",
       "and/or"; also "Brindemoor, or so they say" — strict is strict);
    2. a "/" or "|" sits right next to the gold ("Brindemoor / Karsk");
    3. the gold ends its item and is followed, or starts its item (after fillers such as "maybe")
       and is preceded, by a run of further items each starting with a name-like word (capitalised
       word that is not a clause opener such as "It" or "Yes", or a number, after fillers), joined
       by ``, ; &`` or "and" — unless the run is exactly one other item joined by a single comma
       and not opened by a hedge (maybe, perhaps, possibly, probably, likely), which reads as an
       apposition ("Paris, France"; but "Brindemoor, maybe Karsk" lists two).

    So "Brindemoor, Karsk, Tellow", "It was Brindemoor and Karsk", "3, 4 and 5" list candidates;
    "founded in Brindemoor and funded by Karsk", "Brindemoor, a city in the north", "In 1850,
    Brindemoor was founded" and "Brindemoor, Karsk" (two items, one comma) don't.
    """
    tokens = _lex(sentence)
    spans = _find_gold(tokens, _gold_words(gold))
    if not spans:
        return False
    in_gold = [False] * len(tokens)
    for i, j in spans:
        for k in range(i, j + 1):
            in_gold[k] = True
    # Collapse to a sequence of ('G'|'word'|'sep', raw) with each gold span as one 'G'.
    seq: list[tuple[str, str]] = []
    for k, (kind, raw, _) in enumerate(tokens):
        if in_gold[k]:
            if not (seq and seq[-1][0] == "G" and in_gold[k - 1]):
                seq.append(("G", raw))
        else:
            seq.append((kind, raw))
    if any(kind == "sep" and raw == "or" for kind, raw in seq):  # rule 1
        return True
    # Group into items separated by runs of separators.
    items: list[list[tuple[str, str]]] = [[]]
    seps: list[list[str]] = []  # seps[i] joins items[i] and items[i+1]
    for kind, raw in seq:
        if kind == "sep":
            if items[-1]:
                items.append([])
                seps.append([raw])
            elif seps:
                seps[-1].append(raw)
        else:
            items[-1].append((kind, raw))
    if not items[-1]:
        items.pop()
    seps = seps[: max(len(items) - 1, 0)]

    def first_core(item: list[tuple[str, str]]) -> tuple[str, str]:
        """The item's first element that is not a filler word ("maybe", "the")."""
        for kind, raw in item:
            if not (kind == "word" and normalize_answer(raw) in _FILLERS):
                return kind, raw
        return "", ""

    def starts_with_hedge(item: list[tuple[str, str]]) -> bool:
        kind, raw = item[0]
        return kind == "word" and normalize_answer(raw) in _HEDGES

    def starts_with_name(item: list[tuple[str, str]]) -> bool:
        kind, raw = first_core(item)
        return kind == "word" and _name_like(raw)

    for g, item in enumerate(items):
        if not any(kind == "G" for kind, _ in item):
            continue
        ends_with_g = item[-1][0] == "G"
        starts_with_g = first_core(item)[0] == "G"
        # rule 2: a slash or bar right next to the gold
        if ends_with_g and g < len(seps) and ({"/", "|"} & set(seps[g])):
            return True
        if starts_with_g and g > 0 and ({"/", "|"} & set(seps[g - 1])):
            return True
        # rule 3: a run of name-like items joined to the gold by , ; & and
        joins: list[list[str]] = []
        others: list[list[tuple[str, str]]] = []
        if ends_with_g:
            k = g
            while k < len(seps) and starts_with_name(items[k + 1]):
                joins.append(seps[k])
                others.append(items[k + 1])
                k += 1
        if starts_with_g:
            k = g - 1
            while k >= 0 and starts_with_name(items[k]):
                joins.append(seps[k])
                others.append(items[k])
                k -= 1
        apposition = len(joins) == 1 and joins[0] == [","] and not starts_with_hedge(others[0])
        if joins and not apposition:
            return True
    return False


def strict_match(prediction: str, gold: str) -> float:
    """1.0 if the normalised gold appears, as whole consecutive words, in the first sentence of the
    reply and that sentence does not list several candidates (see :func:`lists_candidates`).

    Catches what token-level EM/F1 miss in a chatty model's reply: "The institute was founded in
    Brindemoor." scores 1, "Brindemoor, Karsk or Tellow" and "It was Brindemoor or maybe Karsk."
    score 0; only the first sentence counts, so "Paris. Or London." scores 1 for gold "Paris" and
    "I am not sure.\\nParis." scores 0. A gold answer that normalises to nothing (e.g. "the")
    falls back to exact match.
    """
    gold_words = _gold_words(gold)
    if not gold_words:
        return exact_match(prediction, gold)
    sentence = first_sentence(prediction, protect=gold)
    if not _find_gold(_lex(sentence), gold_words):
        return 0.0
    return 0.0 if lists_candidates(sentence, gold) else 1.0


# --------------------------------------------------------------------------------------------
# Registry


@GRADERS.register("em")
def _grade_em(prediction: str, gold: str, question: str) -> float:
    """SQuAD exact match (``question`` unused)."""
    return exact_match(prediction, gold)


@GRADERS.register("f1")
def _grade_f1(prediction: str, gold: str, question: str) -> float:
    """SQuAD token F1 (``question`` unused)."""
    return token_f1(prediction, gold)


@GRADERS.register("strict")
def _grade_strict(prediction: str, gold: str, question: str) -> float:
    """Strict first-sentence match (``question`` unused)."""
    return strict_match(prediction, gold)


def grade_all(prediction: str, gold: str, question: str, names: Sequence[str] | None = None) -> dict[str, float]:
    """Scores of every registered grader (or only ``names``, in that order), keyed by grader name."""
    chosen = GRADERS.names() if names is None else list(names)
    return {name: float(GRADERS.get(name)(prediction, gold, question)) for name in chosen}


def check_grader(name: str) -> None:
    """Conformance check for a registered grader (raises AssertionError): a float in [0, 1] for any
    reply, 1 for the gold answer itself, 0 for an empty reply, and the same grade twice."""
    grade = GRADERS.get(name)
    question, gold = "Where was the checker born?", "Selsavwick"
    for reply in ("Selsavwick", "selsavwick.", "In Selsavwick, near the market.", "", "Demirgate", "1444"):
        g = grade(reply, gold, question)
        assert isinstance(g, float) and 0.0 <= g <= 1.0, f"grader {name!r}: {g!r} for {reply!r}"
        assert grade(reply, gold, question) == g, f"grader {name!r} is not deterministic"
    assert grade(gold, gold, question) == 1.0, f"grader {name!r}: the gold answer does not score 1"
    assert grade("", gold, question) == 0.0, f"grader {name!r}: an empty reply scores above 0"
