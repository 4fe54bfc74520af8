"""Topologies: conformance over the registry, shapes, determinism, errors, dynamic graphs."""

from __future__ import annotations

import random

import networkx as nx
import pytest
from pydantic import BaseModel, Field, ValidationInfo, model_validator

from multiseal.errors import FieldProblems, ParamsError
from multiseal.registry import Params
from multiseal.sim.graph import DynamicGraph, distances, is_disconnected
from multiseal.sim.topologies import (
    TOPOLOGIES,
    build_topology,
    check_topology,
    grid_shape,
    validate_topology,
    validate_topology_params,
)

# Parameters a kind needs to build on 6 agents; every other kind builds from {}.
EXAMPLE_PARAMS = {
    "erdos-renyi": {"p": 0.5},
    "edges": {"edges": [[0, 1], [1, 2, 0.5], [4, 5]]},
    "adjacency": {"matrix": [[0, 2, 0, 0, 0, 0], [2, 0, 0, 0, 0, 0]] + [[0] * 6 for _ in range(4)]},
}


def edges(g: nx.DiGraph) -> list[tuple[int, int]]:
    return sorted(g.edges)


@pytest.mark.parametrize("kind", TOPOLOGIES.names())
def test_every_registered_topology_conforms(kind):
    g = check_topology(TOPOLOGIES.get(kind), n=6, params=EXAMPLE_PARAMS.get(kind, {}))
    assert sorted(g.nodes) == list(range(6))
    assert validate_topology_params(kind, 6, EXAMPLE_PARAMS.get(kind, {})) == []


def test_check_topology_rejects_a_builder_that_forgets_weights_are_positive():
    def bad(n, params, rng, directed):
        g = nx.Graph()
        g.add_nodes_from(range(n))
        g.add_edge(0, 1, weight=-1.0)
        return g

    with pytest.raises(AssertionError, match="weight"):
        check_topology(bad, n=3)


def test_check_topology_rejects_a_nondeterministic_builder():
    def flaky(n, params, rng, directed):
        return nx.gnp_random_graph(n, 0.5, seed=random.randrange(10**9))

    with pytest.raises(AssertionError, match="same seed"):
        check_topology(flaky, n=12)


def test_undirected_degrees():
    def out_deg(g):
        return sorted(d for _, d in g.out_degree())

    assert out_deg(build_topology("ring", 5)) == [2] * 5
    assert out_deg(build_topology("complete", 4)) == [3] * 4
    assert out_deg(build_topology("line", 4)) == [1, 1, 2, 2]
    star = build_topology("star", 5, params={"center": 2})
    assert dict(star.out_degree())[2] == 4 and all(star.has_edge(v, 2) for v in (0, 1, 3, 4))
    assert build_topology("none", 3).number_of_edges() == 0


def test_directed_orientation():
    assert edges(build_topology("ring", 4, directed=True)) == [(0, 1), (1, 2), (2, 3), (3, 0)]
    assert edges(build_topology("line", 3, directed=True)) == [(0, 1), (1, 2)]
    assert edges(build_topology("star", 3, directed=True)) == [(0, 1), (0, 2)]
    assert edges(build_topology("edges", 3, directed=True, params={"edges": [[2, 0]]})) == [(2, 0)]
    assert edges(build_topology("edges", 3, params={"edges": [[2, 0]]})) == [(0, 2), (2, 0)]
    ba = build_topology("barabasi-albert", 8, directed=True, params={"m": 2}, seed=1)
    assert all(u < v for u, v in ba.edges)


def test_networkx_builders_keep_their_edges_on_small_and_directed_graphs():
    assert edges(build_topology("ring", 1)) == [] and edges(build_topology("line", 1)) == []
    assert edges(build_topology("ring", 2, directed=True)) == [(0, 1), (1, 0)]
    assert edges(build_topology("star", 1)) == []
    assert edges(build_topology("star", 4, directed=True, params={"center": 2})) == [(2, 0), (2, 1), (2, 3)]
    assert edges(build_topology("star", 3, params={"center": 2.0})) == [(0, 2), (1, 2), (2, 0), (2, 1)]
    assert edges(build_topology("grid", 6, directed=True)) == [(0, 1), (0, 3), (1, 2), (1, 4), (2, 5), (3, 4), (4, 5)]
    assert edges(build_topology("complete", 3, directed=True)) == [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]
    # defaults obey the rules that depend on the number of agents
    assert validate_topology_params("small-world", 2, {}) == [("params.k", "must be < number of agents (2)")]
    assert validate_topology_params("barabasi-albert", 1, {}) == [("params.m", "must be < number of agents (1)")]


def test_grid_shape_and_edges():
    assert grid_shape(6) == (2, 3) and grid_shape(9) == (3, 3) and grid_shape(7) == (1, 7)
    g = build_topology("grid", 6)
    assert g.number_of_edges() == 2 * 7  # 2 rows × 2 right + 3 down, both directions
    assert g.has_edge(0, 3) and g.has_edge(2, 5) and not g.has_edge(2, 3)
    tall = build_topology("grid", 6, params={"rows": 3})
    assert tall.has_edge(0, 2) and tall.has_edge(4, 5) and not tall.has_edge(1, 2)


