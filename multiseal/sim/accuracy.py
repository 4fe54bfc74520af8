"""The accuracy tensor every metric reads, and accuracy on groups of documents.

Conventions (shared with the simulation and tracking):

* ``acc[r, a, j]`` — accuracy of agent ``a`` on document ``j``'s questions at **row** ``r``, shape
  ``(R + 1, A, D)``. Row 0 is the base model before any update; row ``r`` (1..R) is after round
  ``r``'s updates. Every document is measured at every row, introduced or not, so forward transfer
  can be read. A NaN entry means "not measured" and is left out of every mean.
* ``introduced[r, j]`` (bool, ``(R + 1, D)``) — document ``j`` reached the world at or before round
  ``r``. Row 0 is normally all False.
* ``learnt_round[a, j]`` (int, ``(A, D)``) — the row at which agent ``a`` first had document ``j``
  available to learn (its first arrival at the agent, directly or as a neighbour's note); -1 if
  never. A document that arrives in round ``r`` is learnt in round ``r`` and measured "just after
  learning" at row ``r`` — GEM's ``R(i, i)``; row ``r - 1`` is "just before".
* ``own[a, j]`` (bool, ``(A, D)``) — document ``j`` came to agent ``a`` directly from the world.
* An agent has *reached* document ``j`` at row ``t`` iff ``0 <= learnt_round[a, j] <= t``.

Per-agent functions return an array over agents with NaN where the metric has nothing to average
(no documents in the mask, no learnt documents, ...). No function emits a RuntimeWarning.

The shape checks and NaN-aware masked reductions here are shared by :mod:`multiseal.sim.continual`,
:mod:`multiseal.sim.diffusion` and :mod:`multiseal.sim.metrics`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


# --------------------------------------------------------------------------------------------
# shape checks and masked reductions


def acc_tensor(acc: npt.ArrayLike, t: int | None = None) -> FloatArray:
    """``acc`` as a float (R+1, A, D) array; checks that row ``t`` exists."""
    a = np.asarray(acc, dtype=np.float64)
    if a.ndim != 3:
        raise ValueError(f"acc must have shape (rounds + 1, agents, documents), got shape {a.shape}")
    if t is not None and not 0 <= t < a.shape[0]:
        raise ValueError(f"row t={t} is outside the accuracy tensor's rows 0..{a.shape[0] - 1}")
    return a


def agent_doc(x: npt.ArrayLike, acc: FloatArray, name: str, dtype: type = bool) -> np.ndarray:
    """An (A, D) array matching ``acc``'s agents and documents."""
    arr: np.ndarray = np.asarray(x, dtype=dtype)
    if arr.shape != acc.shape[1:]:
        raise ValueError(f"{name} must have shape (agents, documents) = {acc.shape[1:]}, got {arr.shape}")
    return arr


def introduced_row(introduced: npt.ArrayLike, acc: FloatArray, t: int) -> BoolArray:
    """Row ``t`` of ``introduced`` as a (D,) bool array."""
    intro = np.asarray(introduced, dtype=bool)
    if intro.shape != (acc.shape[0], acc.shape[2]):
        raise ValueError(
            f"introduced must have shape (rounds + 1, documents) = {(acc.shape[0], acc.shape[2])}, got {intro.shape}"
        )
    return intro[t]


def masked_mean(values: FloatArray, mask: npt.ArrayLike, axis: int = -1) -> FloatArray:
    """Mean of ``values`` over ``axis`` where ``mask`` holds and the value is finite; NaN if none."""
    ok = np.asarray(mask, dtype=bool) & np.isfinite(values)
    n = ok.sum(axis=axis)
    s = np.where(ok, values, 0.0).sum(axis=axis)
    out = np.full(np.shape(n), np.nan)
    np.divide(s, n, out=out, where=n > 0)
    return out


