"""Trust learnt from observed usefulness: a defence against false notes.

Each agent keeps a trust in every author, starting at 1. After a round, an agent that adapted on notes
written by others compares its headline accuracy on the documents it already held before the round
(it holds their passages, so it can check what it is told) with the previous row: the change ``Δ``
moves its trust in each of those authors, ``trust ← clip(trust + rate · Δ, floor, 1)``. A note whose
training lowered the agent's accuracy on what it knows thus lowers its author's weight.

Trust reaches the scheduler as the weight of each inbox item (the edge weight times the receiver's
trust in the note's author), so the ``budgeted`` scheduler ranking by trust prefers trusted authors;
with ``exclude_below`` set, notes from authors trusted less are discarded before scheduling.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from multiseal.types import InboxItem


@dataclass(frozen=True)
class TrustSettings:
    learn: bool = False
    rate: float = 1.0
    floor: float = 0.0
    exclude_below: float | None = None


def update_trust(
    trust: np.ndarray,
    settings: TrustSettings,
    *,
    authors: Mapping[int, set[int]],
    before: np.ndarray,
    after: np.ndarray,
    held: np.ndarray,
) -> dict[int, float]:
    """Update ``trust`` (receiver × author) in place; returns each updated receiver's ``Δ``.

    ``authors[a]``: the other authors of the notes agent a adapted on this round; ``before`` / ``after``
    (A × D): accuracy per document at the previous and the current row; ``held`` (A × D): the documents
    each agent held before this round."""
    changes = {}
    for a, us in authors.items():
        docs = held[a]
        if not us or not docs.any():
            continue
        delta = float(np.nanmean(after[a, docs]) - np.nanmean(before[a, docs]))
        if math.isnan(delta):  # no measured held document
            continue
        changes[a] = delta
        for u in us:
            trust[a, u] = min(1.0, max(settings.floor, trust[a, u] + settings.rate * delta))
    return changes


def weighted_inboxes(
    inboxes: Mapping[int, Sequence[InboxItem]], trust: np.ndarray, settings: TrustSettings
) -> tuple[dict[int, list[InboxItem]], dict[int, list[InboxItem]]]:
    """Inboxes with each item's weight multiplied by the receiver's trust in the note's author, and the
    items discarded for ``exclude_below`` (one's own notes are never discarded)."""
    kept: dict[int, list[InboxItem]] = {}
    dropped: dict[int, list[InboxItem]] = {}
    for a, items in inboxes.items():
        kept[a], dropped[a] = [], []
        for it in items:
            t = 1.0 if it.note.author == a else float(trust[a, it.note.author])
            if settings.exclude_below is not None and it.note.author != a and t < settings.exclude_below:
                dropped[a].append(it)
            else:
                kept[a].append(replace(it, weight=it.weight * t))
    return kept, dropped
