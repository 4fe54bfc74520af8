"""Facts as first-class objects: which facts a note states, and how facts travel, are learnt and go wrong.

Everything here is computed from what the round loop already has (the notes, the notes each agent
trained on, every graded answer, the graph): no model call. The definitions (also in
``docs/controls.md``):

* **units** of a note: its training sequences, each without its leading title line, cut into
  sentences (after ``.``, ``!`` or ``;`` followed by white space, and at line breaks; a line that
  starts with ``Answer:``/``A:`` stays with the question before it). Every sequence of a note starts
  with its document's title, which ties each of its lines to that entity in training, so every unit
  counts as naming the document's entity. Text is compared as lowercased alphanumeric tokens; "A
  appears in B" means A's tokens are a contiguous run of B's tokens.
* A fact of the note's document is stated **correctly** when its value appears in a unit.
* Otherwise it is stated **wrongly** (a hallucination) when a unit holds a cue of the fact's relation
  (``RELATIONS[relation].cues``: a token that starts with a cue stem) and *another value of the
  relation's type* (the closed tables ``CLOSED_VALUES``, or every value of that type in the world,
  document titles of persons and towns included). A value does not count when it contains, or is
  contained in, the gold value, when it is a true value of the fact's own entity (any relation), or
  when it is a true value of another entity that the unit names (a distinctive word of its name). The
  values found are *planted* by the note for that fact.
* Otherwise the fact is **omitted**.

Metrics (row ``t`` = after round ``t - 1``; a fact is *answered* by an agent when the headline
grade of the one single-fact question that asks it is >= 0.5; facts no question asks are left out
of every answer-based metric):

* ``note_fidelity`` (per agent, per round): correct facts / all facts, summed over the notes the
  agent wrote this round about documents with facts; ``note_hallucination``: wrong facts / all facts.
* *received-only* facts of agent a: the asked facts of documents a never held itself (``own``) but
  adapted on at least one note about. A fact *arrived* when some note a trained on states it correctly.
  ``transfer_efficiency`` = arrived and answered / arrived; ``writer_miss`` = not arrived and not
  answered / received-only; ``learner_miss`` = arrived and not answered / received-only.
* ``pop.fact_diffusion.d<k>``: share of (agent, asked fact of an introduced document) pairs answered,
  among the pairs at graph distance k from the document's first recipient (``unreachable``: no path).
* ``pop.misinformation``: share of those (agent, fact) pairs whose answer is wrong and contains a value
  planted for that fact by a note the agent trained on and someone else wrote;
  ``pop.misinformation.count``: their number.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from multiseal.metric_table import select
from multiseal.types import Fact, Note, World
from multiseal.world.vocabulary import (
    ARTEFACT_KINDS,
    CLOSED_VALUES,
    ORG_KINDS,
    RELATIONS,
)

# Per-agent metric names added by ``fact_metrics``, in a stable order (the metric table's ``facts`` group).
FACT_METRIC_NAMES: tuple[str, ...] = select(group="facts")
THRESHOLD = 0.5  # a headline grade at or above it answers the fact

Tokens = tuple[str, ...]
_TOKEN = re.compile(r"[a-z0-9]+")
_SENTENCE_END = re.compile(r"(?<=[.!;])\s+")
_ANSWER_LINE = re.compile(r"^\s*(?:answer|a)\s*\d*\s*:", re.IGNORECASE)
_GENERIC = frozenset({"the", *(k.lower() for k in ORG_KINDS), *(k.lower() for k in ARTEFACT_KINDS)})


def tokens(text: str) -> Tokens:
    """Lowercased alphanumeric tokens."""
    return tuple(_TOKEN.findall(text.lower()))


def appears(needle: Tokens, hay: Tokens) -> bool:
    """Whether ``needle`` is a contiguous run of ``hay`` (never for an empty needle)."""
    n = len(needle)
    return n > 0 and any(hay[i : i + n] == needle for i in range(len(hay) - n + 1))


def note_units(sequences: Sequence[str], title: str) -> list[Tokens]:
    """A note's units (see the module docstring), as token tuples."""
    out: list[Tokens] = []
    for seq in sequences:
        body = seq[len(title) + 1 :] if seq.startswith(title + "\n") else seq
        lines: list[str] = []
        for line in body.splitlines():
            if not line.strip():
                continue
            if lines and _ANSWER_LINE.match(line):
                lines[-1] += " " + line
            else:
                lines.append(line)
        for line in lines:
            out.extend(t for t in (tokens(s) for s in _SENTENCE_END.split(line)) if t)
    return out


