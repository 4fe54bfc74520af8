"""A user's own multiseal extensions, in their own module: one topology, one scheduler, one prompt
style, one grader, one mitigation of forgetting and one arrival schedule. A scenario loads it with
``plugins: [my_multiseal_plugin]``."""
from __future__ import annotations

import networkx as nx
from pydantic import Field, ValidationInfo, field_validator

from multiseal.learning.grading import GRADERS, normalize_answer
from multiseal.learning.regularise import l2_pull
from multiseal.learning.self_edit import STYLES, PromptStyle, split_lines
from multiseal.registry import Params
from multiseal.sim.mitigations import MITIGATIONS, Mitigation
from multiseal.sim.schedulers import SCHEDULERS
from multiseal.sim.topologies import TOPOLOGIES
from multiseal.world.arrivals import ARRIVALS, ArrivalKind


# -- a topology: cliques of `size` agents, joined in a ring by one edge between neighbouring cliques
class RingOfCliquesParams(Params):
    size: int = Field(2, ge=2, description="agents per clique")

    @field_validator("size")
    @classmethod
    def _divides(cls, size: int, info: ValidationInfo) -> int:
        n = info.context["n"]  # the number of agents, from the validation context
        if n % size:
            raise ValueError(f"must divide the number of agents ({n})")
        return size


@TOPOLOGIES.register("ring-of-cliques", params=RingOfCliquesParams)
def ring_of_cliques(n: int, params: RingOfCliquesParams, rng, directed: bool) -> nx.Graph:
    k = params.size
    g = nx.disjoint_union_all([nx.complete_graph(k) for _ in range(n // k)])
    if n // k > 1:
        g.add_edges_from(((c * k + k - 1) % n, ((c + 1) * k) % n) for c in range(n // k))
    return g


# -- a scheduler: every agent adapts on at most `budget` notes per round, newest first
class NewestFirstParams(Params):
    budget: int = Field(2, ge=1, description="notes per agent and round")


@SCHEDULERS.register("newest-first", params=NewestFirstParams,
                     cost=lambda params, received: min(received, params.budget))  # its share of the estimate
def newest_first(params: NewestFirstParams):
    def schedule(view):
        return {a: sorted(view.inboxes.get(a, []), key=lambda it: (-it.note.round, it.note.note_id))[: params.budget]
                for a in view.agents()}
    return schedule


# -- a prompt style: short bullet points, one fact each
STYLES.register("bullets", PromptStyle(
    "Read the following passage and list its facts as short bullet points, one fact per line.", split_lines))


# -- a grader: the normalised gold answer appears anywhere in the reply
@GRADERS.register("contains")
def contains(prediction: str, gold: str, question: str) -> float:
    return float(normalize_answer(gold) in normalize_answer(prediction))


# -- a mitigation of forgetting: replay a share of earlier sequences and pull towards the last weights
class SteadyParams(Params):
    replay: float = Field(0.25, ge=0, le=1, description="share of earlier training sequences replayed")
    pull: float = Field(1.0, gt=0, description="weight of the L2 pull towards the weights before the update")


@MITIGATIONS.register("steady", params=SteadyParams)
def steady(params: SteadyParams) -> Mitigation:
    return Mitigation("steady", replay=params.replay,
                      penalty=lambda ctx: l2_pull(ctx.model, ctx.adapter, params.pull))


# -- an arrival schedule: each round's documents go to one agent, the agents taking turns
def taking_turns(p, docs):
    out = {r: {a: [] for a in range(p.n_agents)} for r in range(p.rounds)}
    for r in range(p.rounds):
        out[r][r % p.n_agents] = docs[r * p.docs_per_round:(r + 1) * p.docs_per_round]
    return out


ARRIVALS.register("taking-turns", ArrivalKind(
    needed=lambda p: p.rounds * p.docs_per_round, assign=taking_turns,
    received=lambda p: [float(p.docs_per_round * len(range(a, p.rounds, p.n_agents))) for a in range(p.n_agents)]))
