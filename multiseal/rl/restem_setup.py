"""What a ReST-EM run is set up from: the agents (knowledge adapter, writer, out-neighbours), who
adapts on whose notes, and the disjoint split into training and held-out documents.

**Where the writer lives** (``policy``): ``separate`` gives every agent a writer adapter of its own
(``writer<i>``), so the knowledge adapter that answers questions never sees the SFT on writing;
``knowledge`` lets the agent's knowledge adapter write and be SFT-trained, as SEAL trains one model.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from multiseal.learning.model import SharedModel
from multiseal.types import AgentSpec, Document, TrainSettings

POLICIES = ("separate", "knowledge")


# --------------------------------------------------------------------------- agents


@dataclass(frozen=True)
class RestemAgent:
    """One agent: its knowledge adapter, the adapter that writes its notes, and its out-neighbours."""

    adapter: str
    writer: str  # == adapter for policy 'knowledge'
    style: str
    inner: TrainSettings
    neighbours: tuple[tuple[int, float], ...] = ()  # (agent index, trust weight of the edge)


def make_agents(
    model: SharedModel,
    specs: Sequence[AgentSpec],
    neighbours: Sequence[Sequence[tuple[int, float]]],
    policy: str,
    seed: int = 0,
) -> list[RestemAgent]:
    """Create every agent's knowledge adapter (and writer, for ``separate``) on ``model``.

    ``specs`` give each agent's adapter name, style, LoRA shape and inner loop;
    ``neighbours[i]`` are agent i's out-neighbours with their trust weights.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    agents = []
    for i, spec in enumerate(specs):
        model.add_adapter(spec.adapter, spec.lora, seed=seed * 1000 + i)
        writer = spec.adapter
        if policy == "separate":
            writer = f"writer{i}"
            model.add_adapter(writer, spec.lora, seed=seed * 1000 + 500 + i)
        agents.append(RestemAgent(spec.adapter, writer, spec.style, spec.inner, tuple(neighbours[i])))
    return agents


def neighbours_from_graph(graph, n: int) -> list[tuple[tuple[int, float], ...]]:
    """Out-neighbours (notes travel u → v) with the edge's trust weight, per agent of an nx.DiGraph."""
    return [
        tuple((int(v), float(graph[u][v].get("weight", 1.0))) for v in sorted(graph.successors(u))) for u in range(n)
    ]


def learners(author: int, agents: Sequence[RestemAgent], reward: str) -> list[int]:
    """The agents that adapt on ``author``'s note for this reward: itself and/or its neighbours."""
    out = [author] if reward in ("self", "mixed") else []
    if reward in ("neighbours", "mixed"):
        out += [v for v, _ in agents[author].neighbours]
    return out


# --------------------------------------------------------------------------- documents


def split_documents(
    documents: Sequence[Document], n_train: int, n_eval: int, seed: int = 0
) -> tuple[list[Document], list[Document]]:
    """A seeded, disjoint (training, held-out) split of the documents that have questions."""
    docs = [d for d in documents if d.questions]
    if n_train + n_eval > len(docs):
        raise ValueError(
            f"{n_train} training + {n_eval} held-out documents, but only {len(docs)} documents with questions"
        )
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    return [docs[i] for i in order[:n_train]], [docs[i] for i in order[n_train : n_train + n_eval]]


def check_disjoint(train_docs: Sequence[Document], eval_docs: Sequence[Document]) -> None:
    """Raise ValueError when a held-out document, passage or question also appears in training."""
    ids = {d.doc_id for d in train_docs} & {d.doc_id for d in eval_docs}
    texts = {d.context for d in train_docs} & {d.context for d in eval_docs}
    qids = {q.qid for d in train_docs for q in d.questions} & {q.qid for d in eval_docs for q in d.questions}
    if ids or texts or qids:
        raise ValueError(
            f"held-out documents leak into training: ids {sorted(ids)}, "
            f"{len(texts)} shared passages, questions {sorted(qids)}"
        )