@dataclass(frozen=True)
class NoteFacts:
    """Fact ids of a note's document it states correctly, wrongly and not at all, and per wrongly
    stated fact the values it plants."""

    correct: tuple[str, ...] = ()
    wrong: tuple[str, ...] = ()
    omitted: tuple[str, ...] = ()
    planted: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


class FactIndex:
    """A world's facts, the questions that ask them and the value vocabulary per type; scores notes
    (:meth:`score`, cached per note)."""

    def __init__(self, world: World):
        self.facts: dict[str, Fact] = {f.fact_id: f for f in world.facts}
        self.by_doc: dict[str, tuple[Fact, ...]] = {d.doc_id: d.facts for d in world.documents}
        self.titles = {d.doc_id: d.title for d in world.documents}
        self.question: dict[str, str] = {}  # fact id -> the single-fact question that asks it
        for d in world.documents:
            for q in d.questions:
                if len(q.fact_ids) == 1:
                    self.question.setdefault(q.fact_ids[0], q.qid)
        values: dict[str, set[str]] = {t: set(v) for t, v in CLOSED_VALUES.items()}
        self._owners: dict[Tokens, set[str]] = {}  # value -> entities it is a true value of
        for f in world.facts:
            if f.relation in RELATIONS:
                values.setdefault(RELATIONS[f.relation].type, set()).add(f.value)
            self._owners.setdefault(tokens(f.value), set()).add(f.entity)
        for d in world.documents:  # the entities themselves: persons and towns are values too
            relations = {f.relation for f in d.facts}
            for marker, kind in (("birth_year", "person"), ("mayor", "town")):
                if marker in relations:
                    values.setdefault(kind, set()).add(d.title)
        self._values = {kind: sorted(vals) for kind, vals in values.items()}
        self._first: dict[str, dict[str, list[tuple[Tokens, str]]]] = {}
        for kind, vals in values.items():
            table = self._first.setdefault(kind, {})
            for v in sorted(vals):
                t = tokens(v)
                if t:
                    table.setdefault(t[0], []).append((t, v))
        self._cache: dict[Note, NoteFacts] = {}

    def __getstate__(self) -> dict:
        """Picklable without the cache (scores are recomputed on demand)."""
        return {**vars(self), "_cache": {}}

    def __bool__(self) -> bool:
        return bool(self.facts)

    def asked(self) -> list[Fact]:
        """The facts some single-fact question asks, in world order."""
        return [f for f in self.facts.values() if f.fact_id in self.question]

    def alternatives(self, fact: Fact) -> list[str]:
        """Plausible false values for ``fact``: values of its relation's type in this world (or its closed
        table) that the scorer would count as wrong for it — not the gold value, not containing or
        contained in it, not a true value of the fact's own entity, not the entity itself."""
        rel = RELATIONS.get(fact.relation)
        if rel is None:
            return []
        gold = tokens(fact.value)
        return [
            v
            for v in self._values.get(rel.type, [])
            if (t := tokens(v))
            and not appears(t, gold)
            and not appears(gold, t)
            and fact.entity not in self._owners.get(t, set())
            and v != fact.entity
        ]

    def _values_in(self, kind: str, unit: Tokens) -> list[tuple[Tokens, str]]:
        table = self._first.get(kind, {})
        return [(t, v) for i, tok in enumerate(unit) for t, v in table.get(tok, ()) if unit[i : i + len(t)] == t]

    @staticmethod
    def _named(entity: str, unit: set[str]) -> bool:
        return any(t in unit for t in tokens(entity) if t not in _GENERIC)

    def score(self, note: Note) -> NoteFacts:
        """Which facts of the note's document it states correctly, wrongly, or omits (module docstring);
        a note about a document without facts (a distractor, a SQuAD passage) states none."""
        if note in self._cache:
            return self._cache[note]
        facts = self.by_doc.get(note.doc_id, ())
        units = note_units(note.sequences, self.titles.get(note.doc_id, "")) if facts else []
        sets = [set(u) for u in units]
        correct, wrong, omitted, planted = [], [], [], {}
        for f in facts:
            gold = tokens(f.value)
            if any(appears(gold, u) for u in units):
                correct.append(f.fact_id)
                continue
            rel, found = RELATIONS.get(f.relation), []
            for u, s in zip(units, sets):
                if rel is None or not any(tok.startswith(rel.cues) for tok in u):
                    continue
                for t, v in self._values_in(rel.type, u):
                    owners = self._owners.get(t, set())
                    if (
                        appears(t, gold)
                        or appears(gold, t)
                        or f.entity in owners
                        or v == f.entity
                        or any(self._named(o, s) for o in owners)
                    ):
                        continue
                    found.append(v)
            if found:
                wrong.append(f.fact_id)
                planted[f.fact_id] = tuple(dict.fromkeys(found))
            else:
                omitted.append(f.fact_id)
        result = NoteFacts(tuple(correct), tuple(wrong), tuple(omitted), planted)
        self._cache[note] = result
        return result


