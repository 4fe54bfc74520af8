"""A scenario file as a tree of typed, validated settings.

Every section forbids unknown keys. Loading and the checks that span sections live in
:mod:`multiseal.config.load`; the rest of multiseal receives the typed sections through builders
(:mod:`multiseal.config.builders`) and never reads the YAML tree.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from multiseal.errors import FieldProblems, shown
from multiseal.learning.grading import GRADERS
from multiseal.learning.self_edit import STYLES
from multiseal.learning.skill_config import ORACLE_GRID, ConfigInvalid, skill_config
from multiseal.types import LORA_KERNELS, SkillConfig
from multiseal.world.arrivals import ARRIVALS
from multiseal.world.grid_tasks import FAMILIES

# Seeds reach numpy and torch after arithmetic (seed * 15485863 + round): keep them well inside 2**63.
SEED_MAX = 2**31 - 1
Seed = Annotated[int, Field(ge=0, le=SEED_MAX)]


class Section(BaseModel):
    """Every section: unknown keys are errors; values are not coerced (``true`` is not 1, ``"3"`` is
    not 3; an int is accepted where a float is asked); floats are finite; upper bounds keep a typo
    such as ``epochs: 1e9`` from becoming a run that never ends (raise them in the section if needed).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class LoraSection(Section):
    rank: int = Field(32, ge=1, le=4096, description="LoRA rank r (SEAL: 32)")
    alpha: float = Field(64.0, gt=0, description="LoRA alpha (SEAL: 64)")
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        min_length=1,
    )


class ModelSection(Section):
    base: str = Field("smollm2-135m", description="alias (smollm2-135m, tiny-random), HF id or local path")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    dtype: Literal["auto", "float32", "float64", "bfloat16", "float16"] = "auto"
    chat: bool | None = Field(None, description="use the chat template (default: when the tokenizer has one)")
    allow_download: bool = Field(False, description="let a HF id be fetched from the hub")
    threads: int | None = Field(
        None, ge=1, le=1024, description="CPU threads for torch (default: $MULTISEAL_THREADS or torch's own)"
    )
    lora_kernel: Literal[LORA_KERNELS] = Field(
        "grouped",
        description="how a batch mixing agents' adapters runs at inference: one grouped product per "
        "layer (grouped), or peft's mixed-adapter forward, one product per adapter (peft, the old path)",
    )
    lora: LoraSection = LoraSection()


class WorldSection(Section):
    kind: Literal["synthetic", "squad"] = "synthetic"
    documents: int = Field(8, ge=1, le=100_000, description="synthetic: number of documents")
    questions_per_doc: list[int] = Field(default_factory=lambda: [3, 6], min_length=2, max_length=2)
    composition: int = Field(0, ge=0, le=100_000, description="synthetic: questions that need two documents")
    path: str | None = Field(None, description="squad: JSON file, relative to the scenario file")
    seed: Seed | None = Field(None, description="world seed (default: the scenario seed)")

    @model_validator(mode="after")
    def _check(self) -> WorldSection:
        lo, hi = self.questions_per_doc
        if not 1 <= lo <= hi <= 6:
            raise ValueError("questions_per_doc must be [low, high] with 1 <= low <= high <= 6")
        if self.kind == "squad" and not self.path:
            raise ValueError("path is required when kind is 'squad'")
        return self


class MitigationEntry(Section):
    """One mitigation of forgetting (:mod:`multiseal.sim.mitigations`): a registered kind and its params."""

    kind: str
    params: dict[str, Any] = Field(default_factory=dict)


