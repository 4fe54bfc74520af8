"""Stage 7, metrics: a row of the accuracy tensor becomes the round's per-agent and population metrics.

The formulas live in :mod:`multiseal.sim.metrics` (accuracy, continual learning, diffusion),
:mod:`multiseal.sim.facts` (note fidelity, per-fact diffusion, misinformation) and
:mod:`multiseal.sim.adversary`; this stage gathers their inputs from the state and adds drift, the
mitigations' counts, trust and the evaluation budget's intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np

from multiseal.metric_table import select
from multiseal.sim import metrics as M
from multiseal.sim.adversary import adversary_metrics
from multiseal.sim.diffusion import diffusion_by_distance, recipient_distances
from multiseal.sim.facts import fact_metrics, hop_metrics
from multiseal.sim.mitigations import delta_bytes
from multiseal.sim.sampling import halfwidth, variance
from multiseal.sim.setup import Setup
from multiseal.sim.state import RoundState

# Per-agent forgetting measures that get a population mean and std (trust per edge does not).
FORGETTING_NAMES = frozenset(select(group="forgetting", aggregate="mean_std"))


def measure(setup: Setup, state: RoundState, row: int, g) -> tuple[dict[int, dict[str, float]], dict[str, float]]:
    """Row ``row``'s metrics: per agent, and for the population (``pop.*``)."""
    item_qids = [q.qid for q in setup.questions]
    probe = item_matrix(setup, state, row, [q.qid for q in state.probe]) if state.probe else None
    per_agent = cast(
        dict[int, dict[str, float]],
        M.agent_metrics(  # keyed by agent index
            state.acc,
            row,
            state.introduced,
            state.own,
            state.learnt,
            probe_correct=probe,
            prev_item=item_matrix(setup, state, row - 1, item_qids),
            cur_item=item_matrix(setup, state, row, item_qids),
        ),
    )
    for a in per_agent:
        per_agent[a]["acc_composition"] = float(state.composition[row, a])
    population = M.population_metrics(per_agent, acc=state.acc, t=row, introduced=state.introduced)
    distance = distance_matrix(setup, g)
    for d, share in diffusion_by_distance(state.acc, row, distance, introduced=state.introduced).items():
        population[f"pop.diffusion.d{d}" if d >= 0 else "pop.diffusion.unreachable"] = share
    for d, mean in diffusion_by_distance(state.acc, row, distance, None, state.introduced).items():
        population[f"pop.acc.d{d}" if d >= 0 else "pop.acc.unreachable"] = mean
    if setup.facts:  # the fact metrics (multiseal.sim.facts), from what the round left behind
        by_id = {n.note_id: n for n in state.notes_log}
        grades = [state.items[(row, a)] for a in range(len(setup.agents))]
        fa, fp = fact_metrics(
            setup.facts,
            notes=[n for n in state.notes_log if n.round == row - 1],
            trained=state.trained_notes,
            notes_by_id=by_id,
            own=state.own,
            introduced=state.introduced[row],
            doc_index=setup.doc_index,
            grades=grades,
            answers=state.answers,
            distance=distance,
        )
        for a in per_agent:
            per_agent[a].update(fa[a])
        population.update({**M.population_metrics(fa), **fp})
        population.update(
            hop_metrics(
                setup.facts,
                received=state.received,
                notes_by_id=by_id,
                trained=state.trained_notes,
                doc_index=setup.doc_index,
                introduced=state.introduced[row],
                grades=grades,
                answers=state.answers,
                distance=distance,
            )
        )
    if setup.sample_documents is not None:
        sampling_intervals(state, row, per_agent, population)
    forgetting_metrics(setup, state, row, g, per_agent, population)
    return per_agent, population


def forgetting_metrics(setup: Setup, state: RoundState, row: int, g, per_agent: dict, population: dict) -> None:
    """Drift from the base, the mitigations' counts, trust per edge and the adversaries' reach."""
    A = len(setup.agents)
    for a, values in per_agent.items():
        if state.drift_values:
            values["ppl_ratio"], values["kl_base"] = state.drift_values[a]
        if any(m.gate for m in setup.mitigations.get(a, ())):
            values["gated_out"] = float(state.gated_out[a])
        if a in state.deltas:
            values["combine_bytes"] = float(delta_bytes(state.deltas[a]))
            values["adapter_rank"] = float(setup.model.adapters[setup.agents[a].adapter].rank)
        if setup.trust.learn:
            for u in range(A):
                if u != a and (g.has_edge(u, a) or state.trust[a, u] < 1.0):
                    values[f"trust_from_{u}"] = float(state.trust[a, u])
            values["trust_rejected"] = float(state.trust_rejected[a])
    summary = M.population_metrics(
        {a: {k: v for k, v in values.items() if k in FORGETTING_NAMES} for a, values in per_agent.items()}
    )
    population.update(summary)
    if setup.adversaries and setup.facts:
        population.update(
            adversary_metrics(
                setup.facts,
                planted=state.planted,
                adversaries=sorted(setup.adversaries),
                grades=[state.items[(row, a)] for a in range(A)],
                answers=state.answers,
                written=state.written,
                graph=g,
            )
        )
        if setup.trust.learn:
            honest = [a for a in range(A) if a not in setup.adversaries]
            population["pop.adv.trust"] = float(np.mean([state.trust[a, u] for a in honest for u in setup.adversaries]))


def sampling_intervals(state: RoundState, row: int, per_agent: dict, population: dict) -> None:
    """The evaluation budget's 95% half-widths (0 on a row answered in full): per agent for ``acc_all``
    and ``acc_unreached``, and for their population means (agents' draws are independent)."""
    reached = (state.learnt >= 0) & (state.learnt <= row)
    for name, within in (
        ("acc_all", lambda a: state.introduced[row]),
        ("acc_unreached", lambda a: state.introduced[row] & ~reached[a]),
    ):
        variances = []
        for a, values in per_agent.items():
            sample = state.samples.get((row, a))
            var = variance(state.acc[row, a], sample, within(a)) if sample else 0.0
            if values[name] == values[name]:  # the metric is defined for this agent
                variances.append(var)
            values[f"{name}_ci95"] = halfwidth(var)
        population[f"pop.{name}.mean.ci95"] = (
            halfwidth(sum(variances) / len(variances) ** 2) if variances else float("nan")
        )


def item_matrix(setup: Setup, state: RoundState, row: int, qids: Sequence[str]) -> np.ndarray:
    """(agents × questions) headline grades at ``row``."""
    return np.array([[state.items[(row, a)].get(q, np.nan) for q in qids] for a in range(len(setup.agents))])


def distance_matrix(setup: Setup, g) -> np.ndarray:
    """``distance[a, j]``: hops from document j's first recipient to agent a (-1 = unreachable
    or not yet introduced)."""
    return recipient_distances(setup.arrivals, setup.doc_index, len(setup.agents), g)