def _share(num: int, den: int) -> float:
    return num / den if den else math.nan


def fact_metrics(
    index: FactIndex,
    *,
    notes: Sequence[Note],
    trained: Sequence[Sequence[str]],
    notes_by_id: Mapping[str, Note],
    own: np.ndarray,
    introduced: np.ndarray,
    doc_index: Mapping[str, int],
    grades: Sequence[Mapping[str, float]],
    answers: Sequence[Mapping[str, str]],
    distance: np.ndarray,
) -> tuple[dict[int, dict[str, float]], dict[str, float]]:
    """The fact metrics of one row (module docstring): ``({agent: {name: value}}, {pop key: value})``.

    ``notes``: the notes written this round; ``trained[a]``: ids of every note agent a has adapted on
    so far; ``own`` (A, D): documents each agent held itself; ``introduced`` (D,): documents introduced
    by this row; ``grades[a]`` / ``answers[a]``: a's current headline grade / answer per question id;
    ``distance`` (A, D): hops from each document's first recipient (-1: unreachable).
    """
    n_agents = len(trained)
    asked = index.asked()
    per_agent: dict[int, dict[str, float]] = {}
    planted_for: list[dict[str, set[Tokens]]] = []
    for a in range(n_agents):
        stated = wrong = total = 0
        for n in notes:
            if n.author == a and index.by_doc.get(n.doc_id):
                s = index.score(n)
                stated, wrong = stated + len(s.correct), wrong + len(s.wrong)
                total += len(s.correct) + len(s.wrong) + len(s.omitted)
        arrived: set[str] = set()
        received: set[str] = set()
        planted: dict[str, set[Tokens]] = {}
        for nid in trained[a]:
            if nid not in notes_by_id or notes_by_id[nid].doc_id not in doc_index:
                continue
            n = notes_by_id[nid]
            s = index.score(n)
            arrived.update(s.correct)
            if not own[a, doc_index[n.doc_id]]:
                received.add(n.doc_id)
            if n.author != a:
                for fid, vals in s.planted.items():
                    planted.setdefault(fid, set()).update(tokens(v) for v in vals)
        planted_for.append(planted)
        reached = [f for f in asked if f.doc_id in received]
        answered = {f.fact_id for f in reached if grades[a].get(index.question[f.fact_id], math.nan) >= THRESHOLD}
        got = [f for f in reached if f.fact_id in arrived]
        per_agent[a] = {
            "note_fidelity": _share(stated, total),
            "note_hallucination": _share(wrong, total),
            "transfer_efficiency": _share(sum(f.fact_id in answered for f in got), len(got)),
            "writer_miss": _share(
                sum(f.fact_id not in arrived and f.fact_id not in answered for f in reached), len(reached)
            ),
            "learner_miss": _share(sum(f.fact_id not in answered for f in got), len(reached)),
        }
    by_distance: dict[int, list[float]] = {}
    misinformed = pairs = 0
    for f in asked:
        j = doc_index[f.doc_id]
        if not introduced[j]:
            continue
        qid = index.question[f.fact_id]
        for a in range(n_agents):
            grade = grades[a].get(qid, math.nan)
            if not math.isfinite(grade):
                continue
            pairs += 1
            by_distance.setdefault(int(distance[a, j]), []).append(float(grade >= THRESHOLD))
            if grade < THRESHOLD and planted_for[a].get(f.fact_id):
                said = tokens(answers[a].get(qid, ""))
                misinformed += any(appears(t, said) for t in planted_for[a][f.fact_id])
    population = {
        (f"pop.fact_diffusion.d{d}" if d >= 0 else "pop.fact_diffusion.unreachable"): float(np.mean(v))
        for d, v in sorted(by_distance.items())
    }
    population["pop.misinformation"] = _share(misinformed, pairs)
    population["pop.misinformation.count"] = float(misinformed)
    return per_agent, population


