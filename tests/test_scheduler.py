"""Schedulers: conformance over the registry and each kind's behaviour on a small graph."""

from __future__ import annotations

import pytest
from pydantic import Field

from multiseal.errors import ParamsError
from multiseal.registry import Params
from multiseal.sim.schedulers import (
    SCHEDULERS,
    build_scheduler,
    check_scheduler,
    example_view,
    validate_scheduler_params,
)
from multiseal.types import InboxItem, Note

EXAMPLE_PARAMS = {"budgeted": {"budget": 3}, "policy": {"policy": "greedy"}}
CENTRALISED = {"oracle"}


def ids(items: list[InboxItem]) -> list[str]:
    return [it.note.note_id for it in items]


@pytest.mark.parametrize("kind", SCHEDULERS.names())
@pytest.mark.parametrize("n", [1, 2, 4])
def test_every_registered_scheduler_conforms(kind, n):
    scheduler = build_scheduler(kind, EXAMPLE_PARAMS.get(kind, {}))
    check_scheduler(scheduler, n=n, inbox_only=kind not in CENTRALISED)


def test_check_scheduler_catches_a_missing_agent_and_foreign_items():
    with pytest.raises(AssertionError, match="plan keys"):
        check_scheduler(lambda view: {0: []})
    stranger = InboxItem(Note("x", 9, "d", 0, "s", "t", ("t",), 1), 9, 0)
    with pytest.raises(AssertionError, match="not in agent 0's inbox"):
        check_scheduler(lambda view: {a: [stranger] for a in view.agents()})


def test_synchronous_takes_whole_inboxes():
    view = example_view(4)
    plan = build_scheduler("synchronous", {})(view)
    assert all(plan[a] == view.inboxes[a] for a in range(4))


def test_round_robin_lets_one_agent_adapt_per_round():
    sched = build_scheduler("round-robin", {})
    for r in range(6):
        view = example_view(4, round=r)
        plan = sched(view)
        assert [a for a in plan if plan[a]] == [r % 4]
        assert plan[r % 4] == view.inboxes[r % 4]


def test_isolated_takes_only_own_notes():
    plan = build_scheduler("isolated", {})(example_view(4))
    assert all(ids(plan[a]) == [f"n{a}-0", f"n{a}-1"] for a in range(4))
    assert all(it.hops == 0 and it.note.author == a for a in range(4) for it in plan[a])


def test_oracle_gives_every_agent_every_note_of_the_round():
    view = example_view(3)
    plan = build_scheduler("oracle", {})(view)
    every = sorted(n.note_id for n in view.all_notes)
    for a, items in plan.items():
        assert sorted(ids(items)) == every
        assert all((it.hops == 0) == (it.note.author == a) and it.sender == it.note.author for it in items)


def test_random_gossip_uses_one_edge_and_is_seed_deterministic():
    sched = build_scheduler("random-gossip", {})
    edges = set()
    for seed in range(10):
        view = example_view(5, seed=seed)
        plan = sched(view)
        u, v = sched.chosen_edge
        edges.add((u, v))
        assert view.graph.has_edge(u, v)
        assert {a for a in plan if plan[a]} == {u, v}
        for a in (u, v):
            other = v if a == u else u
            want = [it for it in view.inboxes[a] if it.sender in (a, other)]
            assert plan[a] == want
        assert ids(plan[u]) == ids(sched(example_view(5, seed=seed))[u])
    assert len(edges) > 1  # different seeds pick different edges


def test_budgeted_respects_budget_and_puts_own_notes_first():
    view = example_view(4)
    plan = build_scheduler("budgeted", {"budget": 3, "rank_by": "trust"})(view)
    assert all(len(items) == 3 for items in plan.values())
    # agent 0 hears from 1 (trust 0.6) and 3 (trust 0.8): own two, then 3's best
    assert ids(plan[0]) == ["n0-0", "n0-1", "n3-0"]
    one = build_scheduler("budgeted", {"budget": 1})(view)
    assert ids(one[0]) == ["n0-0"]  # over budget, the rest stays pending


def note_item(nid: str, author: int, doc: str, round: int, weight: float) -> InboxItem:
    return InboxItem(Note(nid, author, doc, round, "s", "t", ("t",), 1), author, round, weight, 1)


