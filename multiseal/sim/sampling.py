"""The evaluation budget: which documents an agent answers about in a round, and estimates for the rest.

Answering every agent about every document every round costs agents × documents × questions, the
largest stage of a big round. With ``evaluation.sample_documents: n`` an agent that changed this round
answers every question of the documents it holds or has trained notes about (where its accuracy moves)
plus ``n`` of the other documents, drawn with the scenario's seed and stratified by

* whether the document has been introduced yet, and
* the graph distance from the document's first recipient to the agent (-1: unreachable or not yet
  introduced),

so each stratum is represented in proportion to its size (largest remainder; every non-empty stratum gets
at least one draw while ``n`` allows). The final round is always answered in full.

A cell of the accuracy tensor that was not asked holds the **estimate** for it: the mean accuracy of the
sampled documents of its stratum (of all sampled documents when its stratum drew none). A mean over whole
strata, such as ``acc_all`` or ``acc_unreached``, is then the stratified estimator of the exhaustive mean,
and its sampling variance is

    Var = Σ_h (N_h / N)² (1 − m_h / N_h) s_h² / m_h

over the strata h inside the averaged set (N_h documents, m_h sampled, s_h² their sample variance);
a stratum with one draw uses s_h² = 0.25 (the largest variance of a value in [0, 1]) and one with none
contributes (N_h / N)² · 0.25. The simulation logs the 95% half-width, 1.96 √Var, as ``<metric>.ci95``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

Stratum = tuple[bool, int]  # (introduced, hops from the document's first recipient; -1 = none)
WORST_VARIANCE = 0.25  # of a quantity in [0, 1]
Z95 = 1.959963984540054


def allocate(sizes: Mapping[Stratum, int], n: int, rng: random.Random) -> dict[Stratum, int]:
    """How many of ``n`` draws each stratum gets: proportional to its size by largest remainder, at least
    one per non-empty stratum while ``n`` allows (strata then chosen at random), never more than its size."""
    keys = sorted(k for k, s in sizes.items() if s > 0)
    total = sum(sizes[k] for k in keys)
    if n >= total:
        return {k: sizes[k] for k in keys}
    if n < len(keys):
        return {k: 1 for k in rng.sample(keys, n)}
    quota = {k: 1 + (n - len(keys)) * (sizes[k] - 1) / (total - len(keys)) for k in keys}
    out = {k: min(sizes[k], int(quota[k])) for k in keys}
    for k in sorted(keys, key=lambda k: (-(quota[k] - int(quota[k])), rng.random())):
        if sum(out.values()) >= n:
            break
        if out[k] < sizes[k]:
            out[k] += 1
    return out


@dataclass(frozen=True)
class Sample:
    """One agent's draw in one row: the documents asked in full (``held``), every stratum's documents and
    which of them were drawn."""

    held: tuple[int, ...] = ()
    strata: dict[Stratum, tuple[int, ...]] = field(default_factory=dict)
    asked: dict[Stratum, tuple[int, ...]] = field(default_factory=dict)

    @property
    def documents(self) -> set[int]:
        """Every document answered about: the held ones and the drawn ones."""
        return set(self.held) | {j for js in self.asked.values() for j in js}


def draw(held: Sequence[int], strata: Mapping[Stratum, Sequence[int]], n: int, rng: random.Random) -> Sample:
    """``held`` in full and ``n`` documents from ``strata`` (stratified as :func:`allocate` says),
    uniformly within each stratum."""
    counts = allocate({k: len(v) for k, v in strata.items()}, n, rng)
    asked = {k: tuple(sorted(rng.sample(sorted(strata[k]), counts.get(k, 0)))) for k in sorted(strata)}
    return Sample(tuple(sorted(held)), {k: tuple(sorted(v)) for k, v in strata.items()}, asked)


def impute(row: np.ndarray, sample: Sample) -> np.ndarray:
    """``row`` (one agent's per-document accuracy, asked cells filled) with every unasked cell of the
    sample's strata set to its stratum's sampled mean (the pooled sampled mean if the stratum drew none)."""
    out = row.copy()
    pooled = [row[j] for js in sample.asked.values() for j in js]
    pool = float(np.mean(pooled)) if pooled else math.nan
    for k, docs in sample.strata.items():
        asked = sample.asked.get(k, ())
        est = float(np.mean([row[j] for j in asked])) if asked else pool
        for j in docs:
            if j not in asked:
                out[j] = est
    return out


def variance(row: np.ndarray, sample: Sample, within: np.ndarray) -> float:
    """Sampling variance of the mean of ``row`` over the documents where ``within`` holds (see the module
    docstring); 0 when no sampled stratum lies inside. A stratum only partly inside (an agent that did not
    change keeps its earlier row and draw while new documents are introduced) counts with its inside part:
    those documents and the draws among them."""
    n = int(within.sum())
    if n == 0:
        return math.nan
    var = 0.0
    for k, docs in sample.strata.items():
        inside = [j for j in docs if within[j]]
        if not inside:
            continue
        asked = [j for j in sample.asked.get(k, ()) if within[j]]
        N, m = len(inside), len(asked)
        if m >= N:
            continue
        s2 = float(np.var([row[j] for j in asked], ddof=1)) if m > 1 else WORST_VARIANCE
        var += (N / n) ** 2 * ((1 - m / N) * s2 / m if m else WORST_VARIANCE)
    return var


def halfwidth(var: float) -> float:
    """The 95% half-width of an estimate with variance ``var``."""
    return Z95 * math.sqrt(var) if var == var else math.nan
