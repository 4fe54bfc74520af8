"""The PettingZoo interface: a multi-agent simulation as a ``ParallelEnv`` that learned policies drive.

One PettingZoo agent per multiseal agent (``agent_0``, ``agent_1``, ...); one env step is one round
(``Simulation.step``); an episode is ``scenario.rounds`` rounds, after which every agent is
*terminated* (the scenario's world is used up: nothing follows the last round).

``reset(seed=s)`` rebuilds the simulation from the scenario with ``seed = s`` on the same loaded base
model (loaded once per env; each episode's adapters get fresh names and are deleted at the next
reset or ``close``) and measures the base model's answers (row 0). ``reset()`` without a seed plays
the next seed (the last one + 1, starting from the scenario's). The world follows the seed unless
``world.seed`` pins it.

**Actions** (``action_space(agent)``, a gymnasium ``Dict`` of fixed shape; A agents, S styles, N slots):

* ``style`` — ``Discrete(S)``: index into ``env.styles``, the prompt style of the notes the agent
  writes this round (it matters only in rounds where a document arrives for it);
* ``adapt`` — ``MultiBinary(N)``: adapt now on the pending inbox items in these slots (the slots of
  the observation: pending items sorted newest note first, own before others, higher trust first,
  then ``note_id``; items beyond slot N stay pending and invisible until slots free up);
* ``adapt_new`` — ``MultiBinary(A)``: adapt now on what sender j delivers *this round* (bit of the
  agent itself: its own new notes), as it arrives: a policy cannot see notes not written yet;
* ``send`` — ``MultiBinary(A)``: send this round's new notes to agent j (out-neighbours only).

Chosen notes leave the inbox; the others stay pending. Invalid bits — a slot past the inbox, a sender
that is neither the agent nor an in-neighbour, a recipient that is not an out-neighbour (or any
recipient when the scenario does not share notes) — are ignored and counted: ``info["invalid"]``
(this step, per part) and ``info["invalid_actions"]`` (episode total). ``info["action_mask"]``
follows gymnasium's sample-mask convention (``style``: 1 = allowed; the ``MultiBinary`` parts: 2 =
free bit, 0 = must stay 0), so ``env.action_space(a).sample(mask=info["action_mask"])`` draws a
valid action. An agent left out of the actions dict does what the scenario's defaults would: its
configured style, notes to every out-neighbour, adaptation on its whole inbox.

**Observations** (``observation_space(agent)``: ``Box(0, 1, (D,), float32)``), in order
(``env.interface.unflatten(obs)`` splits them, ``feature_names()`` names every entry):

* ``own`` (3): round / rounds, 1 if a document arrives for the agent this round, pending items / N;
* ``history`` (H × 5): the agent's ``acc_own, acc_received, acc_all, forgetting, retention`` of the
  last H rounds, newest first (0 where undefined or before the first round);
* ``slots`` (N × 8): per slot ``present, own`` (its own note), ``author`` (id / (A - 1)), ``trust``
  (edge weight, clipped), ``age`` (rounds since written / rounds), ``length`` (tokens / the note
  budget ``self_edit.max_new_tokens``), ``known_doc`` (it already holds or has learnt the note's
  document), ``overlap`` (share of the note's words already in the passages it holds and the notes it
  adapted on);
* ``neighbours`` (A × 4): per agent j ``out_edge`` (a→j), ``in_edge`` (j→a) in this round's graph, and
  j's last published ``acc_own, acc_all`` when j is a neighbour and ``visible_neighbour_metrics``.

**Rewards** for round t (row t of the accuracy tensor), with NaN read as 0 in every term::

    reward = (acc_own[t] - acc_own[t-1])
             + population_weight * (pop.acc_all.mean[t] - pop.acc_all.mean[t-1])
             - comm_cost * notes the agent sent over edges in round t (relays included)

so an episode's return is the final ``acc_own`` (+ the weighted final population accuracy) minus the
communication bill. ``info["reward_terms"]`` holds the three terms.

The same translation drives a ``scheduler.kind: policy`` run (``multiseal.policies.policy_driver``):
the policy sees these observations and its actions reach the simulation as ``AgentAction`` s plus
the decisions of ``multiseal.policies.PolicyScheduler``, resolved once this round's notes have arrived.
"""
from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv
from pettingzoo.utils.conversions import parallel_to_aec

from multiseal.notes import InboxItem
from multiseal.policies import Decision, PolicyScheduler
from multiseal.self_edit import STYLES
from multiseal.simulation import AgentAction, RoundRecord, Simulation