class AgentOverride(Section):
    style: str | None = None
    lr: float | None = Field(None, gt=0, le=1)
    epochs: int | None = Field(None, ge=0, le=10_000)
    rank: int | None = Field(None, ge=1, le=4096)
    alpha: float | None = Field(None, gt=0)
    mitigations: list[MitigationEntry] | None = Field(
        None, description="this agent's mitigations, instead of the scenario's (an empty list: none)"
    )
    role: Literal["honest", "adversary"] = Field(
        "honest", description="adversary: its notes plant false values (or carry off-topic noise)"
    )
    rate: float | None = Field(None, gt=0, le=1, description="adversary: share of each document's facts stated falsely")
    attack: Literal["false_values", "noise"] | None = Field(
        None, description="adversary: false_values (synthetic worlds) or noise (off-topic notes)"
    )

    @model_validator(mode="after")
    def _adversary(self) -> AgentOverride:
        if self.role != "adversary" and (self.rate is not None or self.attack is not None):
            raise ValueError("rate and attack apply to role: adversary only")
        return self


class AgentsSection(Section):
    count: int = Field(1, ge=1, le=256)
    overrides: dict[int, AgentOverride] = Field(default_factory=dict, strict=False)  # keys may come from --set as "1"


class ArrivalsSection(Section):
    kind: str = Field("disjoint", description="a registered arrival schedule (multiseal.world.arrivals.ARRIVALS)")
    docs_per_round: int = Field(1, ge=1, le=10_000)
    copies: int = Field(2, ge=1, le=256)
    source: int = Field(0, ge=0, le=255)
    table: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        """Built-in or a plugin's (plugins load before the schema is validated)."""
        if v not in ARRIVALS:
            raise ValueError(f"{shown(v)} is not one of {', '.join(ARRIVALS.names())}")
        return v


class SelfEditSection(Section):
    style: str = "implications"
    candidates: int = Field(1, ge=1, le=64, description="k samples per document (each becomes a note)")
    temperature: float = Field(1.0, ge=0, le=10)
    top_p: float = Field(0.95, gt=0, le=1)
    max_new_tokens: int = Field(128, ge=1, le=8192)
    writer: Literal["adapter", "base"] = Field(
        "adapter",
        description="who writes an agent's notes: its own adapted model, or the shared base model "
        "(as in SEAL's inner loop, where the writer is never the model its notes updated)",
    )

    @field_validator("style")
    @classmethod
    def _style(cls, v: str) -> str:
        return _known_style(v)

    @model_validator(mode="after")
    def _distinct(self) -> SelfEditSection:
        if self.candidates > 1 and self.temperature == 0:
            raise ValueError(
                f"candidates: {self.candidates} notes written greedily (temperature 0) are identical; "
                "sample them (temperature > 0) or write candidates: 1"
            )
        return self


class InnerLoopSection(Section):
    epochs: int = Field(10, ge=0, le=10_000)
    lr: float = Field(1e-3, gt=0, le=1)
    batch_size: int = Field(
        1, ge=1, le=4096, description="SEAL: 1; larger batches are length-bucketed but take fewer optimiser steps"
    )
    max_length: int = Field(256, ge=8, le=131_072)
    batching: Literal["together", "sequential"] = Field(
        "together",
        description="together: the round's adapting agents share batches (one forward pass, one "
        "adapter per row, each agent its own loss and optimiser); sequential: one agent after another",
    )
    rows_per_pass: int = Field(
        64,
        ge=1,
        le=65_536,
        description="together: the most sequences in one forward "
        "pass; a larger step runs as several passes (bounds the memory of the logits)",
    )


class EvaluationSection(Section):
    max_new_tokens: int = Field(24, ge=1, le=8192)
    batch_size: int = Field(64, ge=1, le=65_536)
    headline: str = Field(
        "strict", description="the grader (multiseal.learning.grading.GRADERS) of the headline accuracy"
    )
    retention_probe: int = Field(8, ge=0, le=10_000, description="max probe questions the base answers right")
    drift_passages: int = Field(
        8,
        ge=0,
        le=300,
        description=(
            "general-text passages on which each changed agent's perplexity ratio and KL to the base are "
            "measured every round (0: off)"
        ),
    )
    drift_length: int = Field(64, ge=8, le=4096, description="tokens per general-text passage")
    sample_documents: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description=(
            "the evaluation budget: each changed agent answers about the documents it holds, received or was "
            "reached by, plus this many others (stratified by introduction and graph distance); the final "
            "round in full. None: every document every round"
        ),
    )

    @field_validator("headline")
    @classmethod
    def _grader(cls, v: str) -> str:
        if v not in GRADERS:
            raise ValueError(f"{shown(v)} is not one of {', '.join(GRADERS.names())}")
        return v


