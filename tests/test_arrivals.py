"""Arrival schedules: who receives which document in which round."""

from __future__ import annotations

from collections import Counter

import pytest

from multiseal.world.arrivals import (
    ARRIVALS,
    build_arrivals,
    check_arrivals,
    documents_needed,
    first_arrival,
    first_recipient,
    introduced_by,
)

DOCS = [f"d{i:03d}" for i in range(40)]
TABLE = [
    {"round": 0, "agent": 1, "docs": ["d003"]},
    {"round": 1, "agent": 0, "docs": ["d000", "d001"]},
    {"round": 1, "agent": 2, "docs": ["d003"]},
]


def _build(kind: str, **kw: object) -> dict:
    defaults: dict = {"n_agents": 3, "doc_ids": DOCS, "rounds": 4}
    if kind == "table":
        defaults["table"] = TABLE
    defaults.update(kw)
    return build_arrivals(kind, **defaults)


@pytest.mark.parametrize("kind", ARRIVALS.names())
def test_every_kind_conforms_and_is_deterministic(kind: str) -> None:
    arrivals = _build(kind, seed=5)
    check_arrivals(arrivals, n_agents=3, rounds=4, doc_ids=DOCS)
    assert arrivals == _build(kind, seed=5)


@pytest.mark.parametrize("kind", ["disjoint", "overlapping", "broadcast"])
def test_documents_needed_matches_what_is_consumed(kind: str) -> None:
    arrivals = _build(kind, docs_per_round=2)
    used = {d for per_agent in arrivals.values() for docs in per_agent.values() for d in docs}
    n = documents_needed(kind, n_agents=3, rounds=4, docs_per_round=2)
    assert used == set(DOCS[:n])  # documents are consumed in world order


def test_disjoint_gives_each_document_to_one_agent() -> None:
    arrivals = _build("disjoint", docs_per_round=2)
    counts = Counter(d for per_agent in arrivals.values() for docs in per_agent.values() for d in docs)
    assert set(counts.values()) == {1} and len(counts) == 3 * 4 * 2
    assert all(len(docs) == 2 for per_agent in arrivals.values() for docs in per_agent.values())
    assert arrivals[0] == {0: ["d000", "d001"], 1: ["d002", "d003"], 2: ["d004", "d005"]}


@pytest.mark.parametrize("copies", [1, 2, 3])
def test_overlapping_gives_each_document_to_copies_distinct_agents(copies: int) -> None:
    arrivals = _build("overlapping", n_agents=4, copies=copies, docs_per_round=2, seed=1)
    holders: dict[str, set[int]] = {}
    for per_agent in arrivals.values():
        for a, docs in per_agent.items():
            for d in docs:
                holders.setdefault(d, set()).add(a)
    assert all(len(h) == copies for h in holders.values())
    for per_agent in arrivals.values():  # balanced: about docs_per_round each
        assert all(1 <= len(docs) <= 3 for docs in per_agent.values())


def test_overlapping_depends_on_seed() -> None:
    runs = {str(_build("overlapping", n_agents=5, seed=s)) for s in range(5)}
    assert len(runs) > 1


def test_overlapping_rejects_impossible_copies() -> None:
    with pytest.raises(ValueError, match="copies"):
        _build("overlapping", copies=4)


def test_broadcast_feeds_only_the_source() -> None:
    arrivals = _build("broadcast", source=2, docs_per_round=3)
    for r, per_agent in arrivals.items():
        assert per_agent[0] == [] and per_agent[1] == []
        assert per_agent[2] == DOCS[3 * r : 3 * r + 3]
    with pytest.raises(ValueError, match="source 3"):
        _build("broadcast", source=3)


def test_table_is_taken_literally() -> None:
    arrivals = _build("table")
    assert arrivals[0] == {0: [], 1: ["d003"], 2: []}
    assert arrivals[1] == {0: ["d000", "d001"], 1: [], 2: ["d003"]}
    assert arrivals[3] == {0: [], 1: [], 2: []}
    assert documents_needed("table", 3, 4, table=TABLE) == 3


