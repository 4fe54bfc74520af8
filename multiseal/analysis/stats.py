"""Statistics over runs (scipy): confidence intervals over seeds."""
from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import stats


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
