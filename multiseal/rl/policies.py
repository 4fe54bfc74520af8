"""Policies: who shares and who adapts, decided from the PettingZoo interface's observations.

A policy maps one round's observations and infos, keyed by agent name as the env gives them
(:mod:`multiseal.rl.env`), to one action per agent (a dict with the action space's keys)::

    policy(observations: dict[str, np.ndarray], infos: dict[str, dict]) -> dict[str, dict]

It is made by a factory ``factory(interface, *, seed, **policy_params) -> policy``; ``interface``
(:class:`multiseal.rl.interface.Interface`) gives the spaces, the style list, the agents' configured styles and
``unflatten`` for reading observations. Factories live in ``POLICIES``, each registered with the
pydantic model of its ``policy_params`` (the factory gets the parsed values as keyword arguments)::

    class EagerParams(Params):
        budget: int | None = Field(None, ge=1)

    @POLICIES.register("eager", params=EagerParams, cost=lambda p, received: min(received, p.budget or received))
    def eager(interface, *, seed=0, budget=None): ...

(``cost``, optional: the notes from others an agent adapts on per round when ``received`` reach it,
for the run's estimate; without it, all of them.)

A scenario names one::

    scheduler:
      kind: policy
      params: {policy: greedy, policy_params: {budget: 4}}

or, opting in explicitly to loading code, an import path to a factory of its own::

    scheduler:
      kind: policy
      params: {policy: "mypackage.mymodule:make_policy", allow_import: true}

Without ``allow_import: true`` an import path is a validation error: a scenario file never runs code
by itself; an imported factory's ``policy_params`` are passed as they are. The other scheduler params
shape the interface: ``inbox_slots``, ``history``, ``styles``, ``visible_neighbour_metrics`` (the env's
options of the same names); the ``policy`` scheduler kind's own model
(:class:`multiseal.sim.schedulers.PolicySchedulerParams`) checks them.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from pydantic import Field

from multiseal.errors import ParamsError
from multiseal.registry import KindRegistry, Params
from multiseal.rl.interface import SLOT_FEATURES, Interface
from multiseal.sim.loop import Simulation
from multiseal.sim.schedulers import SCHEDULERS, PolicySchedulerParams
from multiseal.types import AgentAction, Policy

Problems = list[tuple[str, str]]
INTERFACE_PARAMS = ("inbox_slots", "history", "styles", "visible_neighbour_metrics")
_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")

PolicyFactory = Callable[..., Policy]
POLICIES: KindRegistry[PolicyFactory] = KindRegistry("policy")


# ---------------------------------------------------------------- built-in policies


class RandomPolicy:
    """Every agent draws a valid action uniformly (``action_space.sample`` under the action mask);
    agent i's space is seeded with ``seed + i``."""

    def __init__(self, interface: Interface, seed: int = 0):
        self.spaces = {n: interface.action_space() for n in interface.names}
        for i, space in enumerate(self.spaces.values()):
            space.seed(seed + i)

    def __call__(self, observations: dict[str, np.ndarray], infos: dict[str, dict]) -> dict[str, dict]:
        return {n: self.spaces[n].sample(mask=infos[n]["action_mask"]) for n in observations}

    def state_dict(self) -> dict[str, Any]:
        """The samplers' states as plain data (a checkpoint stores it; a resumed run samples on exactly)."""
        return {n: _space_rng_state(space) for n, space in self.spaces.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for n, space in self.spaces.items():
            _set_space_rng_state(space, state[n])


def _space_rng_state(space: Any) -> dict[str, Any]:
    """A gymnasium space's generator state and, for a composite space, its parts' (they sample alone)."""
    out: dict[str, Any] = {"rng": space.np_random.bit_generator.state}
    parts = getattr(space, "spaces", None)
    if isinstance(parts, Mapping):
        out["parts"] = {k: _space_rng_state(s) for k, s in parts.items()}
    elif isinstance(parts, (list, tuple)):
        out["parts"] = [_space_rng_state(s) for s in parts]
    return out


def _set_space_rng_state(space: Any, state: Mapping[str, Any]) -> None:
    space.np_random.bit_generator.state = state["rng"]
    parts = getattr(space, "spaces", None)
    if isinstance(parts, Mapping):
        for k, s in parts.items():
            _set_space_rng_state(s, state["parts"][k])
    elif isinstance(parts, (list, tuple)):
        for s, st in zip(parts, state["parts"]):
            _set_space_rng_state(s, st)


@POLICIES.register("random")
def _random(interface: Interface, *, seed: int = 0) -> Policy:
    return RandomPolicy(interface, seed)


class GreedyPolicy:
    """Novelty-greedy: each agent writes in its configured style, sends its notes to every
    out-neighbour, adapts on everything delivered to it this round (its own new notes included), and
    on the pending notes that bring something new — its own, or about a document it does not know
    yet — least word overlap with what it knows first, then highest trust, at most ``budget`` of them
    per round (``None``: all)."""

    def __init__(self, interface: Interface, budget: int | None = None):
        self.interface, self.budget = interface, budget
        self.f = {name: i for i, name in enumerate(SLOT_FEATURES)}
        self.style = [interface.styles.index(s) if s in interface.styles else 0 for s in interface.agent_styles]

    def __call__(self, observations: dict[str, np.ndarray], infos: dict[str, dict]) -> dict[str, dict]:
        f, out = self.f, {}
        for name, obs in observations.items():
            a = self.interface.names.index(name)
            mask = infos[name]["action_mask"]
            slots = self.interface.unflatten(obs)["slots"]
            chosen = [
                i
                for i in range(len(slots))
                if slots[i, f["present"]] > 0
                and mask["adapt"][i]
                and (slots[i, f["own"]] > 0 or slots[i, f["known_doc"]] == 0)
            ]
            chosen.sort(key=lambda i: (-slots[i, f["own"]], slots[i, f["overlap"]], -slots[i, f["trust"]], i))
            adapt = np.zeros(len(slots), dtype=np.int8)
            adapt[chosen[: self.budget] if self.budget is not None else chosen] = 1
            out[name] = {
                "style": self.style[a],
                "adapt": adapt,
                "adapt_new": (mask["adapt_new"] != 0).astype(np.int8),
                "send": (mask["send"] != 0).astype(np.int8),
            }
        return out

    def state_dict(self) -> dict[str, Any]:
        return {}  # it decides from what it observes alone

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


class GreedyParams(Params):
    budget: int | None = Field(None, ge=1, description="pending notes adapted on per round (absent: no limit)")


@POLICIES.register("greedy", params=GreedyParams, cost=lambda p, received: _at_most(received, p.budget))
def _greedy(interface: Interface, *, seed: int = 0, budget: int | None = None) -> Policy:
    return GreedyPolicy(interface, budget)


def _at_most(received: float, budget: int | None) -> float:
    return received if budget is None else min(received, budget)


def _policy_scheduler_cost(params: PolicySchedulerParams, received: float) -> float:
    """The ``policy`` scheduler's share of the estimate: its registered policy's (all notes when the policy
    is imported code, has no hook, or its parameters do not parse)."""
    if params.policy not in POLICIES:
        return received
    kind = POLICIES.get(params.policy)
    parsed, problems = kind.validate(params.policy_params)
    return received if kind.cost is None or problems else float(kind.cost(parsed, received))


SCHEDULERS.set_cost("policy", _policy_scheduler_cost)


# ---------------------------------------------------------------- loading and checking


def load_callable(path: str) -> Callable:
    """``package.module:attr`` (``attr`` may be dotted) → the object; raises ``ImportError`` /
    ``AttributeError`` / ``TypeError`` when it is missing or not callable."""
    module, _, attr = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"'{path}' is not callable")
    return obj