@pytest.mark.parametrize(
    "entry, pattern",
    [
        ({"round": 0, "agent": 0, "docs": ["d999"]}, r"table entry 1: unknown document 'd999'"),
        ({"round": 0, "agent": 3, "docs": ["d001"]}, r"table entry 1: agent 3 is out of range 0\.\.2"),
        ({"round": 4, "agent": 0, "docs": ["d001"]}, r"table entry 1: round 4 is out of range 0\.\.3"),
        ({"round": 0, "agent": 0}, r"table entry 1: missing key\(s\) docs"),
        ({"round": 0, "agent": 0, "docs": [], "who": 1}, r"table entry 1: unknown key\(s\) who"),
        ({"round": "0", "agent": 0, "docs": []}, r"table entry 1: round must be an integer"),
        ({"round": 0, "agent": 0, "docs": "d001"}, r"table entry 1: docs must be a list"),
        ({"round": 0, "agent": 0, "docs": ["d001", "d001"]}, r"table entry 1: document 'd001' .* twice"),
    ],
)
def test_bad_table_entries_name_the_entry(entry: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        _build("table", table=[TABLE[0], entry])


def test_empty_table_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least one entry"):
        _build("table", table=[])


@pytest.mark.parametrize(
    "kind, kw, needed",
    [
        ("disjoint", {"docs_per_round": 2}, 3 * 10 * 2),
        ("overlapping", {"copies": 2, "docs_per_round": 3}, 10 * 5),  # ceil(3 agents * 3 / 2) a round
        ("broadcast", {"docs_per_round": 5}, 10 * 5),
    ],
)
def test_too_few_documents_is_a_clear_error(kind: str, kw: dict, needed: int) -> None:
    assert documents_needed(kind, n_agents=3, rounds=10, **kw) == needed
    with pytest.raises(ValueError, match=f"arrival schedule needs {needed} documents but the world has 40"):
        _build(kind, rounds=10, **kw)


def test_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="unknown arrival schedule 'random'; known: disjoint"):
        _build("random")


def test_first_arrival_recipient_and_introduction_order() -> None:
    arrivals = _build("table")
    assert first_arrival(arrivals) == {(1, "d003"): 0, (0, "d000"): 1, (0, "d001"): 1, (2, "d003"): 1}
    assert first_recipient(arrivals) == {"d003": (0, 1), "d000": (1, 0), "d001": (1, 0)}
    assert introduced_by(arrivals, 0) == ["d003"]
    assert introduced_by(arrivals, 3) == ["d003", "d000", "d001"]


def test_first_recipient_ties_go_to_the_lowest_agent() -> None:
    arrivals = _build("overlapping", n_agents=4, copies=3, seed=2)
    for doc, (r, a) in first_recipient(arrivals).items():
        holders = [b for b, docs in arrivals[r].items() if doc in docs]
        assert a == min(holders)


@pytest.mark.parametrize("kind", ARRIVALS.names())
def test_the_estimates_arithmetic_matches_the_schedule_built(kind: str) -> None:
    from multiseal.world.arrivals import documents_received

    table = TABLE if kind == "table" else None
    arrivals = _build(kind, docs_per_round=2, seed=3)
    built = Counter(a for per_agent in arrivals.values() for a, docs in per_agent.items() for _ in docs)
    got = documents_received(kind, 3, 4, docs_per_round=2, table=table)
    assert got == pytest.approx([float(built[a]) for a in range(3)])


def test_a_plugin_arrival_kind_is_a_registration_away(run_sim) -> None:
    """The schema takes any registered kind (no Literal), the estimate asks it, the run uses it."""
    from multiseal.config.estimate import estimate
    from multiseal.config.load import validate_scenario
    from multiseal.errors import ScenarioError
    from multiseal.world.arrivals import ArrivalKind

    def last_agent(p, docs):
        out = {r: {a: [] for a in range(p.n_agents)} for r in range(p.rounds)}
        for r in range(p.rounds):
            out[r][p.n_agents - 1] = docs[r * p.docs_per_round : (r + 1) * p.docs_per_round]
        return out

    raw = {
        "model": {"base": "tiny-random", "lora": {"rank": 4, "alpha": 8}},
        "world": {"documents": 4, "questions_per_doc": [2, 2]},
        "agents": 3,
        "rounds": 2,
        "arrivals": {"kind": "test-last-agent"},
        "self_edit": {"max_new_tokens": 4},
        "inner_loop": {"epochs": 1, "batch_size": 2},
        "evaluation": {"max_new_tokens": 4, "retention_probe": 0},
    }
    with pytest.raises(ScenarioError, match="arrivals.kind: 'test-last-agent' is not one of disjoint"):
        validate_scenario(raw)
    ARRIVALS.register("test-last-agent", ArrivalKind(needed=lambda p: p.rounds * p.docs_per_round, assign=last_agent))
    try:
        sc = validate_scenario(raw)
        assert estimate(sc).trained_tokens > 0
        sim = run_sim(sc)
        assert sim.state.own[2].sum() == 2 and not sim.state.own[:2].any()
    finally:
        ARRIVALS.unregister("test-last-agent")
