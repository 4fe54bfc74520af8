"""A scenario file as a tree of typed, validated settings.

Every section forbids unknown keys. ``load_scenario`` reports *all* problems of a file in one
``ScenarioError``, each named by its dotted key path (``topology.params.k: must be < 4``). The rest
of multiseal receives the typed sections through builders and never reads the YAML tree.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from multiseal.errors import DataError, Problem, ScenarioError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoraSection(Section):
    rank: int = Field(32, ge=1, description="LoRA rank r (SEAL: 32)")
    alpha: float = Field(64.0, gt=0, description="LoRA alpha (SEAL: 64)")
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        min_length=1,
    )


class ModelSection(Section):
    base: str = Field("smollm2-135m", description="alias (smollm2-135m, tiny-random), HF id or local path")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    chat: bool | None = Field(None, description="use the chat template (default: when the tokenizer has one)")
    allow_download: bool = Field(False, description="let a HF id be fetched from the hub")
    threads: int | None = Field(None, ge=1, description="CPU threads for torch (default: $MULTISEAL_THREADS or torch's own)")
    lora: LoraSection = LoraSection()


class WorldSection(Section):
    kind: Literal["synthetic", "squad"] = "synthetic"
    documents: int = Field(8, ge=1, description="synthetic: number of documents")
    questions_per_doc: tuple[int, int] = (3, 6)
    composition: int = Field(0, ge=0, description="synthetic: questions that need two documents")
    path: str | None = Field(None, description="squad: JSON file, relative to the scenario file")
    seed: int | None = Field(None, description="world seed (default: the scenario seed)")

    @model_validator(mode="after")
    def _check(self) -> "WorldSection":
        lo, hi = self.questions_per_doc
        if not 1 <= lo <= hi <= 6:
            raise ValueError("questions_per_doc must be [low, high] with 1 <= low <= high <= 6")
        if self.kind == "squad" and not self.path:
            raise ValueError("path is required when kind is 'squad'")
        return self


class AgentOverride(Section):
    style: str | None = None
    lr: float | None = Field(None, gt=0)
    epochs: int | None = Field(None, ge=0)
    rank: int | None = Field(None, ge=1)
    alpha: float | None = Field(None, gt=0)


class AgentsSection(Section):
    count: int = Field(1, ge=1, le=256)
    overrides: dict[int, AgentOverride] = Field(default_factory=dict)


class ArrivalsSection(Section):
    kind: Literal["disjoint", "overlapping", "broadcast", "table"] = "disjoint"
    docs_per_round: int = Field(1, ge=1)
    copies: int = Field(2, ge=1)
    source: int = Field(0, ge=0)
    table: list[dict[str, Any]] = Field(default_factory=list)


class SelfEditSection(Section):
    style: str = "implications"
    candidates: int = Field(1, ge=1, description="k samples per document (each becomes a note)")
    temperature: float = Field(1.0, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    max_new_tokens: int = Field(128, ge=1)

    @field_validator("style")
    @classmethod
    def _style(cls, v: str) -> str:
        return _known_style(v)


class InnerLoopSection(Section):
    epochs: int = Field(10, ge=0)
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(1, ge=1, description="SEAL: 1; larger batches are length-bucketed but take fewer optimiser steps")
    max_length: int = Field(256, ge=8)


class EvaluationSection(Section):
    max_new_tokens: int = Field(24, ge=1)
    batch_size: int = Field(64, ge=1)
    headline: Literal["strict", "em", "f1"] = "strict"
    retention_probe: int = Field(8, ge=0, description="max probe questions the base answers right")


class TopologySection(Section):
    kind: str = "complete"
    directed: bool = False
    params: dict[str, Any] = Field(default_factory=dict)
    weights: dict[str, Any] | None = None
    rewire_every: int | None = Field(None, ge=1)
    schedule: list[list[list[float]]] | None = Field(None, description="explicit per-round edge lists")


class SharingSection(Section):
    mode: Literal["notes", "weights", "none"] = "notes"
    delay: int = Field(0, ge=0, description="rounds a note spends on an edge")
    loss: float = Field(0.0, ge=0, le=1, description="probability a note is dropped on an edge")
    relay: bool = False
    max_hops: int | None = Field(None, ge=1)
    mixing: Literal["uniform", "weighted"] = "uniform"


class SchedulerSection(Section):
    kind: str = "synchronous"
    params: dict[str, Any] = Field(default_factory=dict)


class ReplaySection(Section):
    fraction: float = Field(0.0, ge=0, le=1, description="share of earlier training sequences replayed")


class TrackingSection(Section):
    uri: str | None = Field(None, description="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    experiment: str = "multiseal"
    run_name: str | None = None


class ExperimentSection(Section):
    """Single-agent knowledge incorporation (SEAL's table): conditions × documents × seeds."""

    conditions: list[str] = Field(
        default_factory=lambda: ["passage-only", "implications", "implications-long", "rewrite", "self-qa"],
        min_length=1,
    )
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)

    @field_validator("conditions")
    @classmethod
    def _styles(cls, v: list[str]) -> list[str]:
        return [_known_style(s) for s in v]


