"""Few-shot skills (SEAL's second domain, issue 21): grids, the task generator and the ARC loader, the
text form of grids and its strict reading, augmentations, the configuration a self-edit writes, and
test-time training on tiny-random (candidates trained together equal them trained one by one)."""

from __future__ import annotations

import json
import math
import random

import pytest

from multiseal.errors import DataError
from multiseal.learning.augment import AUGMENTATIONS, augment_pairs, training_pairs
from multiseal.learning.grid_text import grid_text, parse_grid, query_text, solved
from multiseal.learning.skill_config import (
    EXAMPLE,
    ORACLE_GRID,
    ConfigInvalid,
    config_text,
    parse_config,
    random_config,
    self_edit_prompt,
)
from multiseal.types import GridPair, LoraSettings, SkillConfig, SkillTask
from multiseal.world import grids as g
from multiseal.world.arc import load_arc
from multiseal.world.grid_tasks import FAMILIES, TaskShape, generate_task, generate_tasks

A = ((1, 2, 3), (4, 5, 6))  # 2 × 3, every cell distinct

# ---------------------------------------------------------------- grids


def test_grid_transformations_on_a_hand_made_grid():
    assert g.transpose(A) == ((1, 4), (2, 5), (3, 6))
    assert g.rotate(A, 1) == ((4, 1), (5, 2), (6, 3))  # clockwise
    assert g.rotate(A, 2) == ((6, 5, 4), (3, 2, 1))
    assert g.flip_horizontal(A) == ((3, 2, 1), (6, 5, 4)) and g.flip_vertical(A) == ((4, 5, 6), (1, 2, 3))
    assert g.recolour(A, {1: 9, 9: 1}) == ((9, 2, 3), (4, 5, 6))
    assert g.tile(((1, 0),), across=2) == ((1, 0, 1, 0),)
    assert g.upscale(((1, 2),), 2, 2) == ((1, 1, 2, 2), (1, 1, 2, 2))


@pytest.mark.parametrize(
    "bad, why",
    [
        ([], "non-empty"),
        ([[1, 2], [3]], "row 1 has 1 cells, row 0 has 2"),
        ([[1, 10]], "cell 1: 10 is not a colour"),
        ([[True]], "not a colour"),
        ([[0] * 31], "more than 30"),
        ("12", "list of rows"),
    ],
)
def test_as_grid_refuses_what_is_not_a_grid(bad, why):
    with pytest.raises(ValueError, match=why):
        g.as_grid(bad)


# ---------------------------------------------------------------- the generator


def test_the_generator_is_seeded_and_every_family_makes_distinct_changed_pairs():
    shape = TaskShape(demonstrations=3, tests=2)
    a = generate_tasks(list(FAMILIES), 3, seed=7, shape=shape)
    assert a == generate_tasks(list(FAMILIES), 3, seed=7, shape=shape)
    assert a != generate_tasks(list(FAMILIES), 3, seed=8, shape=shape)
    assert len(FAMILIES) >= 8 and {f.dims for f in FAMILIES.values()} == {1, 2}
    for task in a:
        pairs = task.train + task.test
        assert len(task.train) == 3 and len(task.test) == 2 and task.family in FAMILIES
        assert len({p.input for p in pairs}) == len(pairs), task.task_id
        assert all(p.input != p.output for p in pairs), task.task_id
        for p in pairs:
            assert g.as_grid(p.input) == p.input and g.as_grid(p.output) == p.output
            if FAMILIES[task.family].dims == 1:
                assert len(p.input) == 1


def _shift(row, k):
    return (0,) * k + row[:-k]


def _gravity(grid):
    cols = [[c for c in col if c] for col in zip(*grid)]
    return tuple(zip(*[[0] * (len(grid) - len(c)) + c for c in cols]))