def test_budgeted_ranking_by_recency_and_novelty():
    view = example_view(2)
    view.inboxes = {
        0: [
            note_item("old-trusted", 1, "docA", 0, 0.9),
            note_item("new-a", 1, "docA", 2, 0.1),
            note_item("new-a2", 1, "docA", 2, 0.2),
            note_item("new-b", 1, "docB", 1, 0.1),
        ],
        1: [],
    }
    view.known = {0: {"docA"}, 1: set()}
    take = lambda rank_by: ids(build_scheduler("budgeted", {"budget": 2, "rank_by": rank_by})(view)[0])  # noqa: E731
    assert take("trust") == ["old-trusted", "new-a2"]
    assert take("recency") == ["new-a2", "new-a"]
    assert take("novelty") == ["new-b", "old-trusted"]  # unknown doc first, then most trusted of docA
    view.known = {0: set(), 1: set()}
    view.inboxes[0].append(note_item("new-c", 1, "docC", 0, 0.05))
    # all docs new: one note per document before a second note about any of them
    assert sorted(ids(build_scheduler("budgeted", {"budget": 3, "rank_by": "novelty"})(view)[0])) == [
        "new-b",
        "new-c",
        "old-trusted",
    ]


def test_scheduler_params_are_validated_all_at_once():
    problems = validate_scheduler_params("budgeted", {"budget": 0, "rank_by": "age", "extra": 1})
    assert problems == [
        ("params.budget", "Input should be greater than or equal to 1, got 0"),
        ("params.rank_by", "'age' is not one of 'trust', 'recency' or 'novelty'"),
        ("params.extra", "unknown parameter for scheduler budgeted; allowed: budget, rank_by"),
    ]
    assert validate_scheduler_params("budgeted", {})[0] == (
        "params.budget",
        "is required (the most notes an agent adapts on per round)",
    )
    assert validate_scheduler_params("budgeted", {"budget": True})[0] == (
        "params.budget",
        "Input should be a valid integer, got True",
    )  # no bool-as-int coercion
    assert validate_scheduler_params("synchronous", {"budget": 2}) == [
        ("params.budget", "unknown parameter for scheduler synchronous; allowed: none")
    ]
    assert validate_scheduler_params("budgeted", [3]) == [("params", "must be a mapping, got [3]")]
    with pytest.raises(ParamsError, match="not one of synchronous") as err:
        build_scheduler("sync", {})
    assert err.value.key == "kind" and isinstance(err.value, ValueError)
    with pytest.raises(ParamsError, match="'trust', 'recency' or 'novelty'"):
        build_scheduler("budgeted", {"budget": 2, "rank_by": "age"})


def test_the_policy_kind_checks_its_interface_params():
    assert validate_scheduler_params(
        "policy",
        {
            "policy": "greedy",
            "inbox_slots": 0,
            "history": 2,
            "styles": ["rewrite", "poetry"],
            "visible_neighbour_metrics": "yes",
        },
    ) == [
        ("params.inbox_slots", "Input should be greater than or equal to 1, got 0"),
        ("params.styles[1]", "'poetry' is not one of implications, implications-long, rewrite, self-qa, passage-only"),
        ("params.visible_neighbour_metrics", "Input should be a valid boolean, got 'yes'"),
    ]
    assert validate_scheduler_params("policy", {}) == [
        (
            "params.policy",
            ("is required (a registered policy, or an import path 'package.module:callable' with allow_import: true)"),
        )
    ]
    assert {
        k
        for k, _ in validate_scheduler_params(
            "policy", {"policy": 3, "styles": [], "policy_params": 4, "allow_import": "yes"}
        )
    } == {"params.policy", "params.styles", "params.policy_params", "params.allow_import"}


class NewestParams(Params):
    keep: int = Field(1, ge=1, description="notes adapted on per round")


def test_a_user_scheduler_registers_with_its_params_model_and_conforms():
    def newest(params: NewestParams):
        def schedule(view):
            return {
                a: sorted(view.inboxes.get(a, []), key=lambda it: -it.note.round)[: params.keep] for a in view.agents()
            }

        return schedule

    SCHEDULERS.register("test-newest", newest, params=NewestParams)
    try:
        assert all(
            len(items) <= 2 for items in check_scheduler(build_scheduler("test-newest", {"keep": 2}), n=3).values()
        )
        assert validate_scheduler_params("test-newest", {"keep": 0, "kep": 1}) == [
            ("params.keep", "Input should be greater than or equal to 1, got 0"),
            ("params.kep", "unknown parameter for scheduler test-newest; allowed: keep"),
        ]
        with pytest.raises(ParamsError, match="params.keep"):
            build_scheduler("test-newest", {"keep": "all"})
    finally:
        SCHEDULERS.unregister("test-newest")


def test_a_scheduler_registered_without_a_model_takes_no_params():
    SCHEDULERS.register("test-plain", lambda params: lambda view: {a: [] for a in view.agents()})
    try:
        check_scheduler(build_scheduler("test-plain"), n=2)
        assert validate_scheduler_params("test-plain", {"x": 1}) == [
            ("params.x", "unknown parameter for scheduler test-plain; allowed: none")
        ]
    finally:
        SCHEDULERS.unregister("test-plain")
