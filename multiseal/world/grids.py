"""Grids, ARC's unit of a few-shot skill: rows of colours 0..9, every row the same length.

One checker (:func:`as_grid`, for what a file or a generator hands in) and the geometric and colour
transformations that the generator's families and the augmentations both use. A grid is a tuple of
tuples (hashable, so identical augmented tasks collapse in a set); a 1-D task is grids of one row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from multiseal.types import Grid

COLOURS = 10  # ARC's palette: 0 (background) .. 9
MAX_SIDE = 30  # ARC's largest grid


def as_grid(value: Any) -> Grid:
    """``value`` (a list of lists of ints) as a :data:`Grid`; ``ValueError`` saying what is wrong
    (``row 2 has 3 cells, row 0 has 4``) otherwise."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError("must be a non-empty list of rows")
    if len(value) > MAX_SIDE:
        raise ValueError(f"has {len(value)} rows, more than {MAX_SIDE}")
    rows = []
    for r, row in enumerate(value):
        if not isinstance(row, (list, tuple)) or not row:
            raise ValueError(f"row {r} must be a non-empty list of colours")
        if len(row) > MAX_SIDE:
            raise ValueError(f"row {r} has {len(row)} cells, more than {MAX_SIDE}")
        for c, cell in enumerate(row):
            if isinstance(cell, bool) or not isinstance(cell, int) or not 0 <= cell < COLOURS:
                raise ValueError(f"row {r}, cell {c}: {str(cell)[:20]!s} is not a colour (an int 0..9)")
        if len(row) != len(value[0]):
            raise ValueError(f"row {r} has {len(row)} cells, row 0 has {len(value[0])}")
        rows.append(tuple(row))
    return tuple(rows)


def shape(grid: Grid) -> tuple[int, int]:
    return len(grid), len(grid[0])


def transpose(grid: Grid) -> Grid:
    return tuple(zip(*grid))


def flip_horizontal(grid: Grid) -> Grid:
    """Left and right swapped (a 1-D grid reversed)."""
    return tuple(row[::-1] for row in grid)


def flip_vertical(grid: Grid) -> Grid:
    """Top and bottom swapped."""
    return grid[::-1]


def rotate(grid: Grid, quarter_turns: int) -> Grid:
    """Turned clockwise by ``quarter_turns`` × 90°."""
    for _ in range(quarter_turns % 4):
        grid = flip_horizontal(transpose(grid))
    return grid


def recolour(grid: Grid, mapping: Mapping[int, int] | Sequence[int]) -> Grid:
    """Every cell's colour through ``mapping`` (a dict, or a list indexed by colour); colours it does
    not name stay."""
    get = mapping.get if isinstance(mapping, Mapping) else (lambda c, default: mapping[c])
    return tuple(tuple(get(c, c) for c in row) for row in grid)


def tile(grid: Grid, across: int = 1, down: int = 1) -> Grid:
    """``grid`` repeated ``across`` times side by side and ``down`` times one under another."""
    return tuple(row * across for row in grid) * down


def upscale(grid: Grid, factor_rows: int, factor_cols: int) -> Grid:
    """Every cell becomes a ``factor_rows`` × ``factor_cols`` block."""
    return tuple(tuple(c for c in row for _ in range(factor_cols)) for row in grid for _ in range(factor_rows))