# an independent statement of each family's rule: one parameter (if any) must explain every pair
REFERENCE = {
    "shift": lambda x, y: any(y == (_shift(x[0], k),) for k in (1, 2)),
    "reverse": lambda x, y: y == (x[0][::-1],),
    "fill-between": lambda x, y: (
        y
        == (
            tuple(
                x[0][min(i for i, c in enumerate(x[0]) if c)]
                if min(i for i, c in enumerate(x[0]) if c) <= j <= max(i for i, c in enumerate(x[0]) if c)
                else 0
                for j in range(len(x[0]))
            ),
        )
    ),
    "denoise": lambda x, y: (
        y
        == (
            tuple(
                0 if c and (j == 0 or not x[0][j - 1]) and (j == len(x[0]) - 1 or not x[0][j + 1]) else c
                for j, c in enumerate(x[0])
            ),
        )
    ),
    "repeat": lambda x, y: y in ((x[0] * 2,), (x[0] * 3,)),
    "reflect": lambda x, y: y in (tuple(r[::-1] for r in x), x[::-1]),
    "recolour": lambda x, y: (
        len(y) == len(x) and all((a == 0) == (b == 0) for ra, rb in zip(x, y) for a, b in zip(ra, rb))
    ),
    "gravity": lambda x, y: y == _gravity(x),
    "scale": lambda x, y: y == tuple(tuple(c for c in r for _ in (0, 1)) for r in x for _ in (0, 1)),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_pair_of_a_family_follows_its_rule(family):
    for i in range(5):
        task = generate_task(family, i, seed=1)
        for p in task.train + task.test:
            assert REFERENCE[family](p.input, p.output), (task.task_id, p)
        if family in ("shift", "repeat", "reflect", "recolour"):  # one parameter for the whole task
            outs = {REFERENCE[family](p.input, p.output) for p in task.train + task.test}
            assert outs == {True}


def test_a_task_keeps_one_colour_mapping_and_one_shift():
    task = generate_task("recolour", 0, seed=3)
    mapping = {}
    for p in task.train + task.test:
        for ra, rb in zip(p.input, p.output):
            for a, b in zip(ra, rb):
                assert mapping.setdefault(a, b) == b, "one colour maps to one colour in the whole task"
    task = generate_task("shift", 0, seed=3)
    ks = [{k for k in (1, 2) if p.output == (_shift(p.input[0], k),)} for p in task.train + task.test]
    assert set.intersection(*ks), "one shift explains every pair"


def test_task_shape_knobs_are_checked():
    with pytest.raises(ValueError, match="width"):
        TaskShape(width=(1, 3))
    with pytest.raises(ValueError, match="colours"):
        TaskShape(colours=10)
    task = generate_task("reverse", 0, seed=0, shape=TaskShape(width=(9, 9), colours=1, demonstrations=5))
    assert len(task.train) == 5 and all(len(p.input[0]) == 9 for p in task.train)
    assert {c for p in task.train for c in p.input[0]} <= {0, *{c for p in task.train for c in p.input[0] if c}}
    assert len({c for p in task.train for c in p.input[0] if c}) == 1


# ---------------------------------------------------------------- the ARC loader

TASK = {
    "train": [{"input": [[1, 0]], "output": [[0, 1]]}, {"input": [[2, 0]], "output": [[0, 2]]}],
    "test": [{"input": [[3, 0]], "output": [[0, 3]]}],
}


def test_arc_tasks_load_from_a_file_a_folder_a_mapping_and_challenges_with_solutions(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "abc123.json").write_text(json.dumps(TASK))
    (tmp_path / "one" / "def456.json").write_text(json.dumps(TASK))
    (tasks,) = [load_arc(tmp_path / "one" / "abc123.json")]
    assert tasks == (
        SkillTask(
            "abc123",
            (GridPair(((1, 0),), ((0, 1),)), GridPair(((2, 0),), ((0, 2),))),
            (GridPair(((3, 0),), ((0, 3),)),),
        ),
    )
    assert [t.task_id for t in load_arc(tmp_path / "one")] == ["abc123", "def456"]
    (tmp_path / "all.json").write_text(json.dumps({"b": TASK, "a": TASK}))
    assert [t.task_id for t in load_arc(tmp_path / "all.json")] == ["a", "b"]
    challenge = {"x": {"train": TASK["train"], "test": [{"input": [[3, 0]]}]}}
    (tmp_path / "challenges.json").write_text(json.dumps(challenge))
    (tmp_path / "solutions.json").write_text(json.dumps({"x": [[[0, 3]]]}))
    (t,) = load_arc(tmp_path / "challenges.json", tmp_path / "solutions.json")
    assert t.test == (GridPair(((3, 0),), ((0, 3),)),)


@pytest.mark.parametrize(
    "task, expect",
    [
        (
            {**TASK, "train": [{"input": [[1, 0]], "output": [[0, 1], [1]]}]},
            "task t: key 'train[0].output': row 1 has 1 cells",
        ),
        ({**TASK, "test": []}, "task t: key 'test': must be a non-empty list"),
        ({**TASK, "tset": []}, "task t: key 'tset': unknown key"),
        (
            {**TASK, "train": [{"input": [[1, 12]], "output": [[1]]}]},
            "key 'train[0].input': row 0, cell 1: 12 is not a colour",
        ),
        ({**TASK, "test": [{"input": [[1]]}]}, "key 'test[0].output': missing (give the solutions file)"),
        ([1, 2], "top level must be a task"),
    ],
)
def test_a_malformed_arc_file_names_the_file_the_task_and_the_key(tmp_path, task, expect):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(task))
    with pytest.raises(DataError) as e:
        load_arc(path)
    assert str(path) in str(e.value) and expect in str(e.value)