class TopologySection(Section):
    kind: str = "complete"
    directed: bool = False
    params: dict[str, Any] = Field(default_factory=dict)
    weights: dict[str, Any] | None = None
    rewire_every: int | None = Field(None, ge=1, le=1_000_000)
    schedule: list[list[list[float]]] | None = Field(None, description="explicit per-round edge lists")


class SharingSection(Section):
    mode: Literal["notes", "weights", "none"] = "notes"
    delay: int = Field(0, ge=0, le=1_000_000, description="rounds a note spends on an edge")
    loss: float = Field(0.0, ge=0, le=1, description="probability a note is dropped on an edge")
    relay: bool = Field(False, description="forward received notes unchanged to one's own out-neighbours")
    retell: bool = Field(
        False,
        description="an agent that adapted on notes about a document it does not hold writes its own note "
        "about it from memory (closed book, its adapted model) and sends it on along its out-edges",
    )
    max_hops: int | None = Field(None, ge=1, le=1_000_000, description="edges a relayed or retold note may travel")
    mixing: Literal["uniform", "weighted"] = "uniform"
    content: Literal["notes", "passage", "oracle", "shuffled"] = Field(
        "notes",
        description="what a note carries: self-edits, the passage, the gold facts (synthetic worlds), "
        "or distractor text of the same size (controls, docs/controls.md)",
    )

    @model_validator(mode="after")
    def _onward(self) -> SharingSection:
        """Notes go on by forwarding or by retelling, not both; retelling needs notes to travel and a
        note about the document (the shuffled control sends distractors instead)."""
        if not self.retell:
            return self
        if self.relay:
            raise FieldProblems(
                (
                    "retell",
                    "true together with relay: true; choose one way for notes to go on: relay forwards "
                    "the notes unchanged, retell writes a new note from memory",
                )
            )
        if self.mode == "none":
            raise FieldProblems(
                ("retell", "true with sharing.mode: none, which sends no note; use sharing.mode: notes")
            )
        if self.content == "shuffled":
            raise FieldProblems(
                (
                    "retell",
                    "true with content: shuffled, whose agents learn distractor text and have nothing of the "
                    "document to retell; use content: notes, passage or oracle",
                )
            )
        return self

    @model_validator(mode="after")
    def _used(self) -> SharingSection:
        """In weights mode no note travels (adapters are averaged): a setting of notes on the move
        would be silently ignored, so it is an error."""
        if self.mode != "weights":
            return self
        ignored = [
            (k, getattr(self, k))
            for k, default in (("delay", 0), ("loss", 0.0), ("relay", False), ("retell", False), ("max_hops", None))
            if getattr(self, k) != default
        ]
        if self.content == "shuffled":  # passage and oracle still write the agents' own notes
            ignored.append(("content", self.content))
        if ignored:
            raise FieldProblems(
                *[
                    (
                        k,
                        f"{str(v).lower() if isinstance(v, bool) else shown(v)} applies to notes on "
                        "the move, and sharing.mode: weights sends none (it averages adapters); "
                        "remove it or use sharing.mode: notes",
                    )
                    for k, v in ignored
                ]
            )
        return self


class SchedulerSection(Section):
    kind: str = "synchronous"
    params: dict[str, Any] = Field(default_factory=dict)


class ReplaySection(Section):
    fraction: float = Field(0.0, ge=0, le=1, description="share of earlier training sequences replayed")


class TrustSection(Section):
    """Trust learnt from observed usefulness: after an agent adapts on others' notes, the change of its
    accuracy on the documents it already held moves its trust in each of their authors."""

    learn: bool = False
    rate: float = Field(1.0, gt=0, le=100, description="trust += rate x (accuracy change on held documents)")
    floor: float = Field(0.0, ge=0, le=1, description="the lowest trust")
    exclude_below: float | None = Field(None, gt=0, le=1, description="notes from authors trusted less are discarded")


