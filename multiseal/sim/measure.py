"""The round's last two stages, answers → accuracy tensor → metrics, as a part of :class:`Simulation`.

:class:`Measuring` holds the methods that fill the accuracy tensor from graded answers (every document,
or the evaluation budget's sample and estimates: :mod:`multiseal.sim.sampling`) and turn a row of it
into the round's per-agent and population metrics. It reads the simulation's state and is not used alone.
"""
from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from multiseal.learning.evaluate import answer_and_grade
from multiseal.sim import metrics as M
from multiseal.sim.adversary import adversary_metrics
from multiseal.sim.diffusion import diffusion_by_distance, recipient_distances
from multiseal.sim.facts import fact_metrics
from multiseal.sim.mitigations import delta_bytes
from multiseal.sim.sampling import Sample, draw, halfwidth, impute, variance

# Per-agent forgetting metrics that get a population mean and std (trust per edge does not).
FORGETTING_NAMES = frozenset({"ppl_ratio", "kl_base", "gated_out", "combine_bytes", "adapter_rank", "trust_rejected"})


class Measuring:
    """Answering, the accuracy tensor and the metrics of a row (mixed into ``Simulation``)."""

    def _evaluate(self, row: int, g) -> None:
        """Fill ``acc[row]``: changed agents answer in shared batches; unchanged ones keep last row.
        Under an evaluation budget a changed agent answers its own, received and reached documents and a
        stratified sample of the rest (:mod:`multiseal.sim.sampling`); the final round answers all."""
        changed = sorted(self._dirty)
        for a in range(len(self.agents)):
            if a not in changed:
                self.acc[row, a] = self.acc[row - 1, a]
                self.asked[row, a] = self.asked[row - 1, a]
                self.composition[row, a] = self.composition[row - 1, a]
                self._items[(row, a)] = self._items[(row - 1, a)]
                if (row - 1, a) in self.samples:
                    self.samples[(row, a)] = self.samples[(row - 1, a)]
        if changed:
            budget = self.sample_documents is not None and row < self.rounds
            distance = self.distance_matrix(g) if budget else None
            inboxes = self.postbox.inboxes() if budget else {}
            samples = {a: self._draw(row, a, distance[a], inboxes.get(a, [])) if budget else None for a in changed}
            pairs = []
            for a in changed:
                docs = None if samples[a] is None else samples[a].documents
                qs = self.questions if docs is None else [
                    q for j, d in enumerate(self.world.documents) if j in docs for q in d.questions
                ] + list(self.world.composition)
                pairs += [(self.agents[a].adapter, q) for q in qs + self.probe]
            graded = answer_and_grade(self.model, pairs, self.evaluation,
                                      progress=f"round {row}: answering" if self.progress else None)
            self.answered[row] += len(pairs)
            by_adapter: dict[str, list] = {}
            for gr in graded:
                by_adapter.setdefault(gr.adapter, []).append(gr)
            for a in changed:
                self._store(row, a, by_adapter[self.agents[a].adapter], samples[a])
            self._measure_drift(changed)
        self._dirty.clear()

    def _draw(self, row: int, a: int, distance: np.ndarray, inbox: Sequence) -> Sample:
        """Agent ``a``'s documents to answer at ``row`` under the budget: what it holds, has notes about
        in its inbox or was reached by, and the stratified sample of the rest (``distance``: its row
        of the distance matrix)."""
        held = set(self._passages[a]) | self._known[a] | {it.note.doc_id for it in inbox}
        reached = (self.learnt[a] >= 0) & (self.learnt[a] <= row)
        full, strata = [], {}
        for j, d in enumerate(self.world.documents):
            if d.doc_id in held or reached[j]:
                full.append(j)
            else:
                strata.setdefault((bool(self.introduced[row, j]), int(distance[j])), []).append(j)
        return draw(full, strata, self.sample_documents, random.Random(f"multiseal-eval-{self.seed}-{row}-{a}"))

    def _store(self, row: int, a: int, graded: list, sample: Sample | None = None) -> None:
        head = self.evaluation.headline
        items = {g.qid: g.scores[head] for g in graded}
        self._items[(row, a)] = items
        for j, d in enumerate(self.world.documents):
            asked = all(q.qid in items for q in d.questions)
            self.asked[row, a, j] = asked
            self.acc[row, a, j] = float(np.mean([items[q.qid] for q in d.questions])) if asked else np.nan
        if sample is not None:  # unasked cells hold their stratum's estimate
            self.acc[row, a] = impute(self.acc[row, a], sample)
            self.samples[(row, a)] = sample
        if self.world.composition:
            self.composition[row, a] = float(np.mean([items[q.qid] for q in self.world.composition]))
        answers = self._answers[a]
        for g in graded:
            answers[g.qid] = g.answer
            self.outcomes.append({"row": row, "agent": a, "qid": g.qid, "question": g.question,
                                  "gold": g.gold, "answer": g.answer, **g.scores})

    # ------------------------------------------------------------------ metrics
    def item_matrix(self, row: int, qids: Sequence[str]) -> np.ndarray:
        """(agents × questions) headline grades at ``row``."""
        return np.array([[self._items[(row, a)].get(q, np.nan) for q in qids] for a in range(len(self.agents))])

    def _metrics(self, row: int, g) -> tuple[dict[int, dict[str, float]], dict[str, float]]:
        item_qids = [q.qid for q in self.questions]
        probe = self.item_matrix(row, [q.qid for q in self.probe]) if self.probe else None
        per_agent = M.agent_metrics(
            self.acc, row, self.introduced, self.own, self.learnt, probe_correct=probe,
            prev_item=self.item_matrix(row - 1, item_qids), cur_item=self.item_matrix(row, item_qids),
        )
        for a in per_agent:
            per_agent[a]["acc_composition"] = float(self.composition[row, a])
        population = M.population_metrics(per_agent, acc=self.acc, t=row, introduced=self.introduced)
        distance = self.distance_matrix(g)
        for d, share in diffusion_by_distance(self.acc, row, distance, introduced=self.introduced).items():
            population[f"pop.diffusion.d{d}" if d >= 0 else "pop.diffusion.unreachable"] = share
        if self._facts:  # the fact metrics (multiseal.sim.facts), from what the round left behind
            fa, fp = fact_metrics(
                self._facts, notes=[n for n in self.notes_log if n.round == row - 1], trained=self._trained_notes,
                notes_by_id={n.note_id: n for n in self.notes_log}, own=self.own, introduced=self.introduced[row],
                doc_index=self.doc_index, grades=[self._items[(row, a)] for a in range(len(self.agents))],
                answers=self._answers, distance=distance)
            for a in per_agent:
                per_agent[a].update(fa[a])
            population.update({**M.population_metrics(fa), **fp})
        if self.sample_documents is not None:
            self._sampling_intervals(row, per_agent, population)
        self._forgetting_metrics(row, g, per_agent, population)
        return per_agent, population

    def _forgetting_metrics(self, row: int, g, per_agent: dict, population: dict) -> None:
        """Drift from the base, the mitigations' counts, trust per edge and the adversaries' reach."""
        for a, values in per_agent.items():
            if self.drift_values:
                values["ppl_ratio"], values["kl_base"] = self.drift_values[a]
            if any(m.gate for m in self.mitigations.get(a, ())):
                values["gated_out"] = float(self.gated_out[a])
            if a in self._deltas:
                values["combine_bytes"] = float(delta_bytes(self._deltas[a]))
                values["adapter_rank"] = float(self.model.adapters[self.agents[a].adapter].rank)
            if self.trust_settings.learn:
                for u in range(len(self.agents)):
                    if u != a and (g.has_edge(u, a) or self.trust[a, u] < 1.0):
                        values[f"trust_from_{u}"] = float(self.trust[a, u])
                values["trust_rejected"] = float(self.trust_rejected[a])
        summary = M.population_metrics({a: {k: v for k, v in values.items() if k in FORGETTING_NAMES}
                                         for a, values in per_agent.items()})
        population.update(summary)
        if self.adversaries and self._facts:
            population.update(adversary_metrics(
                self._facts, planted=self.planted, adversaries=sorted(self.adversaries),
                grades=[self._items[(row, a)] for a in range(len(self.agents))], answers=self._answers,
                written=self._written, graph=g))
            if self.trust_settings.learn:
                honest = [a for a in range(len(self.agents)) if a not in self.adversaries]
                population["pop.adv.trust"] = float(np.mean([self.trust[a, u] for a in honest for u in self.adversaries]))

    def _sampling_intervals(self, row: int, per_agent: dict, population: dict) -> None:
        """The evaluation budget's 95% half-widths (0 on a row answered in full): per agent for ``acc_all``
        and ``acc_unreached``, and for their population means (agents' draws are independent)."""
        reached = (self.learnt >= 0) & (self.learnt <= row)
        for name, within in (("acc_all", lambda a: self.introduced[row]),
                             ("acc_unreached", lambda a: self.introduced[row] & ~reached[a])):
            variances = []
            for a, values in per_agent.items():
                sample = self.samples.get((row, a))
                var = variance(self.acc[row, a], sample, within(a)) if sample else 0.0
                if values[name] == values[name]:  # the metric is defined for this agent
                    variances.append(var)
                values[f"{name}_ci95"] = halfwidth(var)
            population[f"pop.{name}.mean.ci95"] = (
                halfwidth(sum(variances) / len(variances) ** 2) if variances else float("nan"))

    def distance_matrix(self, g) -> np.ndarray:
        """``distance[a, j]``: hops from document j's first recipient to agent a (-1 = unreachable
        or not yet introduced)."""
        return recipient_distances(self.arrivals, self.doc_index, len(self.agents), g)
