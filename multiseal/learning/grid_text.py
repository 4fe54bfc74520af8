"""Grids as text, the one way a model reads and writes them, and the strict reading of an answer.

A grid is its rows, one per line, colours separated by single spaces (``1 0 2``): with a space every
colour is its own token in SmolLM2's and Llama's tokenisers, so a model never has to split ``102``.
A task is shown as its demonstrations then the query, each ``Input:`` and ``Output:`` followed by a
grid; the model continues after the query's ``Output:``.

:func:`parse_grid` reads a model's answer strictly: the first lines of the reply that are rows of
colours (after leading blank lines), up to the first line that is not; every row the same length.
Anything else (no row at all, a ragged grid, a colour outside 0..9) is not an answer (None), and
success is an exact match of the whole grid (:func:`solved`).
"""

from __future__ import annotations

from collections.abc import Iterable

from multiseal.types import Grid, GridPair

INPUT, OUTPUT = "Input:", "Output:"


def grid_text(grid: Grid) -> str:
    """``((1, 0), (2, 3))`` → ``"1 0\\n2 3"``."""
    return "\n".join(" ".join(str(c) for c in row) for row in grid)


def pair_text(pair: GridPair) -> str:
    return f"{INPUT}\n{grid_text(pair.input)}\n{OUTPUT}\n{grid_text(pair.output)}"


def query_text(demonstrations: Iterable[GridPair], query: Grid) -> str:
    """The demonstrations, then the query's input and ``Output:``: what the model continues."""
    shown = [pair_text(p) for p in demonstrations]
    return "\n\n".join([*shown, f"{INPUT}\n{grid_text(query)}\n{OUTPUT}\n"])


def _row(line: str) -> tuple[int, ...] | None:
    cells = line.split(" ")
    if not cells or any(len(c) != 1 or not c.isdigit() for c in cells):
        return None
    return tuple(int(c) for c in cells)


def parse_grid(reply: str) -> Grid | None:
    """The grid a reply starts with, or None (see the module docstring)."""
    rows: list[tuple[int, ...]] = []
    for line in reply.lstrip("\n").split("\n"):
        row = _row(line.strip())
        if row is None:
            break
        rows.append(row)
    if not rows or any(len(r) != len(rows[0]) for r in rows):
        return None
    return tuple(rows)


def solved(reply: str, target: Grid) -> bool:
    """Whether ``reply`` starts with exactly ``target`` (every row and every colour)."""
    return parse_grid(reply) == target