def fact_rows(
    index: FactIndex,
    rows: Sequence[Sequence[Mapping[str, float]]],
    introduced: np.ndarray,
    distances: Sequence[np.ndarray],
    doc_index: Mapping[str, int],
) -> list[dict]:
    """Per-fact diffusion, row by row: for every asked fact, the agents that answer it (grade >= 0.5)
    and each agent's distance from the document's first recipient. ``rows[t][a]``: agent a's grades at
    row t; ``introduced`` (T, D); ``distances[t]`` (A, D) at row t."""
    out = []
    for t, grades in enumerate(rows):
        for f in index.asked():
            j, qid = doc_index[f.doc_id], index.question[f.fact_id]
            out.append(
                {
                    "row": t,
                    "fact_id": f.fact_id,
                    "doc_id": f.doc_id,
                    "qid": qid,
                    "introduced": bool(introduced[t, j]),
                    "correct": [a for a, g in enumerate(grades) if g.get(qid, math.nan) >= THRESHOLD],
                    "distance": [int(d) for d in distances[t][:, j]],
                }
            )
    return out


def origins(
    index: FactIndex, note: Note, notes_by_id: Mapping[str, Note], memo: dict[str, dict] | None = None
) -> dict[tuple[str, str], int]:
    """``(fact id, value) -> hop`` for every wrong value ``note`` plants: the hop of the writer who first
    put that value in the chain of retellings behind it (``note.hops`` when none of its ``sources``
    planted the same value for the same fact; a note written from the passage has hop 0). ``memo``
    keeps the answers by note id across calls."""
    memo = {} if memo is None else memo
    if note.note_id in memo:
        return memo[note.note_id]
    memo[note.note_id] = {}  # a source never names a later note; this guards a hand-made cycle
    inherited: dict[tuple[str, str], int] = {}
    for sid in note.sources:
        if sid in notes_by_id:
            for key, h in origins(index, notes_by_id[sid], notes_by_id, memo).items():
                inherited[key] = min(h, inherited.get(key, h))
    memo[note.note_id] = {
        (fid, v): inherited.get((fid, v), note.hops)
        for fid, values in index.score(note).planted.items()
        for v in values
    }
    return memo[note.note_id]


