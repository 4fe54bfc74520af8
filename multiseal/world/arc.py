"""Few-shot tasks in ARC's JSON format, as ARC-AGI, SEAL's subset and 1D-ARC ship them.

A task is ``{"train": [{"input": grid, "output": grid}, ...], "test": [...]}``. :func:`load_arc`
reads one file per task (its name, without ``.json``, is the task id), a folder of them, or one file
mapping task ids to tasks (ARC-AGI's ``*_challenges.json``). Where test pairs have no ``output``
(a challenges file), ``solutions`` names the file mapping each task id to its test outputs, in order
(``*_solutions.json``). Every malformed part is a :class:`~multiseal.errors.DataError` naming the
file, the task and the key (``task 007bbfd7: key 'train[2].output': row 1 has 3 cells, row 0 has 4``);
files are read within ``ARC_MAX_BYTES`` each, as every input file is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from multiseal.errors import DataError, FileReadError, MiB, read_json
from multiseal.types import GridPair, SkillTask
from multiseal.world.grids import as_grid

ARC_MAX_BYTES = 64 * MiB  # ARC-AGI's training challenges: 4 MB
MAX_FILES = 10_000  # files in a folder of tasks (ARC-AGI-2 has 1,120)


def load_arc(path: str | Path, solutions: str | Path | None = None) -> tuple[SkillTask, ...]:
    """The tasks at ``path`` (a task file, a folder of task files, or a file of id → task), sorted by
    task id; ``solutions``: test outputs for tasks whose test pairs lack them."""
    src = Path(path)
    if src.is_dir():
        files = sorted(p for p in src.glob("*.json") if p.is_file())
        if not files:
            raise DataError(src, "a folder with no .json task files")
        if len(files) > MAX_FILES:
            raise DataError(src, f"{len(files):,} task files, more than {MAX_FILES:,}")
        raw = {p.stem: (_read(p), p) for p in files}
    else:
        data = _read(src)
        if isinstance(data, dict) and ("train" in data or "test" in data):
            raw = {src.stem: (data, src)}
        elif isinstance(data, dict):
            raw = {str(k): (v, src) for k, v in data.items()}
        else:
            raise DataError(
                src,
                f"top level must be a task {{train, test}} or a mapping of task ids to tasks, "
                f"got a JSON {type(data).__name__}",
            )
    answers = _solutions(Path(solutions)) if solutions is not None else {}
    tasks = [_task(task_id, value, file, answers.get(task_id), solutions) for task_id, (value, file) in raw.items()]
    if not tasks:
        raise DataError(src, "no tasks")
    return tuple(sorted(tasks, key=lambda t: t.task_id))


def _read(path: Path) -> Any:
    try:
        return read_json(path, ARC_MAX_BYTES, "an ARC task file")
    except FileReadError as e:
        raise DataError(path, e.reason) from None


def _solutions(path: Path) -> dict[str, Any]:
    data = _read(path)
    if not isinstance(data, dict):
        raise DataError(
            path, f"a solutions file maps task ids to lists of test outputs, got a JSON {type(data).__name__}"
        )
    return {str(k): v for k, v in data.items()}


def _task(task_id: str, value: Any, file: Path, answers: Any, solutions: str | Path | None) -> SkillTask:
    def fail(key: str, message: str) -> DataError:
        return DataError(file, f"task {task_id[:40]}: key '{key}': {message}")

    if not isinstance(value, dict):
        raise DataError(
            file, f"task {task_id[:40]}: must be an object with 'train' and 'test', got a JSON {type(value).__name__}"
        )
    unknown = sorted(set(value) - {"train", "test", "name"})
    if unknown:
        raise fail(unknown[0], "unknown key; a task has 'train' and 'test'")
    parts = {}
    for split in ("train", "test"):
        pairs = value.get(split)
        if not isinstance(pairs, list) or not pairs:
            raise fail(split, "must be a non-empty list of {input, output} pairs")
        out = []
        for i, pair in enumerate(pairs):
            if not isinstance(pair, dict):
                raise fail(f"{split}[{i}]", "must be an object {input, output}")
            extra = sorted(set(pair) - {"input", "output"})
            if extra:
                raise fail(f"{split}[{i}].{extra[0]}", "unknown key; a pair has 'input' and 'output'")
            output = pair.get("output")
            if output is None and split == "test":
                if answers is None:
                    where = f"no solution for it in {solutions}" if solutions else "give the solutions file"
                    raise fail(f"test[{i}].output", f"missing ({where})")
                if not isinstance(answers, list) or i >= len(answers):
                    raise DataError(solutions, f"task {task_id[:40]}: needs {len(pairs)} test output(s)")
                output = answers[i]
            for key, grid in (("input", pair.get("input")), ("output", output)):
                if grid is None:
                    raise fail(f"{split}[{i}].{key}", "missing")
                try:
                    as_grid(grid)
                except ValueError as e:
                    raise fail(f"{split}[{i}].{key}", str(e)) from None
            out.append(GridPair(as_grid(pair["input"]), as_grid(output)))
        parts[split] = tuple(out)
    return SkillTask(task_id, parts["train"], parts["test"])
