"""Communication topologies: who can send notes to whom, and how that changes between rounds.

Agents are the ints ``0..n-1``. Every topology becomes an ``nx.DiGraph`` holding all n nodes, in
which an edge ``u → v`` means *u's notes travel to v* and carries ``weight``, v's trust in u (a float
> 0, default 1.0). An undirected topology becomes both directions of every edge.

A topology is one builder in ``TOPOLOGIES``::

    fn(n: int, params: dict, rng: random.Random, directed: bool) -> nx.Graph | nx.DiGraph

An undirected ``nx.Graph`` result always becomes both directions; a builder whose kind has a natural
orientation returns an ``nx.DiGraph`` when ``directed`` is true (ring: i→i+1, line: i→i+1, star:
center→leaves, grid: rightwards and downwards, small-world: clockwise along the ring, barabasi-albert:
older→newer so the hubs broadcast, erdos-renyi: each ordered pair drawn independently). Builders
draw randomness only from ``rng`` so the same seed gives the same graph. ``check_topology`` is the
conformance check a new builder should pass.
"""
from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import networkx as nx

from multiseal.errors import InputError
from multiseal.registry import Registry

Builder = Callable[[int, dict, random.Random, bool], "nx.Graph"]
Problems = list[tuple[str, str]]


class TopologyError(InputError, ValueError):
    """A bad topology setting; ``key`` is the dotted key of the first problem (``params.k``)."""

    def __init__(self, key: str, message: str, *, problems: Problems | None = None):
        self.key, self.message = key, message
        self.problems: Problems = list(problems) if problems else [(key, message)]
        super().__init__("; ".join(f"{k}: {m}" for k, m in self.problems))

    @classmethod
    def from_problems(cls, problems: Problems) -> TopologyError:
        return cls(*problems[0], problems=problems)


TOPOLOGIES: Registry[Builder] = Registry("topology")
_ALLOWED: dict[str, tuple[str, ...]] = {}  # built-in kind -> its parameter names
_CHECKS: dict[str, Callable[[int, dict, bool], Problems]] = {}  # built-in kind -> param check


def _builtin(name: str, allowed: tuple[str, ...] = (),
             check: Callable[[int, dict, bool], Problems] | None = None) -> Callable[[Builder], Builder]:
    """Register a built-in builder together with its parameter names and its parameter check."""
    def deco(fn: Builder) -> Builder:
        TOPOLOGIES.register(name, fn)
        _ALLOWED[name] = allowed
        _CHECKS[name] = check or (lambda n, p, d: [])
        return fn
    return deco


# ---------------------------------------------------------------- parameter checks

def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _agent_id(x: object) -> int | None:
    """``x`` as an agent id; integral floats count, since YAML lists typed as floats arrive as 1.0."""
    if _is_int(x):
        return x  # type: ignore[return-value]
    return int(x) if isinstance(x, float) and x.is_integer() else None


def _agent_problem(x: object, n: int) -> str | None:
    a = _agent_id(x)
    if a is None:
        return f"must be an agent id (an int), got {x!r}"
    return None if 0 <= a < n else f"agent {a} does not exist (agents are 0..{n - 1})"


def _prob_problem(x: object) -> str | None:
    return None if _is_num(x) and 0.0 <= x <= 1.0 else f"must be a probability in [0, 1], got {x!r}"  # type: ignore[operator]


def _check_star(n: int, p: dict, directed: bool) -> Problems:
    msg = _agent_problem(p.get("center", 0), n)
    return [("params.center", msg)] if msg else []


def _check_grid(n: int, p: dict, directed: bool) -> Problems:
    out: Problems = []
    for key in ("rows", "cols"):
        if key in p and not (_is_int(p[key]) and p[key] >= 1):
            out.append((f"params.{key}", f"must be an int >= 1, got {p[key]!r}"))
    if out:
        return out
    if "rows" in p and "cols" in p and p["rows"] * p["cols"] != n:
        out.append(("params.rows", f"rows × cols = {p['rows'] * p['cols']} must equal the number of agents ({n})"))
    elif ("rows" in p) != ("cols" in p):
        key = "rows" if "rows" in p else "cols"
        if n % p[key]:
            out.append((f"params.{key}", f"must divide the number of agents ({n})"))
    return out


