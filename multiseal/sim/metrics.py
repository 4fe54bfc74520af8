"""Every metric formula of multiseal in one place: pure numpy over plain arrays.

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

Sources: GEM = Lopez-Paz & Ranzato, "Gradient Episodic Memory for Continual Learning", NeurIPS 2017
(ACC, BWT, FWT); Chaudhry et al., "Riemannian Walk for Incremental Learning", ECCV 2018
(forgetting); SEAL = Zweiger et al. 2025 (the continual-learning accuracy matrix, row 0 = base).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# Names produced by ``agent_metrics``, in a stable order (tracking can rely on it).
METRIC_NAMES: tuple[str, ...] = (
    "acc_own",
    "acc_received",
    "acc_all",
    "acc_unreached",
    "acc_future",
    "forgetting",
    "forgetting_max",
    "bwt",
    "fwt",
    "retention",
    "churn_lost",
    "churn_gained",
)


# --------------------------------------------------------------------------------------------
# helpers


def _acc3(acc: npt.ArrayLike, t: int | None = None) -> FloatArray:
    """``acc`` as a float (R+1, A, D) array; checks that row ``t`` exists."""
    a = np.asarray(acc, dtype=np.float64)
    if a.ndim != 3:
        raise ValueError(f"acc must have shape (rounds + 1, agents, documents), got shape {a.shape}")
    if t is not None and not 0 <= t < a.shape[0]:
        raise ValueError(f"row t={t} is outside the accuracy tensor's rows 0..{a.shape[0] - 1}")
    return a


def _agent_doc(x: npt.ArrayLike, acc: FloatArray, name: str, dtype: type = bool) -> np.ndarray:
    """An (A, D) array matching ``acc``'s agents and documents."""
    arr = np.asarray(x, dtype=dtype)
    if arr.shape != acc.shape[1:]:
        raise ValueError(f"{name} must have shape (agents, documents) = {acc.shape[1:]}, got {arr.shape}")
    return arr


def _introduced_row(introduced: npt.ArrayLike, acc: FloatArray, t: int) -> BoolArray:
    """Row ``t`` of ``introduced`` as a (D,) bool array."""
    intro = np.asarray(introduced, dtype=bool)
    if intro.shape != (acc.shape[0], acc.shape[2]):
        raise ValueError(
            f"introduced must have shape (rounds + 1, documents) = {(acc.shape[0], acc.shape[2])}, "
            f"got {intro.shape}"
        )
    return intro[t]


def _masked_mean(values: FloatArray, mask: npt.ArrayLike, axis: int = -1) -> FloatArray:
    """Mean of ``values`` over ``axis`` where ``mask`` holds and the value is finite; NaN if none."""
    ok = np.asarray(mask, dtype=bool) & np.isfinite(values)
    n = ok.sum(axis=axis)
    s = np.where(ok, values, 0.0).sum(axis=axis)
    out = np.full(np.shape(n), np.nan)
    np.divide(s, n, out=out, where=n > 0)
    return out


def _masked_max(values: FloatArray, mask: npt.ArrayLike, axis: int = -1) -> FloatArray:
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
    a = _acc3(acc, t)
    m = _agent_doc(mask, a, "mask")
    return _masked_mean(a[t], m)


def accuracy_all(acc: npt.ArrayLike, t: int, introduced: npt.ArrayLike) -> FloatArray:
    """GEM's average accuracy over the documents introduced so far:
    ``ACC[a] = mean_{j : introduced[t, j]} acc[t, a, j]`` (NaN at row 0, when nothing is introduced)."""
    a = _acc3(acc, t)
    row = _introduced_row(introduced, a, t)
    return _masked_mean(a[t], np.broadcast_to(row, a.shape[1:]))


def accuracy_own(acc: npt.ArrayLike, t: int, own: npt.ArrayLike, learnt_round: npt.ArrayLike) -> FloatArray:
    """Accuracy on the agent's own documents (arrived directly from the world) reached by row ``t``:
    ``mean_{j : own[a, j] and 0 <= l[a, j] <= t} acc[t, a, j]``."""
    a = _acc3(acc, t)
    mask = _agent_doc(own, a, "own") & reached(_agent_doc(learnt_round, a, "learnt_round", int), t)
    return _masked_mean(a[t], mask)


