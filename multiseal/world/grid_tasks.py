"""A seeded generator of small grid-transformation tasks, so a skills world needs no download.

Each family is a rule with a per-task parameter (how far to shift, which colours to swap, which
axis to mirror) and a maker of inputs; a task is ``demonstrations`` + ``tests`` pairs of one rule,
with distinct inputs, each changed by the rule (an output equal to its input teaches nothing). Nine
families, 1-D (one row) and small 2-D:

=============== ==== =========================================================================
family          dims rule (per-task parameter in brackets)
=============== ==== =========================================================================
shift           1    every cell moves [1 or 2] to the right; cells pushed off are lost, 0 fills
reverse         1    the row reversed
fill-between    1    the cells between two cells of one colour take that colour
denoise         1    single cells with background on both sides are removed (blocks of 2+ stay)
repeat          1    the row written [2 or 3] times
reflect         2    mirrored [left-right or top-bottom]
recolour        2    colours swapped by a [mapping] of the task's colours; 0 stays
gravity         2    every coloured cell falls to the bottom of its column, in order
scale           2    every cell becomes a 2 × 2 block
=============== ==== =========================================================================

Difficulty is tuned by :class:`TaskShape` (grid sizes, colours, demonstrations). The same seed gives
the same tasks on every machine (integer arithmetic and ``random.Random`` seeded by a string).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from multiseal.types import Grid, GridPair, SkillTask
from multiseal.world import grids as g

Rule = Callable[[Grid], Grid]
Inputs = Callable[[random.Random], Grid]


@dataclass(frozen=True)
class TaskShape:
    """The knobs of generated tasks: widths and heights drawn from ``[lo, hi]`` per input (1-D
    families use ``width`` only), ``colours`` non-background colours per task (1..9), and pairs per
    task."""

    width: tuple[int, int] = (5, 8)
    height: tuple[int, int] = (3, 4)
    colours: int = 3
    demonstrations: int = 3
    tests: int = 1

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            lo, hi = getattr(self, name)
            if not 2 <= lo <= hi <= 12:
                raise ValueError(f"{name} must be [lo, hi] with 2 <= lo <= hi <= 12, got [{lo}, {hi}]")
        if not 1 <= self.colours <= 9:
            raise ValueError(f"colours must be 1..9, got {self.colours}")
        if not 1 <= self.demonstrations <= 10 or not 1 <= self.tests <= 10:
            raise ValueError("demonstrations and tests must be 1..10")


@dataclass(frozen=True)
class Family:
    """A family of tasks: ``dims`` (1 or 2) and ``rule(rng, shape, palette) -> (rule, inputs)``, which
    draws one task's rule parameter and returns its rule and its maker of inputs."""

    name: str
    dims: int
    draw: Callable[[random.Random, TaskShape, tuple[int, ...]], tuple[Rule, Inputs]]


# ---------------------------------------------------------------- inputs


def _row(rng: random.Random, width: int, palette: tuple[int, ...], density: float = 0.5) -> tuple[int, ...]:
    return tuple(rng.choice(palette) if rng.random() < density else 0 for _ in range(width))


def _sparse_rows(shape: TaskShape, palette: tuple[int, ...], density: float = 0.5) -> Inputs:
    def make(rng: random.Random) -> Grid:
        w = rng.randint(*shape.width)
        return (_row(rng, w, palette, density),)

    return make


def _sparse_grids(
    shape: TaskShape, palette: tuple[int, ...], density: float = 0.4, side: tuple[int, int] | None = None
) -> Inputs:
    def make(rng: random.Random) -> Grid:
        h = rng.randint(*(side or shape.height))
        w = rng.randint(*(side or shape.width))
        return tuple(_row(rng, w, palette, density) for _ in range(h))

    return make


# ---------------------------------------------------------------- rules


def _shift(rng, shape, palette):
    k = rng.choice((1, 2))
    return (lambda x: ((0,) * k + x[0][:-k],)), _sparse_rows(shape, palette)


def _reverse(rng, shape, palette):
    return g.flip_horizontal, _sparse_rows(shape, palette, 0.6)


def _fill_between(rng, shape, palette):
    def make(r: random.Random) -> Grid:
        w = r.randint(max(4, shape.width[0]), max(4, shape.width[1]))
        i = r.randrange(0, w - 2)
        j = r.randrange(i + 2, w)
        row = [0] * w
        row[i] = row[j] = r.choice(palette)
        return (tuple(row),)

    def rule(x: Grid) -> Grid:
        row = list(x[0])
        ends = [i for i, c in enumerate(row) if c]
        for i in range(ends[0], ends[-1] + 1):
            row[i] = row[ends[0]]
        return (tuple(row),)

    return rule, make


def _isolated(row: tuple[int, ...], i: int) -> bool:
    return row[i] != 0 and (i == 0 or row[i - 1] == 0) and (i == len(row) - 1 or row[i + 1] == 0)


