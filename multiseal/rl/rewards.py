"""ReST-EM rewards: from learners' gains to a candidate's reward, which candidates are kept, and the
statistics an iteration logs about them.

The reward of a candidate from the gains ``g = acc_after − acc_ref`` it produced::

    self:        r = g_author
    neighbours:  r = Σ_v w_v g_v / Σ_v w_v      (v: out-neighbours, w_v: trust weight of a → v)
    mixed:       r = m · g_author + (1 − m) · neighbours        (m = mix_weight)
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from multiseal.rl.restem_records import Candidate

REWARDS = ("self", "neighbours", "mixed")


def neighbour_gain(gains: Sequence[float], weights: Sequence[float] | None = None) -> float:
    """Trust-weighted mean gain of the neighbours (uniform when ``weights`` is None); NaN if none."""
    if not gains:
        return math.nan
    weights = [1.0] * len(gains) if weights is None else list(weights)
    if len(weights) != len(gains):
        raise ValueError("one weight per neighbour gain")
    total = sum(weights)
    return sum(g * w for g, w in zip(gains, weights)) / total if total > 0 else math.nan


def combine_reward(
    kind: str,
    self_gain: float | None,
    neighbour_gains: Sequence[float] = (),
    weights: Sequence[float] | None = None,
    mix_weight: float = 0.5,
) -> float:
    """The reward of one candidate from the gains it produced (see the module docstring)."""
    if kind == "self":
        if self_gain is None:
            raise ValueError("reward 'self' needs the author's gain")
        return self_gain
    nb = neighbour_gain(neighbour_gains, weights)
    if math.isnan(nb):
        raise ValueError(f"reward '{kind}' needs at least one neighbour gain")
    if kind == "neighbours":
        return nb
    if kind == "mixed":
        if self_gain is None:
            raise ValueError("reward 'mixed' needs the author's gain")
        return mix_weight * self_gain + (1.0 - mix_weight) * nb
    raise ValueError(f"reward must be one of {', '.join(REWARDS)}, got {kind!r}")


def select_candidates(
    rewards: Sequence[float], keep: int, min_reward: float = 0.0, eligible: Sequence[bool] | None = None
) -> list[int]:
    """Indices of the ``keep`` highest rewards strictly above ``min_reward``, best first.

    Ties go to the earlier candidate; ``eligible[i] == False`` (a completion with no usable line)
    is never kept; NaN rewards are never kept.
    """
    ok = [
        i for i, r in enumerate(rewards) if not math.isnan(r) and r > min_reward and (eligible is None or eligible[i])
    ]
    return sorted(ok, key=lambda i: (-rewards[i], i))[:keep]


def reward_stats(rewards: Sequence[float]) -> dict[str, float]:
    """mean, max, min, std and the share of candidates with a positive reward."""
    vals = [r for r in rewards if not math.isnan(r)]
    if not vals:
        return {"n": 0.0}
    return {
        "n": float(len(vals)),
        "mean": statistics.fmean(vals),
        "max": max(vals),
        "min": min(vals),
        "std": statistics.pstdev(vals),
        "positive_share": sum(r > 0 for r in vals) / len(vals),
    }


def gain_stats(cands: Sequence[Candidate]) -> dict[str, float]:
    """Mean gain of the authors (``self.mean``) and of the neighbours (``neighbours.mean``), where any."""
    out = {}
    own = [c.self_gain for c in cands if c.self_gain is not None]
    nb = [g for c in cands for g in c.neighbour_gains]
    if own:
        out["self.mean"] = statistics.fmean(own)
    if nb:
        out["neighbours.mean"] = statistics.fmean(nb)
    return out