class RestemSection(Section):
    """ReST-EM outer loop (kind: restem): agents learn to write notes that earn a reward."""

    iterations: int = Field(2, ge=1, description="outer-loop iterations after the iteration-0 evaluation")
    candidates: int = Field(3, ge=1, description="self-edits sampled per (agent, training document)")
    keep: int = Field(1, ge=1, description="best candidates with positive reward kept per (agent, document)")
    reward: Literal["self", "neighbours", "mixed"] = "self"
    mix_weight: float = Field(0.5, ge=0, le=1, description="mixed: weight of the author's own gain")
    policy: Literal["separate", "knowledge"] = Field(
        "separate", description="where the writer lives: its own adapter per agent, or the knowledge adapter")
    policy_lr: float = Field(3e-4, gt=0, description="writer SFT learning rate")
    policy_epochs: int = Field(2, ge=1, description="writer SFT epochs per iteration")
    policy_batch_size: int = Field(4, ge=1)
    train_documents: int = Field(4, ge=1, description="documents the writers are trained on")
    eval_documents: int = Field(3, ge=1, description="held-out documents, disjoint from training")
    eval_samples: int = Field(1, ge=1, description="self-edits per held-out (agent, document), averaged")
    trial_batch: int = Field(16, ge=1, description="temporary adapters trained before one answering pass")
    baseline: Literal["before", "passage"] = Field(
        "before", description="gain measured over the accuracy before the update, or after the passage alone")


class Scenario(Section):
    name: str = "scenario"
    kind: Literal["simulation", "knowledge", "restem"] = "simulation"
    seed: int = 0
    rounds: int = Field(2, ge=1)
    model: ModelSection = ModelSection()
    world: WorldSection = WorldSection()
    agents: AgentsSection = AgentsSection()
    arrivals: ArrivalsSection = ArrivalsSection()
    self_edit: SelfEditSection = SelfEditSection()
    inner_loop: InnerLoopSection = InnerLoopSection()
    evaluation: EvaluationSection = EvaluationSection()
    topology: TopologySection = TopologySection()
    sharing: SharingSection = SharingSection()
    scheduler: SchedulerSection = SchedulerSection()
    replay: ReplaySection = ReplaySection()
    tracking: TrackingSection = TrackingSection()
    experiment: ExperimentSection = ExperimentSection()
    restem: RestemSection = RestemSection()

    @field_validator("agents", mode="before")
    @classmethod
    def _agents(cls, v: Any) -> Any:
        """``agents: 4`` or ``agents: [{}, {style: rewrite}, ...]`` or ``agents: {count, overrides}``."""
        if isinstance(v, int) and not isinstance(v, bool):
            return {"count": v}
        if isinstance(v, list):
            return {"count": len(v), "overrides": {i: o or {} for i, o in enumerate(v)}}
        return v