def hop_metrics(
    index: FactIndex,
    *,
    received: Sequence[tuple[int, int, str, int]],
    notes_by_id: Mapping[str, Note],
    trained: Sequence[Sequence[str]],
    doc_index: Mapping[str, int],
    introduced: np.ndarray,
    grades: Sequence[Mapping[str, float]],
    answers: Sequence[Mapping[str, str]],
    distance: np.ndarray,
) -> dict[str, float]:
    """How facts fare hop by hop (``docs/controls.md``, "Knowledge that travels"), over every note
    received so far: ``received`` holds ``(round, agent, note id, hops)`` per delivery from another agent.

    * ``pop.hop.facts.h<k>``: share of the document's facts a note received at hop k states correctly
      (facts surviving to hop k), over the receptions at hop k of notes about documents with facts;
      ``pop.hop.wrong.h<k>``: stated wrongly; ``pop.hop.introduced.h<k>``: stated wrongly with a value
      first planted by the writer one hop before (new at this hop: always so at hop 1, never for a
      forwarded note past hop 1, and for a retold note when its sources did not plant it);
      ``pop.hop.notes.h<k>``: the receptions counted.
    * ``pop.misinformation.spread`` (and ``.count``): share of the (agent, asked fact of an introduced
      document) pairs whose answer is wrong and contains a value that a note the agent trained on (written
      by someone else) plants for that fact, first planted at a hop below the agent's graph distance from
      the document's first recipient: a falsehood that travelled past where it was made.
    """
    memo: dict[str, dict] = {}
    tallies: dict[int, list[int]] = {}  # hop -> [facts, correct, wrong, introduced, receptions]
    for _, _, nid, k in received:
        note = notes_by_id.get(nid)
        if note is None or not index.by_doc.get(note.doc_id):
            continue
        s = index.score(note)
        made_here = {fid for (fid, _), h in origins(index, note, notes_by_id, memo).items() if h == k - 1}
        t = tallies.setdefault(k, [0, 0, 0, 0, 0])
        t[0] += len(s.correct) + len(s.wrong) + len(s.omitted)
        t[1] += len(s.correct)
        t[2] += len(s.wrong)
        t[3] += sum(fid in made_here for fid in s.wrong)
        t[4] += 1
    out: dict[str, float] = {}
    for k, (facts, correct, wrong, new, n) in sorted(tallies.items()):
        out[f"pop.hop.facts.h{k}"] = _share(correct, facts)
        out[f"pop.hop.wrong.h{k}"] = _share(wrong, facts)
        out[f"pop.hop.introduced.h{k}"] = _share(new, facts)
        out[f"pop.hop.notes.h{k}"] = float(n)
    spread = pairs = 0
    for a in range(len(trained)):
        first: dict[str, dict[Tokens, int]] = {}  # fact -> planted value's tokens -> earliest hop
        for nid in trained[a]:
            note = notes_by_id.get(nid)
            if note is None or note.author == a or not index.by_doc.get(note.doc_id):
                continue
            for (fid, v), h in origins(index, note, notes_by_id, memo).items():
                seen = first.setdefault(fid, {})
                seen[tokens(v)] = min(h, seen.get(tokens(v), h))
        for f in index.asked():
            j = doc_index[f.doc_id]
            grade = grades[a].get(index.question[f.fact_id], math.nan)
            if not introduced[j] or not math.isfinite(grade):
                continue
            pairs += 1
            if grade >= THRESHOLD or distance[a, j] < 0:
                continue
            said = tokens(answers[a].get(index.question[f.fact_id], ""))
            spread += any(h < distance[a, j] and appears(t, said) for t, h in first.get(f.fact_id, {}).items())
    out["pop.misinformation.spread"] = _share(spread, pairs)
    out["pop.misinformation.spread.count"] = float(spread)
    return out