def _check_small_world(n: int, p: dict, directed: bool) -> Problems:
    out: Problems = []
    k = p.get("k", 2)
    if not _is_int(k) or k < 2 or k % 2:
        out.append(("params.k", f"must be an even int >= 2, got {k!r}"))
    elif k >= n:
        out.append(("params.k", f"must be < number of agents ({n})"))
    if msg := _prob_problem(p.get("p", 0.1)):
        out.append(("params.p", msg))
    return out


def _check_erdos_renyi(n: int, p: dict, directed: bool) -> Problems:
    if "p" not in p:
        return [("params.p", "is required (the probability of each edge)")]
    msg = _prob_problem(p["p"])
    return [("params.p", msg)] if msg else []


def _check_barabasi_albert(n: int, p: dict, directed: bool) -> Problems:
    m = p.get("m", 1)
    if not _is_int(m) or m < 1:
        return [("params.m", f"must be an int >= 1, got {m!r}")]
    return [("params.m", f"must be < number of agents ({n})")] if m >= n else []


def _check_edge_list(items: object, n: int, prefix: str) -> Problems:
    """Check an explicit edge list ``[[u, v] | [u, v, weight], ...]``; keys are ``prefix[i]``."""
    if not isinstance(items, (list, tuple)):
        return [(prefix, "must be a list of [u, v] or [u, v, weight]")]
    out: Problems = []
    for i, e in enumerate(items):
        key = f"{prefix}[{i}]"
        if not isinstance(e, (list, tuple)) or len(e) not in (2, 3):
            out.append((key, f"must be [u, v] or [u, v, weight], got {e!r}"))
            continue
        bad = [m for m in (_agent_problem(e[0], n), _agent_problem(e[1], n)) if m]
        out += [(key, m) for m in bad]
        if not bad and _agent_id(e[0]) == _agent_id(e[1]):
            out.append((key, f"self-loop on agent {_agent_id(e[0])} is not allowed"))
        if len(e) == 3 and not (_is_num(e[2]) and e[2] > 0):
            out.append((key, f"weight must be a number > 0, got {e[2]!r}"))
    return out


def _check_edges(n: int, p: dict, directed: bool) -> Problems:
    if "edges" not in p:
        return [("params.edges", "is required (a list of [u, v] or [u, v, weight])")]
    return _check_edge_list(p["edges"], n, "params.edges")


