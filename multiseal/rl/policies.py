"""Policies: who shares and who adapts, decided from the PettingZoo interface's observations.

A policy maps one round's observations and infos, keyed by agent name as the env gives them
(:mod:`multiseal.rl.env`), to one action per agent (a dict with the action space's keys)::

    policy(observations: dict[str, np.ndarray], infos: dict[str, dict]) -> dict[str, dict]

It is made by a factory ``factory(interface, *, seed, **policy_params) -> policy``; ``interface``
(:class:`multiseal.rl.interface.Interface`) gives the spaces, the style list, the agents' configured styles and
``unflatten`` for reading observations. Built-in factories live in ``POLICIES``; a scenario names one::

    scheduler:
      kind: policy
      params: {policy: greedy, policy_params: {budget: 4}}

or, opting in explicitly to loading code, an import path to a factory of its own::

    scheduler:
      kind: policy
      params: {policy: "mypackage.mymodule:make_policy", allow_import: true}

Without ``allow_import: true`` an import path is a validation error: a scenario file never runs code
by itself. The other scheduler params shape the interface: ``inbox_slots``, ``history``, ``styles``,
``visible_neighbour_metrics`` (the env's options of the same names).
"""
from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from multiseal.errors import InputError
from multiseal.learning.self_edit import STYLES
from multiseal.registry import Registry
from multiseal.rl.interface import SLOT_FEATURES, Interface
from multiseal.sim.loop import Simulation
from multiseal.types import AgentAction, Policy

Problems = list[tuple[str, str]]
INTERFACE_PARAMS = ("inbox_slots", "history", "styles", "visible_neighbour_metrics")
SCHEDULER_PARAMS = ("policy", "allow_import", "policy_params", *INTERFACE_PARAMS)
_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")




PolicyFactory = Callable[..., Policy]


class PolicyError(InputError, ValueError):
    """A bad policy setting; ``problems`` are ``(dotted key, message)`` pairs under ``scheduler``."""

    def __init__(self, problems: Problems):
        self.problems = list(problems)
        super().__init__("; ".join(f"{k}: {m}" for k, m in self.problems))


POLICIES: Registry[PolicyFactory] = Registry("policy")
_ALLOWED: dict[str, tuple[str, ...]] = {}
_CHECKS: dict[str, Callable[[dict], Problems]] = {}


def _builtin(name: str, allowed: tuple[str, ...] = (),
             check: Callable[[dict], Problems] | None = None) -> Callable[[PolicyFactory], PolicyFactory]:
    def deco(fn: PolicyFactory) -> PolicyFactory:
        POLICIES.register(name, fn)
        _ALLOWED[name] = allowed
        _CHECKS[name] = check or (lambda p: [])
        return fn
    return deco





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


@_builtin("random")
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
            chosen = [i for i in range(len(slots)) if slots[i, f["present"]] > 0 and mask["adapt"][i]
                      and (slots[i, f["own"]] > 0 or slots[i, f["known_doc"]] == 0)]
            chosen.sort(key=lambda i: (-slots[i, f["own"]], slots[i, f["overlap"]], -slots[i, f["trust"]], i))
            adapt = np.zeros(len(slots), dtype=np.int8)
            adapt[chosen[: self.budget] if self.budget is not None else chosen] = 1
            out[name] = {"style": self.style[a], "adapt": adapt,
                         "adapt_new": (mask["adapt_new"] != 0).astype(np.int8),
                         "send": (mask["send"] != 0).astype(np.int8)}
        return out


def _check_greedy(p: dict) -> Problems:
    b = p.get("budget")
    if b is not None and not (isinstance(b, int) and not isinstance(b, bool) and b >= 1):
        return [("budget", f"must be an int >= 1 (or absent: no limit), got {b!r}")]
    return []