def _denoise(rng, shape, palette):
    def make(r: random.Random) -> Grid:
        w = r.randint(max(6, shape.width[0]), max(6, shape.width[1]))
        row = [0] * w
        start = r.randrange(0, w - 2)
        for i in range(start, min(w, start + r.randint(2, 4))):  # one block of 2+
            row[i] = r.choice(palette)
        for i in r.sample(range(w), k=max(1, w // 4)):  # single cells where both sides are background
            if row[i] == 0 and (i == 0 or row[i - 1] == 0) and (i == w - 1 or row[i + 1] == 0):
                row[i] = r.choice(palette)
        return (tuple(row),)

    def rule(x: Grid) -> Grid:
        return (tuple(0 if _isolated(x[0], i) else c for i, c in enumerate(x[0])),)

    return rule, make


def _repeat(rng, shape, palette):
    times = rng.choice((2, 3))
    return (lambda x: g.tile(x, across=times)), _sparse_rows(shape, palette, 0.6)


def _reflect(rng, shape, palette):
    return rng.choice((g.flip_horizontal, g.flip_vertical)), _sparse_grids(shape, palette, 0.5)


def _recolour(rng, shape, palette):
    colours = list(palette)
    mapping = (
        colours[1:] + colours[:1] if len(colours) > 1 else [rng.choice([c for c in range(1, 10) if c != colours[0]])]
    )
    table = dict(zip(palette, mapping))
    return (lambda x: g.recolour(x, table)), _sparse_grids(shape, palette, 0.6)


def _gravity(rng, shape, palette):
    def rule(x: Grid) -> Grid:
        h = len(x)
        columns = []
        for col in g.transpose(x):
            cells = [c for c in col if c]
            columns.append((0,) * (h - len(cells)) + tuple(cells))
        return g.transpose(tuple(columns))

    return rule, _sparse_grids(shape, palette, 0.35)


def _scale(rng, shape, palette):
    return (lambda x: g.upscale(x, 2, 2)), _sparse_grids(shape, palette, 0.6, side=(2, 3))


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("shift", 1, _shift),
        Family("reverse", 1, _reverse),
        Family("fill-between", 1, _fill_between),
        Family("denoise", 1, _denoise),
        Family("repeat", 1, _repeat),
        Family("reflect", 2, _reflect),
        Family("recolour", 2, _recolour),
        Family("gravity", 2, _gravity),
        Family("scale", 2, _scale),
    )
}


def generate_task(family: str, index: int, seed: int, shape: TaskShape = TaskShape()) -> SkillTask:
    """Task ``index`` of ``family`` for ``seed``: one rule, ``shape.demonstrations`` + ``shape.tests``
    pairs with distinct inputs, each changed by the rule."""
    fam = FAMILIES[family]
    rng = random.Random(f"multiseal-grid-task:{seed}:{family}:{index}")
    palette = tuple(sorted(rng.sample(range(1, 10), shape.colours)))
    rule, make = fam.draw(rng, shape, palette)
    pairs: list[GridPair] = []
    seen: set[Grid] = set()
    for _ in range(200 * (shape.demonstrations + shape.tests)):
        x = make(rng)
        y = rule(x)
        if x in seen or y == x:
            continue
        seen.add(x)
        pairs.append(GridPair(x, y))
        if len(pairs) == shape.demonstrations + shape.tests:
            break
    else:
        raise ValueError(f"{family}: cannot make {shape.demonstrations + shape.tests} distinct pairs with {shape}")
    n = shape.demonstrations
    return SkillTask(f"{family}-{index:03d}", tuple(pairs[:n]), tuple(pairs[n:]), family)


def generate_tasks(
    families: list[str] | tuple[str, ...], per_family: int, seed: int, shape: TaskShape = TaskShape()
) -> tuple[SkillTask, ...]:
    """``per_family`` tasks of each family, family by family (ids ``<family>-000``...)."""
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown task families {unknown}; known: {', '.join(FAMILIES)}")
    return tuple(generate_task(f, i, seed, shape) for f in families for i in range(per_family))


def split_tasks(
    tasks: tuple[SkillTask, ...] | list[SkillTask], held_out: float, seed: int
) -> tuple[tuple[SkillTask, ...], tuple[SkillTask, ...]]:
    """``(training, held-out)``: within each family (a loaded task's family is ""), a seeded share
    ``held_out`` of its tasks, rounded, at least one, and at least one left for training where the
    family has two or more."""
    rng = random.Random(f"multiseal-task-split:{seed}")
    train: list[SkillTask] = []
    held: list[SkillTask] = []
    for family in dict.fromkeys(t.family for t in tasks):
        members = [t for t in tasks if t.family == family]
        rng.shuffle(members)
        n = min(max(1, round(held_out * len(members))), max(1, len(members) - 1))
        held += members[:n]
        train += members[n:]
    order = {t.task_id: i for i, t in enumerate(tasks)}
    return (tuple(sorted(train, key=lambda t: order[t.task_id])), tuple(sorted(held, key=lambda t: order[t.task_id])))
