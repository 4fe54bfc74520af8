"""Communication topologies: who can send notes to whom, and how that changes between rounds.

Agents are the ints ``0..n-1``. Every topology becomes an ``nx.DiGraph`` holding all n nodes, in
which an edge ``u → v`` means *u's notes travel to v* and carries ``weight``, v's trust in u (a float
> 0, default 1.0). An undirected topology becomes both directions of every edge.

A topology is one builder in ``TOPOLOGIES``, registered with the pydantic model of its parameters
(built-in kinds: :mod:`multiseal.sim.topology_kinds`)::

    from multiseal.registry import Params
    from multiseal.sim.topologies import TOPOLOGIES

    class TwoCliquesParams(Params):
        bridge: bool = False

    @TOPOLOGIES.register("two-cliques", params=TwoCliquesParams)
    def two_cliques(n: int, params: TwoCliquesParams, rng: random.Random, directed: bool) -> nx.Graph:
        ...

The builder receives the parsed parameters. An undirected ``nx.Graph`` result always becomes both
directions; a builder whose kind has a natural orientation returns an ``nx.DiGraph`` when ``directed``
is true (ring: i→i+1, line: i→i+1, star: center→leaves, grid: rightwards and downwards, small-world:
clockwise along the ring, barabasi-albert: older→newer so the hubs broadcast, erdos-renyi: each
ordered pair drawn independently). Builders draw randomness only from ``rng`` so the same seed gives
the same graph. The parameter model's validators see ``info.context["n"]`` (the number of agents)
and ``info.context["directed"]``. ``check_topology`` is the conformance check a new builder should pass.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from typing import Any

import networkx as nx
from pydantic import BaseModel, Field, field_validator

from multiseal.errors import ParamsError, shown
from multiseal.registry import Kind, NoParams, Params, validate_params
from multiseal.sim.topology_kinds import (
    TOPOLOGIES,
    Builder,
    check_edge_list,
    grid_shape,
)

__all__ = [
    "TOPOLOGIES",
    "Builder",
    "Weights",
    "build_topology",
    "check_topology",
    "grid_shape",
    "parse_topology",
    "validate_topology",
    "validate_topology_params",
]

Problems = list[tuple[str, str]]


class Weights(Params):
    """The trust of edges a topology leaves unweighted: one ``default``, or drawn from ``random``."""

    default: float = Field(1.0, gt=0, description="the weight of every edge")
    random: list[float] | None = Field(None, description="[lo, hi]: each weight drawn uniformly with the seed")

    @field_validator("random")
    @classmethod
    def _range(cls, r: list[float] | None) -> list[float] | None:
        if r is not None and not (len(r) == 2 and 0 <= r[0] <= r[1] and r[1] > 0):
            raise ValueError(f"must be [lo, hi] with 0 <= lo <= hi and hi > 0, got {shown(r)}")
        return r


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def parse_topology(
    kind: str,
    n: int,
    params: Mapping[str, Any] | None,
    *,
    directed: bool = False,
    weights: Mapping[str, Any] | None = None,
) -> tuple[Kind | None, BaseModel | None, Weights | None, Problems]:
    """``(kind, parsed params, parsed weights, problems)``: the parts are None where there are problems."""
    if kind not in TOPOLOGIES:
        return None, None, None, [("kind", f"{shown(kind)} is not one of {', '.join(TOPOLOGIES.names())}")]
    if not _is_int(n) or n < 1:
        return None, None, None, [("n", f"the number of agents must be an int >= 1, got {shown(n)}")]
    entry = TOPOLOGIES.get(kind)
    parsed, problems = entry.validate(params, context={"n": n, "directed": directed})
    w, w_problems = validate_params(Weights, weights, prefix="weights")
    return entry, parsed, w, problems + w_problems  # type: ignore[return-value]


def validate_topology_params(
    kind: str,
    n: int,
    params: Mapping[str, Any] | None,
    *,
    directed: bool = False,
    weights: Mapping[str, Any] | None = None,
) -> Problems:
    """Every problem with a static topology setting, as ``(dotted key, message)`` pairs, without building."""
    return parse_topology(kind, n, params, directed=directed, weights=weights)[3]


# ---------------------------------------------------------------- building


def _canonical(g: nx.DiGraph, n: int) -> nx.DiGraph:
    """A copy with nodes 0..n-1 and edges in sorted order, so equal graphs compare and print alike."""
    out = nx.DiGraph()
    out.add_nodes_from(range(n))
    out.add_edges_from(sorted(g.edges(data=True), key=lambda e: (e[0], e[1])))
    return out


def _materialise(
    fn: Builder, n: int, params: BaseModel, rng: random.Random, directed: bool, weights: Weights | None
) -> nx.DiGraph:
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
    weights = weights or Weights()
    default, lohi = float(weights.default), weights.random
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


def build_topology(
    kind: str,
    n: int,
    *,
    directed: bool = False,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    weights: Mapping[str, Any] | None = None,
) -> nx.DiGraph:
    """The communication graph for ``n`` agents: an ``nx.DiGraph`` on 0..n-1 with a ``weight`` per edge.

    ``weights`` sets the trust of edges the topology leaves unweighted: ``{"default": w}`` or
    ``{"random": [lo, hi]}`` (drawn uniformly with the seed; symmetric when undirected). Explicit
    weights (``edges`` items ``[u, v, w]``, ``adjacency`` entries) always win. Raises
    ``ParamsError`` listing every problem.
    """
    entry, parsed, w, problems = parse_topology(kind, n, params, directed=directed, weights=weights)
    if problems:
        raise ParamsError(problems)
    return _materialise(entry.fn, n, parsed, random.Random(seed), directed, w)  # type: ignore[union-attr,arg-type]


def _fingerprint(g: nx.DiGraph) -> str:
    body = repr((sorted(g.nodes), sorted((u, v, round(d["weight"], 12)) for u, v, d in g.edges(data=True))))
    return hashlib.sha256(body.encode()).hexdigest()


def check_topology(
    fn: str | Kind | Builder,
    n: int = 6,
    params: Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
    params_model: type[BaseModel] | None = None,
) -> nx.DiGraph:
    """Conformance check for a topology builder; raises ``AssertionError`` naming what is wrong.

    ``fn`` is a registered kind (its name or ``TOPOLOGIES.get(name)``: its own model parses ``params``) or a bare
    builder (``params_model``, default: none, parses them). Checks, directed and undirected: the params
    parse, the result is a DiGraph on exactly 0..n-1 without self-loops, every edge has a float
    ``weight`` > 0, the same seed gives the same graph, and an undirected build has both directions
    of every edge. Returns the undirected build.
    """

    def fail(msg: str) -> None:
        raise AssertionError(f"check_topology: {msg}")

    if isinstance(fn, str):
        fn = TOPOLOGIES.get(fn)
    model = params_model or (fn.params if isinstance(fn, Kind) else NoParams)
    build = fn.fn if isinstance(fn, Kind) else fn
    result = None
    for directed in (False, True):
        parsed, problems = validate_params(model, params, context={"n": n, "directed": directed})
        if problems:
            fail(f"params {params!r} do not fit {model.__name__} (directed={directed}): {problems}")
        g = _materialise(build, n, parsed, random.Random(seed), directed, None)  # type: ignore[arg-type]
        again = _materialise(build, n, parsed, random.Random(seed), directed, None)  # type: ignore[arg-type]
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


def validate_topology(
    kind: str,
    n: int,
    params: Mapping[str, Any] | None = None,
    *,
    directed: bool = False,
    weights: Mapping[str, Any] | None = None,
    rewire_every: int | None = None,
    schedule: list | None = None,
) -> Problems:
    """Every problem with a whole topology setting (static or dynamic), as ``(dotted key, message)``.

    What ``DynamicGraph`` accepts; a scenario prefixes the keys with ``topology.``.
    """
    out: Problems = []
    if rewire_every is not None and schedule is not None:
        out.append(("schedule", "give either rewire_every or schedule, not both"))
    if rewire_every is not None and not (_is_int(rewire_every) and rewire_every >= 1):
        out.append(("rewire_every", f"must be an int >= 1, got {shown(rewire_every)}"))
    if schedule is None:
        return validate_topology_params(kind, n, params, directed=directed, weights=weights) + out
    if kind != "edges" or params:
        out.append(
            (
                "schedule",
                (
                    f"a schedule replaces the topology: use kind 'edges' without params "
                    f"(got kind {shown(kind)}{' with params' if params else ''})"
                ),
            )
        )
    out += validate_params(Weights, weights, prefix="weights")[1]
    if not isinstance(schedule, (list, tuple)) or not schedule:
        out.append(("schedule", "must be a non-empty list of edge lists"))
    elif _is_int(n) and n >= 1:
        for i, entry in enumerate(schedule):
            out += [(f"schedule[{i}]{k}", m) for k, m in check_edge_list(entry, n)]
    return out
