"""The graph in force each round (static, rewired, or scheduled), and distances along it.

Topologies themselves (the registry of builders, their parameter models, the conformance check)
live in :mod:`multiseal.sim.topologies` and :mod:`multiseal.sim.topology_kinds`.
"""

from __future__ import annotations

import random

import networkx as nx

from multiseal.errors import ParamsError
from multiseal.sim.topologies import (
    _canonical,
    _fingerprint,
    _is_int,
    _materialise,
    build_topology,
    parse_topology,
    validate_topology,
)


def is_disconnected(g: nx.DiGraph) -> bool:
    """True when some agents cannot exchange notes even ignoring direction (not weakly connected)."""
    return g.number_of_nodes() > 0 and not nx.is_weakly_connected(g)


def distances(g: nx.DiGraph, source: int) -> dict[int, int]:
    """Hops along directed edges from ``source`` to every agent it reaches (itself at 0)."""
    return dict(nx.single_source_shortest_path_length(g, source))


class DynamicGraph:
    """The graph in force at each round: static, rewired every N rounds, or an explicit schedule.

    * static (default): the same graph every round.
    * ``rewire_every=N``: epoch ``e = round // N`` uses the topology rebuilt with ``seed + e`` and,
      from epoch 1 on, node labels shuffled by that epoch's rng, so even a deterministic topology
      (ring, star, ...) really moves agents around. A shuffle that reproduces the previous epoch's
      edges is redrawn (up to 20 times; ``complete`` and ``none`` can never change).
    * ``schedule=[edges_0, edges_1, ...]``: only with ``kind="edges"``; each entry is an edge list as
      in ``params.edges``. Round r uses entry ``r % len(schedule)``, so a schedule repeats.

    Returned graphs are frozen (``nx.freeze``): copy before changing one.
    """

    _TRIES = 20

    def __init__(
        self,
        kind: str,
        n: int,
        *,
        directed: bool = False,
        params: dict | None = None,
        seed: int = 0,
        weights: dict | None = None,
        rewire_every: int | None = None,
        schedule: list[list] | None = None,
    ):
        self.kind, self.n, self.directed, self.seed = kind, n, directed, seed
        self.params, self.weights = dict(params or {}), weights
        self.rewire_every, self.schedule = rewire_every, schedule
        problems = validate_topology(
            kind, n, self.params, directed=directed, weights=weights, rewire_every=rewire_every, schedule=schedule
        )
        if problems:
            raise ParamsError(problems)
        if schedule is not None:
            self._schedule = [
                nx.freeze(
                    build_topology("edges", n, directed=directed, params={"edges": e}, seed=seed + i, weights=weights)
                )
                for i, e in enumerate(schedule)
            ]
            return
        self._kind, self._parsed, self._weights, _ = parse_topology(
            kind, n, self.params, directed=directed, weights=weights
        )
        assert self._kind is not None and self._parsed is not None  # validated above
        self._epochs = [
            nx.freeze(_materialise(self._kind.fn, n, self._parsed, random.Random(seed), directed, self._weights))
        ]

    @property
    def is_static(self) -> bool:
        return self.rewire_every is None and self.schedule is None

    def at(self, round: int) -> nx.DiGraph:
        """The graph in force during ``round`` (0-based)."""
        if not _is_int(round) or round < 0:
            raise ValueError(f"round must be an int >= 0, got {round!r}")
        if self.schedule is not None:
            return self._schedule[round % len(self._schedule)]
        if self.rewire_every is None:
            return self._epochs[0]
        epoch = round // self.rewire_every
        while len(self._epochs) <= epoch:
            self._epochs.append(nx.freeze(self._rewired(len(self._epochs))))
        return self._epochs[epoch]

    def _rewired(self, epoch: int) -> nx.DiGraph:
        rng = random.Random(self.seed + epoch)
        g = _materialise(self._kind.fn, self.n, self._parsed, rng, self.directed, self._weights)  # type: ignore[union-attr,arg-type]
        previous = _fingerprint(self._epochs[-1])
        for _ in range(self._TRIES):
            perm = list(range(self.n))
            rng.shuffle(perm)
            moved = _canonical(nx.relabel_nodes(g, dict(enumerate(perm))), self.n)
            if _fingerprint(moved) != previous:
                break
        return moved