@_builtin("greedy", ("budget",), _check_greedy)
def _greedy(interface: Interface, *, seed: int = 0, budget: int | None = None) -> Policy:
    return GreedyPolicy(interface, budget)


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
    """Every problem with the params of ``scheduler.kind: policy``, keys relative to ``scheduler``.

    An import path is loaded here (to report a bad one before any model is loaded) only when
    ``allow_import`` is true.
    """
    out: Problems = []
    name, allow = params.get("policy"), params.get("allow_import", False)
    if not isinstance(allow, bool):
        out.append(("params.allow_import", f"must be true or false, got {allow!r}"))
    inner = params.get("policy_params", {})
    if inner is None:
        inner = {}
    if not isinstance(inner, Mapping):
        out.append(("params.policy_params", "must be a mapping"))
        inner = {}
    known = ", ".join(POLICIES.names())
    if name is None:
        out.append(("params.policy", f"is required: one of {known}, or an import path "
                                     "'package.module:callable' with allow_import: true"))
    elif not isinstance(name, str):
        out.append(("params.policy", f"must be a string, got {name!r}"))
    elif name in POLICIES:
        allowed = _ALLOWED[name]
        out += [(f"params.policy_params.{k}", m) for k, m in _CHECKS[name](dict(inner))]
        out += [(f"params.policy_params.{k}",
                 f"unknown parameter for policy {name}; allowed: {', '.join(allowed) or 'none'}")
                for k in inner if k not in allowed]
    elif _IMPORT_PATH.match(name):
        if allow is not True:
            out.append(("params.policy", f"'{name}' is an import path; loading code from it needs "
                                         "scheduler.params.allow_import: true"))
        else:
            try:
                load_callable(name)
            except (ImportError, AttributeError, TypeError) as e:
                out.append(("params.policy", f"cannot load '{name}': {e}"))
    else:
        out.append(("params.policy", f"{name!r} is not one of {known} (nor an import path 'package.module:callable')"))
    for key in ("inbox_slots", "history"):
        v = params.get(key)
        if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            out.append((f"params.{key}", f"must be an int >= 1, got {v!r}"))
    styles = params.get("styles")
    if styles is not None:
        if not isinstance(styles, list) or not styles:
            out.append(("params.styles", "must be a non-empty list of prompt styles"))
        else:
            out += [(f"params.styles[{i}]", f"'{s}' is not one of {', '.join(STYLES.names())}")
                    for i, s in enumerate(styles) if s not in STYLES]
    vis = params.get("visible_neighbour_metrics")
    if vis is not None and not isinstance(vis, bool):
        out.append(("params.visible_neighbour_metrics", f"must be true or false, got {vis!r}"))
    return out


def build_policy(name: str, interface: Interface, *, seed: int = 0, params: Mapping[str, Any] | None = None,
                 allow_import: bool = False) -> Policy:
    """The policy ``name`` (built-in, or an import path when ``allow_import``) for ``interface``."""
    problems = validate_policy_params({"policy": name, "allow_import": allow_import, "policy_params": params or {}})
    if problems:
        raise PolicyError(problems)
    factory = POLICIES.get(name) if name in POLICIES else load_callable(name)
    return factory(interface, seed=seed, **dict(params or {}))


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
    chosen = policy({interface.names[a]: o for a, o in obs.items()},
                    {interface.names[a]: interface.info(sim, a) for a in obs})
    index = {n: i for i, n in enumerate(interface.names)}
    return interface.apply(sim, {index[k]: v for k, v in chosen.items()}).actions


def policy_driver(sim: Simulation, params: Mapping[str, Any],
                  seed: int = 0) -> Callable[[Simulation], dict[int, AgentAction]]:
    """The ``actions_fn`` of a ``scheduler.kind: policy`` run (``Simulation.run(actions_fn=...)``):
    builds the interface from the scheduler params (``inbox_slots``, ``history``, ``styles``,
    ``visible_neighbour_metrics``) and the policy (``policy``, ``policy_params``, ``allow_import``)
    once, then decides every round."""
    interface = Interface.for_simulation(sim, **{k: params[k] for k in INTERFACE_PARAMS if k in params})
    policy = build_policy(params["policy"], interface, seed=seed, params=params.get("policy_params"),
                          allow_import=bool(params.get("allow_import", False)))
    return lambda s: policy_actions(s, policy, interface)
