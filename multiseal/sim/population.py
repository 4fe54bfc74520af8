"""Where the agents' adapters live and where the work on them runs: one process, or several workers.

The round loop never touches the model directly. It asks a :class:`Population` to create adapters,
generate (notes and answers), train, and measure drift; the population splits each request by the
**shard** that owns the adapters involved, runs the shards' parts and puts the results back in the
request's order. A shard (:class:`Shard`) is one base model in memory holding some agents' adapters.

* In one process (the default) every shard is the same :class:`Shard` on the one
  :class:`~multiseal.learning.model.SharedModel`; with one group of agents this is exactly a direct call.
* On Ray (:mod:`multiseal.run.ray_population`) each shard is an actor in its own process (or machine)
  that loaded the base once and owns its agents' adapters; the driver keeps the round loop.

The agents are partitioned into ``groups`` contiguous blocks, and every generation and training call
is made once per group with the same inputs and seeds wherever the group runs. So a run on ``W`` Ray
workers equals, to the last bit, the in-process run with ``execution.workers: W`` (same batches, same
random streams); changing ``W`` changes how rows are batched (and sampled notes' random streams).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from multiseal.learning.drift import Drift, drift, encode_texts
from multiseal.learning.model import SharedModel, chat_prompt, count_tokens
from multiseal.learning.regularise import BaseReference
from multiseal.learning.train import TrainStats, inner_loop_job, train_jobs
from multiseal.sim.mitigations import Mitigation, PenaltyContext
from multiseal.types import LoraSettings, TrainSettings
from multiseal.world.general_text import general_passages

# the seed of group g's generation is seed + g * GROUP_SEED_STRIDE (group 0: the seed itself)
GROUP_SEED_STRIDE = 1_000_003


@dataclass(frozen=True)
class TrainSpec:
    """One agent's update, described so that it can be built wherever its adapter lives: the
    sequences, the inner loop's settings and seed, and the mitigations that add a loss term."""

    agent: int
    adapter: str
    sequences: tuple[str, ...]
    settings: TrainSettings
    seed: int
    round: int
    penalties: tuple[Mitigation, ...] = ()
    reference: tuple[int, int, int] | None = None  # (passages, tokens each, batch) of the KL reference


def partition(count: int, groups: int) -> list[list[int]]:
    """``count`` agents in ``groups`` contiguous blocks whose sizes differ by at most one."""
    return [list(map(int, b)) for b in np.array_split(np.arange(count), groups)]


class Shard:
    """The work on one base model in memory: its adapters, generation, training and drift."""

    def __init__(self, model: SharedModel):
        self.model = model
        self._references: dict[tuple[int, int, int], BaseReference] = {}

    # the population's description of this shard's model
    def describe(self) -> dict[str, Any]:
        m = self.model
        return {"tokenizer": m.tokenizer, "chat": m.chat, "device": str(m.device), "name": m.name}

    def add_adapter(self, name: str, settings: LoraSettings, init_from: str | None = None, seed: int = 0) -> None:
        self.model.add_adapter(name, settings, init_from=init_from, seed=seed)

    def delete_adapter(self, name: str) -> None:
        self.model.delete_adapter(name)

    def adapter_state(self, name: str):
        return self.model.adapter_state(name)

    def set_adapter_state(self, name: str, state) -> None:
        self.model.set_adapter_state(name, state)

    def generate(self, prompts: Sequence[str], adapters: Sequence[str | None], **kwargs) -> list[str]:
        return self.model.generate(prompts, adapters, **kwargs)

    def drift(self, adapters: Sequence[str], data) -> dict[str, Drift]:
        return drift(self.model, adapters, data)

    def train(
        self, specs: Sequence[TrainSpec], together: bool, max_rows: int, progress: Sequence[str | None] | str | None
    ) -> list[TrainStats]:
        """The specs' jobs, built on this shard's model: in shared batches (``together``; ``progress``
        one label) or one after another (``progress`` one label per spec)."""
        jobs = [
            inner_loop_job(self.model, s.adapter, s.sequences, s.settings, seed=s.seed, penalty=self._penalty(s))
            for s in specs
        ]
        if together:
            label = progress if isinstance(progress, str) or progress is None else None
            return train_jobs(self.model, jobs, together=True, max_rows=max_rows, progress=label)
        labels = progress if isinstance(progress, (list, tuple)) else [progress] * len(jobs)
        return [train_jobs(self.model, [job], progress=p)[0] for job, p in zip(jobs, labels)]

    def _penalty(self, spec: TrainSpec):
        """The sum of the spec's mitigations' loss terms (None without any)."""
        if not spec.penalties:
            return None
        reference = None
        if spec.reference is not None:
            if spec.reference not in self._references:
                passages, length, batch = spec.reference
                data = encode_texts(self.model, general_passages(passages), length)
                self._references[spec.reference] = BaseReference.build(self.model, data, batch)
            reference = self._references[spec.reference]
        ctx = PenaltyContext(self.model, spec.adapter, spec.agent, spec.round, reference)
        terms = [m.penalty(ctx) for m in spec.penalties if m.penalty]
        return terms[0] if len(terms) == 1 else (lambda forward: sum(t(forward) for t in terms))


