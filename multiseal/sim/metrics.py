"""What the simulation logs each round: every per-agent metric at a row, and their population view.

The formulas live in :mod:`multiseal.sim.accuracy` (the accuracy tensor's conventions, accuracy on
document groups), :mod:`multiseal.sim.continual` (forgetting, transfer, retention, churn) and
:mod:`multiseal.sim.diffusion`. Per-agent values are NaN where a metric has nothing to average;
no function emits a RuntimeWarning.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from multiseal.metric_table import select
from multiseal.sim.accuracy import (
    FloatArray,
    acc_tensor,
    accuracy_all,
    accuracy_future,
    accuracy_own,
    accuracy_received,
    accuracy_unreached,
)
from multiseal.sim.continual import (
    backward_transfer,
    forgetting,
    forgetting_max,
    forward_transfer,
    item_churn,
    retention,
)
from multiseal.sim.diffusion import diffusion

# Names produced by ``agent_metrics``, in a stable order (tracking can rely on it): the metric table's
# ``round`` group (multiseal.metric_table).
METRIC_NAMES: tuple[str, ...] = select(group="round")


def population_summary(values_per_agent: npt.ArrayLike) -> dict[str, float]:
    """``{mean, std, min, max}`` over agents, ignoring NaN; std is the population std (ddof = 0,
    the agents are the whole population, not a sample). All NaN (or empty) → all four NaN."""
    v = np.asarray(values_per_agent, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan}
    return {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()), "max": float(v.max())}


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
    a = acc_tensor(acc, t)
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
    per_agent: Mapping[Any, Mapping[str, float]],
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