class WorkerResources(Section):
    cpus: float = Field(1.0, ge=0, le=4096, description="CPU cores each worker reserves (its torch threads)")
    gpus: float = Field(0.0, ge=0, le=64, description="GPUs each worker reserves (a fraction shares one)")


class ExecutionSection(Section):
    """Where the population runs: this process (``local``), or its agents sharded over Ray actors (``ray``),
    each loading the base once and owning a block of agents (docs/cluster.md). ``workers`` groups of agents
    are batched apart in both, so a Ray run equals the local run with the same ``workers`` exactly."""

    kind: Literal["local", "ray"] = "local"
    workers: int = Field(1, ge=1, le=4096, description="groups of agents; with kind ray, one Ray actor each")
    address: str | None = Field(None, description="the Ray cluster (default: $RAY_ADDRESS, else a local instance)")
    resources_per_worker: WorkerResources = WorkerResources()


TRACKING_SCHEMES = ("sqlite", "file", "http", "https", "postgresql", "mysql", "mssql", "databricks")


class TrackingSection(Section):
    uri: str | None = Field(
        None, description="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)"
    )

    @field_validator("uri")
    @classmethod
    def _scheme(cls, uri: str | None) -> str | None:
        """A store MLflow can open: a known scheme, or a plain folder path (a file store)."""
        if uri is not None and "://" in uri:
            scheme = uri.split("://", 1)[0].split("+", 1)[0].lower()
            if scheme not in TRACKING_SCHEMES:
                raise ValueError(
                    f"'{uri}': the scheme '{scheme}' is not one MLflow can track to "
                    f"({', '.join(TRACKING_SCHEMES)}; or a folder path)"
                )
        return uri

    experiment: str = Field("multiseal", description="the MLflow experiment; also a folder under run_dir")

    @field_validator("experiment")
    @classmethod
    def _experiment(cls, name: str) -> str:
        return experiment_name(name)

    run_name: str | None = None
    run_dir: str | None = Field(None, description="folder of run directories (default: $MULTISEAL_RUNS or ./runs)")
    keep_checkpoints: int | None = Field(
        None, ge=1, description="keep only the newest K round checkpoints (default: all)"
    )


class LimitsSection(Section):
    """Upper bounds on a run's estimated cost (:func:`multiseal.config.estimate.estimate`): a scenario
    above them fails validation, before any model loads."""

    max_hours: float = Field(72.0, gt=0, description="estimated run time, hours")
    max_memory_gb: float | None = Field(
        None, gt=0, description="estimated peak memory, GB (default: 90% of this machine's RAM; of the GPU's on CUDA)"
    )


class ExperimentSection(Section):
    """Single-agent knowledge incorporation (SEAL's table): conditions × documents × seeds."""

    conditions: list[str] = Field(
        default_factory=lambda: ["passage-only", "implications", "implications-long", "rewrite", "self-qa"],
        min_length=1,
    )
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1, max_length=10_000)

    @field_validator("conditions")
    @classmethod
    def _styles(cls, v: list[str]) -> list[str]:
        return [_known_style(s) for s in v]


