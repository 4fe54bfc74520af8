"""Kinds with typed parameters: every registered topology, scheduler and policy declares a pydantic
model of its parameters and passes its conformance check; the shared validation names dotted keys."""

from __future__ import annotations

import warnings

import networkx as nx
import pytest
from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from multiseal.errors import FieldProblems, ParamsError, pydantic_problems
from multiseal.registry import Kind, KindRegistry, NoParams, Params, validate_params
from multiseal.rl.policies import POLICIES, build_policy, check_policy
from multiseal.sim.schedulers import SCHEDULERS, build_scheduler, check_scheduler
from multiseal.sim.topologies import TOPOLOGIES, build_topology, check_topology

# One row per registered kind: parameters it builds with (6 agents for topologies).
EXAMPLES = {
    ("topology", "complete"): {},
    ("topology", "ring"): {},
    ("topology", "line"): {},
    ("topology", "none"): {},
    ("topology", "star"): {"center": 3},
    ("topology", "grid"): {"rows": 3},
    ("topology", "small-world"): {"k": 4, "p": 0.3},
    ("topology", "erdos-renyi"): {"p": 0.5},
    ("topology", "barabasi-albert"): {"m": 2},
    ("topology", "edges"): {"edges": [[0, 1], [1, 2, 0.5], [4, 5]]},
    ("topology", "adjacency"): {"matrix": [[0, 2, 0, 0, 0, 0], [2, 0, 0, 0, 0, 0]] + [[0] * 6 for _ in range(4)]},
    ("scheduler", "synchronous"): {},
    ("scheduler", "round-robin"): {},
    ("scheduler", "random-gossip"): {},
    ("scheduler", "budgeted"): {"budget": 2, "rank_by": "novelty"},
    ("scheduler", "isolated"): {},
    ("scheduler", "oracle"): {},
    ("scheduler", "policy"): {"policy": "greedy", "history": 2},
    ("policy", "random"): {},
    ("policy", "greedy"): {"budget": 2},
}
REGISTRIES = {"topology": TOPOLOGIES, "scheduler": SCHEDULERS, "policy": POLICIES}


def test_the_table_covers_every_registered_kind():
    registered = {(what, name) for what, reg in REGISTRIES.items() for name in reg.names()}
    assert registered == set(EXAMPLES)


@pytest.mark.parametrize("what,name", sorted(EXAMPLES), ids=lambda x: x)
def test_every_kind_declares_a_params_model_that_forbids_unknown_keys(what, name):
    kind = REGISTRIES[what].get(name)
    assert isinstance(kind, Kind) and issubclass(kind.params, BaseModel)
    assert kind.params.model_config.get("extra") == "forbid"
    context = {"n": 6, "directed": False}
    parsed, problems = kind.validate(EXAMPLES[what, name], context=context)
    assert problems == [] and isinstance(parsed, kind.params)
    _, problems = kind.validate({**EXAMPLES[what, name], "no_such_param": 1}, context=context)
    allowed = ", ".join(kind.params.model_fields) or "none"
    assert problems == [("params.no_such_param", f"unknown parameter for {what} {name}; allowed: {allowed}")]


@pytest.mark.parametrize("name", TOPOLOGIES.names())
def test_every_topology_conforms_with_its_example(name):
    check_topology(TOPOLOGIES.get(name), n=6, params=EXAMPLES["topology", name])


@pytest.mark.parametrize("name", SCHEDULERS.names())
def test_every_scheduler_conforms_with_its_example(name):
    check_scheduler(build_scheduler(name, EXAMPLES["scheduler", name]), n=4, inbox_only=name != "oracle")


