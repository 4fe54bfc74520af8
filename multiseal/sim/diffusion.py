"""How far knowledge has spread over the population: diffusion, overall and by graph distance
(conventions in :mod:`multiseal.sim.accuracy`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import networkx as nx
import numpy as np
import numpy.typing as npt

from multiseal.sim.accuracy import (
    FloatArray,
    acc_tensor,
    agent_doc,
    introduced_row,
    masked_mean,
)


def diffusion(acc: npt.ArrayLike, t: int, introduced: npt.ArrayLike, threshold: float | None = 0.5) -> float:
    """How far introduced knowledge has spread over the population at row ``t``.

    With a threshold: share of (agent, introduced document) pairs the agent "knows",
    ``#{(a, j) : introduced[t, j], acc[t, a, j] >= threshold} / #{(a, j) : introduced[t, j]}``.
    With ``threshold=None``: the mean accuracy over those pairs instead. NaN if nothing is
    introduced (or measured).
    """
    a = acc_tensor(acc, t)
    row = introduced_row(introduced, a, t)
    mask = np.broadcast_to(row, a.shape[1:])
    vals = a[t] if threshold is None else _known(a[t], threshold)
    return float(masked_mean(vals.ravel(), mask.ravel()))


def _known(values: FloatArray, threshold: float) -> FloatArray:
    """1.0 where ``values >= threshold``, 0.0 below, NaN where unmeasured."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(values), (values >= threshold).astype(np.float64), np.nan)


def diffusion_by_distance(
    acc: npt.ArrayLike,
    t: int,
    distance: npt.ArrayLike,
    threshold: float | None = 0.5,
    introduced: npt.ArrayLike | None = None,
) -> dict[int, float]:
    """Diffusion at row ``t`` split by graph distance: ``{d: share of pairs (a, j) with
    distance[a, j] = d that agent a knows}`` (``acc[t, a, j] >= threshold``; the mean accuracy if
    ``threshold=None``).

    ``distance[a, j]`` is the number of hops from document ``j``'s first recipient to agent ``a``
    (0 = the recipient itself, -1 = unreachable; -1 is reported as its own key). With
    ``introduced`` only documents introduced by row ``t`` count. Keys are sorted; a distance with no
    measured pair is absent.
    """
    a = acc_tensor(acc, t)
    dist = agent_doc(distance, a, "distance", int)
    mask = np.isfinite(a[t])
    if introduced is not None:
        mask = mask & introduced_row(introduced, a, t)[None, :]
    vals = a[t] if threshold is None else _known(a[t], threshold)
    out: dict[int, float] = {}
    for d in np.unique(dist[mask]):
        out[int(d)] = float(masked_mean(vals.ravel(), (mask & (dist == d)).ravel()))
    return out


def recipient_distances(
    arrivals: Mapping[int, Mapping[int, Sequence[str]]], doc_index: Mapping[str, int], n_agents: int, graph: nx.DiGraph
) -> np.ndarray:
    """``distance[a, j]``: hops along ``graph`` from document j's first recipient (earliest round,
    then lowest agent id) to agent a; -1 where a is unreachable or j not yet introduced."""
    dist = np.full((n_agents, len(doc_index)), -1, dtype=int)
    first: dict[str, int] = {}
    for r in sorted(arrivals):
        for a in sorted(arrivals[r]):
            for doc_id in arrivals[r][a]:
                first.setdefault(doc_id, a)
    cache: dict[int, dict[int, int]] = {}
    for doc_id, src in first.items():
        hops = cache.setdefault(src, dict(nx.single_source_shortest_path_length(graph, src)))
        for a, h in hops.items():
            dist[a, doc_index[doc_id]] = h
    return dist


def distance_rounds(
    acc: npt.ArrayLike, introduced: npt.ArrayLike, distances: Sequence[npt.ArrayLike]
) -> dict[int, list[float]]:
    """The distance × round table of a run: ``{d: [mean accuracy at row t of the (agent, introduced
    document) pairs at graph distance d, for t = 0..len(distances) - 1]}`` (NaN where a row has no such
    pair); ``distances[t]`` is row t's (agents × documents) distance matrix (-1: unreachable)."""
    cells = [diffusion_by_distance(acc, t, d, None, introduced) for t, d in enumerate(distances)]
    keys = sorted({k for c in cells for k in c})
    return {k: [c.get(k, math.nan) for c in cells] for k in keys}