class RestemSection(Section):
    """ReST-EM outer loop (kind: restem): agents learn to write notes that earn a reward."""

    iterations: int = Field(2, ge=1, le=10_000, description="outer-loop iterations after the iteration-0 evaluation")
    candidates: int = Field(3, ge=1, le=64, description="self-edits sampled per (agent, training document)")
    keep: int = Field(1, ge=1, description="best candidates with positive reward kept per (agent, document)")
    reward: Literal["self", "neighbours", "mixed"] = "self"
    mix_weight: float = Field(0.5, ge=0, le=1, description="mixed: weight of the author's own gain")
    policy: Literal["separate", "knowledge"] = Field(
        "separate", description="where the writer lives: its own adapter per agent, or the knowledge adapter"
    )
    policy_lr: float = Field(3e-4, gt=0, le=1, description="writer SFT learning rate")
    policy_epochs: int = Field(2, ge=1, le=10_000, description="writer SFT epochs per iteration")
    policy_batch_size: int = Field(4, ge=1, le=4096)
    train_documents: int = Field(4, ge=1, le=100_000, description="documents the writers are trained on")
    eval_documents: int = Field(3, ge=1, le=100_000, description="held-out documents, disjoint from training")
    eval_samples: int = Field(1, ge=1, le=64, description="self-edits per held-out (agent, document), averaged")
    trial_batch: int = Field(16, ge=1, le=4096, description="temporary adapters trained before one answering pass")
    baseline: Literal["before", "passage"] = Field(
        "before", description="gain measured over the accuracy before the update, or after the passage alone"
    )


class TasksSection(Section):
    """kind: skills — few-shot grid tasks: generated (every family by default) or ARC JSON files."""

    kind: Literal["generated", "arc"] = "generated"
    families: list[str] = Field(
        default_factory=lambda: list(FAMILIES),
        min_length=1,
        description="generated: task families (multiseal.world.grid_tasks)",
    )
    per_family: int = Field(4, ge=2, le=1000, description="generated: tasks per family")
    width: list[int] = Field(default_factory=lambda: [3, 5], min_length=2, max_length=2)
    height: list[int] = Field(default_factory=lambda: [2, 3], min_length=2, max_length=2)
    colours: int = Field(2, ge=1, le=9, description="generated: colours per task besides the background 0")
    demonstrations: int = Field(3, ge=1, le=10, description="generated: demonstration pairs per task")
    tests: int = Field(1, ge=1, le=10, description="generated: held-out test pairs per task")
    path: str | None = Field(None, description="arc: a task file, a folder of them, or a file of id -> task")
    solutions: str | None = Field(None, description="arc: test outputs by task id, where the tasks lack them")
    held_out: float = Field(0.5, gt=0, lt=1, description="share of each family's tasks held out for the table")
    seed: Seed | None = Field(None, description="task seed (default: the scenario seed)")

    @field_validator("families")
    @classmethod
    def _families(cls, v: list[str]) -> list[str]:
        bad = [f for f in v if f not in FAMILIES]
        if bad:
            raise ValueError(f"{shown(bad[0])} is not one of {', '.join(FAMILIES)}")
        if len(set(v)) < len(v):
            raise ValueError("a family is listed twice")
        return v

    @model_validator(mode="after")
    def _check(self) -> TasksSection:
        for name in ("width", "height"):
            lo, hi = getattr(self, name)
            if not 2 <= lo <= hi <= 12:
                raise FieldProblems((name, f"must be [lo, hi] with 2 <= lo <= hi <= 12, got [{lo}, {hi}]"))
        if self.kind == "arc" and not self.path:
            raise FieldProblems(("path", "is required when kind is 'arc'"))
        return self


class SkillConfigSection(Section):
    """A test-time training configuration (the self-edit's six keys; see docs/skills.md)."""

    augmentations: list[str] = Field(
        default_factory=lambda: ["identity"],
        min_length=1,
        description="names from multiseal.learning.augment.AUGMENTATIONS",
    )
    leave_one_out: bool = True
    repeat: int = 1
    learning_rate: float = 1e-3
    epochs: int = 3
    loss: Literal["output", "all"] = "output"

    @model_validator(mode="after")
    def _check(self) -> SkillConfigSection:
        try:
            skill_config(**self.model_dump())
        except ConfigInvalid as e:
            key, _, why = str(e).partition(": ")
            raise FieldProblems((key, why)) from None
        return self


