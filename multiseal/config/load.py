"""Reading a scenario file: YAML, overrides, the typed schema, and the checks that span sections.

``load_scenario`` reports *all* problems of a file in one ``ScenarioError``, each named by its dotted
key path (``topology.params.k: must be < 4``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from multiseal.config.checks import check_device, check_model, check_tracking
from multiseal.config.estimate import check_limits
from multiseal.config.overrides import apply_overrides
from multiseal.config.paths import resolve_relative, topology_params
from multiseal.config.plugins import load_plugins
from multiseal.config.schema import (
    AgentsSection,
    ArrivalsSection,
    ExecutionSection,
    InnerLoopSection,
    ModelSection,
    RestemSection,
    Scenario,
    SchedulerSection,
    Section,
    SelfEditSection,
    SharingSection,
    TasksSection,
    TopologySection,
    TrackingSection,
    WorldSection,
    _known_style,
)
from multiseal.config.yamlfile import read_yaml
from multiseal.errors import (
    DataError,
    InputError,
    Problem,
    ScenarioError,
    pydantic_problems,
)
from multiseal.learning.self_edit import STYLES
from multiseal.rl.policies import validate_policy_params
from multiseal.sim.controls import validate_content
from multiseal.sim.mitigations import validate_mitigations
from multiseal.sim.schedulers import validate_scheduler_params
from multiseal.sim.topologies import build_topology, validate_topology
from multiseal.world.arc import load_arc
from multiseal.world.arrivals import build_arrivals, documents_needed
from multiseal.world.grid_tasks import TaskShape, generate_task
from multiseal.world.squad import load_squad_json
from multiseal.world.synthetic import generate_world


def load_scenario(path: str | Path, overrides: dict[str, Any] | None = None) -> Scenario:
    """Read, validate and cross-check a scenario file; raise ScenarioError with every problem."""
    raw = read_yaml(path)
    if overrides:
        raw = apply_overrides(raw, overrides, source=path)
    return validate_scenario(raw, source=path)


def validate_scenario(raw: dict, source: str | Path | None = None) -> Scenario:
    """The typed scenario from a raw tree: its plugins imported first (they register the kinds it may
    name), then the schema and the cross-section checks; raise ScenarioError with every problem."""
    problems: list[Problem] = load_plugins(raw.get("plugins"))
    scenario = None
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as e:
        problems += pydantic_problems(e)
    problems += cross_check(raw, source)
    if problems:
        raise ScenarioError(source, _dedupe(problems))
    assert scenario is not None
    return scenario


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen, out = set(), []
    for p in problems:
        if (p.path, p.message) not in seen:
            seen.add((p.path, p.message))
            out.append(p)
    return out


def _section(raw: dict, key: str, model: type[Section]) -> Section | None:
    """One section validated alone (None when it is invalid; its errors come from the full pass)."""
    try:
        value = raw.get(key, {})
        if key == "agents":
            value = Scenario._agents(value)
        return model.model_validate(value if value is not None else {})
    except (ValidationError, TypeError, ValueError):
        return None


def cross_check(raw: dict, source: str | Path | None = None) -> list[Problem]:
    """Checks that span sections (agent ids vs agent count, topology params, data files...).

    Each check runs when the sections it needs are valid on their own, so a file with several
    independent mistakes gets them all reported at once.
    """
    problems: list[Problem] = []
    agents = _section(raw, "agents", AgentsSection)
    topo = _section(raw, "topology", TopologySection)
    sched = _section(raw, "scheduler", SchedulerSection)
    world = _section(raw, "world", WorldSection)
    arrivals = _section(raw, "arrivals", ArrivalsSection)
    rounds = raw.get("rounds", 2) if isinstance(raw.get("rounds", 2), int) else None
    kind = raw.get("kind", "simulation")
    n = agents.count if agents else None

    if isinstance(raw.get("mitigations"), list):
        problems += [Problem(k, m) for k, m in validate_mitigations(raw["mitigations"], "mitigations")]
    if agents:
        for i, o in agents.overrides.items():
            if not 0 <= i < agents.count:
                problems.append(Problem(f"agents.overrides.{i}", f"no such agent (agents are 0..{agents.count - 1})"))
            if o.mitigations is not None:
                problems += [
                    Problem(k, m)
                    for k, m in validate_mitigations(
                        [e.model_dump() for e in o.mitigations], f"agents.overrides.{i}.mitigations"
                    )
                ]
            if (
                o.role == "adversary"
                and (o.attack or "false_values") == "false_values"
                and isinstance(raw.get("world"), dict)
                and raw["world"].get("kind") == "squad"
            ):
                problems.append(
                    Problem(
                        f"agents.overrides.{i}.attack",
                        (
                            "'false_values' plants false values of the world's facts, and a SQuAD world has none; "
                            "use attack: noise or a synthetic world"
                        ),
                    )
                )
            if o.style is not None:
                try:
                    _known_style(o.style)
                except ValueError as e:
                    problems.append(Problem(f"agents.overrides.{i}.style", str(e)))
    if topo and n:
        params = topology_params(topo.params, source)
        for key, msg in validate_topology(
            topo.kind,
            n,
            params,
            directed=topo.directed,
            weights=topo.weights,
            rewire_every=topo.rewire_every,
            schedule=topo.schedule,
        ):
            problems.append(Problem(f"topology.{key}", msg))
    if sched:
        for key, msg in validate_scheduler_params(sched.kind, sched.params):
            problems.append(Problem(f"scheduler.{key}", msg))
        if sched.kind == "policy" and isinstance(sched.params, dict):
            for key, msg in validate_policy_params(sched.params):
                problems.append(Problem(f"scheduler.{key}", msg))
    n_docs = None
    if world:
        if world.kind == "squad":
            path = resolve_relative(world.path, source)
            try:
                n_docs = len(load_squad_json(path).documents)
            except DataError as e:
                problems.append(Problem("world.path", str(e)))
        else:
            n_docs = world.documents
            if world.composition:
                try:
                    generate_world(
                        world.documents,
                        world.seed
                        if world.seed is not None
                        else raw.get("seed", 0)
                        if isinstance(raw.get("seed", 0), int)
                        else 0,
                        tuple(world.questions_per_doc),
                        world.composition,
                    )
                except ValueError as e:
                    problems.append(Problem("world.composition", str(e)))
    if kind == "simulation" and arrivals and n and n_docs is not None and rounds:
        if arrivals.kind == "broadcast" and arrivals.source >= n:
            problems.append(Problem("arrivals.source", f"no such agent (agents are 0..{n - 1})"))
        else:
            problems += _check_arrivals(arrivals, n, n_docs, rounds)
    if kind == "restem":
        problems += _check_restem(raw, agents, topo, n_docs, source)
    if kind == "skills":
        problems += _check_tasks(raw, source)
    sharing = _section(raw, "sharing", SharingSection)
    if sharing:  # sharing.content: oracle needs facts (not SQuAD); shuffled excludes some schedulers
        problems += [
            Problem(key, msg)
            for key, msg in validate_content(
                sharing.content,
                world_has_facts=world.kind != "squad" if world else None,
                scheduler=sched.kind if sched else None,
            )
        ]
    problems += _check_forgetting(raw, kind, agents, sharing)
    problems += _check_execution(_section(raw, "execution", ExecutionSection), kind, n)
    model, inner = _section(raw, "model", ModelSection), _section(raw, "inner_loop", InnerLoopSection)
    if model and inner and n and n > 1 and inner.batching == "together" and model.lora.dropout > 0:
        problems.append(
            Problem(
                "inner_loop.batching",
                (
                    "'together' trains in eval mode (peft's mixed-adapter batches), where LoRA dropout is off: "
                    f"set model.lora.dropout: 0 (it is {model.lora.dropout}) or inner_loop.batching: sequential"
                ),
            )
        )
    execution = raw.get("execution")
    if model and not (isinstance(execution, dict) and execution.get("kind") == "ray"):  # Ray: the workers' device
        problems += check_device(model.device)
    tracking = _section(raw, "tracking", TrackingSection)
    if tracking:  # the store and the run directories can be written (tried, and left as they were)
        problems += check_tracking(tracking)
    # the model is here and has the LoRA targets; the run fits `limits` (sized once all else holds)
    problems += scenario_checks(raw, model, source, limits=not problems)
    return problems


def _check_tasks(raw: dict, source: str | Path | None) -> list[Problem]:
    """kind: skills — the ARC files load (file, task and key named), generated tasks can be made with
    the knobs given, and every family keeps a training task and a held-out one."""
    tasks = _section(raw, "tasks", TasksSection)
    if tasks is None:
        return []
    if tasks.kind == "arc":
        try:
            loaded = load_arc(
                resolve_relative(tasks.path, source),
                resolve_relative(tasks.solutions, source) if tasks.solutions else None,
            )
        except DataError as e:
            return [
                Problem(
                    "tasks.solutions"
                    if tasks.solutions and str(e).startswith(str(resolve_relative(tasks.solutions, source)))
                    else "tasks.path",
                    str(e),
                )
            ]
        if len(loaded) < 2:
            return [
                Problem("tasks.path", f"{len(loaded)} task: the table needs training and held-out tasks (2 or more)")
            ]
        return []
    seed = tasks.seed if tasks.seed is not None else raw.get("seed", 0) if isinstance(raw.get("seed", 0), int) else 0
    shape = TaskShape(
        width=tuple(tasks.width),
        height=tuple(tasks.height),
        colours=tasks.colours,
        demonstrations=tasks.demonstrations,
        tests=tasks.tests,
    )
    for family in tasks.families:
        try:
            generate_task(family, 0, seed, shape)
        except ValueError as e:
            return [Problem("tasks", f"{e}: widen width/height or use fewer demonstrations and tests")]
    return []


def _check_forgetting(
    raw: dict, kind: str, agents: AgentsSection | None, sharing: SharingSection | None
) -> list[Problem]:
    """Mitigations, trust and adversaries belong to the round loop (kind: simulation); adapters are
    gossip-averaged (sharing.mode: weights) only when they have one shape: one LoRA rank for every
    agent, and no combined adapter (it grows its rank)."""
    problems: list[Problem] = []
    entries = {"mitigations": raw.get("mitigations") if isinstance(raw.get("mitigations"), list) else []}
    for i, o in agents.overrides.items() if agents else []:
        if o.mitigations is not None:
            entries[f"agents.overrides.{i}.mitigations"] = [e.model_dump() for e in o.mitigations]
        if o.role == "adversary" and kind != "simulation":
            problems.append(
                Problem(f"agents.overrides.{i}.role", f"adversaries take part in kind: simulation only, not {kind}")
            )
    if kind != "simulation":
        for key, value in entries.items():
            if value:
                problems.append(Problem(key, f"mitigations apply to kind: simulation only, not {kind}"))
        if isinstance(raw.get("trust"), dict) and raw["trust"].get("learn"):
            problems.append(Problem("trust.learn", f"trust is learnt in kind: simulation only, not {kind}"))
    elif sharing and sharing.mode == "weights":
        for key, value in entries.items():
            for j, e in enumerate(value or []):
                if isinstance(e, dict) and e.get("kind") == "combine":
                    problems.append(
                        Problem(
                            f"{key}.{j}.kind",
                            (
                                "'combine' grows each adapter's rank round by round, and sharing.mode: weights "
                                "averages adapters of one shape; use sharing.mode: notes or another mitigation"
                            ),
                        )
                    )
        model = _section(raw, "model", ModelSection)
        for i, o in agents.overrides.items() if agents and model else []:
            if o.rank is not None and o.rank != model.lora.rank:
                problems.append(
                    Problem(
                        f"agents.overrides.{i}.rank",
                        (
                            f"{o.rank} differs from model.lora.rank ({model.lora.rank}), and sharing.mode: weights averages "
                            "adapters of one shape; give every agent the same rank or use sharing.mode: notes"
                        ),
                    )
                )
    return problems


def _check_execution(execution: ExecutionSection | None, kind: str, n: int | None) -> list[Problem]:
    """Sharding is the round loop's (kind: simulation), at most one worker per agent, and Ray must be
    installed for kind ray (checked here, before any model loads)."""
    if execution is None or (execution.kind == "local" and execution.workers == 1):
        return []
    problems = []
    if kind != "simulation":
        problems.append(
            Problem("execution", f"sharding agents over workers applies to kind: simulation only, not {kind}")
        )
    elif n is not None and execution.workers > n:
        problems.append(
            Problem("execution.workers", f"{execution.workers} workers for {n} agent(s): at most one per agent")
        )
    if execution.kind == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            problems.append(Problem("execution.kind", "Ray is not installed; pip install 'multiseal[ray]'"))
    return problems


def _check_arrivals(arrivals: ArrivalsSection, n: int, n_docs: int, rounds: int) -> list[Problem]:
    """The schedule fits the world, by arithmetic; a table's entries are resolved against the world's
    ids with the schedule cut to the rounds and agents the table names (never rounds x agents)."""
    try:
        table = arrivals.table or None
        needed = documents_needed(
            arrivals.kind,
            n,
            rounds,
            docs_per_round=arrivals.docs_per_round,
            copies=arrivals.copies,
            table=table,
            source=arrivals.source,
        )
        if needed > n_docs:
            raise ValueError(f"arrival schedule needs {needed} documents but the world has {n_docs}")
        if table:
            ids = [f"d{i:03d}" for i in range(n_docs)]
            build_arrivals(
                "table", 1 + max(e["agent"] for e in table), ids, 1 + max(e["round"] for e in table), table=table
            )
    except ValueError as e:
        return [Problem("arrivals", f"{e} (world.documents: {n_docs})")]
    return []


def _check_restem(
    raw: dict, agents: AgentsSection | None, topo: TopologySection | None, n_docs: int | None, source: str | Path | None
) -> list[Problem]:
    """ReST-EM needs keep <= candidates, enough documents for a disjoint split, note-writing styles
    and, for a neighbour reward, out-neighbours for every agent."""
    restem = _section(raw, "restem", RestemSection)
    self_edit = _section(raw, "self_edit", SelfEditSection)
    if restem is None:
        return []
    problems: list[Problem] = []
    if restem.keep > restem.candidates:
        problems.append(Problem("restem.keep", f"must be <= restem.candidates ({restem.candidates})"))
    if self_edit and self_edit.writer == "base":
        problems.append(Problem("self_edit.writer", "ReST-EM trains each agent's writer; 'base' would never use it"))
    if self_edit and self_edit.temperature == 0 and max(restem.candidates, restem.eval_samples) > 1:
        problems.append(
            Problem(
                "self_edit.temperature",
                (
                    "ReST-EM samples several notes per document (restem.candidates, restem.eval_samples); written "
                    "greedily (temperature 0) they are identical"
                ),
            )
        )
    if n_docs is not None and restem.train_documents + restem.eval_documents > n_docs:
        problems.append(
            Problem(
                "restem.eval_documents",
                (
                    f"train_documents ({restem.train_documents}) + eval_documents ({restem.eval_documents}) "
                    f"must be <= the world's documents ({n_docs})"
                ),
            )
        )
    styles = {"self_edit.style": self_edit.style} if self_edit else {}
    if agents:
        styles.update({f"agents.overrides.{i}.style": o.style for i, o in agents.overrides.items() if o.style})
    for key, style in styles.items():
        if style in STYLES and STYLES.get(style).instruction is None:
            problems.append(Problem(key, f"'{style}' writes no self-edit; kind 'restem' needs a style that does"))
    if restem.reward != "self" and agents and topo:
        params = topology_params(topo.params, source)
        try:
            g = build_topology(
                topo.kind,
                agents.count,
                directed=topo.directed,
                params=params,
                weights=topo.weights,
                seed=raw.get("seed", 0) if isinstance(raw.get("seed", 0), int) else 0,
            )
        except (ValueError, OSError):
            return problems  # the topology's own problems are reported by its check
        lonely = [a for a in range(agents.count) if g.out_degree(a) == 0]
        if lonely:
            problems.append(
                Problem(
                    "restem.reward",
                    (
                        f"'{restem.reward}' rewards notes by their readers, but agents {lonely} have no out-neighbours "
                        f"in topology '{topo.kind}' with {agents.count} agent(s)"
                    ),
                )
            )
    return problems


def scenario_checks(
    raw: dict, model: ModelSection | None, source: str | Path | None, limits: bool = True
) -> list[Problem]:
    """The model's checks (:mod:`multiseal.config.checks`) when its section is valid, and the limits'
    (:mod:`multiseal.config.estimate`, when ``limits``) once the whole scenario is (its other problems
    come from the schema and the cross-section checks)."""
    problems = check_model(model) if model is not None else []
    if problems or not limits:
        return problems
    try:
        sc = Scenario.model_validate(raw)
    except Exception:  # noqa: BLE001 - the schema's own pass reports it
        return problems
    try:
        return problems + check_limits(sc, source)
    except (InputError, OSError, ValueError, KeyError):  # an unreadable data file: reported by its own check
        return problems
