"""A simulation's state between rounds: what a checkpoint holds, so a run resumes exactly.

``capture(sim)`` returns two parts: a dict holding the simulation's
:class:`~multiseal.sim.state.RoundState` whole (everything its rounds change: the accuracy tensor and its
bookkeeping, records, notes, answers, the probe, the postbox with its inboxes and notes in flight), the
scheduler's own attributes and the process's global RNG states; and the agents' adapter weights as
tensors. ``restore(sim, state, tensors)`` puts them back into a freshly built simulation of the same
scenario. What is rebuilt from the scenario instead (the :class:`~multiseal.sim.setup.Setup`: world,
arrivals, graphs, agents, settings) is deterministic given the seed.

The round loop itself draws only from generators seeded per round, and every optimiser is made
fresh per update (as SEAL does), so these two parts are the whole state: a run resumed from round k
plays rounds k+1.. exactly as the uninterrupted run did.

The state holds plain data and objects of the classes in :data:`STATE_CLASSES` only; the run
directory stores it as data (:mod:`multiseal.run.statefile`), never as a pickle. A plugin whose
scheduler keeps objects of its own classes allows them with :func:`allow_in_checkpoints`.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import numpy as np
import torch

from multiseal import types as _types
from multiseal.sim.facts import FactIndex, NoteFacts
from multiseal.sim.loop import Simulation
from multiseal.sim.sampling import Sample
from multiseal.sim.sharing import Postbox
from multiseal.sim.state import RoundState

# The classes a checkpoint's state may hold (every dataclass of multiseal.types, and the simulation's
# own stateful parts); rebuilt from their attributes, never by running code named in the file.
STATE_CLASSES: dict[str, type] = {
    f"{cls.__module__}:{cls.__qualname__}": cls
    for cls in [
        *(
            c
            for c in vars(_types).values()
            if isinstance(c, type) and dataclasses.is_dataclass(c) and c.__module__ == _types.__name__
        ),
        RoundState,
        Postbox,
        Sample,
        NoteFacts,
        FactIndex,
    ]
}


def allow_in_checkpoints(cls: type) -> type:
    """Allow objects of ``cls`` (a plugin's scheduler or policy state) in checkpoints; usable as a
    class decorator. The class is rebuilt from its attributes (or its ``__setstate__``) on resume."""
    STATE_CLASSES[f"{cls.__module__}:{cls.__qualname__}"] = cls
    return cls


def capture(sim: Simulation) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The state after the last played round, and every agent's adapter weights (``"<agent>/<key>"``).
    The round state is a shallow copy: its fields are the live objects, to be written out at once;
    ``round`` is repeated at the top, where the run directory checks it against the checkpoint's name."""
    state = {
        "round": sim.state.round,
        "state": dataclasses.replace(sim.state),
        "scheduler_state": _scheduler_state(sim.setup.scheduler),
        "rng": {"random": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
    }
    tensors = {
        f"{a}/{k}": t.contiguous()
        for a, spec in enumerate(sim.setup.agents)
        for k, t in sim.setup.model.adapter_state(spec.adapter).items()
    }
    return state, tensors


def _scheduler_state(scheduler: Any) -> dict[str, Any]:
    """A stateful scheduler's attributes (a plain function or closure keeps none)."""
    if hasattr(scheduler, "__code__") or not hasattr(scheduler, "__dict__"):
        return {}
    return dict(vars(scheduler))


def restore(sim: Simulation, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    """Load ``capture``'s output into ``sim``, freshly built from the same scenario and not started
    (its adapters are created here; the base model's row 0 comes from the checkpoint, not re-asked)."""
    round_state = state["state"] if "state" in state else _flat_state(sim, state)
    for f in dataclasses.fields(RoundState):  # a field added since the checkpoint was written starts fresh
        if not hasattr(round_state, f.name):
            setattr(round_state, f.name, getattr(sim.state, f.name))
    if round_state.started:
        sim.create_adapters()
    sim.state = round_state
    sim.restore_shapes()  # combined adapters grow with their deltas: take that rank before loading weights
    if state["scheduler_state"]:
        vars(sim.setup.scheduler).update(state["scheduler_state"])
    for a, spec in enumerate(sim.setup.agents):
        prefix = f"{a}/"
        sim.setup.model.set_adapter_state(
            spec.adapter, {k[len(prefix) :]: t for k, t in tensors.items() if k.startswith(prefix)}
        )
    rng = state["rng"]
    random.setstate(rng["random"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])


def _flat_state(sim: Simulation, state: dict[str, Any]) -> RoundState:
    """A checkpoint written before the state was one record (it held the simulation's attributes,
    some with a leading underscore): its round state, the rebuilt parts it also held left out."""
    fields = {f.name for f in dataclasses.fields(RoundState)}
    values = {k.lstrip("_"): v for k, v in state.items() if k.lstrip("_") in fields}
    return dataclasses.replace(sim.state, **values)
