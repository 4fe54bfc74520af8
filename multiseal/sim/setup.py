"""What a simulation is given and never changes: the parts a round reads, built from the scenario.

:class:`Setup` is the fixed half of a simulation (the changing half is
:class:`~multiseal.sim.state.RoundState`): the shared model (through its
:class:`~multiseal.sim.population.Population`), the world and its arrivals, the graphs, the scheduler,
the agents and every setting of the round. A checkpoint never stores it: resuming builds it again from
the same scenario, which is deterministic given the seed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from multiseal.learning.drift import encode_texts
from multiseal.sim.adversary import Adversary
from multiseal.sim.facts import FactIndex
from multiseal.sim.graph import DynamicGraph
from multiseal.sim.mitigations import Mitigation
from multiseal.sim.population import Population
from multiseal.sim.trust import TrustSettings
from multiseal.types import AgentSpec, EvalSettings, Question, Scheduler, SelfEditSettings, World
from multiseal.world.arrivals import Arrivals


@dataclass(eq=False)
class Setup:
    """The fixed parts of one simulation (see the module's docstring)."""

    model: Population
    world: World
    arrivals: Arrivals
    graphs: DynamicGraph
    scheduler: Scheduler
    agents: tuple[AgentSpec, ...]
    self_edit: SelfEditSettings
    evaluation: EvalSettings
    rounds: int
    seed: int
    sharing: str  # notes | weights | none
    mixing: str  # how weights sharing averages
    replay: float  # the fraction of earlier sequences replayed in every update
    probe_size: int  # questions in the retention probe
    progress: bool  # print progress bars
    content: str  # notes | passage | oracle | shuffled (multiseal.sim.controls)
    retell: bool  # agents retell from memory what they learnt from others' notes (sim.stages.retell)
    distractors: World | None  # the shuffled control's and the noise adversary's distractor documents
    train_together: bool
    rows_per_pass: int
    sample_documents: int | None  # the evaluation budget (None: every document every round)
    mitigations: Mapping[int, tuple[Mitigation, ...]]  # agent -> its mitigations (only agents that have some)
    adversaries: Mapping[int, Adversary]
    trust: TrustSettings
    drift_texts: tuple[str, ...]
    drift_length: int
    reference: tuple[int, int, int] | None  # (passages, length, batch) the KL mitigations' terms share
    doc_index: dict[str, int] = field(init=False)  # document id -> its column in the accuracy tensor

    def __post_init__(self) -> None:
        self.doc_index = {d.doc_id: j for j, d in enumerate(self.world.documents)}

    @property
    def questions(self) -> list[Question]:
        """Every document's questions, then the composition questions (the accuracy tensor's items)."""
        return [q for d in self.world.documents for q in d.questions] + list(self.world.composition)

    @cached_property
    def facts(self) -> FactIndex:
        """The world's facts, to score notes by (empty for a world without facts)."""
        return FactIndex(self.world)

    @cached_property
    def drift_data(self) -> list[Any]:
        """The general-text passages that drift is measured on, tokenised once."""
        return encode_texts(self.model, self.drift_texts, self.drift_length)

    def combines(self, agent: int) -> bool:
        """Whether ``agent`` trains each update as a fresh delta to combine (a ``combine`` mitigation)."""
        return any(m.combine for m in self.mitigations.get(agent, ()))