def validate_policy_params(params: Mapping[str, Any]) -> Problems:
    """The policy-specific problems of ``scheduler.kind: policy`` params, keys relative to ``scheduler``:
    ``policy`` must name a registered policy (or, with ``allow_import: true``, an import path that
    loads) and ``policy_params`` must fit that policy's own model.

    The kind's model (:class:`multiseal.sim.schedulers.PolicySchedulerParams`, checked by
    ``validate_scheduler_params``) reports a missing or mistyped key; this check skips what that
    model rejects. An import path is loaded here (to report a bad one before any model is loaded)
    only when ``allow_import`` is true.
    """
    name, allow, inner = params.get("policy"), params.get("allow_import", False), params.get("policy_params")
    if not isinstance(name, str):
        return []
    inner = inner if isinstance(inner, Mapping) else {}
    if name in POLICIES:
        return POLICIES.validate(name, inner, prefix="params.policy_params")[1]
    known = ", ".join(POLICIES.names())
    if not _IMPORT_PATH.match(name):
        return [("params.policy", f"{name!r} is not one of {known} (nor an import path 'package.module:callable')")]
    if allow is not True:
        return [
            (
                "params.policy",
                (f"'{name}' is an import path; loading code from it needs scheduler.params.allow_import: true"),
            )
        ]
    try:
        load_callable(name)
    except (ImportError, AttributeError, TypeError) as e:
        return [("params.policy", f"cannot load '{name}': {e}")]
    return []