def test_an_arc_file_that_is_not_json_or_a_device_is_refused(tmp_path):
    (tmp_path / "t.json").write_text("{")
    with pytest.raises(DataError, match="not valid JSON"):
        load_arc(tmp_path / "t.json")
    with pytest.raises(DataError, match="a device, not a regular file"):
        load_arc("/dev/zero")


# ---------------------------------------------------------------- grids as text


def test_grid_text_round_trips_and_answers_are_read_strictly():
    assert grid_text(A) == "1 2 3\n4 5 6" and parse_grid(grid_text(A)) == A
    assert parse_grid("\n1 2 3\n4 5 6\n\nInput:\n7 7 7") == A  # the grid ends at the first other line
    assert parse_grid("1 2 3\n4 5") is None  # ragged
    assert parse_grid("1 2 3\n4 5 66") == ((1, 2, 3),)  # '66' is not a colour: the grid ends before it
    assert parse_grid("The answer is 1 2 3") is None and parse_grid("") is None
    assert solved("1 2 3\n4 5 6", A) and not solved("1 2 3", A) and not solved("1 2 3\n4 5 6\n7 8 9", A)
    text = query_text([GridPair(((1,),), ((2,),))], ((3,),))
    assert text == "Input:\n1\nOutput:\n2\n\nInput:\n3\nOutput:\n"


# ---------------------------------------------------------------- augmentations


def test_augmentations_have_inverses_and_four_rotations_are_the_identity():
    rng = random.Random(0)
    for name, aug in AUGMENTATIONS.items():
        forward, inverse = aug.make(rng)
        assert inverse(forward(A)) == A, name
    assert g.rotate(g.rotate(g.rotate(g.rotate(A, 1), 1), 1), 1) == A
    forward, _ = AUGMENTATIONS["colours"].make(rng)
    assert forward(((0, 0),)) == ((0, 0),), "the background keeps its colour"
    pairs = (GridPair(A, g.flip_horizontal(A)),)
    (moved,) = augment_pairs(pairs, lambda x: g.rotate(x, 1))
    assert moved == GridPair(g.rotate(A, 1), g.rotate(g.flip_horizontal(A), 1))


def test_training_pairs_count_augmentations_leave_one_out_and_copies():
    task = generate_task("reflect", 0, seed=2, shape=TaskShape(demonstrations=3))
    loo = training_pairs(task.train, ("rotate90", "transpose"), leave_one_out=True)
    assert len(loo) == 3 * 3  # the original and two augmentations, each demonstration once the query
    assert len(training_pairs(task.train, ("identity",), leave_one_out=False)) == 1
    assert len(training_pairs(task.train, ("colours",), leave_one_out=True, repeat=2)) == 2 * 2 * 3
    prompt, target = loo[0]
    assert prompt.count("Input:") == 3 and prompt.endswith("Output:\n") and parse_grid(target) == task.train[0].output
    assert training_pairs(task.train, ("colours",), leave_one_out=True, seed=1) == training_pairs(
        task.train, ("colours",), leave_one_out=True, seed=1
    )


# ---------------------------------------------------------------- the configuration


def test_a_configuration_round_trips_and_the_prompt_shows_the_menu():
    cfg = SkillConfig(("rotate90", "colours"), False, 2, 3e-4, 5, "all")
    assert parse_config(config_text(cfg)) == cfg
    assert parse_config("\n" + config_text(cfg) + "\nand then some words") == cfg
    shuffled = "\n".join(reversed(config_text(cfg).split("\n")))
    assert parse_config(shuffled) == cfg
    prompt = self_edit_prompt(generate_task("shift", 0, seed=0))
    assert "Input:" in prompt and config_text(EXAMPLE) in prompt and "rotate90" in prompt
    rng = random.Random(0)
    for _ in range(50):
        c = random_config(rng)
        assert parse_config(config_text(c)) == c


