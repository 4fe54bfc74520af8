"""Test-time training: a configuration builds a training set from a task's demonstrations, a fresh
LoRA adapter trains on it, and the model answers the task's test inputs greedily with it.

The k configurations tried on one task (or on many tasks) train **together** in shared batches
(:func:`multiseal.learning.train.train_jobs` with ``together=True``: one adapter per row, each its
own loss and AdamW, equal to training them one after another up to rounding), and every adapter's
answers come from one batched generation. An invalid configuration (None) trains nothing and fails.
``in_context`` answers with the base model and no training: SEAL's in-context baseline.

Prompts are formatted as the model's generation prompt (the chat template of an instruct model),
in training and in answering alike, so the adapter learns the exact text it is asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from multiseal.learning.augment import training_pairs
from multiseal.learning.grid_text import parse_grid, query_text
from multiseal.learning.train import Example, Job, train_jobs
from multiseal.types import Grid, LoraSettings, SkillConfig, SkillTask


@dataclass(frozen=True)
class Attempt:
    """One configuration tried on one task: the replies to its test inputs, and which were exact."""

    task_id: str
    config: SkillConfig | None  # None: the reply was not a configuration (config_invalid)
    replies: tuple[str, ...]
    correct: tuple[bool, ...]
    trained_tokens: int = 0
    final_loss: float = float("nan")  # the training loss of the last step (nan: nothing trained)

    @property
    def solved(self) -> bool:
        """Every test output exact (ARC's criterion for a task)."""
        return bool(self.correct) and all(self.correct)


def answer_tokens(task: SkillTask) -> int:
    """Tokens allowed for an answer: the largest grid an answer can be — the demonstrations' outputs,
    and each test input grown as much as a demonstration's output outgrows its input — at two tokens a
    cell (``c `` and the line's end), and a quarter again."""

    def cells(grid: Grid) -> int:
        return len(grid) * len(grid[0])

    growth = max(cells(p.output) / cells(p.input) for p in task.train)
    need = max([cells(p.output) for p in task.train] + [growth * cells(p.input) for p in task.test])
    return int(2 * need * 1.25) + 8


def _data(model, pairs: Sequence[tuple[str, str]], config: SkillConfig, max_length: int) -> list[Example]:
    tok = model.tokenizer
    eos = tok.eos_token_id
    out = []
    for prompt, target in pairs:
        p = tok(model.prompt(prompt), add_special_tokens=False)["input_ids"]
        t = tok(target, add_special_tokens=False)["input_ids"]
        if len(p) + len(t) + 1 > max_length:
            continue  # a cut target would teach a wrong grid: the pair is left out
        out.append(Example(p + t + [eos], len(p) if config.loss == "output" else 0))
    return out


def attempt_tasks(
    model,
    tasks: Sequence[SkillTask],
    configs: Sequence[SkillConfig | None],
    lora: LoraSettings,
    *,
    batch_size: int = 1,
    max_length: int = 512,
    seed: int = 0,
    together: bool = True,
    prefix: str = "ttt",
    progress: str | None = None,
) -> list[Attempt]:
    """``configs[i]`` tried on ``tasks[i]``: adapters trained (together), test inputs answered, the
    adapters deleted again. Returns one :class:`Attempt` per pair, in order."""
    if len(tasks) != len(configs):
        raise ValueError("one configuration per task")
    jobs, names = [], {}
    try:
        for i, (task, config) in enumerate(zip(tasks, configs)):
            if config is None:
                continue
            name = f"{prefix}_{i}"
            model.add_adapter(name, lora, seed=seed + i)
            names[i] = name
            pairs = training_pairs(
                task.train,
                config.augmentations,
                leave_one_out=config.leave_one_out,
                repeat=config.repeat,
                seed=seed + i,
            )
            jobs.append(
                Job(
                    name,
                    _data(model, pairs, config, max_length),
                    config.epochs,
                    config.learning_rate,
                    batch_size,
                    seed=seed + i,
                )
            )
        trained = [j for j in jobs if j.data]  # a job with no example (every pair too long) trains nothing
        stats = dict(
            zip(
                (j.adapter for j in trained),
                train_jobs(model, trained, together=together, progress=progress) if trained else [],
            )
        )
        queries = [(i, k) for i in names for k in range(len(tasks[i].test))]
        replies = _answer(model, [(tasks[i], tasks[i].test[k].input, names[i]) for i, k in queries], seed)
        by_task: dict[int, list[str]] = {}
        for (i, _), reply in zip(queries, replies):
            by_task.setdefault(i, []).append(reply)
    finally:
        for name in names.values():
            model.delete_adapter(name)
    out = []
    for i, (task, config) in enumerate(zip(tasks, configs)):
        got = tuple(by_task.get(i, ()))
        correct = tuple(parse_grid(r) == p.output for r, p in zip(got, task.test)) if got else (False,) * len(task.test)
        st = stats.get(names.get(i))
        out.append(
            Attempt(task.task_id, config, got, correct, st.tokens if st else 0, st.loss_last if st else float("nan"))
        )
    return out


def in_context(model, tasks: Sequence[SkillTask], seed: int = 0) -> list[Attempt]:
    """The base model answers each test input from the demonstrations in its prompt, untrained."""
    queries = [(t, p.input, None) for t in tasks for p in t.test]
    replies = iter(_answer(model, queries, seed))
    out = []
    for t in tasks:
        got = tuple(next(replies) for _ in t.test)
        out.append(Attempt(t.task_id, None, got, tuple(parse_grid(r) == p.output for r, p in zip(got, t.test))))
    return out


def _answer(model, queries: Sequence[tuple[SkillTask, Grid, str | None]], seed: int) -> list[str]:
    if not queries:
        return []
    prompts = [model.prompt(query_text(task.train, grid)) for task, grid, _ in queries]
    budget = max(answer_tokens(task) for task, _, _ in queries)
    return model.generate(prompts, [a for _, _, a in queries], max_new_tokens=budget, temperature=0.0, seed=seed)
