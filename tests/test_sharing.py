"""Postbox: neighbours only, relay without echoes or duplicates, delay, loss, accounting; averaging."""

from __future__ import annotations

import pytest
import torch

from multiseal.sim.sharing import Postbox, average_adapters
from multiseal.sim.topologies import build_topology
from multiseal.types import Note


def note(author: int, i: int = 0, tokens: int = 10, doc: str | None = None, round: int = 0) -> Note:
    return Note(f"a{author}-n{i}", author, doc or f"doc{author}", round, "implications", "t", ("t",), tokens)


def ids(items) -> list[str]:
    return sorted(it.note.note_id for it in items)


LINE = build_topology("line", 3)  # 0 - 1 - 2, both directions


def test_notes_reach_only_out_neighbours_and_the_author_at_once():
    box = Postbox(3)
    box.post(0, LINE, {0: [note(0)]})
    own = box.inbox(0)
    assert ids(own) == ["a0-n0"] and own[0].hops == 0 and own[0].sender == 0 and own[0].weight == 1.0
    arrivals = box.deliver(0)
    assert set(arrivals) == {0, 1, 2}
    assert ids(arrivals[1]) == ["a0-n0"] and arrivals[1][0].hops == 1 and arrivals[1][0].sender == 0
    assert box.inbox(2) == [] and arrivals[0] == []


def test_directed_edges_carry_notes_one_way():
    g = build_topology("line", 2, directed=True)
    box = Postbox(2)
    box.post(0, g, {0: [note(0)], 1: [note(1)]})
    box.deliver(0)
    assert ids(box.inbox(1)) == ["a0-n0", "a1-n0"] and ids(box.inbox(0)) == ["a0-n0"]


def test_relay_reaches_two_hops_next_round_without_echo_or_duplicates():
    box = Postbox(3, relay=True)
    box.post(0, LINE, {0: [note(0)]})
    box.deliver(0)
    box.relay_received(0, LINE)
    assert box.inbox(2) == []  # relayed copies travel next time
    arrivals = box.deliver(1)
    assert ids(arrivals[2]) == ["a0-n0"]
    item = arrivals[2][0]
    assert item.hops == 2 and item.sender == 1 and item.received_round == 1
    assert arrivals[0] == []  # never echoed back to the author
    box.relay_received(1, LINE)  # 2's only neighbour is its sender: nothing more moves
    assert box.deliver(2) == {0: [], 1: [], 2: []}
    assert box.sent_by_edge() == {
        (0, 1): {"notes": 1, "tokens": 10, "lost": 0},
        (1, 2): {"notes": 1, "tokens": 10, "lost": 0},
    }


def test_relay_in_a_cycle_never_delivers_a_note_twice():
    ring = build_topology("complete", 4)
    box = Postbox(4, relay=True)
    box.post(0, ring, {0: [note(0)]})
    seen = {a: [] for a in range(4)}
    for r in range(4):
        for a, items in box.deliver(r).items():
            seen[a] += [it.note.note_id for it in items]
        box.relay_received(r, ring)
    assert seen == {0: [], 1: ["a0-n0"], 2: ["a0-n0"], 3: ["a0-n0"]}


def test_max_hops_stops_relay_and_relay_off_does_nothing():
    line4 = build_topology("line", 4)
    for relay, max_hops, reached in [(True, 2, {1, 2}), (True, None, {1, 2, 3}), (False, None, {1})]:
        box = Postbox(4, relay=relay, max_hops=max_hops)
        box.post(0, line4, {0: [note(0)]})
        for r in range(4):
            box.deliver(r)
            box.relay_received(r, line4)
        assert {a for a in range(1, 4) if box.inbox(a)} == reached


def test_delay_holds_notes_until_due():
    box = Postbox(3, delay=2, edge_delay={(1, 2): 0})
    box.post(0, LINE, {1: [note(1)]})
    assert box.deliver(0)[2][0].note.note_id == "a1-n0"  # edge override: same round
    assert box.deliver(1)[0] == []
    got = box.deliver(2)[0]
    assert ids(got) == ["a1-n0"] and got[0].received_round == 2