@pytest.mark.parametrize(
    "reply, why",
    [
        ("", "missing augmentations"),
        ("Sure! Here is my choice:\n" + config_text(EXAMPLE), "missing"),
        (config_text(EXAMPLE).replace("identity", "rotate45"), "'rotate45' is not one of"),
        (config_text(EXAMPLE).replace("identity", "rotate90, rotate90"), "a name given twice"),
        (config_text(EXAMPLE).replace("epochs: 3", "epochs: 30"), "epochs: 30 is not from 1 to 10"),
        (config_text(EXAMPLE).replace("epochs: 3", "epochs: 3.5"), "epochs: '3.5' is not an integer"),
        (config_text(EXAMPLE).replace("0.001", "1"), "learning_rate: 1 is not from"),
        (config_text(EXAMPLE).replace("0.001", "nan"), "learning_rate: nan"),
        (config_text(EXAMPLE).replace("0.001", "fast"), "'fast' is not a number"),
        (config_text(EXAMPLE).replace("loss: output", "loss: some"), "loss: 'some' is not one of output, all"),
        (config_text(EXAMPLE).replace("true", "yes"), "leave_one_out: 'yes' is not true or false"),
        ("repeat: 1\nrepeat: 2", "'repeat' given twice"),
        ("colour: red\n" + config_text(EXAMPLE), "unknown key 'colour'"),
        ("\n".join(config_text(EXAMPLE).split("\n")[:5]), "missing loss"),
    ],
)
def test_a_reply_that_is_not_a_configuration_is_invalid_with_its_reason(reply, why):
    with pytest.raises(ConfigInvalid, match=why):
        parse_config(reply)


# ---------------------------------------------------------------- test-time training (tiny-random)


def _tasks():
    return [
        generate_task(f, 0, seed=4, shape=TaskShape(width=(3, 4), height=(2, 2), demonstrations=2))
        for f in ("reverse", "shift", "reflect")
    ]


def test_candidates_trained_together_equal_them_trained_one_by_one(tiny_model64):
    from multiseal.learning.ttt import attempt_tasks

    tasks = _tasks()
    configs = [
        SkillConfig(("identity",), True, 1, 1e-3, 2, "output"),
        SkillConfig(("rotate90", "colours"), False, 2, 3e-3, 1, "all"),
        SkillConfig(("transpose",), True, 1, 5e-4, 3, "output"),
    ]
    lora = LoraSettings(rank=4, alpha=8)
    together = attempt_tasks(tiny_model64, tasks, configs, lora, together=True, seed=3)
    alone = attempt_tasks(tiny_model64, tasks, configs, lora, together=False, seed=3)
    assert tiny_model64.adapters == {}, "the candidates' adapters are deleted"
    for a, b in zip(together, alone):
        assert a.trained_tokens == b.trained_tokens > 0
        # float64: the two orders of the same sums differ by ~1e-15 per step (tests/conftest.py:tiny_model64)
        assert math.isclose(a.final_loss, b.final_loss, rel_tol=1e-6), (a.final_loss, b.final_loss)
        assert a.replies == b.replies and a.correct == b.correct


def test_an_invalid_configuration_trains_nothing_and_fails(tiny_model):
    from multiseal.learning.ttt import attempt_tasks, in_context

    tasks = _tasks()[:2]
    out = attempt_tasks(
        tiny_model,
        tasks,
        [None, SkillConfig(("identity",), False, 1, 1e-3, 1, "output")],
        LoraSettings(rank=4, alpha=8),
        seed=0,
    )
    assert out[0].config is None and out[0].replies == () and out[0].correct == (False,) and not out[0].solved
    assert out[0].trained_tokens == 0 and out[1].trained_tokens > 0 and len(out[1].replies) == 1
    base = in_context(tiny_model, tasks)
    assert [len(a.replies) for a in base] == [1, 1] and all(a.config is None for a in base)


