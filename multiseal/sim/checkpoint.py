"""A simulation's state between rounds: what a checkpoint holds, so a run resumes exactly.

``capture(sim)`` returns two parts: a dict of everything that changes over rounds (the
accuracy tensor and its bookkeeping, records, notes, answers, the probe, the postbox with its inboxes
and notes in flight, the scheduler's own attributes, the process's global RNG states) and the
agents' adapter weights as tensors. ``restore(sim, state, tensors)`` puts them back into a freshly
built, started simulation of the same scenario. What is rebuilt from the scenario instead (the
world, arrivals, graphs, agents, settings) is deterministic given the seed.

The round loop itself draws only from generators seeded per round, and every optimiser is made
fresh per update (as SEAL does), so these two parts are the whole state: a run resumed from round k
plays rounds k+1.. exactly as the uninterrupted run did.

The state holds plain data and objects of the classes in :data:`STATE_CLASSES` only; the run
directory stores it as data (:mod:`multiseal.run.statefile`), never as a pickle. A plugin whose
scheduler keeps objects of its own classes allows them with :func:`allow_in_checkpoints`.
"""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

import dataclasses

from multiseal import types as _types
from multiseal.sim.facts import FactIndex, NoteFacts
from multiseal.sim.loop import Simulation
from multiseal.sim.sharing import Postbox

# The classes a checkpoint's state may hold (every dataclass of multiseal.types, and the simulation's
# own stateful parts); rebuilt from their attributes, never by running code named in the file.
STATE_CLASSES: dict[str, type] = {
    f"{cls.__module__}:{cls.__qualname__}": cls
    for cls in [*(c for c in vars(_types).values() if isinstance(c, type) and dataclasses.is_dataclass(c)
                  and c.__module__ == _types.__name__), NoteFacts, FactIndex, Postbox]
}


def allow_in_checkpoints(cls: type) -> type:
    """Allow objects of ``cls`` (a plugin's scheduler or policy state) in checkpoints; usable as a
    class decorator. The class is rebuilt from its attributes (or its ``__setstate__``) on resume."""
    STATE_CLASSES[f"{cls.__module__}:{cls.__qualname__}"] = cls
    return cls

# Built from the scenario (or the shared model itself): never stored in a checkpoint.
_REBUILT = frozenset({"model", "world", "arrivals", "graphs", "scheduler", "agents", "self_edit", "evaluation",
                      "rounds", "seed", "sharing", "mixing", "replay", "probe_size", "progress", "doc_index",
                      "train_together", "rows_per_pass", "sample_documents", "mitigations", "adversaries",
                      "trust_settings", "drift_texts", "drift_length", "_reference", "_drift_data"})


def capture(sim: Simulation) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The state after the last played round, and every agent's adapter weights (``"<agent>/<key>"``)."""
    state = {k: v for k, v in vars(sim).items() if k not in _REBUILT}
    state["scheduler_state"] = _scheduler_state(sim.scheduler)
    state["rng"] = {"random": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    tensors = {f"{a}/{k}": t.contiguous() for a, spec in enumerate(sim.agents)
               for k, t in sim.model.adapter_state(spec.adapter).items()}
    return state, tensors


def _scheduler_state(scheduler: Any) -> dict[str, Any]:
    """A stateful scheduler's attributes (a plain function or closure keeps none)."""
    if hasattr(scheduler, "__code__") or not hasattr(scheduler, "__dict__"):
        return {}
    return dict(vars(scheduler))


def restore(sim: Simulation, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    """Load ``capture``'s output into ``sim``, freshly built from the same scenario and not started
    (its adapters are created here; the base model's row 0 comes from the checkpoint, not re-asked)."""
    if state.get("_started"):
        sim.create_adapters()
    state = dict(state)
    rng = state.pop("rng")
    scheduler_state = state.pop("scheduler_state")
    for key, value in state.items():
        setattr(sim, key, value)
    sim.restore_shapes()  # combined adapters grow with their deltas: take that rank before loading weights
    if scheduler_state:
        vars(sim.scheduler).update(scheduler_state)
    for a, spec in enumerate(sim.agents):
        prefix = f"{a}/"
        sim.model.set_adapter_state(spec.adapter, {k[len(prefix):]: t for k, t in tensors.items() if k.startswith(prefix)})
    random.setstate(rng["random"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