class SkillsSection(Section):
    """kind: skills — SEAL's few-shot table: arms on held-out tasks, ReST-EM over configurations."""

    arms: list[Literal["in-context", "random", "self-edit", "oracle"]] = Field(
        default_factory=lambda: ["in-context", "random", "self-edit", "oracle"],
        min_length=1,
        description="what is scored on the held-out tasks (self-edit: before and after ReST-EM)",
    )
    reference: Literal["in-context", "random", "self-edit", "oracle"] = Field(
        "self-edit", description="the arm every other is paired with (by task)"
    )
    iterations: int = Field(1, ge=0, le=10, description="ReST-EM iterations on the training tasks")
    candidates: int = Field(3, ge=1, le=64, description="configurations sampled per training task and iteration")
    writer_lr: float = Field(3e-4, gt=0, le=1, description="the writer's fine-tuning on kept configurations")
    writer_epochs: int = Field(3, ge=1, le=100)
    writer_batch_size: int = Field(4, ge=1, le=4096)
    batch_size: int = Field(1, ge=1, le=4096, description="test-time training batch size")
    max_length: int = Field(
        512, ge=32, le=8192, description="tokens of a test-time training example (longer: left out)"
    )
    form: Literal["keyed", "free"] = Field(
        "keyed",
        description="keyed: each line is started with its key and the model writes the value; free: "
        "the model writes the whole form (SEAL's way; a 135M model does not manage it)",
    )
    oracle: list[SkillConfigSection] | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="the oracle's grid of configurations (default: ORACLE_GRID in multiseal.learning.skill_config)",
    )

    def oracle_grid(self) -> tuple[SkillConfig, ...]:
        """The configurations the ``oracle`` arm tries: ``oracle``, or :data:`ORACLE_GRID`."""
        if self.oracle is None:
            return ORACLE_GRID
        return tuple(skill_config(**c.model_dump()) for c in self.oracle)

    @model_validator(mode="after")
    def _check(self) -> SkillsSection:
        if len(set(self.arms)) < len(self.arms):
            raise FieldProblems(("arms", "an arm is listed twice"))
        if self.reference not in self.arms:
            raise FieldProblems(("reference", f"'{self.reference}' is not among the arms ({', '.join(self.arms)})"))
        return self


class Scenario(Section):
    name: str = "scenario"
    plugins: list[str] = Field(
        default_factory=list, description="modules to import first: they register your own kinds"
    )
    kind: Literal["simulation", "knowledge", "restem", "skills"] = "simulation"
    seed: Seed = 0
    rounds: int = Field(2, ge=1, le=100_000)
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
    mitigations: list[MitigationEntry] = Field(
        default_factory=list, description="every agent's mitigations of forgetting"
    )
    trust: TrustSection = TrustSection()
    tracking: TrackingSection = TrackingSection()
    experiment: ExperimentSection = ExperimentSection()
    restem: RestemSection = RestemSection()
    tasks: TasksSection = TasksSection()
    skills: SkillsSection = SkillsSection()
    limits: LimitsSection = LimitsSection()
    execution: ExecutionSection = ExecutionSection()

    @field_validator("agents", mode="before")
    @classmethod
    def _agents(cls, v: Any) -> Any:
        """``agents: 4`` or ``agents: [{}, {style: rewrite}, ...]`` or ``agents: {count, overrides}``."""
        if isinstance(v, int) and not isinstance(v, bool):
            return {"count": v}
        if isinstance(v, list):
            return {"count": len(v), "overrides": {i: o or {} for i, o in enumerate(v)}}
        return v


def experiment_name(name: str) -> str:
    """``name`` as an experiment: it names an MLflow experiment and one folder under the run
    directories, so it is not empty, not ``.`` or ``..`` and holds no path separator."""
    if not name.strip():
        raise ValueError("must not be empty (it names the run's MLflow experiment and its folder of run directories)")
    if name.strip() in (".", "..") or any(c in name for c in "/\\\x00"):
        raise ValueError(
            f"{shown(name)} must name one folder under the run directories: not '.' or '..', and no '/' or '\\'"
        )
    return name


def _known_style(style: str) -> str:
    if style not in STYLES:
        raise ValueError(f"'{style}' is not one of {', '.join(STYLES.names())}")
    return style