def test_random_topologies_are_deterministic_by_seed():
    for kind, params in [
        ("erdos-renyi", {"p": 0.3}),
        ("small-world", {"k": 4, "p": 0.5}),
        ("barabasi-albert", {"m": 2}),
    ]:
        a = build_topology(kind, 20, params=params, seed=3)
        assert edges(a) == edges(build_topology(kind, 20, params=params, seed=3))
        assert edges(a) != edges(build_topology(kind, 20, params=params, seed=4)), kind


def test_weights_default_random_and_explicit():
    g = build_topology("ring", 4, weights={"default": 0.5})
    assert {d["weight"] for *_, d in g.edges(data=True)} == {0.5}
    r = build_topology("ring", 6, weights={"random": [0.2, 0.9]}, seed=1)
    ws = [d["weight"] for *_, d in r.edges(data=True)]
    assert all(0.2 <= w <= 0.9 for w in ws) and len(set(ws)) > 1
    assert all(r[u][v]["weight"] == r[v][u]["weight"] for u, v in r.edges)  # symmetric trust
    e = build_topology("edges", 3, params={"edges": [[0, 1, 0.25], [1, 2]]}, weights={"default": 2.0})
    assert e[0][1]["weight"] == 0.25 and e[1][0]["weight"] == 0.25 and e[1][2]["weight"] == 2.0


def test_adjacency_from_file(tmp_path):
    f = tmp_path / "adj.txt"
    f.write_text("# trust matrix\n0 0.5 0\n0 0 1\n2 0 0\n")
    g = build_topology("adjacency", 3, directed=True, params={"file": str(f)})
    assert edges(g) == [(0, 1), (1, 2), (2, 0)] and g[2][0]["weight"] == 2.0
    with pytest.raises(ParamsError, match="not symmetric") as err:
        build_topology("adjacency", 3, params={"file": str(f)})
    assert err.value.key == "params.file"
    with pytest.raises(ParamsError, match=r"must be a 4×4 matrix"):
        build_topology("adjacency", 4, directed=True, params={"file": str(f)})


def test_edges_with_unknown_agent_names_the_item_and_the_agents():
    with pytest.raises(ParamsError, match=r"agent 7 does not exist \(agents are 0\.\.3\)") as err:
        build_topology("edges", 4, params={"edges": [[0, 1], [1, 7]]})
    assert err.value.key == "params.edges[1]"
    assert isinstance(err.value, ValueError)
    with pytest.raises(ParamsError, match="self-loop on agent 2"):
        build_topology("edges", 4, params={"edges": [[2, 2]]})


def test_validate_reports_every_problem_at_once():
    problems = validate_topology_params(
        "small-world", 4, {"k": 4, "p": 1.5, "q": 1}, weights={"random": [1, 0], "x": 1}
    )
    keys = [k for k, _ in problems]
    assert set(keys) == {"params.k", "params.p", "params.q", "weights.random", "weights.x"}
    assert ("params.k", "must be < number of agents (4)") in problems
    assert ("params.p", "Input should be less than or equal to 1, got 1.5") in problems
    assert ("params.q", "unknown parameter for topology small-world; allowed: k, p") in problems
    assert validate_topology_params("ring", 4, {"k": 2}) == [
        ("params.k", "unknown parameter for topology ring; allowed: none")
    ]
    assert validate_topology_params("rng", 4, {})[0][1].startswith("'rng' is not one of complete, ring")
    assert validate_topology_params("erdos-renyi", 4, {})[0][0] == "params.p"
    with pytest.raises(ParamsError) as err:
        build_topology("grid", 6, params={"rows": 4, "cols": 2})
    assert err.value.key == "params.rows" and "must equal the number of agents (6)" in err.value.message


class TwoCliquesParams(Params):
    bridge: bool = Field(False, description="join the cliques by one edge")

    @model_validator(mode="after")
    def _even(self, info: ValidationInfo) -> TwoCliquesParams:
        if info.context["n"] % 2:
            raise FieldProblems(("bridge", f"two equal cliques need an even number of agents, not {info.context['n']}"))
        return self


