"""The words and years a synthetic world is made of: syllables for invented names, and the tables
of professions, colours, products, ... that facts are drawn from.

``Names`` invents words unique within one world and ``Years`` hands out distinct years, so no two
entities or fact values collide. Both draw from the world's one ``random.Random``.
"""
from __future__ import annotations

import random

SYLLABLES = (
    "vel", "ko", "tar", "rin", "quor", "vane", "brin", "de", "mor", "os", "kel", "dra", "ith",
    "zan", "pel", "fen", "gal", "hes", "lun", "nor", "ruv", "sel", "thal", "ul", "var", "wen",
    "yor", "cas", "bel", "dun", "eld", "gor", "jas", "kor", "mir", "nev", "pra", "ril", "sav",
    "tov", "ane", "ora", "ek", "ist", "um", "ba", "ly", "shen",
)
TOWN_SUFFIXES = ("moor", "holt", "wick", "ford", "mere", "stead", "haven", "dale", "gate", "bury")
ORG_KINDS = ("Institute", "Society", "Guild", "Company", "Observatory", "Academy", "Foundry",
             "Collective", "Archive", "Lodge")
ARTEFACT_KINDS = ("Lens", "Engine", "Loom", "Compass", "Clock", "Astrolabe", "Press", "Harp",
                  "Lantern", "Telescope", "Barometer", "Bell")
MATERIAL_SUFFIXES = ("ite", "ine", "ium", "ore")
PROFESSIONS = ("cartographer", "bell founder", "lens grinder", "clockmaker", "beekeeper",
               "rope maker", "salt merchant", "tide surveyor", "lamp maker", "glassblower",
               "bookbinder", "canal engineer", "dye maker", "harp builder", "map engraver",
               "herbalist", "weaver", "stonemason", "ferry pilot", "candle maker")
COLOURS = ("crimson", "ochre", "teal", "violet", "amber", "indigo", "saffron", "olive",
           "scarlet", "turquoise", "maroon", "silver", "green", "grey")
GARMENTS = ("coat", "scarf", "hat", "cloak")
WORKS = (("books", "wrote", "write"), ("maps", "drew", "draw"), ("songs", "composed", "compose"),
         ("bridges", "built", "build"), ("clocks", "repaired", "repair"),
         ("ships", "designed", "design"), ("letters", "sent", "send"))
NUMBERS = ("three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
           "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
           "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
PRODUCTS = ("copper bells", "star charts", "blue glass", "tide tables", "salt fish",
            "wool carpets", "paper lanterns", "river maps", "clay pipes", "silk ribbons",
            "brass buttons", "honey wine", "cedar boxes", "tin whistles")


class Names:
    """Invented words, unique within one world, so no two entities or fact values collide."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.taken: set[str] = set()

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
    """Distinct years (while the pool lasts), so one year never answers two different questions."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.pool: list[int] = []

    def take(self) -> str:
        if not self.pool:
            self.pool = list(range(1320, 1990))
            self.rng.shuffle(self.pool)
        return str(self.pool.pop())
