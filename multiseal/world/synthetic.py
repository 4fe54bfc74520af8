"""A seeded synthetic world of *fictional* entities and facts.

No pretrained model can answer its questions before reading the passages (a clean baseline of ~0).
It can also emit *composition* questions that need facts from two documents. Every document lists
the atomic facts its passage states (``Document.facts``) and every question the fact(s) it asks
(``Question.fact_ids``). ``generate_distractors`` makes documents about other entities, sharing no
invented word or year with a given world (the shuffled-notes control).
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from multiseal.types import Document, Fact, Question, World
from multiseal.world.vocabulary import (
    ARTEFACT_KINDS,
    COLOURS,
    GARMENTS,
    MATERIAL_SUFFIXES,
    NUMBERS,
    ORG_KINDS,
    PRODUCTS,
    PROFESSIONS,
    WORKS,
    Names,
    Years,
)

# --------------------------------------------------------------------------------------------
# Synthetic world: fictional entities and facts that no pretrained model can know.
#
# Everything is drawn from one ``random.Random(seed)``, so a seed fixes the world. Entities are
# built first (names, facts, links between documents), then rendered into passages and questions.
# A composition question follows a link from document A (which names a bridge entity) to
# document B (the bridge entity's own passage). The word tables, invented names and years come
# from ``multiseal.world.vocabulary``.
# --------------------------------------------------------------------------------------------

KINDS = ("person", "organisation", "town", "artefact")

# Composition templates per (kind of doc A, linking fact of A): (question about A, fact of B).
_COMPOSITION: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("organisation", "founder"): (
        ("In which town was the founder of {a} born?", "birthplace"),
        ("In what year was the founder of {a} born?", "birth_year"),
        ("What was the profession of the founder of {a}?", "profession"),
    ),
    ("artefact", "builder"): (
        ("In which town was the person who built {a} born?", "birthplace"),
        ("In what year was the person who built {a} born?", "birth_year"),
        ("What was the profession of the person who built {a}?", "profession"),
    ),
    ("person", "birthplace"): (
        ("Which river flows through the town where {a} was born?", "river"),
        ("Who is the mayor of the town where {a} was born?", "mayor"),
        ("In what year was the town where {a} was born founded?", "founded"),
    ),
    ("organisation", "seat"): (
        ("Which river flows through the town where {a} has its seat?", "river"),
        ("Who is the mayor of the town where {a} has its seat?", "mayor"),
    ),
    ("artefact", "kept_in"): (("Which river flows through the town where {a} is kept today?", "river"),),
}


@dataclass
class _Entity:
    """One fictional entity; ``links`` maps a fact key to the index of the entity it names."""

    kind: str
    name: str  # the document title
    ref: str  # how running text names it: "the Quorvane Institute", "Velko Tarrin"
    facts: dict[str, str] = field(default_factory=dict)
    links: dict[str, int] = field(default_factory=dict)


def _make_entities(
    kinds: list[str], rng: random.Random, names: Names | None = None, years: Years | None = None
) -> list[_Entity]:
    """Name every entity, then fill in its facts, pointing references at other documents."""
    names, years = names or Names(rng), years or Years(rng)
    ents: list[_Entity] = []
    for kind in kinds:
        if kind in ("person", "town"):
            name = names.person() if kind == "person" else names.town()
            ents.append(_Entity(kind, name, name))
        else:
            noun = rng.choice(ORG_KINDS if kind == "organisation" else ARTEFACT_KINDS)
            name = f"{names.word()} {noun}"
            ents.append(_Entity(kind, name, f"the {name}"))

    persons = [i for i, e in enumerate(ents) if e.kind == "person"]
    towns = [i for i, e in enumerate(ents) if e.kind == "town"]
    rng.shuffle(persons)
    rng.shuffle(towns)
    # Every reference that can name a documented person or town does (round-robin), which is
    # what makes composition questions possible.
    person_cycle = itertools.cycle(persons) if persons else None
    town_cycle = itertools.cycle(towns) if towns else None

    def link(
        e: _Entity, key: str, cycle: Iterator[int] | None, fresh: Callable[[], str], avoid: str | None = None
    ) -> None:
        if cycle is None:
            e.facts[key] = fresh()
            return
        j = next(cycle)
        if ents[j].name == avoid and len(towns) > 1:
            j = next(cycle)  # keep the founder's birthplace out of doc A where we can
        e.facts[key] = ents[j].name
        e.links[key] = j

    def birthplace_of(e: _Entity, key: str) -> str | None:
        return ents[e.links[key]].facts["birthplace"] if key in e.links else None

    for e in ents:  # persons first: organisations and artefacts look up their birthplaces
        if e.kind == "person":
            link(e, "birthplace", town_cycle, names.town)
            e.facts.update(
                birth_year=years.take(),
                profession=rng.choice(PROFESSIONS),
                mentor=names.person(),
                works=rng.choice(NUMBERS),
                colour=rng.choice(COLOURS),
            )
    for e in ents:
        if e.kind == "town":
            e.facts.update(
                founded=years.take(),
                river=names.word(),
                mayor=names.person(),
                product=rng.choice(PRODUCTS),
                population=f"{rng.choice(NUMBERS)} thousand",
                roofs=rng.choice(COLOURS),
            )
        elif e.kind == "organisation":
            e.facts["founded"] = years.take()
            link(e, "founder", person_cycle, names.person)
            link(e, "seat", town_cycle, names.town, avoid=birthplace_of(e, "founder"))
            e.facts.update(
                members=rng.choice(NUMBERS),
                speciality=rng.choice(PRODUCTS),
                journal=f"{names.word()} Review",
                colour=rng.choice(COLOURS),
            )
        elif e.kind == "artefact":
            e.facts["built"] = years.take()
            link(e, "builder", person_cycle, names.person)
            link(e, "kept_in", town_cycle, names.town, avoid=birthplace_of(e, "builder"))
            e.facts.update(
                material=names.word(2, rng.choice(MATERIAL_SUFFIXES)).lower(),
                weight=rng.choice(NUMBERS),
                colour=rng.choice(COLOURS),
            )
    return ents


# A rendered passage: its sentences, and per fact key the (question, answer) it supports.
_Rendered = tuple[list[str], dict[str, tuple[str, str]]]


def _render_person(e: _Entity, rng: random.Random) -> _Rendered:
    f, p = e.facts, e.name
    s = p.split()[-1]  # later sentences use the surname
    noun, past, base = rng.choice(WORKS)
    garment = rng.choice(GARMENTS)
    out = [
        rng.choice(
            (
                f"{p} was born in {f['birthplace']} in {f['birth_year']} and spent a quiet childhood near the harbour.",
                f"{p} was born in {f['birth_year']} in the town of {f['birthplace']}, the youngest child of a large family.",
                f"Born in {f['birthplace']} in {f['birth_year']}, {p} grew up among workshops and market stalls.",
            )
        )
    ]
    if rng.random() < 0.35:
        out.append(
            f"As a young adult {s} trained as {_a(f['profession'])} under {f['mentor']}, "
            "who ran a small workshop on the edge of town."
        )
    else:
        out.append(
            rng.choice(
                (
                    f"After leaving school, {s} worked as {_a(f['profession'])} and soon became known across the region.",
                    f"By trade {s} was {_a(f['profession'])}, a calling that filled most of every week.",
                )
            )
        )
        out.append(
            rng.choice(
                (
                    f"{s} learned most of the trade from {f['mentor']}, an old friend of the family.",
                    f"The greatest influence on {s} was the teacher {f['mentor']}, who demanded patience above all.",
                )
            )
        )
    out.append(
        rng.choice(
            (
                f"Over a long career {s} {past} {f['works']} {noun}, more than anyone else of that generation.",
                f"In total {s} {past} {f['works']} {noun}, several of which still survive.",
            )
        )
    )
    out.append(
        rng.choice(
            (
                f"{s} was rarely seen without {_a(f['colour'])} {garment}, which became something of a trademark.",
                f"Neighbours remember that {s} always wore {_a(f['colour'])} {garment}, even in summer.",
            )
        )
    )
    return out, {
        "birthplace": (f"In which town was {p} born?", f["birthplace"]),
        "birth_year": (f"In what year was {p} born?", f["birth_year"]),
        "profession": (f"What was the profession of {p}?", f["profession"]),
        "mentor": (f"From whom did {p} learn the trade?", f["mentor"]),
        "works": (f"How many {noun} did {p} {base}?", f["works"]),
        "colour": (f"What colour was the {garment} that {p} always wore?", f["colour"]),
    }


def _render_organisation(e: _Entity, rng: random.Random) -> _Rendered:
    f, o = e.facts, e.ref
    short = f"the {e.name.split()[-1].lower()}"  # "the institute"
    out = [
        rng.choice(
            (
                f"{o} was founded in {f['founded']} by {f['founder']}, who wanted a place for careful work.",
                f"{f['founder']} founded {o} in {f['founded']}, starting with a single rented room.",
                f"In {f['founded']}, {f['founder']} established {o} together with a handful of friends.",
            )
        ),
        rng.choice(
            (
                f"Its headquarters stand in {f['seat']}, close to the old covered market.",
                f"{o} has its seat in {f['seat']}, in a narrow stone building by the square.",
            )
        ),
        rng.choice(
            (
                f"Today {short} has {f['members']} members, and new ones are admitted only once a year.",
                f"Membership is kept small: {short} counts {f['members']} members at present.",
            )
        ),
        rng.choice(
            (
                f"{o} is best known for producing {f['speciality']}, which collectors prize.",
                f"Across the region {short} is best known for producing {f['speciality']}.",
            )
        ),
    ]
    if rng.random() < 0.5:
        out.append(
            f"Each spring {short} publishes a journal called the {f['journal']}, and at every "
            f"meeting its members wear {f['colour']} badges."
        )
    else:
        out.append(f"Each spring {short} publishes a journal called the {f['journal']}.")
        out.append(f"Its members are easy to recognise by their {f['colour']} badges.")
    return out, {
        "founded": (f"In what year was {o} founded?", f["founded"]),
        "founder": (f"Who founded {o}?", f["founder"]),
        "seat": (f"In which town does {o} have its seat?", f["seat"]),
        "members": (f"How many members does {o} have?", f["members"]),
        "speciality": (f"What is {o} best known for producing?", f["speciality"]),
        "journal": (f"What is the name of the journal published by {o}?", f["journal"]),
        "colour": (f"What colour are the badges worn by members of {o}?", f["colour"]),
    }


def _render_town(e: _Entity, rng: random.Random) -> _Rendered:
    f, t = e.facts, e.name
    out = [
        rng.choice(
            (
                f"{t} was founded in {f['founded']} on the banks of the river {f['river']}.",
                f"Founded in {f['founded']}, {t} grew up where the river {f['river']} bends towards the hills.",
            )
        ),
        rng.choice(
            (
                f"The current mayor of {t} is {f['mayor']}, who was elected after a close vote.",
                f"{t} is governed by a mayor, at present {f['mayor']}, and a council of elders.",
            )
        ),
        rng.choice(
            (
                f"The town is famous for its {f['product']}, which traders carry to distant markets.",
                f"Visitors come to {t} mainly for its {f['product']}, the pride of the local workshops.",
            )
        ),
        rng.choice(
            (
                f"About {f['population']} people live in {t} today.",
                f"Roughly {f['population']} people now live in {t} and the surrounding farms.",
            )
        ),
        rng.choice(
            (
                f"Most roofs in {t} are painted {f['roofs']}, so the town can be seen from far away.",
                f"By old custom the roofs of {t} are painted {f['roofs']}.",
            )
        ),
    ]
    return out, {
        "founded": (f"In what year was {t} founded?", f["founded"]),
        "river": (f"Which river flows through {t}?", f["river"]),
        "mayor": (f"Who is the mayor of {t}?", f["mayor"]),
        "product": (f"What is {t} famous for?", f["product"]),
        "population": (f"About how many people live in {t}?", f["population"]),
        "roofs": (f"What colour are the roofs of {t} painted?", f["roofs"]),
    }


def _render_artefact(e: _Entity, rng: random.Random) -> _Rendered:
    f, a = e.facts, e.ref
    out = [
        rng.choice(
            (
                f"{a} was built in {f['built']} by {f['builder']} after many years of careful trials and failed designs.",
                f"{f['builder']} built {a} in {f['built']}, working mostly at night in a borrowed barn.",
            )
        ),
        rng.choice(
            (
                f"It is made almost entirely of {f['material']}, a rare pale metal that never rusts or tarnishes.",
                f"Its frame is made of {f['material']}, a metal mined only in the far north.",
            )
        ),
        rng.choice(
            (
                f"Today {a} is kept in a small museum in {f['kept_in']}, where visitors may look but not touch.",
                f"Since its restoration {a} has been kept in {f['kept_in']}, where it is shown to visitors on feast days.",
            )
        ),
    ]
    if rng.random() < 0.4:
        out.append(
            f"{_cap(a)} weighs {f['weight']} kilograms, and its casing is painted {f['colour']}, "
            "a shade its maker chose with great care."
        )
    else:
        out.append(f"Despite its size, {a} weighs only {f['weight']} kilograms.")
        out.append(f"Its casing is painted {f['colour']}, a colour chosen by its maker.")
    return out, {
        "built": (f"In what year was {a} built?", f["built"]),
        "builder": (f"Who built {a}?", f["builder"]),
        "material": (f"What material is {a} made of?", f["material"]),
        "kept_in": (f"In which town is {a} kept today?", f["kept_in"]),
        "weight": (f"How many kilograms does {a} weigh?", f["weight"]),
        "colour": (f"What colour is the casing of {a}?", f["colour"]),
    }


_RENDER: dict[str, Callable[[_Entity, random.Random], _Rendered]] = {
    "person": _render_person,
    "organisation": _render_organisation,
    "town": _render_town,
    "artefact": _render_artefact,
}


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _a(word: str) -> str:
    """``word`` with its indefinite article ("an amber", "a teal")."""
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


_Candidate = tuple[int, int, str, str, tuple[str, str]]


def _composition_candidates(ents: list[_Entity], docs: list[Document]) -> list[_Candidate]:
    """All valid (A, B, question, answer, (fact of A, fact of B)): the answer is stated in B and
    absent from A."""
    out = []
    for i, e in enumerate(ents):
        for key, j in e.links.items():
            for template, b_key in _COMPOSITION.get((e.kind, key), ()):
                answer = ents[j].facts[b_key]
                if answer.lower() in docs[i].context.lower() or answer not in docs[j].context:
                    continue
                out.append(
                    (i, j, template.format(a=e.ref), answer, (f"{docs[i].doc_id}.{key}", f"{docs[j].doc_id}.{b_key}"))
                )
    return out


def generate_world(
    n_documents: int, seed: int, questions_per_doc: tuple[int, int] = (3, 6), composition: int = 0
) -> World:
    """A seeded world of ``n_documents`` passages about fictional people, organisations, towns and
    artefacts, each with ``questions_per_doc`` (inclusive range) verbatim-span questions.

    ``composition`` questions each need two documents (A names a bridge entity whose own passage B
    holds the answer); they go to ``World.composition``. Raises ``ValueError`` when the world has
    too few links for that many. Same seed, same world: all randomness comes from one
    ``random.Random(seed)``.
    """
    lo, hi = questions_per_doc
    if n_documents < 1:
        raise ValueError(f"n_documents must be at least 1, got {n_documents}")
    if not 1 <= lo <= hi <= 6:
        raise ValueError(f"questions_per_doc must satisfy 1 <= low <= high <= 6, got {questions_per_doc}")
    if composition < 0:
        raise ValueError(f"composition must be >= 0, got {composition}")
    return _generate(n_documents, random.Random(seed), questions_per_doc, composition, seed=seed)


def _generate(
    n_documents: int,
    rng: random.Random,
    questions_per_doc: tuple[int, int],
    composition: int,
    *,
    seed: int,
    prefix: str = "d",
    names: Names | None = None,
    years: Years | None = None,
) -> World:
    """The world of :func:`generate_world`, every draw from ``rng``; doc ids ``<prefix>000``, ...

    A document's facts are the facts its passage renders, in rendering order (``<doc_id>.<relation>``);
    the ids and the facts draw nothing from ``rng``.
    """
    lo, hi = questions_per_doc
    kinds = [KINDS[i % len(KINDS)] for i in range(n_documents)]
    rng.shuffle(kinds)
    ents = _make_entities(kinds, rng, names, years)

    docs: list[Document] = []
    for i, e in enumerate(ents):
        doc_id = f"{prefix}{i:03d}"
        sentences, qa = _RENDER[e.kind](e, rng)
        keys = sorted(rng.sample(sorted(qa), rng.randint(lo, hi)), key=list(qa).index)
        questions = tuple(
            Question(f"{doc_id}.q{k}", qa[key][0], qa[key][1], (doc_id,), fact_ids=(f"{doc_id}.{key}",))
            for k, key in enumerate(keys)
        )
        context = " ".join(_cap(s) for s in sentences)
        facts = tuple(Fact(f"{doc_id}.{key}", doc_id, e.name, key, answer) for key, (_, answer) in qa.items())
        docs.append(Document(doc_id, e.name, context, questions, facts))

    comp: list[Question] = []
    if composition:
        cands = _composition_candidates(ents, docs)
        if composition > len(cands):
            raise ValueError(
                f"composition={composition} but a world of {n_documents} documents "
                f"(seed {seed}) supports at most {len(cands)} composition questions; "
                "use more documents or fewer composition questions"
            )
        rng.shuffle(cands)
        # Spread over as many A documents as possible: one question per A before any second one.
        per_a: dict[int, int] = {}
        ranked = []
        for c in cands:
            per_a[c[0]] = per_a.get(c[0], -1) + 1
            ranked.append((per_a[c[0]], c))
        cands = [c for _, c in sorted(ranked, key=lambda rc: rc[0])]
        for k, (i, j, question, answer, fact_ids) in enumerate(cands[:composition]):
            comp.append(
                Question(
                    f"c{k:03d}",
                    question,
                    answer,
                    (docs[i].doc_id, docs[j].doc_id),
                    kind="composition",
                    fact_ids=fact_ids,
                )
            )
    return World(tuple(docs), tuple(comp))


def generate_distractors(world: World, n_documents: int, seed: int) -> World:
    """``n_documents`` synthetic documents (ids ``x000``, ...) that share no word of their invented
    names and no year with ``world``: text about entities no question of ``world`` asks about.

    They come from their own stream, ``random.Random(f"multiseal-distractors-{seed}")``, so making them
    changes nothing in ``world`` (nor in any world generated from ``seed``). Every fact is asked (six
    questions per document; nobody is evaluated on them)."""
    if n_documents < 1:
        raise ValueError(f"n_documents must be at least 1, got {n_documents}")
    rng = random.Random(f"multiseal-distractors-{seed}")
    text = " ".join(f"{d.title} {d.context}" for d in world.documents)
    taken = {w.capitalize() for w in re.findall(r"[A-Za-z]+", text)}
    years = {int(y) for y in re.findall(r"\b\d{4}\b", text)}
    return _generate(
        n_documents, rng, (6, 6), 0, seed=seed, prefix="x", names=Names(rng, taken), years=Years(rng, exclude=years)
    )