def test_a_user_topology_registers_with_its_params_model():
    def two_cliques(n: int, params: TwoCliquesParams, rng, directed):
        assert isinstance(params, TwoCliquesParams)  # the builder gets the parsed parameters
        g = nx.disjoint_union(nx.complete_graph(n // 2), nx.complete_graph(n // 2))
        if params.bridge:
            g.add_edge(0, n // 2)
        return g

    TOPOLOGIES.register("test-two-cliques", two_cliques, params=TwoCliquesParams)
    try:
        assert TOPOLOGIES.get("test-two-cliques").params is TwoCliquesParams
        assert validate_topology_params("test-two-cliques", 5, {}) == [
            ("params.bridge", "two equal cliques need an even number of agents, not 5")
        ]
        assert validate_topology_params("test-two-cliques", 6, {"bridge": "yes", "k": 1}) == [
            ("params.bridge", "Input should be a valid boolean, got 'yes'"),
            ("params.k", "unknown parameter for topology test-two-cliques; allowed: bridge"),
        ]
        assert is_disconnected(build_topology("test-two-cliques", 6))
        assert not is_disconnected(build_topology("test-two-cliques", 6, params={"bridge": True}))
        assert check_topology(TOPOLOGIES.get("test-two-cliques"), 6, {"bridge": True})
        assert check_topology(two_cliques, 6, params_model=TwoCliquesParams)
        with pytest.raises(AssertionError, match="do not fit TwoCliquesParams"):
            check_topology(TOPOLOGIES.get("test-two-cliques"), 5)
    finally:
        TOPOLOGIES.unregister("test-two-cliques")


def test_a_params_model_must_forbid_unknown_keys():
    class Loose(BaseModel):
        k: int = 1

    with pytest.raises(TypeError, match="must forbid unknown keys"):
        TOPOLOGIES.register("test-loose", lambda n, p, rng, d: nx.empty_graph(n), params=Loose)
    assert "test-loose" not in TOPOLOGIES


def test_disconnected_detection_and_distances():
    assert is_disconnected(build_topology("none", 3))
    assert is_disconnected(build_topology("edges", 4, params={"edges": [[0, 1], [2, 3]]}))
    assert not is_disconnected(build_topology("line", 4, directed=True))  # weakly connected
    assert not is_disconnected(build_topology("none", 1))
    line = build_topology("line", 4, directed=True)
    assert distances(line, 1) == {1: 0, 2: 1, 3: 2}
    assert distances(build_topology("ring", 6), 0) == {0: 0, 1: 1, 5: 1, 2: 2, 4: 2, 3: 3}


def test_static_dynamic_graph_is_the_built_graph_every_round():
    d = DynamicGraph("ring", 5, seed=2)
    assert d.is_static and d.at(0) is d.at(7)
    assert edges(d.at(3)) == edges(build_topology("ring", 5, seed=2))
    with pytest.raises(nx.NetworkXError):
        d.at(0).add_edge(0, 2)  # frozen: shared across rounds


def test_rewire_changes_only_at_epoch_boundaries():
    d = DynamicGraph("ring", 6, directed=True, rewire_every=3, seed=0)
    g = [edges(d.at(r)) for r in range(9)]
    assert g[0] == g[1] == g[2] == edges(build_topology("ring", 6, directed=True))
    assert g[3] == g[4] == g[5] != g[2]
    assert g[6] == g[7] == g[8] != g[5]
    assert all(d.at(r).out_degree(v) == 1 for r in (3, 6) for v in range(6))  # still a ring
    again = DynamicGraph("ring", 6, directed=True, rewire_every=3, seed=0)
    assert [edges(again.at(r)) for r in (8, 4)] == [g[8], g[4]]  # same seed, any query order
    small = DynamicGraph("ring", 4, rewire_every=1, seed=0)
    assert all(edges(small.at(r)) != edges(small.at(r + 1)) for r in range(5))


def test_schedule_cycles_through_its_entries():
    d = DynamicGraph("edges", 3, directed=True, schedule=[[[0, 1]], [[1, 2, 0.5]]])
    assert [edges(d.at(r)) for r in range(4)] == [[(0, 1)], [(1, 2)], [(0, 1)], [(1, 2)]]
    assert d.at(1)[1][2]["weight"] == 0.5
    with pytest.raises(ParamsError) as err:
        DynamicGraph("edges", 3, schedule=[[[0, 1]], [[0, 9]]])
    assert err.value.key == "schedule[1][0]"
    with pytest.raises(ParamsError, match="use kind 'edges' without params"):
        DynamicGraph("ring", 3, schedule=[[[0, 1]]])
    with pytest.raises(ParamsError, match="either rewire_every or schedule"):
        DynamicGraph("edges", 3, rewire_every=2, schedule=[[[0, 1]]])


def test_validate_topology_covers_dynamic_settings_and_float_agent_ids():
    # A scenario typed as list[list[list[float]]] hands agent ids over as floats.
    d = DynamicGraph("edges", 3, schedule=[[[0.0, 1.0, 0.5]]])
    assert edges(d.at(0)) == [(0, 1), (1, 0)] and d.at(0)[0][1]["weight"] == 0.5
    problems = validate_topology("complete", 3, schedule=[[[0, 1.5]]], rewire_every=0, weights={"default": 0})
    assert {k for k, _ in problems} == {"schedule", "rewire_every", "schedule[0][0]", "weights.default"}
    assert validate_topology("ring", 4, rewire_every=2) == []
    assert validate_topology("adjacency", 2, {"matrix": [[0, 1], [0, 0]]})[0][1].startswith("not symmetric")