OWN_FEATURES = ("round", "arriving", "inbox")
HISTORY_METRICS = ("acc_own", "acc_received", "acc_all", "forgetting", "retention")
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


# ------------------------------------------------------------------ observation / action translation

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

    def __init__(self, n_agents: int, agent_styles: Sequence[str], *, rounds: int, note_tokens: int,
                 styles: Sequence[str] | None = None, inbox_slots: int = 8, history: int = 2,
                 visible_neighbour_metrics: bool = True):
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
        self.shapes = {"own": (len(OWN_FEATURES),), "history": (history, len(HISTORY_METRICS)),
                       "slots": (inbox_slots, len(SLOT_FEATURES)), "neighbours": (n_agents, len(NEIGHBOUR_FEATURES))}
        self.size = sum(int(np.prod(s)) for s in self.shapes.values())
        self._words: dict[str, frozenset[str]] = {}

    @classmethod
    def for_simulation(cls, sim: Simulation, **options: Any) -> Interface:
        return cls(len(sim.agents), [s.style for s in sim.agents], rounds=sim.rounds,
                   note_tokens=sim.self_edit.max_new_tokens, **options)

    # -- spaces ---------------------------------------------------------------
    def observation_space(self) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (self.size,), dtype=np.float32)

    def action_space(self) -> spaces.Dict:
        A = self.n_agents
        return spaces.Dict({"style": spaces.Discrete(len(self.styles)), "adapt": spaces.MultiBinary(self.inbox_slots),
                            "adapt_new": spaces.MultiBinary(A), "send": spaces.MultiBinary(A)})

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
            out[key] = np.asarray(obs[start:start + n]).reshape(shape)
            start += n
        return out

    # -- observing --------------------------------------------------------------
    @staticmethod
    def _graph(sim: Simulation):
        return sim.graphs.at(min(sim.round, max(sim.rounds - 1, 0)))

    def slots(self, sim: Simulation, agent: int) -> list[InboxItem]:
        """The agent's pending items in slot order (at most ``inbox_slots``)."""
        items = sorted(sim.postbox.inbox(agent),
                       key=lambda it: (-it.note.round, it.hops, -it.weight, it.note.note_id))
        return items[: self.inbox_slots]

    def _words_of(self, text: str) -> frozenset[str]:
        if text not in self._words:
            if len(self._words) > 50_000:  # episodes keep writing new notes: bound the cache
                self._words.clear()
            self._words[text] = frozenset(_WORD.findall(text.lower()))
        return self._words[text]

    def _vocabulary(self, sim: Simulation, agent: int) -> set[str]:
        vocab: set[str] = set()
        for j in np.flatnonzero(sim.own[agent]):
            doc = sim.world.documents[j]
            vocab |= self._words_of(f"{doc.title}\n{doc.context}")
        adapted = getattr(sim.scheduler, "adapted", {}).get(agent, [])
        for n in adapted:
            if sim.sharing == "notes" or n.author == agent:
                vocab |= self._words_of(n.text)
        return vocab

    def observe(self, sim: Simulation) -> dict[int, np.ndarray]:
        """Every agent's observation before the round ``sim.round`` is played."""
        g = self._graph(sim)
        arriving = sim.arrivals.get(sim.round, {})
        last = sim.history[-1] if sim.history else {}
        out = {}
        for a in range(self.n_agents):
            blocks = {k: np.zeros(s, dtype=np.float32) for k, s in self.shapes.items()}
            pending = sim.postbox.inbox(a)
            blocks["own"][:] = [sim.round / max(self.rounds, 1), float(bool(arriving.get(a))),
                                min(len(pending) / self.inbox_slots, 1.0)]
            for h in range(self.history):
                if len(sim.history) > h:
                    m = sim.history[-1 - h][a]
                    blocks["history"][h] = [_unit(m.get(k, math.nan)) for k in HISTORY_METRICS]
            vocab = self._vocabulary(sim, a)
            for i, it in enumerate(self.slots(sim, a)):
                n = it.note
                words = self._words_of(n.text)
                blocks["slots"][i] = [
                    1.0, float(n.author == a), n.author / max(self.n_agents - 1, 1), _unit(it.weight),
                    _unit((sim.round - n.round) / max(self.rounds, 1)), _unit(n.tokens / self.note_tokens),
                    float(sim.learnt[a, sim.doc_index[n.doc_id]] >= 0),
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
        if sim.sharing == "notes":
            send[list(g.successors(agent))] = 2
        return {"style": np.ones(len(self.styles), dtype=np.int8), "adapt": adapt, "adapt_new": new, "send": send}

    def info(self, sim: Simulation, agent: int) -> dict[str, Any]:
        """What a policy may read besides the observation: ``action_mask``, ``round`` and ``slots``
        (the note ids in slot order)."""
        return {"action_mask": self.action_mask(sim, agent), "round": sim.round,
                "slots": tuple(it.note.note_id for it in self.slots(sim, agent))}

    # -- acting -----------------------------------------------------------------
    def _bits(self, action: Mapping[str, Any], key: str, n: int, agent: int) -> np.ndarray:
        if key not in action:
            raise ValueError(f"the action of {agent_name(agent)} has no '{key}' "
                             f"(expected keys {', '.join(ACTION_KEYS)})")
        bits = np.asarray(action[key]).reshape(-1)
        if bits.shape != (n,):
            raise ValueError(f"{agent_name(agent)}: action '{key}' must have {n} entries, "
                             f"got shape {np.shape(action[key])}")
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
            out.actions[a] = AgentAction(style=style, send_to=send_to if sim.sharing == "notes" else None)
            out.invalid[a] = bad
        return out

    def apply(self, sim: Simulation, actions: Mapping[int, Mapping[str, Any]]) -> Translation:
        """Translate, hand the decisions to the simulation's :class:`PolicyScheduler`; return the translation."""
        if not isinstance(sim.scheduler, PolicyScheduler):
            raise TypeError("a policy drives a simulation whose scheduler is a PolicyScheduler "
                            "(scheduler.kind: policy)")
        tr = self.translate(sim, actions)
        sim.scheduler.decide(tr.decisions)
        return tr


# ------------------------------------------------------------------ rewards

def round_rewards(sim: Simulation, record: RoundRecord, *, population_weight: float = 0.0,
                  comm_cost: float = 0.0) -> dict[int, dict[str, float]]:
    """Per agent for ``record``'s round: ``own_gain``, ``population_gain``, ``notes_sent`` and ``reward``
    (the formula in the module docstring; NaN counts as 0 in every term)."""
    r = record.round
    prev = sim.records[r - 1] if r > 0 else None
    pop_gain = _nz(record.population.get("pop.acc_all.mean")) - _nz(
        prev.population.get("pop.acc_all.mean") if prev else None)
    sent: dict[int, int] = {}
    for (rr, u, _), c in sim.postbox.stats.items():
        if rr == r:
            sent[u] = sent.get(u, 0) + c["notes"]
    out = {}
    for a, m in record.agents.items():
        own_gain = _nz(m.get("acc_own")) - _nz(prev.agents[a].get("acc_own") if prev else None)
        n = sent.get(a, 0)
        out[a] = {"own_gain": own_gain, "population_gain": pop_gain, "notes_sent": float(n),
                  "reward": own_gain + population_weight * pop_gain - comm_cost * n}
    return out


# ------------------------------------------------------------------ the environment

_ENV_IDS = itertools.count()


class MultiSealEnv(ParallelEnv):
    """A multiseal scenario as a PettingZoo ``ParallelEnv`` (see the module docstring)."""

    metadata = {"name": "multiseal_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, scenario, model, source: str | Path | None = None, *, inbox_slots: int = 8,
                 history: int = 2, styles: Sequence[str] | None = None, population_weight: float = 0.0,
                 comm_cost: float = 0.0, visible_neighbour_metrics: bool = True, progress: bool = False):
        from multiseal.simulate import agent_specs

        if scenario.kind != "simulation":
            raise ValueError(f"an env needs a scenario of kind 'simulation', got {scenario.kind!r}")
        self.scenario, self.model, self.source, self.progress = scenario, model, source, progress
        self.population_weight, self.comm_cost = population_weight, comm_cost
        specs = agent_specs(scenario)
        self.interface = Interface(len(specs), [s.style for s in specs], rounds=scenario.rounds,
                                   note_tokens=scenario.self_edit.max_new_tokens, styles=styles,
                                   inbox_slots=inbox_slots, history=history,
                                   visible_neighbour_metrics=visible_neighbour_metrics)
        self.styles = self.interface.styles
        self.possible_agents = list(self.interface.names)
        self.agents: list[str] = []
        self.render_mode = None
        self._obs_spaces = {a: self.interface.observation_space() for a in self.possible_agents}
        self._act_spaces = {a: self.interface.action_space() for a in self.possible_agents}
        self.sim: Simulation | None = None
        self._id, self._episode = next(_ENV_IDS), 0
        self._seed: int | None = None
        self._invalid = dict.fromkeys(self.possible_agents, 0)

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_spaces[agent]

    def action_space(self, agent: str) -> spaces.Dict:
        return self._act_spaces[agent]

    # -- episode ----------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict | None = None):
        from multiseal.simulate import build_simulation

        self._teardown()
        self._seed = seed if seed is not None else (self.scenario.seed if self._seed is None else self._seed + 1)
        scenario = self.scenario.model_copy(update={"seed": self._seed})
        sim = build_simulation(scenario, self.model, self.source, progress=self.progress)
        sim.scheduler = PolicyScheduler()
        # peft keeps some state under a deleted adapter's name: never reuse one on the shared model
        sim.agents = [replace(spec, adapter=f"pz{self._id}x{self._episode}a{i}") for i, spec in enumerate(sim.agents)]
        self._episode += 1
        sim.start()  # adapters and the base model's row 0, so every step costs the same
        self.sim = sim
        self.agents = list(self.possible_agents)
        self._invalid = dict.fromkeys(self.possible_agents, 0)
        zero = {"own_gain": 0.0, "population_gain": 0.0, "notes_sent": 0.0, "reward": 0.0}
        return self._observations(), self._infos({}, {a: dict(zero) for a in range(len(self.agents))})

    def step(self, actions: Mapping[str, Mapping[str, Any]]):
        if self.sim is None:
            raise RuntimeError("call reset() before step()")
        if not self.agents:
            return {}, {}, {}, {}, {}
        index = {name: i for i, name in enumerate(self.possible_agents)}
        unknown = [k for k in actions if k not in index]
        if unknown:
            raise ValueError(f"actions for unknown agents {unknown}; agents are {self.possible_agents}")
        tr = self.interface.apply(self.sim, {index[k]: v for k, v in actions.items()})
        record = self.sim.step(tr.actions)
        terms = round_rewards(self.sim, record, population_weight=self.population_weight, comm_cost=self.comm_cost)
        for a, bad in tr.invalid.items():
            self._invalid[agent_name(a)] += sum(bad.values())
        done = self.sim.round >= self.sim.rounds
        names = list(self.agents)
        obs = self._observations()
        infos = self._infos(tr.invalid, terms)
        rewards = {n: float(terms[index[n]]["reward"]) for n in names}
        terminations = dict.fromkeys(names, done)
        truncations = dict.fromkeys(names, False)
        if done:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def _observations(self) -> dict[str, np.ndarray]:
        return {agent_name(a): o for a, o in self.interface.observe(self.sim).items()}

    def _infos(self, invalid: Mapping[int, dict[str, int]], terms: Mapping[int, dict[str, float]]) -> dict[str, dict]:
        return {name: {**self.interface.info(self.sim, a),
                       "invalid": dict(invalid.get(a) or dict.fromkeys(ACTION_KEYS, 0)),
                       "invalid_actions": self._invalid[name], "reward_terms": dict(terms[a])}
                for a, name in enumerate(self.possible_agents)}

    def _teardown(self) -> None:
        if self.sim is not None:
            self.sim.close()
        self.sim = None

    def close(self) -> None:
        """Delete this episode's adapters from the shared model."""
        self._teardown()
        self.agents = []


def _load(scenario, model, source):
    from multiseal import build
    from multiseal.scenario import Scenario, load_scenario

    if not isinstance(scenario, Scenario):
        source = source if source is not None else scenario
        scenario = load_scenario(scenario)
    if model is None:
        model = build.build_model(scenario.model, progress=False)
    return scenario, model, source


def parallel_env(scenario, *, model=None, source: str | Path | None = None, **options: Any) -> MultiSealEnv:
    """The scenario (a ``Scenario`` or a YAML path) as a ``ParallelEnv``; ``model`` reuses a loaded
    ``SharedModel`` (else the scenario's model is loaded). ``options``: ``inbox_slots=8, history=2,
    styles=None, population_weight=0.0, comm_cost=0.0, visible_neighbour_metrics=True, progress=False``."""
    scenario, model, source = _load(scenario, model, source)
    return MultiSealEnv(scenario, model, source, **options)


def env(scenario, *, model=None, source: str | Path | None = None, **options: Any):
    """The AEC form, through PettingZoo's own ``parallel_to_aec`` conversion."""
    return parallel_to_aec(parallel_env(scenario, model=model, source=source, **options))
