"""The contract between multiseal's layers: the records that its parts exchange.

Everything two layers share lives here, so no part imports another to type an argument (as
Concordia keeps its ``typing/`` package). Records only: no behaviour beyond small lookups.

* the world: ``Fact``, ``Question``, ``Document``, ``World``; few-shot skills: ``Grid``, ``GridPair``,
  ``SkillTask``, ``SkillConfig``;
* settings handed from the builders to the learning layer: ``LoraSettings``, ``TrainSettings``,
  ``SelfEditSettings``, ``EvalSettings``;
* what travels in a round: ``Note``, ``InboxItem``, ``Graded``;
* one agent and one round: ``AgentSpec``, ``AgentAction``, ``RoundRecord``;
* scheduling: ``SchedulerView``, ``Plan``, ``Scheduler``; policies: ``Decision``, ``Policy``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Protocol

import networkx as nx
import numpy as np

# ---------------------------------------------------------------- the world


@dataclass(frozen=True)
class Fact:
    """One atomic fact of a document: ``entity``'s ``relation`` is ``value`` (stated verbatim in the
    passage). ``fact_id`` is ``"<doc_id>.<relation>"`` in a synthetic world."""

    fact_id: str
    doc_id: str
    entity: str  # the document's title: the entity the fact is about
    relation: str  # e.g. "birthplace", "founded", "colour"
    value: str  # the gold value, as the passage states it


@dataclass(frozen=True)
class Question:
    """A closed-book question with a short gold answer span.

    ``doc_ids`` are the documents whose facts are needed: one for an ordinary question, two for a
    composition question (``kind == "composition"``). ``fact_ids`` are the facts it asks: one for an
    ordinary synthetic question, two for a composition question (the link in A, then the answer in
    B); empty where the world has no facts (SQuAD).
    """

    qid: str
    question: str
    answer: str
    doc_ids: tuple[str, ...]
    kind: str = "single"
    fact_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Document:
    """A passage (SEAL's ``title`` + ``context``) with the questions about it, and the atomic facts
    it states (empty where the world has no facts: SQuAD)."""

    doc_id: str
    title: str
    context: str
    questions: tuple[Question, ...]
    facts: tuple[Fact, ...] = ()


@dataclass(frozen=True)
class World:
    """All documents of a run, plus questions that need two documents at once."""

    documents: tuple[Document, ...]
    composition: tuple[Question, ...] = field(default=())

    def doc(self, doc_id: str) -> Document:
        for d in self.documents:
            if d.doc_id == doc_id:
                return d
        raise KeyError(doc_id)

    @property
    def doc_ids(self) -> list[str]:
        return [d.doc_id for d in self.documents]

    @property
    def facts(self) -> list[Fact]:
        """Every document's facts, in document order (empty for a world without facts)."""
        return [f for d in self.documents for f in d.facts]


# ---------------------------------------------------------------- few-shot skills (SEAL's second domain)

Grid = tuple[tuple[int, ...], ...]  # rows of colours 0..9 (ARC's), every row the same length; 1-D: one row


@dataclass(frozen=True)
class GridPair:
    """One example of a skill: an input grid and the output the task's rule makes of it."""

    input: Grid
    output: Grid


@dataclass(frozen=True)
class SkillTask:
    """A few-shot task (an ARC task): demonstration pairs (``train``, what an agent may learn from)
    and held-out pairs (``test``, what it is scored on). ``family`` names the generator's family of
    a generated task (a loaded task: "")."""

    task_id: str
    train: tuple[GridPair, ...]
    test: tuple[GridPair, ...]
    family: str = ""


@dataclass(frozen=True)
class SkillConfig:
    """A skills self-edit: how to train on a task's demonstrations (SEAL's few-shot configuration).
    ``augmentations`` are names from :data:`multiseal.learning.augment.AUGMENTATIONS`; ``loss`` is
    ``"output"`` (the target grid's tokens only) or ``"all"`` (the prompt's too)."""

    augmentations: tuple[str, ...]
    leave_one_out: bool
    repeat: int
    learning_rate: float
    epochs: int
    loss: str


# ---------------------------------------------------------------- settings

ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

LORA_KERNELS = ("grouped", "peft")
"""How a batch that mixes adapters runs at inference: ``grouped``, one grouped product per LoRA layer for
the whole batch (:mod:`multiseal.learning.multilora`); ``peft``, peft's mixed-adapter forward, one
product per adapter present (the old path, kept for comparison)."""


@dataclass(frozen=True)
class LoraSettings:
    """A LoRA adapter's shape (SEAL's rank 32, alpha 64, dropout 0; here on every linear layer by default)."""

    rank: int = 32
    alpha: float = 64.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ALL_LINEAR

    def peft_config(self):  # -> peft.LoraConfig
        from peft import LoraConfig

        return LoraConfig(
            r=self.rank,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=list(self.target_modules),
            bias="none",
            task_type="CAUSAL_LM",
        )


@dataclass(frozen=True)
class TrainSettings:
    """Inner-loop hyper-parameters (SEAL: 10 epochs, lr 1e-3, batch 1)."""

    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 1
    max_length: int = 256
    weight_decay: float = 0.0


@dataclass(frozen=True)
class SelfEditSettings:
    """Sampling settings for self-edit candidates."""

    style: str = "implications"
    candidates: int = 1
    temperature: float = 1.0
    top_p: float = 0.95
    max_new_tokens: int = 128
    writer: str = "adapter"  # "adapter": the agent's own adapted model writes; "base": the shared base


@dataclass(frozen=True)
class EvalSettings:
    """How answers are produced and which grader is the headline metric."""

    max_new_tokens: int = 24
    batch_size: int = 64
    headline: str = "strict"


# ---------------------------------------------------------------- what travels in a round


@dataclass(frozen=True)
class Note:
    """A self-edit written by ``author`` about document ``doc_id`` in round ``round``.

    ``sequences`` are the training sequences parsed from ``text`` (title-prefixed lines or QA pairs);
    they never include the raw passage: only an agent that received the document itself trains on it.
    ``tokens`` is the tokenizer length of ``text``, used for communication accounting.
    ``hops`` is how far from the passage its writer stood: 0 for a note written from the passage, h for
    a note *retold* from memory (``sharing.retell``) by an agent that learnt the document from notes
    arriving h hops from its holder; ``sources`` are the ids of those notes (the writer's adapted-on
    notes about the document), so a fact's path through retellings can be traced.
    """

    note_id: str
    author: int
    doc_id: str
    round: int
    style: str
    text: str
    sequences: tuple[str, ...]
    tokens: int
    hops: int = 0
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class InboxItem:
    """A note as it sits in one agent's inbox: who sent it, when it arrived, how far it travelled."""

    note: Note
    sender: int
    received_round: int
    weight: float = 1.0  # trust weight of the edge it arrived on (1.0 for one's own notes)
    hops: int = 0  # edges from the document's holder: 0 = own note, 1 = from a neighbour, 2+ = relayed or retold


@dataclass(frozen=True)
class Graded:
    """One answer with all grades."""

    adapter: str | None
    qid: str
    question: str
    gold: str
    answer: str
    scores: dict[str, float]


# ---------------------------------------------------------------- agents and rounds


@dataclass(frozen=True)
class AgentSpec:
    """One agent: its adapter's name and shape, its note style and its inner-loop settings."""

    adapter: str
    style: str
    lora: LoraSettings
    inner: TrainSettings


@dataclass
class AgentAction:
    """What an external policy decides for one agent this round (None = leave it to the defaults)."""

    style: str | None = None
    adapt_on: list[InboxItem] | None = None
    send_to: set[int] | None = None


@dataclass
class RoundRecord:
    """What happened in one round, for logging and for the PettingZoo environment."""

    round: int  # 0-based round; its accuracy row is round + 1
    agents: dict[int, dict[str, float]]
    population: dict[str, float]
    notes: list[Note]
    trained_sequences: dict[int, int]
    communication: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)  # by stage
    work: dict[str, int] = field(default_factory=dict)  # generated_tokens, trained_tokens, answered