@pytest.mark.parametrize("name", POLICIES.names())
def test_every_policy_conforms_with_its_example(tiny_model, name):
    from multiseal.config.load import validate_scenario
    from multiseal.run.pettingzoo import parallel_env

    sc = validate_scenario(
        {
            "rounds": 1,
            "model": {"base": "tiny-random", "lora": {"rank": 4, "alpha": 8}},
            "world": {"documents": 2, "questions_per_doc": [2, 2]},
            "agents": 2,
            "topology": {"kind": "ring"},
            "self_edit": {"max_new_tokens": 4},
            "inner_loop": {"epochs": 1, "max_length": 32},
            "evaluation": {"max_new_tokens": 2, "retention_probe": 0},
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = parallel_env(sc, model=tiny_model)
        check_policy(build_policy(name, env.interface, params=EXAMPLES["policy", name]), env)
        env.close()


# ---------------------------------------------------------------- the generic machinery


class RingOfCliques(Params):
    size: int = Field(3, ge=2, description="agents per clique")
    hub: int | None = None

    @field_validator("size")
    @classmethod
    def _divides(cls, size: int, info: ValidationInfo) -> int:
        n = (info.context or {}).get("n")
        if n is not None and n % size:
            raise ValueError(f"must divide the number of agents ({n})")
        return size

    @model_validator(mode="after")
    def _hub(self, info: ValidationInfo) -> RingOfCliques:
        if self.hub is not None and self.hub >= info.context["n"]:
            raise FieldProblems(("hub", f"agent {self.hub} does not exist"))
        return self


def test_validate_params_names_dotted_keys_and_what_is_allowed():
    ok, problems = validate_params(RingOfCliques, {"size": 2}, context={"n": 6})
    assert problems == [] and ok == RingOfCliques(size=2)
    assert validate_params(RingOfCliques, {"size": 4, "hub": "a", "x": 1}, context={"n": 6}, owner="topology roc")[
        1
    ] == [
        ("params.size", "must divide the number of agents (6)"),
        ("params.hub", "Input should be a valid integer, got 'a'"),
        ("params.x", "unknown parameter for topology roc; allowed: size, hub"),
    ]
    assert validate_params(RingOfCliques, {"hub": 9}, context={"n": 6})[1] == [("params.hub", "agent 9 does not exist")]
    assert validate_params(RingOfCliques, {"size": 1}, prefix="topology.params")[1] == [
        ("topology.params.size", "Input should be greater than or equal to 2, got 1")
    ]
    assert validate_params(RingOfCliques, "big")[1] == [("params", "must be a mapping, got 'big'")]
    assert validate_params(NoParams, None) == (NoParams(), [])


def test_a_kind_registry_registers_parses_and_explains():
    reg: KindRegistry = KindRegistry("gadget")

    @reg.register("roc", params=RingOfCliques)
    def roc(params: RingOfCliques) -> int:
        return params.size

    assert roc(RingOfCliques()) == 3  # the decorator hands the function back
    kind = reg.get("roc")
    assert kind.params is RingOfCliques and kind(reg.parse("roc", {"size": 2})) == 2
    assert reg.validate("rco", {}) == (None, [("kind", "'rco' is not one of roc")])
    with pytest.raises(ParamsError) as err:
        reg.parse("roc", {"size": 0, "hub": 1.5})
    assert err.value.key == "params.size" and [k for k, _ in err.value.problems] == ["params.size", "params.hub"]
    assert isinstance(err.value, ValueError)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("roc", roc, params=RingOfCliques)
    with pytest.raises(TypeError, match="pydantic model class"):
        reg.register("bad", roc, params=dict)  # type: ignore[arg-type]
    reg.unregister("roc")
    assert "roc" not in reg


def test_the_shared_translation_keeps_scenario_messages():
    class Section(BaseModel):
        model_config = {"extra": "forbid"}
        mode: str = "a"

    try:
        Section.model_validate({"mdoe": 1})
    except Exception as e:  # noqa: BLE001
        assert [(p.path, p.message) for p in pydantic_problems(e, prefix="sharing")] == [
            ("sharing.mdoe", "unknown key")
        ]


def test_a_topology_builder_gets_typed_params():
    seen = []

    @TOPOLOGIES.register("test-typed", params=RingOfCliques)
    def typed(n, params, rng, directed):
        seen.append(params)
        return nx.disjoint_union_all([nx.complete_graph(params.size) for _ in range(n // params.size)])

    try:
        g = build_topology("test-typed", 6, params={"size": 2})
        assert g.number_of_edges() == 6 and seen == [RingOfCliques(size=2)]
        with pytest.raises(ParamsError, match=r"params\.size: must divide the number of agents \(5\)"):
            build_topology("test-typed", 5)
    finally:
        TOPOLOGIES.unregister("test-typed")
