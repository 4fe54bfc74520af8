"""What a scenario says about each agent, resolved once: the scenario's defaults with the agent's
override applied (style, LoRA shape, inner loop, mitigations, adversary role).

The builders (:mod:`multiseal.config.builders`) make the simulation's agents from it and the estimate
(:mod:`multiseal.config.estimate`) sizes the run from it, so the two cannot disagree about an agent.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import TypeVar

from multiseal.config.schema import Scenario, Section
from multiseal.sim.adversary import Adversary
from multiseal.sim.mitigations import Mitigation, build_mitigations
from multiseal.types import LoraSettings, TrainSettings

S = TypeVar("S")


def settings_from(section: Section, cls: type[S]) -> S:
    """The settings dataclass ``cls`` from the validated section's fields of the same names (lists
    become tuples: settings are frozen); fields the section lacks keep the dataclass default."""
    values = section.model_dump()
    return cls(
        **{
            f.name: tuple(values[f.name]) if isinstance(values[f.name], list) else values[f.name]
            for f in fields(cls)  # type: ignore[arg-type]
            if f.name in values
        }
    )


@dataclass(frozen=True)
class AgentSettings:
    """One agent's resolved settings."""

    style: str
    lora: LoraSettings
    inner: TrainSettings
    mitigations: tuple[Mitigation, ...]
    adversary: Adversary | None  # None: an honest agent

    @property
    def writes(self) -> bool:
        """Whether it generates its own notes (adversaries write theirs without generating)."""
        return self.adversary is None


def resolve_agents(scenario: Scenario) -> list[AgentSettings]:
    """Every agent's settings, in agent order (the scenario is validated: overrides name real agents)."""
    lora = settings_from(scenario.model.lora, LoraSettings)
    inner = settings_from(scenario.inner_loop, TrainSettings)
    out = []
    for i in range(scenario.agents.count):
        o = scenario.agents.overrides.get(i)
        if o is None:
            entries = scenario.mitigations
            out.append(AgentSettings(scenario.self_edit.style, lora, inner, _mitigations(entries), None))
            continue
        entries = o.mitigations if o.mitigations is not None else scenario.mitigations
        out.append(
            AgentSettings(
                o.style or scenario.self_edit.style,
                replace(lora, rank=o.rank or lora.rank, alpha=o.alpha or lora.alpha),
                replace(inner, lr=o.lr or inner.lr, epochs=inner.epochs if o.epochs is None else o.epochs),
                _mitigations(entries),
                Adversary(o.rate if o.rate is not None else 0.5, o.attack or "false_values")
                if o.role == "adversary"
                else None,
            )
        )
    return out


def _mitigations(entries) -> tuple[Mitigation, ...]:
    return tuple(build_mitigations([e.model_dump() for e in entries]))