# ---------------------------------------------------------------- scheduling and policies

Plan = dict[int, list[InboxItem]]


@dataclass
class SchedulerView:
    """What a scheduler may look at in one round."""

    round: int
    graph: nx.DiGraph
    inboxes: dict[int, list[InboxItem]]  # pending items per agent (own notes included, hops=0)
    all_notes: list[Note]  # every note written this round by anyone (for the oracle)
    history: list[dict[int, dict[str, float]]]  # past rounds' per-agent metrics (may be empty)
    known: dict[int, set[str]]  # doc ids each agent has already adapted on (for novelty)
    rng: random.Random  # seeded by the simulation per round

    def agents(self) -> list[int]:
        """Every agent: the graph's nodes plus any inbox key, sorted."""
        return sorted(set(self.graph.nodes) | set(self.inboxes))


class Scheduler(Protocol):
    def __call__(self, view: SchedulerView) -> Plan: ...


@dataclass(frozen=True)
class Decision:
    """One agent's adaptation choice for one round: pending notes by id, and the senders whose
    deliveries of this round it takes as they arrive (itself: its own new notes)."""

    note_ids: frozenset[str] = frozenset()
    new_from: frozenset[int] = frozenset()


class Policy(Protocol):
    def __call__(self, observations: dict[str, np.ndarray], infos: dict[str, dict]) -> dict[str, dict]: ...