def accuracy_received(acc: npt.ArrayLike, t: int, own: npt.ArrayLike, learnt_round: npt.ArrayLike) -> FloatArray:
    """Accuracy on documents the agent knows only through others' notes (reached by row ``t``, not
    own): ``mean_{j : not own[a, j] and 0 <= l[a, j] <= t} acc[t, a, j]``."""
    a = _acc3(acc, t)
    mask = ~_agent_doc(own, a, "own") & reached(_agent_doc(learnt_round, a, "learnt_round", int), t)
    return _masked_mean(a[t], mask)


def accuracy_unreached(
    acc: npt.ArrayLike, t: int, introduced: npt.ArrayLike, learnt_round: npt.ArrayLike
) -> FloatArray:
    """Accuracy on documents already in the world but not yet at the agent (neither arrived nor
    received as a note): ``mean_{j : introduced[t, j] and not 0 <= l[a, j] <= t} acc[t, a, j]``.
    A rise here means knowledge leaking in some other way (or guessing)."""
    a = _acc3(acc, t)
    row = _introduced_row(introduced, a, t)
    mask = row[None, :] & ~reached(_agent_doc(learnt_round, a, "learnt_round", int), t)
    return _masked_mean(a[t], mask)


def accuracy_future(acc: npt.ArrayLike, t: int, introduced: npt.ArrayLike) -> FloatArray:
    """Accuracy on documents not yet introduced to the world at row ``t``:
    ``mean_{j : not introduced[t, j]} acc[t, a, j]`` — pure forward transfer / prior knowledge."""
    a = _acc3(acc, t)
    row = _introduced_row(introduced, a, t)
    return _masked_mean(a[t], np.broadcast_to(~row, a.shape[1:]))


# --------------------------------------------------------------------------------------------
# continual-learning metrics (GEM, Chaudhry et al.)


def forgetting_per_doc(acc: npt.ArrayLike, t: int, learnt_round: npt.ArrayLike) -> FloatArray:
    """Chaudhry et al. (2018) forgetting of each document at row ``t``, shape (A, D):

    ``f[a, j] = max_{l_j <= s < t} acc[s, a, j] - acc[t, a, j]`` with ``l_j = learnt_round[a, j]``,
    defined for ``0 <= l_j < t`` (NaN otherwise: not learnt yet, learnt at ``t`` itself, or never).
    The max runs over rows from learning on, so accuracy before learning is not "forgotten". It can
    be negative when the document is answered better now than ever before.
    """
    a = _acc3(acc, t)
    lr = _agent_doc(learnt_round, a, "learnt_round", int)
    rows = np.arange(a.shape[0])[:, None, None]
    window = (rows >= lr[None]) & (rows < t)
    best = _masked_max(a, window, axis=0)
    valid = (lr >= 0) & (lr < t)
    with np.errstate(invalid="ignore"):
        return np.where(valid, best - a[t], np.nan)


def forgetting(acc: npt.ArrayLike, t: int, learnt_round: npt.ArrayLike) -> FloatArray:
    """Per-agent average forgetting at row ``t`` (Chaudhry et al. 2018):
    ``F[a] = mean_{j : 0 <= l_j < t} f[a, j]`` (see :func:`forgetting_per_doc`); NaN if no document
    was learnt before row ``t``."""
    f = forgetting_per_doc(acc, t, learnt_round)
    return _masked_mean(f, np.ones(f.shape, dtype=bool))


def forgetting_max(acc: npt.ArrayLike, t: int, learnt_round: npt.ArrayLike) -> FloatArray:
    """Per-agent worst-case forgetting at row ``t``: ``max_{j : 0 <= l_j < t} f[a, j]``; NaN if none."""
    f = forgetting_per_doc(acc, t, learnt_round)
    return _masked_max(f, np.ones(f.shape, dtype=bool))