def test_the_keyed_form_starts_each_line_with_its_key_and_keeps_the_value_strict(tiny_model):
    from multiseal.learning.skill_config import KEYS, write_configs

    tasks = _tasks()[:2]
    rows = write_configs(tiny_model, tasks, k=2, temperature=1.0, seed=3, form="keyed")
    assert [len(r) for r in rows] == [2, 2]
    for reply, config in (x for r in rows for x in r):
        lines = reply.split("\n")
        assert [line.split(":")[0] for line in lines] == list(KEYS)  # the keys, in order, one line each
        # the values are the model's own: a random model's are off the menu, so the configuration is invalid
        try:
            expect = parse_config(reply)
        except ConfigInvalid:
            expect = None
        assert config == expect
    free = write_configs(tiny_model, tasks, k=1, temperature=1.0, seed=3, max_new_tokens=12, form="free")
    assert all(config is None for r in free for _, config in r)
    with pytest.raises(ValueError, match="form"):
        write_configs(tiny_model, tasks, form="json")


# ---------------------------------------------------------------- ReST-EM over configurations and the recipe


def test_a_restem_step_moves_the_writer_towards_the_kept_configuration(tiny_model, monkeypatch):
    from multiseal.learning.train import completion_loss
    from multiseal.learning.ttt import Attempt
    from multiseal.rl import skill_restem
    from multiseal.rl.skill_restem import SkillSettings, restem_iteration

    task = _tasks()[0]
    good = SkillConfig(("rotate90", "colours"), True, 2, 3e-3, 4, "output")
    bad = SkillConfig(("transpose",), False, 1, 1e-4, 1, "all")
    monkeypatch.setattr(
        skill_restem,
        "write_configs",
        lambda model, tasks, k, **kw: [
            [(config_text(good), good), (config_text(bad), bad), ("nonsense", None)] for _ in tasks
        ],
    )
    monkeypatch.setattr(
        skill_restem,
        "_try",
        lambda model, tasks, configs, s, seed, progress: [
            Attempt(t.task_id, c, ("",), (c == good,)) for t, c in zip(tasks, configs)
        ],
    )
    lora = LoraSettings(rank=4, alpha=8)
    settings = SkillSettings(lora=lora, candidates=3)
    tiny_model.add_adapter("skill_writer_t", lora, seed=0)
    try:
        pairs = [(tiny_model.prompt(self_edit_prompt(task)), config_text(good))]
        before = completion_loss(tiny_model, "skill_writer_t", pairs)
        rec = restem_iteration(tiny_model, "skill_writer_t", [task], settings, iteration=1)
        after = completion_loss(tiny_model, "skill_writer_t", pairs)
    finally:
        tiny_model.delete_adapter("skill_writer_t")
    assert (rec.candidates, rec.invalid, rec.rewarded) == (3, 1, 1)
    assert [k["config"] for k in rec.kept] == [config_text(good)]
    assert rec.metrics()["restem.config_invalid"] == pytest.approx(1 / 3)
    assert after < before, "the writer is fine-tuned towards the rewarded configuration"


def test_tasks_split_per_family_with_both_sides_kept():
    from multiseal.world.grid_tasks import split_tasks

    tasks = generate_tasks(["shift", "reverse"], 4, seed=0)
    train, held = split_tasks(tasks, 0.5, seed=0)
    assert len(train) == len(held) == 4 and {t.family for t in held} == {"shift", "reverse"}
    assert not {t.task_id for t in train} & {t.task_id for t in held}
    assert split_tasks(tasks, 0.5, seed=0) == (train, held) and split_tasks(tasks, 0.9, seed=0)[0]


SKILLS = """\
name: skills-tiny
kind: skills
seed: 0
model: {base: tiny-random, lora: {rank: 4, alpha: 8}}
tasks: {families: [reverse, shift], per_family: 2, width: [3, 4], height: [2, 2], demonstrations: 2}
skills: {iterations: 1, candidates: 2, max_length: 256}
self_edit: {max_new_tokens: 24}
tracking: {experiment: skills-tiny}
"""


