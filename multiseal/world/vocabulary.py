"""The words and years a synthetic world is made of: syllables for invented names, the tables
of professions, colours, products, ... that facts are drawn from, and the relations facts are made of.

``Names`` invents words unique within one world and ``Years`` hands out distinct years, so no two
entities or fact values collide. Both draw from the world's one ``random.Random``.

``RELATIONS`` describes every relation a synthetic fact can have: the type of its values, the words
that cue it in a sentence, and the one plain sentence that states it (oracle notes). ``CLOSED_VALUES``
lists every value of the closed value types. :mod:`multiseal.sim.facts` scores notes with them.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

SYLLABLES = (
    "vel",
    "ko",
    "tar",
    "rin",
    "quor",
    "vane",
    "brin",
    "de",
    "mor",
    "os",
    "kel",
    "dra",
    "ith",
    "zan",
    "pel",
    "fen",
    "gal",
    "hes",
    "lun",
    "nor",
    "ruv",
    "sel",
    "thal",
    "ul",
    "var",
    "wen",
    "yor",
    "cas",
    "bel",
    "dun",
    "eld",
    "gor",
    "jas",
    "kor",
    "mir",
    "nev",
    "pra",
    "ril",
    "sav",
    "tov",
    "ane",
    "ora",
    "ek",
    "ist",
    "um",
    "ba",
    "ly",
    "shen",
)
TOWN_SUFFIXES = ("moor", "holt", "wick", "ford", "mere", "stead", "haven", "dale", "gate", "bury")
ORG_KINDS = (
    "Institute",
    "Society",
    "Guild",
    "Company",
    "Observatory",
    "Academy",
    "Foundry",
    "Collective",
    "Archive",
    "Lodge",
)
ARTEFACT_KINDS = (
    "Lens",
    "Engine",
    "Loom",
    "Compass",
    "Clock",
    "Astrolabe",
    "Press",
    "Harp",
    "Lantern",
    "Telescope",
    "Barometer",
    "Bell",
)
MATERIAL_SUFFIXES = ("ite", "ine", "ium", "ore")
PROFESSIONS = (
    "cartographer",
    "bell founder",
    "lens grinder",
    "clockmaker",
    "beekeeper",
    "rope maker",
    "salt merchant",
    "tide surveyor",
    "lamp maker",
    "glassblower",
    "bookbinder",
    "canal engineer",
    "dye maker",
    "harp builder",
    "map engraver",
    "herbalist",
    "weaver",
    "stonemason",
    "ferry pilot",
    "candle maker",
)
COLOURS = (
    "crimson",
    "ochre",
    "teal",
    "violet",
    "amber",
    "indigo",
    "saffron",
    "olive",
    "scarlet",
    "turquoise",
    "maroon",
    "silver",
    "green",
    "grey",
)
GARMENTS = ("coat", "scarf", "hat", "cloak")
WORKS = (
    ("books", "wrote", "write"),
    ("maps", "drew", "draw"),
    ("songs", "composed", "compose"),
    ("bridges", "built", "build"),
    ("clocks", "repaired", "repair"),
    ("ships", "designed", "design"),
    ("letters", "sent", "send"),
)
NUMBERS = (
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "sixty",
    "seventy",
    "eighty",
    "ninety",
)
PRODUCTS = (
    "copper bells",
    "star charts",
    "blue glass",
    "tide tables",
    "salt fish",
    "wool carpets",
    "paper lanterns",
    "river maps",
    "clay pipes",
    "silk ribbons",
    "brass buttons",
    "honey wine",
    "cedar boxes",
    "tin whistles",
)


YEAR_RANGE = range(1320, 1990)  # every year a synthetic world can use


@dataclass(frozen=True)
class Relation:
    """One relation of the synthetic world's facts.

    ``type`` names the kind of its values (``town``, ``person``, ``year``, ...: two relations of one
    type can take each other's values); ``cues`` are word stems that mark a sentence as being about
    the relation (matched as prefixes of its lowercased tokens: ``found`` matches ``founded`` and
    ``founder``); ``sentence`` states the fact plainly (``{entity}``, ``{value}``).
    """

    type: str
    cues: tuple[str, ...]
    sentence: str


_BUILT = ("built", "build", "made", "construct", "creat", "maker")
RELATIONS: dict[str, Relation] = {
    # person
    "birthplace": Relation(
        "town",
        ("born", "birth", "native", "grew", "childhood", "hometown"),
        "{entity} was born in the town of {value}.",
    ),
    "birth_year": Relation("year", ("born", "birth"), "{entity} was born in the year {value}."),
    "profession": Relation(
        "profession",
        ("profession", "trade", "work", "train", "career", "job", "calling", "occupation"),
        "The profession of {entity} was {value}.",
    ),
    "mentor": Relation(
        "person",
        ("learn", "mentor", "teach", "taught", "train", "influence", "apprentic", "student"),
        "{entity} learned the trade from {value}.",
    ),
    "works": Relation(
        "number",
        (
            "work",
            "total",
            "career",
            "book",
            "map",
            "song",
            "bridge",
            "clock",
            "ship",
            "letter",
            "wrote",
            "write",
            "drew",
            "draw",
            "compos",
            "built",
            "repair",
            "design",
            "sent",
            "send",
        ),
        "In total {entity} made {value} works.",
    ),
    "colour": Relation(
        "colour",
        ("colour", "color", "wore", "wear", "coat", "scarf", "hat", "cloak", "badge", "casing", "paint"),
        "The colour of {entity} is {value}.",
    ),
    # organisation (and town: founded)
    "founded": Relation("year", ("found", "establish", "start", "creat", "settl"), "{entity} was founded in {value}."),
    "founder": Relation("person", ("found", "establish", "start", "creat"), "{entity} was founded by {value}."),
    "seat": Relation(
        "town",
        ("seat", "headquarter", "based", "located", "stand", "situated", "office"),
        "{entity} has its seat in {value}.",
    ),
    "members": Relation("number", ("member",), "{entity} has {value} members."),
    "speciality": Relation(
        "product", ("known", "produc", "make", "speciali", "famous"), "{entity} is best known for producing {value}."
    ),
    "journal": Relation(
        "journal", ("journal", "publish", "review"), "{entity} publishes a journal called the {value}."
    ),
    # town
    "river": Relation("river", ("river", "flow", "bank"), "The river {value} flows through {entity}."),
    "mayor": Relation("person", ("mayor", "govern", "elect", "lead"), "The mayor of {entity} is {value}."),
    "product": Relation(
        "product", ("famous", "known", "produc", "trade", "export", "pride"), "{entity} is famous for its {value}."
    ),
    "population": Relation(
        "population", ("people", "live", "population", "inhabit", "resident"), "About {value} people live in {entity}."
    ),
    "roofs": Relation("colour", ("roof", "paint"), "The roofs of {entity} are painted {value}."),
    # artefact
    "built": Relation("year", _BUILT, "{entity} was built in {value}."),
    "builder": Relation("person", _BUILT, "{entity} was built by {value}."),
    "material": Relation(
        "material", ("made", "material", "frame", "metal", "construct"), "{entity} is made of {value}."
    ),
    "kept_in": Relation(
        "town", ("kept", "museum", "house", "display", "located", "stored", "shown"), "{entity} is kept in {value}."
    ),
    "weight": Relation("number", ("weigh", "kilogram", "kg", "heav"), "{entity} weighs {value} kilograms."),
}

# Every value of the closed value types; the open types (town, person, river, journal, material) take
# invented names, so their values are the ones a given world holds.
CLOSED_VALUES: dict[str, tuple[str, ...]] = {
    "year": tuple(str(y) for y in YEAR_RANGE),
    "number": NUMBERS,
    "population": tuple(f"{n} thousand" for n in NUMBERS),
    "colour": COLOURS,
    "profession": PROFESSIONS,
    "product": PRODUCTS,
}


def fact_sentence(entity: str, relation: str, value: str) -> str:
    """The one plain sentence that states a fact (``Relation.sentence``, first letter capitalised)."""
    text = RELATIONS[relation].sentence.format(entity=entity, value=value)
    return text[:1].upper() + text[1:]


class Names:
    """Invented words, unique within one world, so no two entities or fact values collide.

    ``taken`` are words to avoid as well (a distractor world avoids every word of the real one)."""

    def __init__(self, rng: random.Random, taken: Iterable[str] = ()):
        self.rng = rng
        self.taken: set[str] = set(taken)

    def word(self, syllables: int = 2, suffix: str = "") -> str:
        for attempt in range(10_000):
            n = syllables + attempt // 50  # grow longer once short names run out
            w = ("".join(self.rng.choice(SYLLABLES) for _ in range(n)) + suffix).capitalize()
            if w not in self.taken:
                self.taken.add(w)
                return w
        raise RuntimeError("ran out of invented names")  # unreachable in practice

    def person(self) -> str:
        return f"{self.word()} {self.word()}"

    def town(self) -> str:
        return self.word(self.rng.choice((1, 2)), self.rng.choice(TOWN_SUFFIXES))


class Years:
    """Distinct years (while the pool lasts), so one year never answers two different questions.

    ``exclude``: years left out of the pool (while any other is left)."""

    def __init__(self, rng: random.Random, exclude: Iterable[int] = ()):
        self.rng = rng
        self.pool: list[int] = []
        self.exclude = frozenset(exclude)

    def take(self) -> str:
        if not self.pool:
            self.pool = list(YEAR_RANGE)
            self.rng.shuffle(self.pool)
            if self.exclude:
                self.pool = [y for y in self.pool if y not in self.exclude] or self.pool
        return str(self.pool.pop())
