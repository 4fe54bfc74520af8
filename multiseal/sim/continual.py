"""Continual-learning metrics over the accuracy tensor (conventions in :mod:`multiseal.sim.accuracy`):
forgetting, backward and forward transfer, retention and item churn.

Sources: GEM = Lopez-Paz & Ranzato, "Gradient Episodic Memory for Continual Learning", NeurIPS 2017
(ACC, BWT, FWT); Chaudhry et al., "Riemannian Walk for Incremental Learning", ECCV 2018
(forgetting); SEAL = Zweiger et al. 2025 (the continual-learning accuracy matrix, row 0 = base).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from multiseal.sim.accuracy import (
    FloatArray,
    acc_tensor,
    agent_doc,
    masked_max,
    masked_mean,
)

# --------------------------------------------------------------------------------------------
# forgetting and transfer (GEM, Chaudhry et al.)


def forgetting_per_doc(acc: npt.ArrayLike, t: int, learnt_round: npt.ArrayLike) -> FloatArray:
    """Chaudhry et al. (2018) forgetting of each document at row ``t``, shape (A, D):

    ``f[a, j] = max_{l_j <= s < t} acc[s, a, j] - acc[t, a, j]`` with ``l_j = learnt_round[a, j]``,
    defined for ``0 <= l_j < t`` (NaN otherwise: not learnt yet, learnt at ``t`` itself, or never).
    The max runs over rows from learning on, so accuracy before learning is not "forgotten". It can
    be negative when the document is answered better now than ever before.
    """
    a = acc_tensor(acc, t)
    lr = agent_doc(learnt_round, a, "learnt_round", int)
    rows = np.arange(a.shape[0])[:, None, None]
    window = (rows >= lr[None]) & (rows < t)
    best = masked_max(a, window, axis=0)
    valid = (lr >= 0) & (lr < t)
    with np.errstate(invalid="ignore"):
        return np.where(valid, best - a[t], np.nan)


def forgetting(acc: npt.ArrayLike, t: int, learnt_round: npt.ArrayLike) -> FloatArray:
    """Per-agent average forgetting at row ``t`` (Chaudhry et al. 2018):
    ``F[a] = mean_{j : 0 <= l_j < t} f[a, j]`` (see :func:`forgetting_per_doc`); NaN if no document
    was learnt before row ``t``."""
    f = forgetting_per_doc(acc, t, learnt_round)
    return masked_mean(f, np.ones(f.shape, dtype=bool))


def forgetting_max(acc: npt.ArrayLike, t: int, learnt_round: npt.ArrayLike) -> FloatArray:
    """Per-agent worst-case forgetting at row ``t``: ``max_{j : 0 <= l_j < t} f[a, j]``; NaN if none."""
    f = forgetting_per_doc(acc, t, learnt_round)
    return masked_max(f, np.ones(f.shape, dtype=bool))


def backward_transfer(acc: npt.ArrayLike, t: int, learnt_round: npt.ArrayLike) -> FloatArray:
    """GEM backward transfer at row ``t`` (Lopez-Paz & Ranzato 2017):

    ``BWT[a] = mean_{j : 0 <= l_j < t} (acc[t, a, j] - acc[l_j, a, j])`` — accuracy now minus
    accuracy right after learning (GEM's ``R(T, i) - R(i, i)``; row ``l_j`` is the row after the
    round in which ``j`` was learnt). Negative = forgetting. NaN if no document was learnt before
    row ``t``.
    """
    a = acc_tensor(acc, t)
    lr = agent_doc(learnt_round, a, "learnt_round", int)
    valid = (lr >= 0) & (lr < t)
    at_learning = np.take_along_axis(a, np.clip(lr, 0, a.shape[0] - 1)[None], axis=0)[0]
    with np.errstate(invalid="ignore"):
        return masked_mean(a[t] - at_learning, valid)


def forward_transfer(acc: npt.ArrayLike, learnt_round: npt.ArrayLike, t: int | None = None) -> FloatArray:
    """GEM forward transfer (Lopez-Paz & Ranzato 2017), baseline = the base model (row 0):

    ``FWT[a] = mean_{j : 2 <= l_j <= t} (acc[l_j - 1, a, j] - acc[0, a, j])`` — accuracy just before
    the agent learnt ``j`` minus the base model's. Documents learnt at row 1 are left out because
    their "just before" row is the base row itself (GEM's ``i >= 2``); documents learnt after row
    ``t`` (default: the last row) are left out too. NaN if no document qualifies.
    """
    a = acc_tensor(acc, t)
    last = a.shape[0] - 1 if t is None else t
    lr = agent_doc(learnt_round, a, "learnt_round", int)
    valid = (lr >= 2) & (lr <= last)
    before = np.take_along_axis(a, np.clip(lr - 1, 0, a.shape[0] - 1)[None], axis=0)[0]
    with np.errstate(invalid="ignore"):
        return masked_mean(before - a[0], valid)


# --------------------------------------------------------------------------------------------
# per-question metrics


def retention(probe_correct: npt.ArrayLike) -> FloatArray:
    """Share of retention-probe questions still answered correctly, over the last axis.

    The probe is a fixed set of questions the base model answered correctly at the start, so
    ``retention = mean_q probe_correct[..., q]`` (1.0 = nothing lost). ``probe_correct`` is (A, Q)
    for per-agent values, or (Q,) for one (0-d result); NaN entries (not asked) are left out, and an
    empty probe gives NaN.
    """
    p = np.asarray(probe_correct, dtype=np.float64)
    return masked_mean(p, np.ones(p.shape, dtype=bool))


def item_churn(prev_correct: npt.ArrayLike, cur_correct: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Item churn between two evaluations of the same questions (last axis = question):

    ``lost = #{q : prev_q correct and cur_q wrong} / n`` and ``gained = #{q : prev_q wrong and cur_q
    correct} / n``, with ``n`` the questions graded at both steps (entries that are NaN in either are
    left out, so a question added later can be padded with NaN). A grade >= 0.5 counts as correct.
    NaN where ``n = 0``. The net change of accuracy is ``gained - lost``; churn shows how much
    turnover hides behind it.
    """
    prev = np.asarray(prev_correct, dtype=np.float64)
    cur = np.asarray(cur_correct, dtype=np.float64)
    if prev.shape != cur.shape:
        raise ValueError(f"prev_correct and cur_correct must have the same shape, got {prev.shape} and {cur.shape}")
    both = np.isfinite(prev) & np.isfinite(cur)
    with np.errstate(invalid="ignore"):
        p, c = prev >= 0.5, cur >= 0.5
    lost = (p & ~c).astype(np.float64)
    gained = (~p & c).astype(np.float64)
    return masked_mean(lost, both), masked_mean(gained, both)
