"""Statistics shared by the run and analysis layers (scipy, numpy): intervals over seeds, the two-level
cluster bootstrap of paired differences, Holm adjustment, power of a paired design (docs/sweeps.md)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

RESAMPLES = 2000  # bootstrap resamples by default
_CHUNK_CELLS = 2_000_000  # draws the bootstrap holds in memory at once


def t_critical(confidence: float, df: int) -> float:
    """Two-sided critical value of Student's t: ``t`` with ``P(|T_df| <= t) = confidence``
    (e.g. 4.303 for 95 % and df = 2, 12.706 for df = 1)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    return float(stats.t.ppf((1 + confidence) / 2, df))


def mean_ci(values: npt.ArrayLike, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval, ignoring NaN: ``mean ± t_{df=n-1} * s / sqrt(n)``
    with ``s`` the sample std (ddof = 1). For seeds or agents treated as a sample.

    Returns ``(mean, lo, hi)``; ``(nan, nan, nan)`` for no values, ``(x, nan, nan)`` for one.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(v.mean())
    if v.size == 1:
        return mean, math.nan, math.nan
    half = t_critical(confidence, v.size - 1) * float(stats.sem(v))
    return mean, mean - half, mean + half


def holm(pvalues: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Holm's step-down adjustment of ``m`` p-values (NaN entries are left out of ``m`` and stay NaN):
    sorted ascending, ``p_(i) · (m - i + 1)``, made non-decreasing, capped at 1; in the input order.
    E.g. ``[0.01, 0.04, 0.03, 0.005]`` → ``[0.03, 0.06, 0.06, 0.02]``."""
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    if idx.size:
        order = idx[np.argsort(p[idx], kind="stable")]
        m = order.size
        scaled = p[order] * (m - np.arange(m))
        out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out


def mdd(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Minimum detectable difference of a paired mean over ``n`` independent units (seeds) whose
    differences have standard deviation ``sd``: ``(t_{1-α/2, n-1} + t_{power, n-1}) · sd / sqrt(n)``
    (two-sided test at level ``alpha``). NaN for ``n < 2`` or an undefined ``sd``."""
    if n < 2 or not math.isfinite(sd):
        return math.nan
    return float((stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(power, n - 1)) * sd / math.sqrt(n))


def seeds_needed(sd: float, target: float, alpha: float = 0.05, power: float = 0.8, cap: int = 1000) -> int | None:
    """The smallest ``n >= 2`` with ``mdd(sd, n) <= |target|``; ``cap + 1`` when even ``cap`` seeds
    are not enough; None when ``target`` is 0 or ``sd`` is undefined."""
    if not math.isfinite(sd) or not math.isfinite(target) or target == 0:
        return None
    n = np.arange(2, cap + 1)
    needed = (stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(power, n - 1)) * sd / np.sqrt(n)
    ok = np.flatnonzero(needed <= abs(target))
    return int(n[ok[0]]) if ok.size else cap + 1


@dataclass(frozen=True)
class Bootstrap:
    """Mean difference over cells, percentile interval and two-sided p from ``resamples`` resamples."""

    delta: float
    lo: float
    hi: float
    p: float
    resamples: int


def cluster_bootstrap(
    diffs: Sequence[np.ndarray], resamples: int = RESAMPLES, seed: int = 0, confidence: float = 0.95
) -> Bootstrap:
    """Two-level cluster bootstrap of the mean over all cells of ``diffs`` (one ``[clusters, cells]``
    array per seed, NaN = no cell): draw seeds with replacement, then within each drawn seed as many
    clusters as it has, with replacement, each with all its cells. Seeded (numpy), deterministic."""
    sums, counts = [], []
    for d in diffs:
        d = np.asarray(d, dtype=np.float64)
        d = d.reshape(d.shape[0], -1) if d.ndim else d.reshape(1, 1)
        ok = np.isfinite(d)
        c, s = ok.sum(axis=1), np.where(ok, d, 0.0).sum(axis=1)
        if (c > 0).any():
            sums.append(s[c > 0])
            counts.append(c[c > 0])
    if not sums:
        return Bootstrap(math.nan, math.nan, math.nan, math.nan, 0)
    n, sizes = len(sums), np.array([len(s) for s in sums])
    width = int(sizes.max())
    S, C = np.zeros((n, width)), np.zeros((n, width))
    for i, (s, c) in enumerate(zip(sums, counts)):
        S[i, : len(s)], C[i, : len(c)] = s, c
    delta = float(S.sum() / C.sum())
    rng = np.random.default_rng(seed)
    stat = np.empty(resamples)
    chunk = max(1, _CHUNK_CELLS // (n * width))
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        drawn = rng.integers(0, n, size=(b, n))  # seeds
        k = sizes[drawn][..., None]
        cluster = (rng.random((b, n, width)) * k).astype(np.int64)  # clusters within each drawn seed
        valid = np.arange(width) < k
        rows = drawn[..., None]
        stat[start : start + b] = np.where(valid, S[rows, cluster], 0.0).sum(axis=(1, 2)) / np.where(
            valid, C[rows, cluster], 0.0
        ).sum(axis=(1, 2))
    lo, hi = np.quantile(stat, [(1 - confidence) / 2, (1 + confidence) / 2])
    if delta > 0:
        p = min(1.0, 2 * (int((stat <= 0).sum()) + 1) / (resamples + 1))
    elif delta < 0:
        p = min(1.0, 2 * (int((stat >= 0).sum()) + 1) / (resamples + 1))
    else:
        p = 1.0
    return Bootstrap(delta, float(lo), float(hi), p, resamples)


def verdict(delta: float, p_adjusted: float, alpha: float = 0.05) -> str:
    """*higher* / *lower* (the point's value against the reference's) when ``p_adjusted < alpha``."""
    if math.isfinite(p_adjusted) and p_adjusted < alpha and delta != 0:
        return "higher" if delta > 0 else "lower"
    return "not distinguishable"
