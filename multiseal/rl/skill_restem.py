"""ReST-EM over configurations: SEAL's few-shot outer loop, and the arms of its table.

One iteration (SEAL ``few-shot/self-edit.py`` then ``BC-self-edit.py``): the writer samples
``candidates`` configurations per training task; each valid one is tried by test-time training
(:func:`multiseal.learning.ttt.attempt_tasks`, all of an iteration's candidates trained together);
the reward is 1 when the trained adapter solves the task's held-out test pair(s) exactly, else 0 (an
invalid configuration earns 0 and trains nothing); the writer is then fine-tuned on (prompt → kept
configuration) for every rewarded candidate (behaviour cloning of the successes, ReST-EM's M-step).
The writer is its own LoRA adapter, created as the base model (LoRA's B starts at 0), so iteration
0 is the untrained model's self-edits.

:func:`evaluate_arm` scores one arm on held-out tasks: ``in-context`` (the base model, no
training), ``random`` (a valid configuration drawn uniformly from the menu), ``self-edit`` (the
writer's own configuration, one sample per task; after ReST-EM, the trained writer's), ``oracle``
(every configuration of ``SkillSettings.oracle`` tried — by default
:data:`multiseal.learning.skill_config.ORACLE_GRID` — solved if one solves: the best configuration in
hindsight on that grid).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from multiseal.learning.skill_config import (
    ORACLE_GRID,
    config_text,
    random_config,
    self_edit_prompt,
    write_configs,
)
from multiseal.learning.train import finetune_on_completions
from multiseal.learning.ttt import Attempt, attempt_tasks, in_context
from multiseal.types import LoraSettings, SkillConfig, SkillTask, TrainSettings

ARMS = ("in-context", "random", "self-edit", "oracle")


@dataclass(frozen=True)
class SkillSettings:
    """How configurations are written, tried and learnt (typed from the scenario by the builders)."""

    lora: LoraSettings
    candidates: int = 3
    iterations: int = 1
    temperature: float = 1.0
    top_p: float = 0.95
    max_new_tokens: int = 64
    ttt_batch_size: int = 1
    max_length: int = 512
    writer_training: TrainSettings = TrainSettings(epochs=3, lr=3e-4, batch_size=4, max_length=1024)
    together: bool = True
    oracle: tuple[SkillConfig, ...] = ORACLE_GRID
    form: str = "keyed"  # how a configuration is written (multiseal.learning.skill_config.write_configs)


@dataclass
class ArmResult:
    """One arm on held-out tasks: per task, solved or not, and what was tried."""

    arm: str
    solved: dict[str, bool] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    invalid: int = 0
    written: int = 0

    @property
    def success(self) -> float:
        return sum(self.solved.values()) / len(self.solved) if self.solved else float("nan")

    @property
    def invalid_share(self) -> float:
        return self.invalid / self.written if self.written else float("nan")


@dataclass
class IterationRecord:
    """One ReST-EM iteration on the training tasks."""

    iteration: int
    candidates: int = 0
    invalid: int = 0
    rewarded: int = 0
    kept: list[dict] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)  # every candidate: task, reply, config, reward

    def metrics(self) -> dict[str, float]:
        n = self.candidates or 1
        return {
            "restem.candidates": self.candidates,
            "restem.config_invalid": self.invalid / n,
            "restem.reward.mean": self.rewarded / n,
            "restem.kept": len(self.kept),
        }


def menu_counts(configs: Sequence[SkillConfig | None]) -> Counter:
    """How often each menu choice appears among valid configurations (``aug.rotate90``, ``loo.true``,
    ``loss.output``, ``epochs.3``, ``lr.0.001``)."""
    out: Counter = Counter()
    for c in configs:
        if c is None:
            continue
        out.update(f"aug.{a}" for a in c.augmentations)
        out.update(
            [
                f"loo.{str(c.leave_one_out).lower()}",
                f"loss.{c.loss}",
                f"epochs.{c.epochs}",
                f"repeat.{c.repeat}",
                f"lr.{c.learning_rate:g}",
            ]
        )
    return out


def _try(
    model,
    tasks: Sequence[SkillTask],
    configs: Sequence[SkillConfig | None],
    s: SkillSettings,
    seed: int,
    progress: str | None,
) -> list[Attempt]:
    return attempt_tasks(
        model,
        tasks,
        configs,
        s.lora,
        batch_size=s.ttt_batch_size,
        max_length=s.max_length,
        seed=seed,
        together=s.together,
        progress=progress,
    )


def evaluate_arm(
    model,
    arm: str,
    tasks: Sequence[SkillTask],
    s: SkillSettings,
    *,
    writer: str | None = None,
    seed: int = 0,
    progress: bool = False,
) -> ArmResult:
    """Score ``arm`` (see the module docstring) on ``tasks``; ``writer``: the adapter that writes
    ``self-edit`` configurations (None: the base model)."""
    result = ArmResult(arm)
    bar = f"{arm}: test-time training" if progress else None
    if arm == "in-context":
        result.attempts = in_context(model, tasks, seed=seed)
    elif arm == "random":
        rng = random.Random(f"multiseal-random-config:{seed}")
        result.attempts = _try(model, tasks, [random_config(rng) for _ in tasks], s, seed, bar)
    elif arm == "self-edit":
        written = write_configs(
            model,
            list(tasks),
            k=1,
            writer=writer,
            temperature=s.temperature,
            top_p=s.top_p,
            max_new_tokens=s.max_new_tokens,
            seed=seed,
            form=s.form,
        )
        configs = [row[0][1] for row in written]
        result.written, result.invalid = len(configs), sum(c is None for c in configs)
        result.attempts = _try(model, tasks, configs, s, seed, bar)
    elif arm == "oracle":
        for i, config in enumerate(s.oracle):
            result.attempts += _try(model, tasks, [config] * len(tasks), s, seed + 1000 * i, bar)
    else:
        raise ValueError(f"unknown arm '{arm}' (arms: {', '.join(ARMS)})")
    for a in result.attempts:
        result.solved[a.task_id] = result.solved.get(a.task_id, False) or a.solved
    return result


def restem_iteration(
    model,
    writer: str,
    tasks: Sequence[SkillTask],
    s: SkillSettings,
    iteration: int,
    seed: int = 0,
    progress: bool = False,
) -> IterationRecord:
    """Sample, try, reward and keep; then fine-tune ``writer`` on the kept configurations."""
    rec = IterationRecord(iteration)
    written = write_configs(
        model,
        list(tasks),
        k=s.candidates,
        writer=writer,
        temperature=s.temperature,
        top_p=s.top_p,
        max_new_tokens=s.max_new_tokens,
        seed=seed + iteration,
        form=s.form,
    )
    flat = [(task, reply, config) for task, row in zip(tasks, written) for reply, config in row]
    attempts = _try(
        model,
        [t for t, _, _ in flat],
        [c for _, _, c in flat],
        s,
        seed + 7919 * iteration,
        f"iteration {iteration}: trying {len(flat)} configurations" if progress else None,
    )
    for (task, reply, config), attempt in zip(flat, attempts):
        reward = float(attempt.solved)
        rec.candidates += 1
        rec.invalid += config is None
        rec.rewarded += reward > 0
        row = {
            "iteration": iteration,
            "task_id": task.task_id,
            "family": task.family,
            "reply": reply,
            "config": config_text(config) if config else None,
            "reward": reward,
        }
        rec.rows.append(row)
        if reward > 0:
            rec.kept.append({**row, "prompt": self_edit_prompt(task)})
    if rec.kept:
        pairs = [(model.prompt(k["prompt"]), k["config"]) for k in rec.kept]
        finetune_on_completions(model, writer, pairs, s.writer_training, seed=seed + iteration)
    return rec


def run_skill_restem(
    model,
    train_tasks: Sequence[SkillTask],
    s: SkillSettings,
    *,
    writer: str = "skill_writer",
    seed: int = 0,
    progress: bool = False,
    on_iteration: Callable[[IterationRecord], None] | None = None,
) -> list[IterationRecord]:
    """``s.iterations`` iterations on ``train_tasks``; the writer adapter ``writer`` is created here
    (as the base model) and left on ``model`` for the held-out evaluation."""
    model.add_adapter(writer, s.lora, seed=seed)
    records = []
    for t in range(1, s.iterations + 1):
        rec = restem_iteration(model, writer, train_tasks, s, t, seed=seed, progress=progress)
        records.append(rec)
        if on_iteration:
            on_iteration(rec)
    return records