def build_policy(
    name: str,
    interface: Interface,
    *,
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
    allow_import: bool = False,
) -> Policy:
    """The policy ``name`` (registered, or an import path when ``allow_import``) for ``interface``.

    A registered factory gets its parsed ``params`` as keyword arguments; raises ``ParamsError``."""
    if name in POLICIES:
        kind = POLICIES.get(name)
        parsed = kind.parse(params, prefix="params.policy_params")
        return kind.fn(interface, seed=seed, **{k: getattr(parsed, k) for k in type(parsed).model_fields})
    problems = validate_policy_params({"policy": name, "allow_import": allow_import, "policy_params": params or {}})
    if problems:
        raise ParamsError(problems)
    return load_callable(name)(interface, seed=seed, **dict(params or {}))


def check_policy(policy: Policy, env: Any, *, seed: int = 0) -> dict[str, float]:
    """Conformance check for a policy on a :class:`multiseal.env.MultiSealEnv`; raises ``AssertionError``.

    Plays one episode from ``env.reset(seed=seed)``: every round the policy must return an action for
    each live agent, inside that agent's action space, setting no bit the action mask forbids
    (``info["invalid"]`` stays zero). Returns each agent's episode return.
    """
    obs, infos = env.reset(seed=seed)
    returns = dict.fromkeys(env.possible_agents, 0.0)
    while env.agents:
        actions = policy(obs, infos)
        if set(actions) != set(env.agents):
            raise AssertionError(f"check_policy: actions for {sorted(actions)}, expected {sorted(env.agents)}")
        for name, act in actions.items():
            typed = {k: int(v) if k == "style" else np.asarray(v, dtype=np.int8) for k, v in act.items()}
            if not env.action_space(name).contains(typed):
                raise AssertionError(f"check_policy: the action of {name} is outside its action space: {act}")
        obs, rewards, _, _, infos = env.step(actions)
        for name, info in infos.items():
            if any(info["invalid"].values()):
                raise AssertionError(f"check_policy: {name} set masked-out bits {info['invalid']}")
            returns[name] += rewards.get(name, 0.0)
    return returns


# ---------------------------------------------------------------- policy-driven runs


def policy_actions(sim: Simulation, policy: Policy, interface: Interface) -> dict[int, AgentAction]:
    """One round of a policy-driven run: observe, ask the policy, hand its decisions to the scheduler."""
    obs = interface.observe(sim)
    chosen = policy(
        {interface.names[a]: o for a, o in obs.items()}, {interface.names[a]: interface.info(sim, a) for a in obs}
    )
    index = {n: i for i, n in enumerate(interface.names)}
    return interface.apply(sim, {index[k]: v for k, v in chosen.items()}).actions


class PolicyDriver:
    """The ``actions_fn`` of a policy-driven run: observe, ask ``policy``, hand its decisions to the
    scheduler. ``policy`` is an attribute so a checkpoint can store it (a policy that keeps state,
    such as a seeded sampler, then resumes exactly)."""

    def __init__(self, policy: Policy, interface: Interface):
        self.policy, self.interface = policy, interface

    def __call__(self, sim: Simulation) -> dict[int, AgentAction]:
        return policy_actions(sim, self.policy, self.interface)


def policy_driver(sim: Simulation, params: Mapping[str, Any], seed: int = 0) -> PolicyDriver:
    """The ``actions_fn`` of a ``scheduler.kind: policy`` run (``Simulation.run(actions_fn=...)``):
    builds the interface from the scheduler params (``inbox_slots``, ``history``, ``styles``,
    ``visible_neighbour_metrics``) and the policy (``policy``, ``policy_params``, ``allow_import``)
    once, then decides every round."""
    interface = Interface.for_simulation(sim, **{k: params[k] for k in INTERFACE_PARAMS if k in params})
    policy = build_policy(
        params["policy"],
        interface,
        seed=seed,
        params=params.get("policy_params"),
        allow_import=bool(params.get("allow_import", False)),
    )
    return PolicyDriver(policy, interface)
