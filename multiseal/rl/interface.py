"""The PettingZoo interface: fixed-shape observations and actions over a running simulation.

Shared by the environment (:mod:`multiseal.rl.env`) and by policy-driven runs
(:func:`multiseal.rl.policies.policy_driver`), so a policy sees the same thing in both. The
observation and action layout, the masks and the rewards are specified once, in ``docs/env.md``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium import spaces

from multiseal.learning.self_edit import STYLES
from multiseal.metric_table import select
from multiseal.sim.loop import Simulation
from multiseal.sim.schedulers import PolicyScheduler
from multiseal.types import AgentAction, Decision, InboxItem

OWN_FEATURES = ("round", "arriving", "inbox")

HISTORY_METRICS = select(observed=True)  # the metric table decides which, and their order

SLOT_FEATURES = ("present", "own", "author", "trust", "age", "length", "known_doc", "overlap")

NEIGHBOUR_FEATURES = ("out_edge", "in_edge", "acc_own", "acc_all")

ACTION_KEYS = ("style", "adapt", "adapt_new", "send")

_WORD = re.compile(r"\w+")


def _nz(x: float | None) -> float:
    return 0.0 if x is None or not math.isfinite(x) else float(x)


def _unit(x: float) -> float:
    return min(max(_nz(x), 0.0), 1.0)


def agent_name(i: int) -> str:
    return f"agent_{i}"


def default_styles(agent_styles: Sequence[str] = ()) -> list[str]:
    """Every registered style that writes a self-edit, then any agent's configured style not among them
    (so the scenario's own choice can always be taken)."""
    out = [s for s in STYLES.names() if STYLES.get(s).instruction is not None]
    return out + [s for s in dict.fromkeys(agent_styles) if s not in out]


@dataclass
class Translation:
    """A joint action turned into what the simulation takes, plus the invalid bits per agent."""

    actions: dict[int, AgentAction] = field(default_factory=dict)
    decisions: dict[int, Decision] = field(default_factory=dict)
    invalid: dict[int, dict[str, int]] = field(default_factory=dict)


class Interface:
    """Fixed-shape observations and actions over a :class:`Simulation` (see the module docstring).

    Shared by :class:`MultiSealEnv` and by policy-driven runs, so a policy sees the same thing in both.
    """

    def __init__(
        self,
        n_agents: int,
        agent_styles: Sequence[str],
        *,
        rounds: int,
        note_tokens: int,
        styles: Sequence[str] | None = None,
        inbox_slots: int = 8,
        history: int = 2,
        visible_neighbour_metrics: bool = True,
    ):
        if inbox_slots < 1 or history < 1:
            raise ValueError(f"inbox_slots and history must be >= 1, got {inbox_slots} and {history}")
        self.styles = list(styles) if styles is not None else default_styles(agent_styles)
        unknown = [s for s in self.styles if s not in STYLES]
        if unknown or not self.styles:
            raise ValueError(f"styles must be a non-empty list of {', '.join(STYLES.names())}; got {self.styles}")
        self.n_agents, self.agent_styles = n_agents, list(agent_styles)
        self.rounds, self.note_tokens = rounds, max(note_tokens, 1)
        self.inbox_slots, self.history, self.visible = inbox_slots, history, visible_neighbour_metrics
        self.names = [agent_name(i) for i in range(n_agents)]
        self.shapes = {
            "own": (len(OWN_FEATURES),),
            "history": (history, len(HISTORY_METRICS)),
            "slots": (inbox_slots, len(SLOT_FEATURES)),
            "neighbours": (n_agents, len(NEIGHBOUR_FEATURES)),
        }
        self.size = sum(int(np.prod(s)) for s in self.shapes.values())
        self._words: dict[str, frozenset[str]] = {}

    @classmethod
    def for_simulation(cls, sim: Simulation, **options: Any) -> Interface:
        return cls(
            len(sim.setup.agents),
            [s.style for s in sim.setup.agents],
            rounds=sim.setup.rounds,
            note_tokens=sim.setup.self_edit.max_new_tokens,
            **options,
        )

    # -- spaces ---------------------------------------------------------------
    def observation_space(self) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (self.size,), dtype=np.float32)

    def action_space(self) -> spaces.Dict:
        A = self.n_agents
        return spaces.Dict(
            {
                "style": spaces.Discrete(len(self.styles)),
                "adapt": spaces.MultiBinary(self.inbox_slots),
                "adapt_new": spaces.MultiBinary(A),
                "send": spaces.MultiBinary(A),
            }
        )

    def feature_names(self) -> list[str]:
        """One name per observation entry: ``own.round``, ``history0.acc_own``, ``slot3.trust``, ``nb2.acc_all``."""
        names = [f"own.{f}" for f in OWN_FEATURES]
        names += [f"history{h}.{m}" for h in range(self.history) for m in HISTORY_METRICS]
        names += [f"slot{i}.{f}" for i in range(self.inbox_slots) for f in SLOT_FEATURES]
        return names + [f"nb{j}.{f}" for j in range(self.n_agents) for f in NEIGHBOUR_FEATURES]

    def unflatten(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        """The observation's blocks: ``own`` (3,), ``history`` (H, 5), ``slots`` (N, 8), ``neighbours`` (A, 4)."""
        out, start = {}, 0
        for key, shape in self.shapes.items():
            n = int(np.prod(shape))
            out[key] = np.asarray(obs[start : start + n]).reshape(shape)
            start += n
        return out

    # -- observing --------------------------------------------------------------
    @staticmethod
    def _graph(sim: Simulation):
        return sim.setup.graphs.at(min(sim.round, max(sim.setup.rounds - 1, 0)))

    def slots(self, sim: Simulation, agent: int) -> list[InboxItem]:
        """The agent's pending items in slot order (at most ``inbox_slots``)."""
        items = sorted(
            sim.state.postbox.inbox(agent), key=lambda it: (-it.note.round, it.hops, -it.weight, it.note.note_id)
        )
        return items[: self.inbox_slots]

    def _words_of(self, text: str) -> frozenset[str]:
        if text not in self._words:
            if len(self._words) > 50_000:  # episodes keep writing new notes: bound the cache
                self._words.clear()
            self._words[text] = frozenset(_WORD.findall(text.lower()))
        return self._words[text]

    def _vocabulary(self, sim: Simulation, agent: int) -> set[str]:
        vocab: set[str] = set()
        for j in np.flatnonzero(sim.state.own[agent]):
            doc = sim.setup.world.documents[j]
            vocab |= self._words_of(f"{doc.title}\n{doc.context}")
        adapted = getattr(sim.setup.scheduler, "adapted", {}).get(agent, [])
        for n in adapted:
            if sim.setup.sharing == "notes" or n.author == agent:
                vocab |= self._words_of(n.text)
        return vocab

    def observe(self, sim: Simulation) -> dict[int, np.ndarray]:
        """Every agent's observation before the round ``sim.round`` is played."""
        g = self._graph(sim)
        arriving = sim.setup.arrivals.get(sim.round, {})
        last = sim.state.history[-1] if sim.state.history else {}
        out = {}
        for a in range(self.n_agents):
            blocks = {k: np.zeros(s, dtype=np.float32) for k, s in self.shapes.items()}
            pending = sim.state.postbox.inbox(a)
            blocks["own"][:] = [
                sim.round / max(self.rounds, 1),
                float(bool(arriving.get(a))),
                min(len(pending) / self.inbox_slots, 1.0),
            ]
            for h in range(self.history):
                if len(sim.state.history) > h:
                    m = sim.state.history[-1 - h][a]
                    blocks["history"][h] = [_unit(m.get(k, math.nan)) for k in HISTORY_METRICS]
            vocab = self._vocabulary(sim, a)
            for i, it in enumerate(self.slots(sim, a)):
                n = it.note
                words = self._words_of(n.text)
                blocks["slots"][i] = [
                    1.0,
                    float(n.author == a),
                    n.author / max(self.n_agents - 1, 1),
                    _unit(it.weight),
                    _unit((sim.round - n.round) / max(self.rounds, 1)),
                    _unit(n.tokens / self.note_tokens),
                    float(sim.state.learnt[a, sim.setup.doc_index[n.doc_id]] >= 0),
                    len(words & vocab) / len(words) if words else 0.0,
                ]
            for j in range(self.n_agents):
                if j == a:
                    continue
                out_edge, in_edge = g.has_edge(a, j), g.has_edge(j, a)
                row = [float(out_edge), float(in_edge), 0.0, 0.0]
                if self.visible and (out_edge or in_edge) and j in last:
                    row[2:] = [_unit(last[j].get("acc_own", math.nan)), _unit(last[j].get("acc_all", math.nan))]
                blocks["neighbours"][j] = row
            out[a] = np.concatenate([b.reshape(-1) for b in blocks.values()]).astype(np.float32)
        return out

    def action_mask(self, sim: Simulation, agent: int) -> dict[str, np.ndarray]:
        """Valid bits, in gymnasium's sample-mask convention (see the module docstring)."""
        g = self._graph(sim)
        A = self.n_agents
        adapt = np.zeros(self.inbox_slots, dtype=np.int8)
        adapt[: len(self.slots(sim, agent))] = 2
        new = np.zeros(A, dtype=np.int8)
        new[[agent, *g.predecessors(agent)]] = 2
        send = np.zeros(A, dtype=np.int8)
        if sim.setup.sharing == "notes":
            send[list(g.successors(agent))] = 2
        return {"style": np.ones(len(self.styles), dtype=np.int8), "adapt": adapt, "adapt_new": new, "send": send}

    def info(self, sim: Simulation, agent: int) -> dict[str, Any]:
        """What a policy may read besides the observation: ``action_mask``, ``round`` and ``slots``
        (the note ids in slot order)."""
        return {
            "action_mask": self.action_mask(sim, agent),
            "round": sim.round,
            "slots": tuple(it.note.note_id for it in self.slots(sim, agent)),
        }

    # -- acting -----------------------------------------------------------------
    def _bits(self, action: Mapping[str, Any], key: str, n: int, agent: int) -> np.ndarray:
        if key not in action:
            raise ValueError(
                f"the action of {agent_name(agent)} has no '{key}' (expected keys {', '.join(ACTION_KEYS)})"
            )
        bits = np.asarray(action[key]).reshape(-1)
        if bits.shape != (n,):
            raise ValueError(
                f"{agent_name(agent)}: action '{key}' must have {n} entries, got shape {np.shape(action[key])}"
            )
        return bits != 0

    def translate(self, sim: Simulation, actions: Mapping[int, Mapping[str, Any]]) -> Translation:
        """Map each agent's action (keys of the action space) to an ``AgentAction`` and a ``Decision``."""
        out = Translation()
        for a, act in sorted(actions.items()):
            if not 0 <= a < self.n_agents:
                raise ValueError(f"no agent {a} (agents are 0..{self.n_agents - 1})")
            mask = self.action_mask(sim, a)
            bad = dict.fromkeys(ACTION_KEYS, 0)
            if "style" not in act:
                raise ValueError(f"the action of {agent_name(a)} has no 'style'")
            s = int(np.asarray(act["style"]).reshape(-1)[0])
            style = self.styles[s] if 0 <= s < len(self.styles) else None
            bad["style"] = int(style is None)
            parts = {}
            for key in ("adapt", "adapt_new", "send"):
                bits = self._bits(act, key, len(mask[key]), a)
                parts[key] = bits & (mask[key] != 0)
                bad[key] = int((bits & (mask[key] == 0)).sum())
            slots = self.slots(sim, a)
            note_ids = frozenset(slots[i].note.note_id for i in np.flatnonzero(parts["adapt"]))
            out.decisions[a] = Decision(note_ids, frozenset(int(j) for j in np.flatnonzero(parts["adapt_new"])))
            send_to = {int(j) for j in np.flatnonzero(parts["send"])}
            out.actions[a] = AgentAction(style=style, send_to=send_to if sim.setup.sharing == "notes" else None)
            out.invalid[a] = bad
        return out

    def apply(self, sim: Simulation, actions: Mapping[int, Mapping[str, Any]]) -> Translation:
        """Translate, hand the decisions to the simulation's :class:`PolicyScheduler`; return the translation."""
        if not isinstance(sim.setup.scheduler, PolicyScheduler):
            raise TypeError(
                "a policy drives a simulation whose scheduler is a PolicyScheduler (scheduler.kind: policy)"
            )
        tr = self.translate(sim, actions)
        sim.setup.scheduler.decide(tr.decisions)
        return tr