def backward_transfer(acc: npt.ArrayLike, t: int, learnt_round: npt.ArrayLike) -> FloatArray:
    """GEM backward transfer at row ``t`` (Lopez-Paz & Ranzato 2017):

    ``BWT[a] = mean_{j : 0 <= l_j < t} (acc[t, a, j] - acc[l_j, a, j])`` — accuracy now minus
    accuracy right after learning (GEM's ``R(T, i) - R(i, i)``; row ``l_j`` is the row after the
    round in which ``j`` was learnt). Negative = forgetting. NaN if no document was learnt before
    row ``t``.
    """
    a = _acc3(acc, t)
    lr = _agent_doc(learnt_round, a, "learnt_round", int)
    valid = (lr >= 0) & (lr < t)
    at_learning = np.take_along_axis(a, np.clip(lr, 0, a.shape[0] - 1)[None], axis=0)[0]
    with np.errstate(invalid="ignore"):
        return _masked_mean(a[t] - at_learning, valid)


def forward_transfer(acc: npt.ArrayLike, learnt_round: npt.ArrayLike, t: int | None = None) -> FloatArray:
    """GEM forward transfer (Lopez-Paz & Ranzato 2017), baseline = the base model (row 0):

    ``FWT[a] = mean_{j : 2 <= l_j <= t} (acc[l_j - 1, a, j] - acc[0, a, j])`` — accuracy just before
    the agent learnt ``j`` minus the base model's. Documents learnt at row 1 are left out because
    their "just before" row is the base row itself (GEM's ``i >= 2``); documents learnt after row
    ``t`` (default: the last row) are left out too. NaN if no document qualifies.
    """
    a = _acc3(acc, t)
    last = a.shape[0] - 1 if t is None else t
    lr = _agent_doc(learnt_round, a, "learnt_round", int)
    valid = (lr >= 2) & (lr <= last)
    before = np.take_along_axis(a, np.clip(lr - 1, 0, a.shape[0] - 1)[None], axis=0)[0]
    with np.errstate(invalid="ignore"):
        return _masked_mean(before - a[0], valid)


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
    return _masked_mean(p, np.ones(p.shape, dtype=bool))


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
    return _masked_mean(lost, both), _masked_mean(gained, both)


# --------------------------------------------------------------------------------------------
# population metrics


def population_summary(values_per_agent: npt.ArrayLike) -> dict[str, float]:
    """``{mean, std, min, max}`` over agents, ignoring NaN; std is the population std (ddof = 0,
    the agents are the whole population, not a sample). All NaN (or empty) → all four NaN."""
    v = np.asarray(values_per_agent, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan}
    return {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()), "max": float(v.max())}


def diffusion(
    acc: npt.ArrayLike, t: int, introduced: npt.ArrayLike, threshold: float | None = 0.5
) -> float:
    """How far introduced knowledge has spread over the population at row ``t``.

    With a threshold: share of (agent, introduced document) pairs the agent "knows",
    ``#{(a, j) : introduced[t, j], acc[t, a, j] >= threshold} / #{(a, j) : introduced[t, j]}``.
    With ``threshold=None``: the mean accuracy over those pairs instead. NaN if nothing is
    introduced (or measured).
    """
    a = _acc3(acc, t)
    row = _introduced_row(introduced, a, t)
    mask = np.broadcast_to(row, a.shape[1:])
    vals = a[t] if threshold is None else _known(a[t], threshold)
    return float(_masked_mean(vals.ravel(), mask.ravel()))


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
    a = _acc3(acc, t)
    dist = _agent_doc(distance, a, "distance", int)
    mask = np.isfinite(a[t])
    if introduced is not None:
        mask = mask & _introduced_row(introduced, a, t)[None, :]
    vals = a[t] if threshold is None else _known(a[t], threshold)
    out: dict[int, float] = {}
    for d in np.unique(dist[mask]):
        out[int(d)] = float(_masked_mean(vals.ravel(), (mask & (dist == d)).ravel()))
    return out








# --------------------------------------------------------------------------------------------
# what the simulation logs each round