def _known_style(style: str) -> str:
    from multiseal.self_edit import STYLES

    if style not in STYLES:
        raise ValueError(f"'{style}' is not one of {', '.join(STYLES.names())}")
    return style


# --------------------------------------------------------------------------- loading


def _path(loc: tuple) -> str:
    parts = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]" if parts else str(p))
        elif p in ("function-after", "function-before") or str(p).startswith(("function-", "tagged-union")):
            continue
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts)


def _problems_from(error: ValidationError) -> list[Problem]:
    out = []
    for e in error.errors():
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "literal_error":
            msg = f"{e.get('input')!r} is not one of {e['ctx']['expected']}"
        msg = msg.removeprefix("Value error, ")
        out.append(Problem(_path(e["loc"]), msg))
    return out


def read_yaml(path: str | Path) -> dict:
    """Parse a YAML mapping; a syntax error or a non-mapping is a ScenarioError naming the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ScenarioError(path, [Problem("", f"cannot read file: {e.strerror}")]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ScenarioError(path, [Problem("", f"not valid YAML{where}: {getattr(e, 'problem', e)}")]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ScenarioError(path, [Problem("", "a scenario must be a mapping of keys to values")])
    return raw


def load_scenario(path: str | Path, overrides: dict[str, Any] | None = None) -> Scenario:
    """Read, validate and cross-check a scenario file; raise ScenarioError with every problem."""
    raw = read_yaml(path)
    if overrides:
        from multiseal.overrides import apply_overrides

        raw = apply_overrides(raw, overrides, source=path)
    return validate_scenario(raw, source=path)


def validate_scenario(raw: dict, source: str | Path | None = None) -> Scenario:
    problems: list[Problem] = []
    scenario = None
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as e:
        problems += _problems_from(e)
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
    from multiseal import arrivals as arr
    from multiseal.graph import validate_topology
    from multiseal.scheduler import validate_scheduler_params

    problems: list[Problem] = []
    agents = _section(raw, "agents", AgentsSection)
    topo = _section(raw, "topology", TopologySection)
    sched = _section(raw, "scheduler", SchedulerSection)
    world = _section(raw, "world", WorldSection)
    arrivals = _section(raw, "arrivals", ArrivalsSection)
    rounds = raw.get("rounds", 2) if isinstance(raw.get("rounds", 2), int) else None
    kind = raw.get("kind", "simulation")
    n = agents.count if agents else None

    if agents:
        for i, o in agents.overrides.items():
            if not 0 <= i < agents.count:
                problems.append(Problem(f"agents.overrides.{i}", f"no such agent (agents are 0..{agents.count - 1})"))
            if o.style is not None:
                try:
                    _known_style(o.style)
                except ValueError as e:
                    problems.append(Problem(f"agents.overrides.{i}.style", str(e)))
    if topo and n:
        params = dict(topo.params)
        if "file" in params:
            params["file"] = str(resolve_relative(params["file"], source))
        for key, msg in validate_topology(topo.kind, n, params, directed=topo.directed, weights=topo.weights,
                                          rewire_every=topo.rewire_every, schedule=topo.schedule):
            problems.append(Problem(f"topology.{key}", msg))
    if sched:
        for key, msg in validate_scheduler_params(sched.kind, sched.params):
            problems.append(Problem(f"scheduler.{key}", msg))
    n_docs = None
    if world:
        if world.kind == "squad":
            path = resolve_relative(world.path, source)
            try:
                from multiseal.world import load_squad_json

                n_docs = len(load_squad_json(path).documents)
            except DataError as e:
                problems.append(Problem("world.path", str(e)))
        else:
            n_docs = world.documents
            if world.composition:
                try:
                    from multiseal.world import generate_world

                    generate_world(world.documents, world.seed if world.seed is not None else raw.get("seed", 0)
                                   if isinstance(raw.get("seed", 0), int) else 0,
                                   tuple(world.questions_per_doc), world.composition)
                except ValueError as e:
                    problems.append(Problem("world.composition", str(e)))
    if kind == "simulation" and arrivals and n and n_docs is not None and rounds:
        if arrivals.kind == "broadcast" and arrivals.source >= n:
            problems.append(Problem("arrivals.source", f"no such agent (agents are 0..{n - 1})"))
        else:
            try:
                ids = [f"d{i:03d}" for i in range(n_docs)]
                arr.build_arrivals(
                    arrivals.kind, n, ids, rounds, docs_per_round=arrivals.docs_per_round,
                    copies=arrivals.copies, source=arrivals.source, table=arrivals.table or None,
                )
            except ValueError as e:
                problems.append(Problem("arrivals", f"{e} (world.documents: {n_docs})"))
    if kind == "restem":
        problems += _check_restem(raw, agents, topo, n_docs, source)
    return problems


def _check_restem(raw: dict, agents: AgentsSection | None, topo: TopologySection | None,
                  n_docs: int | None, source: str | Path | None) -> list[Problem]:
    """ReST-EM needs keep <= candidates, enough documents for a disjoint split, note-writing styles
    and, for a neighbour reward, out-neighbours for every agent."""
    restem = _section(raw, "restem", RestemSection)
    self_edit = _section(raw, "self_edit", SelfEditSection)
    if restem is None:
        return []
    problems: list[Problem] = []
    if restem.keep > restem.candidates:
        problems.append(Problem("restem.keep", f"must be <= restem.candidates ({restem.candidates})"))
    if n_docs is not None and restem.train_documents + restem.eval_documents > n_docs:
        problems.append(Problem("restem.eval_documents", (
            f"train_documents ({restem.train_documents}) + eval_documents ({restem.eval_documents}) "
            f"must be <= the world's documents ({n_docs})")))
    styles = {"self_edit.style": self_edit.style} if self_edit else {}
    if agents:
        styles.update({f"agents.overrides.{i}.style": o.style for i, o in agents.overrides.items() if o.style})
    from multiseal.self_edit import STYLES

    for key, style in styles.items():
        if style in STYLES and STYLES.get(style).instruction is None:
            problems.append(Problem(key, f"'{style}' writes no self-edit; kind 'restem' needs a style that does"))
    if restem.reward != "self" and agents and topo:
        from multiseal.graph import build_topology

        params = dict(topo.params)
        if "file" in params:
            params["file"] = str(resolve_relative(params["file"], source))
        try:
            g = build_topology(topo.kind, agents.count, directed=topo.directed, params=params,
                               weights=topo.weights, seed=raw.get("seed", 0) if isinstance(raw.get("seed", 0), int) else 0)
        except (ValueError, OSError):
            return problems  # the topology's own problems are reported by its check
        lonely = [a for a in range(agents.count) if g.out_degree(a) == 0]
        if lonely:
            problems.append(Problem("restem.reward", (
                f"'{restem.reward}' rewards notes by their readers, but agents {lonely} have no out-neighbours "
                f"in topology '{topo.kind}' with {agents.count} agent(s)")))
    return problems


def resolve_relative(path: str | None, source: str | Path | None) -> Path:
    """A path in a scenario is relative to the scenario file's folder."""
    p = Path(path or "")
    if not p.is_absolute() and source is not None:
        candidate = Path(source).parent / p
        if candidate.exists() or not p.exists():
            return candidate
    return p


def flatten(scenario: Scenario) -> dict[str, Any]:
    """The scenario as ``{"topology.kind": "ring", ...}``, for MLflow params."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            out[prefix] = value

    walk("", scenario.model_dump(mode="json"))
    return out
