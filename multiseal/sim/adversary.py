"""Agents that spread false notes, and how far the falsehoods get.

An agent with ``role: adversary`` writes no self-edit: for each document it receives it writes a note
of one plain sentence per gold fact (as an oracle note), with a share ``rate`` of the facts stated
with a **planted** false value — a plausible value of the right type from the same world
(:meth:`multiseal.sim.facts.FactIndex.alternatives`), drawn with a generator seeded by the scenario
seed, the round, the author and the document. With ``attack: noise`` the note carries off-topic text
instead: the oracle sentences of a distractor document, as many sequences as the document has facts.

Metrics (row ``t``; *honest* agents are all the others; a fact is *planted* once some adversary note
has stated it falsely, and its *distance* is the hops from that adversary to the agent):

* ``pop.adv.planted_answered``: share of (honest agent, planted fact) pairs whose current answer to the
  fact's question contains a planted value; ``pop.adv.planted_answered.d<k>``: the same among pairs
  at distance ``k`` (``unreachable``: no path);
* ``pop.adv.acc_affected`` / ``pop.adv.acc_unaffected``: honest agents' headline accuracy on the
  planted facts / on the other asked facts of the documents adversaries wrote about;
  ``pop.adv.acc_drop``: their difference (unaffected − affected), the cost of the planted values
  measured inside one run (the facts falsified are a random share of each document's).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import networkx as nx
import numpy as np

from multiseal.sim.controls import CountTokens, oracle_lines
from multiseal.sim.facts import THRESHOLD, FactIndex, appears, tokens
from multiseal.types import Document, Note
from multiseal.world.vocabulary import fact_sentence


@dataclass(frozen=True)
class Adversary:
    rate: float = 0.5
    attack: Literal["false_values", "noise"] = "false_values"


def false_note(
    doc: Document, author: int, round: int, rate: float, index: FactIndex, rng: random.Random, count_tokens: CountTokens
) -> tuple[Note, dict[str, str]]:
    """An adversary's note about ``doc`` and the values it plants (fact id -> false value): ``rate`` of
    the facts that have an alternative (at least one when ``rate`` > 0) get one."""
    if not doc.facts:
        raise ValueError(
            f"document {doc.doc_id} has no facts to falsify (attack: false_values needs a synthetic world)"
        )
    candidates = [f for f in doc.facts if index.alternatives(f)]
    k = min(len(candidates), max(1, round_half_up(rate * len(doc.facts))))
    chosen = {f.fact_id for f in rng.sample(candidates, k)}
    planted, lines = {}, []
    for f in doc.facts:
        value = f.value
        if f.fact_id in chosen:
            value = planted[f.fact_id] = rng.choice(index.alternatives(f))
        lines.append(fact_sentence(f.entity, f.relation, value))
    text = "\n".join(lines)
    note = Note(
        f"r{round}.a{author}.{doc.doc_id}.0",
        author,
        doc.doc_id,
        round,
        "adversary",
        text,
        tuple(f"{doc.title}\n{line}" for line in lines),
        count_tokens(text),
    )
    return note, planted


def noise_note(doc: Document, author: int, round: int, distractor: Document, count_tokens: CountTokens) -> Note:
    """An off-topic note filed under ``doc``: the distractor's fact sentences, cut to ``doc``'s size."""
    n = max(len(doc.facts), 1)
    pool = oracle_lines(distractor) or [distractor.context]
    lines = [pool[i % len(pool)] for i in range(n)]
    text = "\n".join(lines)
    return Note(
        f"r{round}.a{author}.{doc.doc_id}.0",
        author,
        doc.doc_id,
        round,
        "noise",
        text,
        tuple(f"{distractor.title}\n{line}" for line in lines),
        count_tokens(text),
    )


def round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def note_rng(seed: int, round: int, author: int, doc_id: str) -> random.Random:
    return random.Random(f"multiseal-adversary-{seed}-{round}-{author}-{doc_id}")


def adversary_metrics(
    index: FactIndex,
    *,
    planted: Mapping[str, Mapping[int, set[str]]],
    adversaries: Sequence[int],
    grades: Sequence[Mapping[str, float]],
    answers: Sequence[Mapping[str, str]],
    written: Mapping[str, set[int]],
    graph: nx.DiGraph,
) -> dict[str, float]:
    """The metrics of the module docstring for one row.

    ``planted[fact_id][adversary]``: values that adversary planted for the fact so far; ``written[doc_id]``:
    adversaries that wrote about the document; ``grades[a]`` / ``answers[a]``: agent a's current headline
    grade / answer per question id; ``graph``: the current communication graph."""
    honest = [a for a in range(len(grades)) if a not in set(adversaries)]
    hops = {u: nx.single_source_shortest_path_length(graph, u) for u in adversaries}
    hit: list = []
    by_distance: dict[int, list] = {}
    affected, unaffected = [], []
    for f in index.asked():
        qid = index.question[f.fact_id]
        by = planted.get(f.fact_id, {})
        if f.doc_id not in written and not by:
            continue
        for a in honest:
            grade = grades[a].get(qid, math.nan)
            if not math.isfinite(grade):
                continue
            if not by:
                unaffected.append(float(grade >= THRESHOLD))
                continue
            affected.append(float(grade >= THRESHOLD))
            said = tokens(answers[a].get(qid, ""))
            values = {tokens(v) for vs in by.values() for v in vs}
            h = float(any(appears(t, said) for t in values))
            hit.append(h)
            d = min((hops[u].get(a, -1) for u in by if hops[u].get(a, -1) >= 0), default=-1)
            by_distance.setdefault(d, []).append(h)
    out = {
        "pop.adv.planted_answered": float(np.mean(hit)) if hit else math.nan,
        "pop.adv.planted_pairs": float(len(hit)),
        "pop.adv.acc_affected": float(np.mean(affected)) if affected else math.nan,
        "pop.adv.acc_unaffected": float(np.mean(unaffected)) if unaffected else math.nan,
    }
    out["pop.adv.acc_drop"] = out["pop.adv.acc_unaffected"] - out["pop.adv.acc_affected"]
    for d, v in sorted(by_distance.items()):
        out[f"pop.adv.planted_answered.d{d}" if d >= 0 else "pop.adv.planted_answered.unreachable"] = float(np.mean(v))
    return out