def masked_max(values: FloatArray, mask: npt.ArrayLike, axis: int = -1) -> FloatArray:
    """Max of ``values`` over ``axis`` where ``mask`` holds and the value is finite; NaN if none."""
    ok = np.asarray(mask, dtype=bool) & np.isfinite(values)
    m = np.where(ok, values, -np.inf).max(axis=axis)
    return np.where(ok.any(axis=axis), m, np.nan)


def reached(learnt_round: npt.ArrayLike, t: int) -> BoolArray:
    """``reached[a, j]``: agent ``a`` has had document ``j`` by row ``t`` (``0 <= l[a, j] <= t``)."""
    lr = np.asarray(learnt_round)
    return (lr >= 0) & (lr <= t)


# --------------------------------------------------------------------------------------------
# accuracy on document groups


def accuracy_on(acc: npt.ArrayLike, t: int, mask: npt.ArrayLike) -> FloatArray:
    """Per-agent mean accuracy at row ``t`` over the documents in ``mask[a, j]``.

    ``accuracy_on[a] = mean_{j : mask[a, j]} acc[t, a, j]``; NaN for an agent with no (measured)
    document in its mask.
    """
    a = acc_tensor(acc, t)
    m = agent_doc(mask, a, "mask")
    return masked_mean(a[t], m)


def accuracy_all(acc: npt.ArrayLike, t: int, introduced: npt.ArrayLike) -> FloatArray:
    """GEM's average accuracy over the documents introduced so far:
    ``ACC[a] = mean_{j : introduced[t, j]} acc[t, a, j]`` (NaN at row 0, when nothing is introduced)."""
    a = acc_tensor(acc, t)
    row = introduced_row(introduced, a, t)
    return masked_mean(a[t], np.broadcast_to(row, a.shape[1:]))


def accuracy_own(acc: npt.ArrayLike, t: int, own: npt.ArrayLike, learnt_round: npt.ArrayLike) -> FloatArray:
    """Accuracy on the agent's own documents (arrived directly from the world) reached by row ``t``:
    ``mean_{j : own[a, j] and 0 <= l[a, j] <= t} acc[t, a, j]``."""
    a = acc_tensor(acc, t)
    mask = agent_doc(own, a, "own") & reached(agent_doc(learnt_round, a, "learnt_round", int), t)
    return masked_mean(a[t], mask)


def accuracy_received(acc: npt.ArrayLike, t: int, own: npt.ArrayLike, learnt_round: npt.ArrayLike) -> FloatArray:
    """Accuracy on documents the agent knows only through others' notes (reached by row ``t``, not
    own): ``mean_{j : not own[a, j] and 0 <= l[a, j] <= t} acc[t, a, j]``."""
    a = acc_tensor(acc, t)
    mask = ~agent_doc(own, a, "own") & reached(agent_doc(learnt_round, a, "learnt_round", int), t)
    return masked_mean(a[t], mask)


def accuracy_unreached(
    acc: npt.ArrayLike, t: int, introduced: npt.ArrayLike, learnt_round: npt.ArrayLike
) -> FloatArray:
    """Accuracy on documents already in the world but not yet at the agent (neither arrived nor
    received as a note): ``mean_{j : introduced[t, j] and not 0 <= l[a, j] <= t} acc[t, a, j]``.
    A rise here means knowledge leaking in some other way (or guessing)."""
    a = acc_tensor(acc, t)
    row = introduced_row(introduced, a, t)
    mask = row[None, :] & ~reached(agent_doc(learnt_round, a, "learnt_round", int), t)
    return masked_mean(a[t], mask)


def accuracy_future(acc: npt.ArrayLike, t: int, introduced: npt.ArrayLike) -> FloatArray:
    """Accuracy on documents not yet introduced to the world at row ``t``:
    ``mean_{j : not introduced[t, j]} acc[t, a, j]`` — pure forward transfer / prior knowledge."""
    a = acc_tensor(acc, t)
    row = introduced_row(introduced, a, t)
    return masked_mean(a[t], np.broadcast_to(~row, a.shape[1:]))