def test_loss_is_deterministic_and_total_loss_keeps_only_own_notes():
    complete = build_topology("complete", 5)
    outbox = {a: [note(a, i) for i in range(20)] for a in range(5)}

    def run(seed: int, loss: float) -> dict[int, list[str]]:
        box = Postbox(5, loss=loss, seed=seed)
        box.post(0, complete, outbox)
        box.deliver(0)
        return {a: ids(box.inbox(a)) for a in range(5)}

    half = run(1, 0.5)
    assert half == run(1, 0.5) and half != run(2, 0.5)
    assert 5 * 20 < sum(map(len, half.values())) < 5 * 100
    assert run(0, 1.0) == {a: sorted(n.note_id for n in outbox[a]) for a in range(5)}
    box = Postbox(5, loss=1.0)
    box.post(0, complete, outbox)
    assert box.sent_by_round() == {0: {"notes": 400, "tokens": 4000, "lost": 400}}


def test_counts_per_edge_and_round():
    box = Postbox(3)
    box.post(0, LINE, {1: [note(1, 0, tokens=7), note(1, 1, tokens=5)]})
    box.post(1, LINE, {0: [note(0, 0, tokens=3)]})
    assert box.sent_by_round() == {0: {"notes": 4, "tokens": 24, "lost": 0}, 1: {"notes": 1, "tokens": 3, "lost": 0}}
    assert box.sent_by_edge()[(1, 0)] == {"notes": 2, "tokens": 12, "lost": 0}
    assert box.stats[(1, 0, 1)] == {"notes": 1, "tokens": 3, "lost": 0}


def test_send_to_restricts_recipients_and_reposting_is_deduplicated():
    star = build_topology("star", 4)
    box = Postbox(4)
    box.post(0, star, {0: [note(0)]}, send_to={0: {2}})
    box.deliver(0)
    assert [a for a in range(4) if box.inbox(a)] == [0, 2]
    box.post(1, star, {0: [note(0)]})  # the same note again: only agents without it get it
    box.deliver(1)
    assert [len(box.inbox(a)) for a in range(4)] == [1, 1, 1, 1]
    with pytest.raises(ValueError, match="not out-neighbours"):
        box.post(2, star, {1: [note(1)]}, send_to={1: {2}})


def test_consume_removes_adapted_items_for_good():
    box = Postbox(2)
    g = build_topology("line", 2)
    box.post(0, g, {0: [note(0, 0), note(0, 1)]})
    box.deliver(0)
    box.consume(1, box.inbox(1)[:1])
    assert ids(box.inbox(1)) == ["a0-n1"]
    box.post(1, g, {0: [note(0, 0)]})
    box.deliver(1)
    assert ids(box.inbox(1)) == ["a0-n1"]


def test_average_adapters_uniform_and_weighted():
    g = build_topology("edges", 3, directed=True, params={"edges": [[0, 1, 3.0], [2, 1]]})
    states = {a: {"A": torch.full((2,), float(a)), "B": torch.tensor([[a * 2.0]])} for a in range(3)}
    uni = average_adapters(states, g)
    assert torch.allclose(uni[1]["A"], torch.full((2,), 1.0))  # (1 + 0 + 2) / 3
    assert torch.equal(uni[0]["A"], states[0]["A"])  # no in-neighbours: unchanged
    w = average_adapters(states, g, mixing="weighted")
    assert torch.allclose(w[1]["B"], torch.tensor([[(2.0 + 3 * 0.0 + 1 * 4.0) / 5]]))
    assert torch.equal(states[1]["A"], torch.full((2,), 1.0))  # inputs untouched
    half = average_adapters({a: {"A": s["A"].to(torch.bfloat16)} for a, s in states.items()}, g)
    assert half[1]["A"].dtype == torch.bfloat16
    with pytest.raises(ValueError, match="mixing"):
        average_adapters(states, g, mixing="median")