def agent_metrics(
    acc: npt.ArrayLike,
    t: int,
    introduced: npt.ArrayLike,
    own: npt.ArrayLike,
    learnt_round: npt.ArrayLike,
    probe_correct: npt.ArrayLike | None = None,
    prev_item: npt.ArrayLike | None = None,
    cur_item: npt.ArrayLike | None = None,
    agent_names: Sequence[str] | None = None,
) -> dict[int | str, dict[str, float]]:
    """All per-agent metrics at row ``t``: ``{agent: {name: value}}`` with the names in
    :data:`METRIC_NAMES` (every name always present; NaN where undefined or not supplied).

    ``probe_correct`` is (A, Q) retention-probe grades at row ``t``; ``prev_item`` / ``cur_item`` are
    (A, Q) per-question grades at rows ``t - 1`` and ``t`` on the same questions (NaN-padded where a
    question was not asked). Agents are keyed by index, or by ``agent_names`` when given.
    Only rows 0..t of ``acc`` are read (later rows may be NaN or absent).
    """
    a = _acc3(acc, t)
    n_agents = a.shape[1]
    nan = np.full(n_agents, np.nan)
    values: dict[str, FloatArray] = {
        "acc_own": accuracy_own(a, t, own, learnt_round),
        "acc_received": accuracy_received(a, t, own, learnt_round),
        "acc_all": accuracy_all(a, t, introduced),
        "acc_unreached": accuracy_unreached(a, t, introduced, learnt_round),
        "acc_future": accuracy_future(a, t, introduced),
        "forgetting": forgetting(a, t, learnt_round),
        "forgetting_max": forgetting_max(a, t, learnt_round),
        "bwt": backward_transfer(a, t, learnt_round),
        "fwt": forward_transfer(a, learnt_round, t),
        "retention": nan if probe_correct is None else _per_agent(retention(probe_correct), n_agents, "probe_correct"),
        "churn_lost": nan,
        "churn_gained": nan,
    }
    if (prev_item is None) != (cur_item is None):
        raise ValueError("give both prev_item and cur_item, or neither")
    if prev_item is not None and cur_item is not None:
        lost, gained = item_churn(prev_item, cur_item)
        values["churn_lost"] = _per_agent(lost, n_agents, "prev_item")
        values["churn_gained"] = _per_agent(gained, n_agents, "prev_item")
    if agent_names is not None and len(agent_names) != n_agents:
        raise ValueError(f"agent_names has {len(agent_names)} names for {n_agents} agents")
    keys: Sequence[int | str] = list(agent_names) if agent_names is not None else list(range(n_agents))
    return {key: {name: float(values[name][i]) for name in METRIC_NAMES} for i, key in enumerate(keys)}


def _per_agent(x: FloatArray, n_agents: int, name: str) -> FloatArray:
    """Check that a per-question metric came out with one value per agent."""
    if np.shape(x) != (n_agents,):
        raise ValueError(f"{name} must have shape (agents, questions) with {n_agents} agents")
    return x


def population_metrics(
    per_agent: Mapping[int | str, Mapping[str, float]],
    *,
    acc: npt.ArrayLike | None = None,
    t: int | None = None,
    introduced: npt.ArrayLike | None = None,
    threshold: float = 0.5,
) -> dict[str, float]:
    """Population view of :func:`agent_metrics`: ``pop.<metric>.mean`` and ``pop.<metric>.std`` for
    every metric (over agents, ignoring NaN; see :func:`population_summary`), plus
    ``pop.diffusion`` (:func:`diffusion` with ``threshold``) when ``acc``, ``t`` and ``introduced``
    are given."""
    names: list[str] = []
    for metrics in per_agent.values():
        names.extend(n for n in metrics if n not in names)
    out: dict[str, float] = {}
    for name in names:
        summary = population_summary([m.get(name, math.nan) for m in per_agent.values()])
        out[f"pop.{name}.mean"] = summary["mean"]
        out[f"pop.{name}.std"] = summary["std"]
    given = [x is not None for x in (acc, t, introduced)]
    if any(given) and not all(given):
        raise ValueError("pop.diffusion needs acc, t and introduced together")
    if all(given):
        out["pop.diffusion"] = diffusion(acc, t, introduced, threshold)  # type: ignore[arg-type]
    return out