def test_a_skills_scenario_runs_through_the_cli_into_mlflow(tmp_path):
    import os
    import subprocess
    import sys

    import mlflow

    (tmp_path / "s.yaml").write_text(SKILLS)
    env = {**os.environ, "MULTISEAL_RUNS": str(tmp_path / "runs"), "MULTISEAL_THREADS": "1"}
    uri = f"sqlite:///{tmp_path}/m.db"
    out = subprocess.run(
        [sys.executable, "-m", "multiseal", "validate", "s.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and "ok (skills, generated tasks" in out.stdout and "trained tokens" in out.stdout, out
    done = subprocess.run(
        [sys.executable, "-m", "multiseal", "run", "s.yaml", "--no-progress", "--tracking-uri", uri],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 training / 2 held-out tasks" in done.stdout and "| self-edit-restem |" in done.stdout
    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("skills-tiny").experiment_id])
    m = run.data.metrics
    assert run.info.status == "FINISHED"
    for arm in ("in-context", "random", "self-edit", "oracle", "self-edit-restem"):
        assert 0 <= m[f"skills.{arm}.success"] <= 1 and f"skills.{arm}.family.shift" in m
    assert m["skills.self-edit.config_invalid"] == 1.0, "tiny-random writes no configuration"
    assert "restem.reward.mean" in m and "skills.oracle.delta" in m
    (folder,) = (tmp_path / "runs" / "skills-tiny").iterdir()
    attempts = (folder / "artifacts" / "skills" / "attempts.jsonl").read_text().splitlines()
    oracle = [json.loads(x) for x in attempts if json.loads(x)["arm"] == "oracle"]
    assert len(oracle) == 2 * 8 and all(o["trained_tokens"] > 0 for o in oracle)  # 8 grid configurations × 2 tasks
    assert (folder / "artifacts" / "skills" / "table.md").read_text().startswith("| arm | success |")
    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "multiseal",
            "report",
            "--experiment",
            "skills-tiny",
            "--tracking-uri",
            uri,
            "--out",
            str(tmp_path / "rep"),
            "--no-log",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0, report.stderr[-2000:]
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "(skills)" in text and "skills.oracle.success" in text and "| self-edit-restem |" in text


def test_a_scenario_oracle_grid_is_typed_and_checked_like_a_reply():
    from multiseal.config.builders import build_skills
    from multiseal.config.schema import Scenario

    default = Scenario.model_validate({"kind": "skills"})
    assert build_skills(default).oracle == ORACLE_GRID
    sc = Scenario.model_validate(
        {
            "kind": "skills",
            "skills": {
                "oracle": [
                    {"augmentations": ["colours"], "repeat": 3},
                    {"learning_rate": 3.0e-3, "epochs": 5, "loss": "all"},
                ]
            },
        }
    )
    assert build_skills(sc).oracle == (
        SkillConfig(("colours",), True, 3, 1e-3, 3, "output"),
        SkillConfig(("identity",), True, 1, 3e-3, 5, "all"),
    )
    for c in build_skills(sc).oracle:  # the same menu as a written reply
        assert parse_config(config_text(c)) == c


@pytest.mark.parametrize(
    "text, expect",
    [
        ("kind: skills\ntasks: {families: [shiftt]}\n", "tasks.families: 'shiftt' is not one of shift"),
        ("kind: skills\ntasks: {kind: arc}\n", "tasks.path: is required when kind is 'arc'"),
        ("kind: skills\nskills: {arms: [oracle]}\n", "skills.reference: 'self-edit' is not among the arms (oracle)"),
        ("kind: skills\ntasks: {width: [1, 3]}\n", "tasks.width: must be [lo, hi] with 2 <= lo <= hi <= 12"),
        (
            "kind: skills\ntasks: {kind: arc, path: bad.json}\n",
            "tasks.path: {dir}/bad.json: task a: key 'train[0].output'",
        ),
        (
            "kind: skills\nskills: {oracle: [{repeat: 2}, {augmentations: [colour]}]}\n",
            "skills.oracle[1].augmentations: 'colour' is not one of identity",
        ),
        (
            "kind: skills\nskills: {oracle: [{learning_rate: 0.5}]}\n",
            "skills.oracle[0].learning_rate: 0.5 is not from 1e-05",
        ),
        ("kind: skills\nskills: {oracle: [{epochs: 3, lr: 1.0e-3}]}\n", "skills.oracle[0].lr"),
        ("kind: skills\nskills: {oracle: []}\n", "skills.oracle"),
    ],
)
def test_a_bad_skills_scenario_names_the_key(tmp_path, text, expect):
    from multiseal.config.load import load_scenario
    from multiseal.errors import ScenarioError

    (tmp_path / "bad.json").write_text(
        json.dumps({"a": {**TASK, "train": [{"input": [[1]], "output": [[1], [2, 3]]}]}})
    )
    (tmp_path / "s.yaml").write_text("model: {base: tiny-random}\n" + text)
    with pytest.raises(ScenarioError) as e:
        load_scenario(tmp_path / "s.yaml")
    assert expect.format(dir=tmp_path) in str(e.value), str(e.value)