@dataclass
class Population:
    """The agents' adapters over ``shards`` (one per group of agents), as the round loop sees them.

    ``shards[g]`` serves group ``g``; adapters not assigned to a group (and the base model, adapter
    None) are served by group 0. ``seconds`` adds up each group's busy seconds by stage (the loop sets
    ``stage``); :meth:`take_seconds` hands them over once per round."""

    shards: list[Any]
    tokenizer: Any
    chat: bool
    device: Any
    name: str = ""
    adapters: dict[str, LoraSettings] = field(default_factory=dict)
    owner: dict[str, int] = field(default_factory=dict)
    groups: list[list[int]] = field(default_factory=list)
    stage: str = "setup"
    remote = False  # the shards run in other processes (class attribute; the Ray population sets it)
    seconds: dict[tuple[str, int], float] = field(default_factory=dict)

    @classmethod
    def local(cls, model: SharedModel, groups: int = 1) -> Population:
        """``groups`` groups on the one in-process model (groups only change how calls are batched)."""
        shard = Shard(model)
        return cls([shard] * groups, model.tokenizer, model.chat, model.device, model.name, adapters=model.adapters)

    @property
    def workers(self) -> int:
        return len(self.shards)

    def assign(self, adapters_by_group: Sequence[Sequence[str]], agents_by_group: Sequence[Sequence[int]]) -> None:
        """Which group owns which adapters (and, for messages, which agents)."""
        if len(adapters_by_group) != len(self.shards):
            raise ValueError(f"{len(adapters_by_group)} groups of agents for {len(self.shards)} shards")
        self.owner = {name: g for g, names in enumerate(adapters_by_group) for name in names}
        self.groups = [list(a) for a in agents_by_group]

    def group_of(self, adapter: str | None) -> int:
        return 0 if adapter is None else self.owner.get(adapter, 0)

    # -- running the shards' parts ----------------------------------------
    def _map(self, calls: Sequence[tuple[int, str, tuple, dict]]) -> list[Any]:
        """Run ``(group, method, args, kwargs)`` calls, one per group at most, in order; returns their
        results. In one process they run one after another (the Ray population runs them at once)."""
        out = []
        for g, method, args, kwargs in calls:
            t0 = time.perf_counter()
            out.append(getattr(self.shards[g], method)(*args, **kwargs))
            self._add_seconds(g, time.perf_counter() - t0)
        return out

    def _add_seconds(self, g: int, seconds: float) -> None:
        key = (self.stage, g)
        self.seconds[key] = self.seconds.get(key, 0.0) + seconds

    def take_seconds(self) -> dict[str, float]:
        """``{"worker.<g>.<stage>": seconds}`` since the last call (empty with a single in-process group)."""
        shown = self.workers > 1 or self.remote
        out = {f"worker.{g}.{stage}": s for (stage, g), s in sorted(self.seconds.items())} if shown else {}
        self.seconds.clear()
        return out

    def _split(self, keys: Sequence[str | None]) -> dict[int, list[int]]:
        parts: dict[int, list[int]] = {}
        for i, k in enumerate(keys):
            parts.setdefault(self.group_of(k), []).append(i)
        return parts

    def _one(self, adapter: str | None, method: str, *args, **kwargs) -> Any:
        return self._map([(self.group_of(adapter), method, args, kwargs)])[0]

    # -- adapters ----------------------------------------------------------
    def add_adapter(self, name: str, settings: LoraSettings, init_from: str | None = None, seed: int = 0) -> None:
        if init_from is not None and self.group_of(init_from) != self.group_of(name):
            self._one(name, "add_adapter", name, settings, seed=seed)
            self.set_adapter_state(name, self.adapter_state(init_from))
        else:
            self._one(name, "add_adapter", name, settings, init_from=init_from, seed=seed)
        self.adapters[name] = settings

    def delete_adapter(self, name: str) -> None:
        self._one(name, "delete_adapter", name)
        self.adapters.pop(name, None)

    def adapter_state(self, name: str):
        return self._one(name, "adapter_state", name)

    def set_adapter_state(self, name: str, state) -> None:
        self._one(name, "set_adapter_state", name, state)

    # -- text --------------------------------------------------------------
    def prompt(self, user_text: str) -> str:
        return chat_prompt(self.tokenizer, self.chat, user_text)

    def count_tokens(self, text: str) -> int:
        return count_tokens(self.tokenizer, text)

    def generate(
        self, prompts: Sequence[str], adapters: Sequence[str | None] | None = None, *, seed: int | None = None, **kwargs
    ) -> list[str]:
        """Each group's prompts in its own call (its seed offset by the group), results in order."""
        adapters = list(adapters) if adapters is not None else [None] * len(prompts)
        parts = self._split(adapters)
        calls = [
            (
                g,
                "generate",
                ([prompts[i] for i in idx], [adapters[i] for i in idx]),
                {**kwargs, "seed": None if seed is None else seed + g * GROUP_SEED_STRIDE},
            )
            for g, idx in parts.items()
        ]
        out: list[str] = [""] * len(prompts)
        for idx, texts in zip(parts.values(), self._map(calls)):
            for i, t in zip(idx, texts):
                out[i] = t
        return out

    # -- training and drift ------------------------------------------------
    def train(
        self,
        specs: Sequence[TrainSpec],
        *,
        together: bool,
        max_rows: int,
        progress: Callable[[Sequence[TrainSpec]], Any] | None = None,
    ) -> list[TrainStats]:
        """Each group trains its agents' specs (together, or one after another); stats in order.
        ``progress(specs)`` gives a group's progress label(s)."""
        parts = self._split([s.adapter for s in specs])
        calls: list[tuple[int, str, tuple, dict]] = []
        for g, idx in parts.items():
            mine = [specs[i] for i in idx]
            calls.append((g, "train", (mine, together, max_rows, progress(mine) if progress else None), {}))
        out: list[TrainStats | None] = [None] * len(specs)
        for idx, stats in zip(parts.values(), self._map(calls)):
            for i, st in zip(idx, stats):
                out[i] = st
        return out  # type: ignore[return-value]

    def drift(self, adapters: Sequence[str], data) -> dict[str, Drift]:
        parts = self._split(adapters)
        out: dict[str, Drift] = {}
        for r in self._map([(g, "drift", ([adapters[i] for i in idx], data), {}) for g, idx in parts.items()]):
            out.update(r)
        return out


def mitigation_reference(mitigations: Mapping[int, Sequence[Mitigation]]) -> tuple[int, int, int] | None:
    """The one general-text reference every agent's KL term shares: the largest any mitigation asks for."""
    ms = [m for ms in mitigations.values() for m in ms if m.reference_passages]
    if not ms:
        return None
    m = max(ms, key=lambda m: m.reference_passages)
    return (m.reference_passages, m.reference_length, m.reference_batch)
