"""The built-in topology kinds: one networkx-based builder and one pydantic parameter model each.

A builder is ``fn(n, params, rng, directed) -> nx.Graph | nx.DiGraph`` and receives its *parsed*
parameters (an instance of the model it registered with). Rules that need the number of agents or
the direction read them from the validation context: ``info.context["n"]`` and
``info.context["directed"]``. Building, weights, validation of a whole topology setting and the
conformance check live in :mod:`multiseal.sim.topologies`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, cast

import networkx as nx
from pydantic import (
    BeforeValidator,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from multiseal.errors import ADJACENCY_MAX_BYTES, FieldProblems, FileReadError, read_text, shown
from multiseal.registry import KindRegistry, NoParams, Params

Builder = Callable[[int, Any, random.Random, bool], "nx.Graph"]
Problems = list[tuple[str, str]]
Edge = tuple[int, int, float | None]  # u, v, explicit weight (None: the topology's default)

TOPOLOGIES: KindRegistry[Builder] = KindRegistry("topology")


# ---------------------------------------------------------------- shared checks


def _is_num(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _agent_id(x: object) -> int | None:
    """``x`` as an agent id; integral floats count, since YAML lists typed as floats arrive as 1.0."""
    if isinstance(x, int) and not isinstance(x, bool):
        return x
    return int(x) if isinstance(x, float) and x.is_integer() else None


def _agent_problem(x: object, n: int | None) -> str | None:
    a = _agent_id(x)
    if a is None:
        return f"must be an agent id (an int), got {shown(x)}"
    if n is not None and not 0 <= a < n:
        return f"agent {a} does not exist (agents are 0..{n - 1})"
    return None


def _n(info: ValidationInfo) -> int | None:
    return (info.context or {}).get("n")


def check_edge_list(items: object, n: int | None) -> Problems:
    """Problems with an edge list ``[[u, v] | [u, v, weight], ...]``; keys are ``[i]`` (or ``""``)."""
    if not isinstance(items, (list, tuple)):
        return [("", "must be a list of [u, v] or [u, v, weight]")]
    out: Problems = []
    for i, e in enumerate(items):
        key = f"[{i}]"
        if not isinstance(e, (list, tuple)) or len(e) not in (2, 3):
            out.append((key, f"must be [u, v] or [u, v, weight], got {shown(e)}"))
            continue
        bad = [m for m in (_agent_problem(e[0], n), _agent_problem(e[1], n)) if m]
        out += [(key, m) for m in bad]
        if not bad and _agent_id(e[0]) == _agent_id(e[1]):
            out.append((key, f"self-loop on agent {_agent_id(e[0])} is not allowed"))
        if len(e) == 3 and not (_is_num(e[2]) and e[2] > 0):
            out.append((key, f"weight must be a number > 0, got {shown(e[2])}"))
    return out


def parse_edge_list(items: object, n: int | None) -> list[Edge]:
    """A checked edge list as ``(u, v, weight | None)`` triples; raises ``FieldProblems``."""
    if problems := check_edge_list(items, n):
        raise FieldProblems(*problems)
    checked = cast(list[Sequence[Any]], items)  # check_edge_list found no problem
    ids = [(cast(int, _agent_id(e[0])), cast(int, _agent_id(e[1]))) for e in checked]  # every id is valid
    return [(u, v, float(e[2]) if len(e) == 3 else None) for (u, v), e in zip(ids, checked)]


def _agent(x: object, info: ValidationInfo) -> object:
    """An agent id in 0..n-1 (n from the validation context)."""
    if msg := _agent_problem(x, _n(info)):
        raise ValueError(msg)
    return _agent_id(x)


AgentId = Annotated[int, BeforeValidator(_agent)]


# ---------------------------------------------------------------- parameter models


class StarParams(Params):
    center: AgentId = Field(0, description="the hub agent")


class GridParams(Params):
    rows: int | None = Field(None, ge=1, description="rows of the grid (default: the most square shape)")
    cols: int | None = Field(None, ge=1, description="columns of the grid")

    @model_validator(mode="after")
    def _fits(self, info: ValidationInfo) -> GridParams:
        n = _n(info)
        if n is None:
            return self
        if self.rows is not None and self.cols is not None:
            if self.rows * self.cols != n:
                product = self.rows * self.cols
                raise FieldProblems(("rows", f"rows × cols = {product} must equal the number of agents ({n})"))
        elif self.rows is not None or self.cols is not None:
            key, value = ("rows", self.rows) if self.rows is not None else ("cols", self.cols)
            if n % value:  # type: ignore[operator]
                raise FieldProblems((key, f"must divide the number of agents ({n})"))
        return self


class SmallWorldParams(Params):
    k: int = Field(2, description="each agent's neighbours on the ring before rewiring (even, < agents)")
    p: float = Field(0.1, ge=0, le=1, description="probability of rewiring each edge")

    @field_validator("k")
    @classmethod
    def _k(cls, k: int, info: ValidationInfo) -> int:
        if k < 2 or k % 2:
            raise ValueError(f"must be an even int >= 2, got {shown(k)}")
        if (n := _n(info)) is not None and k >= n:
            raise ValueError(f"must be < number of agents ({n})")
        return k


class ErdosRenyiParams(Params):
    p: float = Field(ge=0, le=1, description="the probability of each edge")


class BarabasiAlbertParams(Params):
    m: int = Field(1, ge=1, description="edges from each new agent to existing ones (< agents)")

    @field_validator("m")
    @classmethod
    def _m(cls, m: int, info: ValidationInfo) -> int:
        if (n := _n(info)) is not None and m >= n:
            raise ValueError(f"must be < number of agents ({n})")
        return m


class EdgesParams(Params):
    edges: list[Edge] = Field(description="a list of [u, v] or [u, v, weight]")

    @field_validator("edges", mode="before")
    @classmethod
    def _edges(cls, items: object, info: ValidationInfo) -> list[Edge]:
        return parse_edge_list(items, _n(info))


class AdjacencyParams(Params):
    """A weighted adjacency matrix, inline (``matrix``) or from a whitespace-separated text file
    (``file``, ``#`` comments allowed); ``matrix[u][v] > 0`` is an edge u → v of that weight."""

    file: str | None = Field(None, description="a text file with one row per line")
    matrix: Any = Field(None, description="a list of rows (lists of numbers)")
    _weights: list[list[float]] = PrivateAttr(default_factory=list)

    @property
    def weights(self) -> list[list[float]]:
        """The checked n×n matrix, whichever way it was given."""
        return self._weights

    def _load(self) -> tuple[str, list[list[float]]]:
        if (self.file is None) == (self.matrix is None):
            raise FieldProblems(("file", "give exactly one of params.file or params.matrix"))
        if self.matrix is not None:
            key, rows = "matrix", self.matrix
            if not isinstance(rows, (list, tuple)) or not all(isinstance(r, (list, tuple)) for r in rows):
                raise FieldProblems((key, "must be a list of rows (lists of numbers)"))
        else:
            key = "file"
            try:
                text = read_text(Path(self.file), ADJACENCY_MAX_BYTES, "an adjacency file")  # type: ignore[arg-type]
            except FileReadError as e:
                raise FieldProblems((key, f"cannot read {self.file}: {e.reason}")) from None
            rows = [ln.split() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        try:
            matrix = [[float(x) for x in r] for r in rows]
        except (TypeError, ValueError):
            raise FieldProblems((key, "every entry must be a number")) from None
        if not all(math.isfinite(x) for r in matrix for x in r):
            raise FieldProblems((key, "every entry must be a finite number"))
        return key, matrix

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> AdjacencyParams:
        key, m = self._load()
        n, directed = _n(info), bool((info.context or {}).get("directed", False))
        n = len(m) if n is None else n
        if len(m) != n or any(len(r) != n for r in m):
            shape = f"{len(m)} rows of lengths {sorted({len(r) for r in m})}"
            raise FieldProblems((key, f"must be a {n}×{n} matrix (one row and column per agent), got {shape}"))
        out: Problems = []
        for u in range(n):
            if m[u][u]:
                out.append((key, f"self-loop on agent {u} (diagonal must be 0)"))
            for v in range(n):
                if m[u][v] < 0:
                    out.append((key, f"entry ({u}, {v}) is negative; weights must be > 0"))
                elif not directed and v > u and m[u][v] != m[v][u]:
                    out.append((key, f"not symmetric at ({u}, {v}); set directed: true for one-way edges"))
        if out:
            raise FieldProblems(*out)
        self._weights = m
        return self


# ---------------------------------------------------------------- built-in builders


def _orient(g: nx.Graph, forward: Callable[[int, int], bool]) -> nx.DiGraph:
    """Give each undirected edge one direction: u→v where ``forward(u, v)``, else v→u."""
    d = nx.DiGraph()
    d.add_nodes_from(g.nodes)
    d.add_edges_from((u, v) if forward(u, v) else (v, u) for u, v in g.edges)
    return d


@TOPOLOGIES.register("complete")
def _complete(n: int, params: NoParams, rng: random.Random, directed: bool) -> nx.Graph:
    return nx.complete_graph(n)


@TOPOLOGIES.register("ring")
def _ring(n: int, params: NoParams, rng: random.Random, directed: bool) -> nx.Graph:
    """i → i+1 (mod n) when directed."""
    g = nx.cycle_graph(n, create_using=nx.DiGraph if directed else nx.Graph)
    g.remove_edges_from(list(nx.selfloop_edges(g)))  # one agent: cycle_graph(1) loops on 0
    return g


@TOPOLOGIES.register("line")
def _line(n: int, params: NoParams, rng: random.Random, directed: bool) -> nx.Graph:
    """i → i+1 when directed."""
    return nx.path_graph(n, create_using=nx.DiGraph if directed else nx.Graph)


@TOPOLOGIES.register("star", params=StarParams)
def _star(n: int, params: StarParams, rng: random.Random, directed: bool) -> nx.Graph:
    """centre → leaves when directed."""
    c = params.center
    g = nx.relabel_nodes(nx.star_graph(n - 1) if n > 1 else nx.empty_graph(n), {0: c, c: 0})
    return _orient(g, lambda u, v: u == c) if directed else g


def grid_shape(n: int, rows: int | None = None, cols: int | None = None) -> tuple[int, int]:
    """``(rows, cols)`` with ``rows * cols == n``: the given one(s), else the most square factorisation."""
    if rows is None and cols is None:
        rows = max(r for r in range(1, math.isqrt(n) + 1) if n % r == 0)
    if rows is None:
        rows = n // cols  # type: ignore[operator]
    return rows, n // rows


@TOPOLOGIES.register("grid", params=GridParams)
def _grid(n: int, params: GridParams, rng: random.Random, directed: bool) -> nx.Graph:
    """Agents row-major (agent r·cols + c at row r, column c); rightwards and downwards when directed."""
    rows, cols = grid_shape(n, params.rows, params.cols)
    g = nx.relabel_nodes(nx.grid_2d_graph(rows, cols), {(r, c): r * cols + c for r in range(rows) for c in range(cols)})
    return _orient(g, lambda u, v: u < v) if directed else g


@TOPOLOGIES.register("small-world", params=SmallWorldParams)
def _small_world(n: int, params: SmallWorldParams, rng: random.Random, directed: bool) -> nx.Graph:
    """Watts–Strogatz; clockwise along the ring when directed."""
    g = nx.watts_strogatz_graph(n, params.k, params.p, seed=rng)
    # Clockwise: the shorter way round the ring from u to v; ties (exactly opposite) go low→high.
    return _orient(g, lambda u, v: (v - u) % n < n / 2 or ((v - u) % n == n / 2 and u < v)) if directed else g


@TOPOLOGIES.register("erdos-renyi", params=ErdosRenyiParams)
def _erdos_renyi(n: int, params: ErdosRenyiParams, rng: random.Random, directed: bool) -> nx.Graph:
    """G(n, p); each ordered pair drawn independently when directed."""
    return nx.gnp_random_graph(n, params.p, seed=rng, directed=directed)


@TOPOLOGIES.register("barabasi-albert", params=BarabasiAlbertParams)
def _barabasi_albert(n: int, params: BarabasiAlbertParams, rng: random.Random, directed: bool) -> nx.Graph:
    """Preferential attachment; older → newer when directed, so the hubs broadcast."""
    g = nx.barabasi_albert_graph(n, params.m, seed=rng)
    return _orient(g, lambda u, v: u < v) if directed else g


@TOPOLOGIES.register("edges", params=EdgesParams)
def _edges(n: int, params: EdgesParams, rng: random.Random, directed: bool) -> nx.Graph:
    """An explicit edge list; a later duplicate overrides an earlier one's weight."""
    g: nx.Graph = nx.DiGraph() if directed else nx.Graph()
    g.add_nodes_from(range(n))
    for u, v, w in params.edges:
        g.add_edge(u, v, **({"weight": w} if w is not None else {}))
    return g


@TOPOLOGIES.register("adjacency", params=AdjacencyParams)
def _adjacency(n: int, params: AdjacencyParams, rng: random.Random, directed: bool) -> nx.Graph:
    m = params.weights
    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    g.add_edges_from((u, v, {"weight": m[u][v]}) for u in range(n) for v in range(n) if m[u][v])
    return g


@TOPOLOGIES.register("none")
def _none(n: int, params: NoParams, rng: random.Random, directed: bool) -> nx.Graph:
    return nx.empty_graph(n)
