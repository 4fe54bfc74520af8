"""Augmentations of a few-shot task, SEAL's data-generation tools, and the training set they build.

An augmentation transforms every grid of a task, inputs and outputs alike, so the transformed
demonstrations are a consistent task of their own (a rule that shifts right, mirrored, is a rule that
shifts left). SEAL's menu (``few-shot/self-edit.py``: rotations, flips, transposition, size and chain
augmentations, repetition) is kept in its parts that suit small grids; size augmentations (doubling a
grid) are left out, since they double the tokens a 135M model on a CPU must train on.

==================== =====================================================================
augmentation         every grid
==================== =====================================================================
identity             as it is (the demonstrations are always in the training set)
rotate90/180/270     turned clockwise
reverse              mirrored left-right (a 1-D row reversed)
flip_vertical        mirrored top-bottom
transpose            rows become columns
colours              colours 1..9 permuted (0 stays), a fresh permutation per copy
==================== =====================================================================

:func:`training_pairs` builds (prompt, target) pairs: for every chosen augmentation (and the
original), every copy (``repeat``), and every demonstration in turn as the query (leave-one-out) or
only the last one, the prompt shows the other demonstrations and the query's input
(:func:`multiseal.learning.grid_text.query_text`) and the target is the query's output. (SEAL's
"repeat augmentations" tile a grid; here ``repeat`` copies the set, with fresh colours where chosen.)
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from multiseal.learning.grid_text import grid_text, query_text
from multiseal.types import Grid, GridPair
from multiseal.world import grids as g

GridMap = Callable[[Grid], Grid]


@dataclass(frozen=True)
class Augmentation:
    """``make(rng) -> (forward, inverse)``: the grid map one augmented copy applies, and its inverse."""

    name: str
    make: Callable[[random.Random], tuple[GridMap, GridMap]]


def _fixed(forward: GridMap, inverse: GridMap) -> Callable[[random.Random], tuple[GridMap, GridMap]]:
    return lambda rng: (forward, inverse)


def _colours(rng: random.Random) -> tuple[GridMap, GridMap]:
    perm = list(range(1, 10))
    rng.shuffle(perm)
    forward = dict(zip(range(1, 10), perm))
    inverse = {v: k for k, v in forward.items()}
    return (lambda x: g.recolour(x, forward)), (lambda x: g.recolour(x, inverse))


AUGMENTATIONS: dict[str, Augmentation] = {
    a.name: a
    for a in (
        Augmentation("identity", _fixed(lambda x: x, lambda x: x)),
        Augmentation("rotate90", _fixed(lambda x: g.rotate(x, 1), lambda x: g.rotate(x, 3))),
        Augmentation("rotate180", _fixed(lambda x: g.rotate(x, 2), lambda x: g.rotate(x, 2))),
        Augmentation("rotate270", _fixed(lambda x: g.rotate(x, 3), lambda x: g.rotate(x, 1))),
        Augmentation("reverse", _fixed(g.flip_horizontal, g.flip_horizontal)),
        Augmentation("flip_vertical", _fixed(g.flip_vertical, g.flip_vertical)),
        Augmentation("transpose", _fixed(g.transpose, g.transpose)),
        Augmentation("colours", _colours),
    )
}


def augment_pairs(pairs: tuple[GridPair, ...], forward: GridMap) -> tuple[GridPair, ...]:
    return tuple(GridPair(forward(p.input), forward(p.output)) for p in pairs)


def training_pairs(
    demonstrations: tuple[GridPair, ...],
    augmentations: tuple[str, ...],
    *,
    leave_one_out: bool,
    repeat: int = 1,
    seed: int = 0,
) -> list[tuple[str, str]]:
    """(prompt, target) pairs built from ``demonstrations`` (see the module docstring): the original
    and each chosen augmentation, the whole set ``repeat`` times (``colours`` draws a fresh
    permutation for every copy; a fixed map repeats its pairs, which weighs them as more epochs would)."""
    rng = random.Random(f"multiseal-augment:{seed}")
    names = ("identity", *(a for a in augmentations if a != "identity"))
    out: list[tuple[str, str]] = []
    for _ in range(repeat):
        for name in names:
            forward, _ = AUGMENTATIONS[name].make(rng)
            pairs = augment_pairs(demonstrations, forward)
            queries = range(len(pairs)) if leave_one_out and len(pairs) > 1 else [len(pairs) - 1]
            for q in queries:
                shown = pairs[:q] + pairs[q + 1 :]
                out.append((query_text(shown, pairs[q].input), grid_text(pairs[q].output)))
    return out