def _load_matrix(p: dict) -> tuple[str, list[list[float]]]:
    """The adjacency matrix from ``params.file`` or ``params.matrix``, with the key it came from."""
    if ("file" in p) == ("matrix" in p):
        raise TopologyError("params.file", "give exactly one of params.file or params.matrix")
    if "matrix" in p:
        key, rows = "params.matrix", p["matrix"]
        if not isinstance(rows, (list, tuple)) or not all(isinstance(r, (list, tuple)) for r in rows):
            raise TopologyError(key, "must be a list of rows (lists of numbers)")
    else:
        key = "params.file"
        try:
            text = Path(p["file"]).read_text()
        except (OSError, TypeError) as e:
            raise TopologyError(key, f"cannot read {p['file']!r}: {e}") from None
        rows = [ln.split() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    try:
        matrix = [[float(x) for x in r] for r in rows]
    except (TypeError, ValueError):
        raise TopologyError(key, "every entry must be a number") from None
    if not all(math.isfinite(x) for r in matrix for x in r):
        raise TopologyError(key, "every entry must be a finite number")
    return key, matrix


def _check_adjacency(n: int, p: dict, directed: bool) -> Problems:
    try:
        key, m = _load_matrix(p)
    except TopologyError as e:
        return e.problems
    if len(m) != n or any(len(r) != n for r in m):
        shape = f"{len(m)} rows of lengths {sorted({len(r) for r in m})}"
        return [(key, f"must be a {n}×{n} matrix (one row and column per agent), got {shape}")]
    out: Problems = []
    for u in range(n):
        if m[u][u]:
            out.append((key, f"self-loop on agent {u} (diagonal must be 0)"))
        for v in range(n):
            if m[u][v] < 0:
                out.append((key, f"entry ({u}, {v}) is negative; weights must be > 0"))
            elif not directed and v > u and m[u][v] != m[v][u]:
                out.append((key, f"not symmetric at ({u}, {v}); set directed: true for one-way edges"))
    return out


def _check_weights(weights: object) -> Problems:
    if weights is None:
        return []
    if not isinstance(weights, dict):
        return [("weights", "must be a mapping with keys default and/or random")]
    out: Problems = [(f"weights.{k}", "unknown key; allowed: default, random")
                     for k in weights if k not in ("default", "random")]
    if "default" in weights and not (_is_num(weights["default"]) and weights["default"] > 0):
        out.append(("weights.default", f"must be a number > 0, got {weights['default']!r}"))
    if "random" in weights:
        r = weights["random"]
        if not (isinstance(r, (list, tuple)) and len(r) == 2 and all(_is_num(x) for x in r)
                and 0 <= r[0] <= r[1] and r[1] > 0):
            out.append(("weights.random", f"must be [lo, hi] with 0 <= lo <= hi and hi > 0, got {r!r}"))
    return out


def validate_topology_params(kind: str, n: int, params: dict | None, *, directed: bool = False,
                             weights: dict | None = None) -> Problems:
    """Every problem with a topology setting, as ``(dotted key, message)`` pairs, without building.

    For a user-registered kind (no declared parameters) the builder is tried once and the
    ``TopologyError`` it raises, if any, is reported.
    """
    if kind not in TOPOLOGIES:
        return [("kind", f"{kind!r} is not one of {', '.join(TOPOLOGIES.names())}")]
    if not _is_int(n) or n < 1:
        return [("n", f"the number of agents must be an int >= 1, got {n!r}")]
    if params is not None and not isinstance(params, dict):
        return [("params", "must be a mapping")]
    params = params or {}
    out = _check_weights(weights)
    if kind in _ALLOWED:
        allowed = _ALLOWED[kind]
        out += [(f"params.{k}", f"unknown parameter for {kind}; allowed: {', '.join(allowed) or 'none'}")
                for k in params if k not in allowed]
        return _CHECKS[kind](n, params, directed) + out
    try:
        TOPOLOGIES.get(kind)(n, params, random.Random(0), directed)
    except TopologyError as e:
        out = e.problems + out
    return out


# ---------------------------------------------------------------- built-in builders

def _from_edges(n: int, edges: Sequence[tuple[int, int]], directed: bool) -> nx.Graph:
    g: nx.Graph = nx.DiGraph() if directed else nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from((u, v) for u, v in edges if u != v)
    return g


def _orient(g: nx.Graph, forward: Callable[[int, int], bool]) -> nx.DiGraph:
    """Give each undirected edge one direction: u→v where ``forward(u, v)``, else v→u."""
    d = nx.DiGraph()
    d.add_nodes_from(g.nodes)
    d.add_edges_from((u, v) if forward(u, v) else (v, u) for u, v in g.edges)
    return d


@_builtin("complete")
def _complete(n: int, params: dict, rng: random.Random, directed: bool) -> nx.Graph:
    return nx.complete_graph(n)


@_builtin("ring")
def _ring(n: int, params: dict, rng: random.Random, directed: bool) -> nx.Graph:
    return _from_edges(n, [(i, (i + 1) % n) for i in range(n)], directed)


@_builtin("line")
def _line(n: int, params: dict, rng: random.Random, directed: bool) -> nx.Graph:
    return _from_edges(n, [(i, i + 1) for i in range(n - 1)], directed)


@_builtin("star", ("center",), _check_star)
def _star(n: int, params: dict, rng: random.Random, directed: bool) -> nx.Graph:
    c = _agent_id(params.get("center", 0))
    return _from_edges(n, [(c, i) for i in range(n) if i != c], directed)


def grid_shape(n: int, rows: int | None = None, cols: int | None = None) -> tuple[int, int]:
    """``(rows, cols)`` with ``rows * cols == n``: the given one(s), else the most square factorisation."""
    if rows is None and cols is None:
        rows = max(r for r in range(1, math.isqrt(n) + 1) if n % r == 0)
    if rows is None:
        rows = n // cols  # type: ignore[operator]
    return rows, n // rows


@_builtin("grid", ("rows", "cols"), _check_grid)
def _grid(n: int, params: dict, rng: random.Random, directed: bool) -> nx.Graph:
    rows, cols = grid_shape(n, params.get("rows"), params.get("cols"))
    right = [(r * cols + c, r * cols + c + 1) for r in range(rows) for c in range(cols - 1)]
    down = [(r * cols + c, (r + 1) * cols + c) for r in range(rows - 1) for c in range(cols)]
    return _from_edges(n, right + down, directed)


@_builtin("small-world", ("k", "p"), _check_small_world)
def _small_world(n: int, params: dict, rng: random.Random, directed: bool) -> nx.Graph:
    g = nx.watts_strogatz_graph(n, params.get("k", 2), params.get("p", 0.1), seed=rng)
    # Clockwise: the shorter way round the ring from u to v; ties (exactly opposite) go low→high.
    return _orient(g, lambda u, v: (v - u) % n < n / 2 or ((v - u) % n == n / 2 and u < v)) if directed else g


@_builtin("erdos-renyi", ("p",), _check_erdos_renyi)
def _erdos_renyi(n: int, params: dict, rng: random.Random, directed: bool) -> nx.Graph:
    return nx.gnp_random_graph(n, params["p"], seed=rng, directed=directed)


@_builtin("barabasi-albert", ("m",), _check_barabasi_albert)
def _barabasi_albert(n: int, params: dict, rng: random.Random, directed: bool) -> nx.Graph:
    g = nx.barabasi_albert_graph(n, params.get("m", 1), seed=rng)
    return _orient(g, lambda u, v: u < v) if directed else g


@_builtin("edges", ("edges",), _check_edges)
def _edges(n: int, params: dict, rng: random.Random, directed: bool) -> nx.Graph:
    problems = _check_edges(n, params, directed)
    if problems:
        raise TopologyError.from_problems(problems)
    g: nx.Graph = nx.DiGraph() if directed else nx.Graph()
    g.add_nodes_from(range(n))
    for e in params["edges"]:  # a later duplicate overrides an earlier one's weight
        g.add_edge(_agent_id(e[0]), _agent_id(e[1]), **({"weight": float(e[2])} if len(e) == 3 else {}))
    return g


@_builtin("adjacency", ("file", "matrix"), _check_adjacency)
def _adjacency(n: int, params: dict, rng: random.Random, directed: bool) -> nx.Graph:
    problems = _check_adjacency(n, params, directed)
    if problems:
        raise TopologyError.from_problems(problems)
    _, m = _load_matrix(params)
    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    g.add_edges_from((u, v, {"weight": m[u][v]}) for u in range(n) for v in range(n) if m[u][v])
    return g


@_builtin("none")
def _none(n: int, params: dict, rng: random.Random, directed: bool) -> nx.Graph:
    return nx.empty_graph(n)


# ---------------------------------------------------------------- building

def _canonical(g: nx.DiGraph, n: int) -> nx.DiGraph:
    """A copy with nodes 0..n-1 and edges in sorted order, so equal graphs compare and print alike."""
    out = nx.DiGraph()
    out.add_nodes_from(range(n))
    out.add_edges_from(sorted(g.edges(data=True), key=lambda e: (e[0], e[1])))
    return out


def _materialise(fn: Builder, n: int, params: dict, rng: random.Random, directed: bool,
                 weights: dict | None) -> nx.DiGraph:
    """Run a builder and turn its result into the canonical weighted DiGraph on 0..n-1."""
    raw = fn(n, params, rng, directed)
    if not isinstance(raw, nx.Graph):
        raise TypeError(f"a topology builder must return an nx.Graph or nx.DiGraph, got {type(raw).__name__}")
    stray = set(raw.nodes) - set(range(n))
    if stray:
        raise ValueError(f"topology builder returned nodes outside 0..{n - 1}: {sorted(stray, key=str)}")
    if any(u == v for u, v in raw.edges):
        raise ValueError("topology builder returned a self-loop")
    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    for u, v, d in sorted(raw.edges(data=True), key=lambda e: (e[0], e[1])):
        pairs = [(u, v)] if raw.is_directed() else [(u, v), (v, u)]
        g.add_edges_from(pairs, **({"weight": float(d["weight"])} if "weight" in d else {}))
    weights = weights or {}
    default, lohi = float(weights.get("default", 1.0)), weights.get("random")
    drawn: dict[tuple[int, int], float] = {}
    for u, v, d in sorted(g.edges(data=True), key=lambda e: (e[0], e[1])):
        if "weight" in d:
            continue
        if lohi is None:
            d["weight"] = default
        else:  # one draw per undirected pair keeps an undirected graph's trust symmetric
            pair = (u, v) if directed else (min(u, v), max(u, v))
            d["weight"] = drawn.setdefault(pair, rng.uniform(float(lohi[0]), float(lohi[1])))
    return _canonical(g, n)


def build_topology(kind: str, n: int, *, directed: bool = False, params: dict | None = None,
                   seed: int = 0, weights: dict | None = None) -> nx.DiGraph:
    """The communication graph for ``n`` agents: an ``nx.DiGraph`` on 0..n-1 with a ``weight`` per edge.

    ``weights`` sets the trust of edges the topology leaves unweighted: ``{"default": w}`` or
    ``{"random": [lo, hi]}`` (drawn uniformly with the seed; symmetric when undirected). Explicit
    weights (``edges`` items ``[u, v, w]``, ``adjacency`` entries) always win. Raises
    ``TopologyError`` listing every problem.
    """
    params = dict(params or {})
    problems = validate_topology_params(kind, n, params, directed=directed, weights=weights)
    if problems:
        raise TopologyError.from_problems(problems)
    return _materialise(TOPOLOGIES.get(kind), n, params, random.Random(seed), directed, weights)






def _fingerprint(g: nx.DiGraph) -> str:
    body = repr((sorted(g.nodes), sorted((u, v, round(d["weight"], 12)) for u, v, d in g.edges(data=True))))
    return hashlib.sha256(body.encode()).hexdigest()


def check_topology(fn: Builder, n: int = 6, params: dict | None = None, *, seed: int = 0) -> nx.DiGraph:
    """Conformance check for a topology builder; raises ``AssertionError`` naming what is wrong.

    Checks, directed and undirected: the result is a DiGraph on exactly 0..n-1 without self-loops,
    every edge has a float ``weight`` > 0, the same seed gives the same graph, and an undirected
    build has both directions of every edge. Returns the undirected build.
    """
    def fail(msg: str) -> None:
        raise AssertionError(f"check_topology: {msg}")

    result = None
    for directed in (False, True):
        g = _materialise(fn, n, dict(params or {}), random.Random(seed), directed, None)
        again = _materialise(fn, n, dict(params or {}), random.Random(seed), directed, None)
        if not isinstance(g, nx.DiGraph):
            fail("result is not an nx.DiGraph")
        if sorted(g.nodes) != list(range(n)):
            fail(f"nodes are {sorted(g.nodes)}, expected 0..{n - 1}")
        if nx.number_of_selfloops(g):
            fail("graph has self-loops")
        for u, v, d in g.edges(data=True):
            if not isinstance(d.get("weight"), float) or not d["weight"] > 0:
                fail(f"edge {u}->{v} has weight {d.get('weight')!r}, expected a float > 0")
            if not directed and not g.has_edge(v, u):
                fail(f"undirected build has {u}->{v} but not {v}->{u}")
        if _fingerprint(g) != _fingerprint(again):
            fail(f"same seed gave different graphs (directed={directed})")
        result = result if result is not None else g
    return result  # type: ignore[return-value]


def validate_topology(kind: str, n: int, params: dict | None = None, *, directed: bool = False,
                      weights: dict | None = None, rewire_every: int | None = None,
                      schedule: list | None = None) -> Problems:
    """Every problem with a whole topology setting (static or dynamic), as ``(dotted key, message)``.

    What ``DynamicGraph`` accepts; a scenario prefixes the keys with ``topology.``.
    """
    out: Problems = []
    if rewire_every is not None and schedule is not None:
        out.append(("schedule", "give either rewire_every or schedule, not both"))
    if rewire_every is not None and not (_is_int(rewire_every) and rewire_every >= 1):
        out.append(("rewire_every", f"must be an int >= 1, got {rewire_every!r}"))
    if schedule is None:
        return validate_topology_params(kind, n, params, directed=directed, weights=weights) + out
    if kind != "edges" or params:
        out.append(("schedule", f"a schedule replaces the topology: use kind 'edges' without params "
                                f"(got kind {kind!r}{' with params' if params else ''})"))
    out += _check_weights(weights)
    if not isinstance(schedule, (list, tuple)) or not schedule:
        out.append(("schedule", "must be a non-empty list of edge lists"))
    elif _is_int(n) and n >= 1:
        for i, entry in enumerate(schedule):
            out += _check_edge_list(entry, n, f"schedule[{i}]")
    return out



