"""The skills self-edit: the agent chooses how to train, in a small structured form, read strictly.

SEAL's few-shot prompt (``few-shot/utils/prompts.py``) asks Llama-3.2-1B for a JSON object of four
augmentation switches, a loss strategy, a learning rate and epochs. A 135M model rarely closes a JSON
object, so the form here is six ``key: value`` lines, in any order, each once::

    augmentations: rotate90, colours
    leave_one_out: true
    repeat: 1
    learning_rate: 0.001
    epochs: 3
    loss: output

:func:`parse_config` reads the lines the reply starts with (after blank lines) until all six keys are
read or a line is not ``key: value`` (what follows is ignored); every key must be there once, no other
key among them, each with a value from the menu (:data:`MENU`).
Anything else raises :class:`ConfigInvalid` with the reason: the caller counts it
(``config_invalid``) and scores the attempt as a failure; an invalid configuration is never replaced
by a default.
"""

from __future__ import annotations

import math
import random
import re

from multiseal.learning.augment import AUGMENTATIONS
from multiseal.learning.grid_text import pair_text
from multiseal.types import SkillConfig, SkillTask

LR_RANGE = (1e-5, 1e-2)
EPOCHS_RANGE = (1, 10)
REPEAT_RANGE = (1, 3)
LOSSES = ("output", "all")
KEYS = ("augmentations", "leave_one_out", "repeat", "learning_rate", "epochs", "loss")
MENU = {
    "augmentations": f"one or more of {', '.join(AUGMENTATIONS)}, separated by commas",
    "leave_one_out": "true (each demonstration in turn is the question) or false (the last one only)",
    "repeat": f"how many copies of the training set, {REPEAT_RANGE[0]} to {REPEAT_RANGE[1]}",
    "learning_rate": f"a number from {LR_RANGE[0]:g} to {LR_RANGE[1]:g}",
    "epochs": f"an integer from {EPOCHS_RANGE[0]} to {EPOCHS_RANGE[1]}",
    "loss": "output (train on the answer grids only) or all (on every token)",
}
_LINE = re.compile(r"^\s*([a-z_]+)\s*:\s*(.*?)\s*$")


class ConfigInvalid(ValueError):
    """A reply that is not a configuration from the menu; ``str(e)`` says why."""


def config_text(config: SkillConfig) -> str:
    """``config`` in the form :func:`parse_config` reads (what a kept self-edit is trained to write)."""
    return "\n".join(
        [
            f"augmentations: {', '.join(config.augmentations)}",
            f"leave_one_out: {str(config.leave_one_out).lower()}",
            f"repeat: {config.repeat}",
            f"learning_rate: {config.learning_rate:g}",
            f"epochs: {config.epochs}",
            f"loss: {config.loss}",
        ]
    )


def skill_config(
    augmentations, leave_one_out: bool, repeat: int, learning_rate: float, epochs: int, loss: str
) -> SkillConfig:
    """A configuration from typed values, checked against the menu (:class:`ConfigInvalid` naming the
    key): what :func:`parse_config` returns for a reply, and what a scenario's ``skills.oracle`` builds."""
    names = tuple(augmentations)
    bad = [n for n in names if n not in AUGMENTATIONS]
    if bad:
        raise ConfigInvalid(f"augmentations: '{str(bad[0])[:30]}' is not one of {', '.join(AUGMENTATIONS)}")
    if not names:
        raise ConfigInvalid("augmentations: none given")
    if len(set(names)) < len(names):
        raise ConfigInvalid("augmentations: a name given twice")
    for key, value, (lo, hi) in (("repeat", repeat, REPEAT_RANGE), ("epochs", epochs, EPOCHS_RANGE)):
        if not lo <= value <= hi:
            raise ConfigInvalid(f"{key}: {value} is not from {lo} to {hi}")
    if not (math.isfinite(learning_rate) and LR_RANGE[0] <= learning_rate <= LR_RANGE[1]):
        raise ConfigInvalid(f"learning_rate: {learning_rate:g} is not from {LR_RANGE[0]:g} to {LR_RANGE[1]:g}")
    if loss not in LOSSES:
        raise ConfigInvalid(f"loss: '{str(loss)[:20]}' is not one of {', '.join(LOSSES)}")
    return SkillConfig(names, bool(leave_one_out), int(repeat), float(learning_rate), int(epochs), loss)


def parse_config(reply: str) -> SkillConfig:
    """The configuration a reply starts with; :class:`ConfigInvalid` naming the first problem."""
    values: dict[str, str] = {}
    for line in reply.lstrip("\n").split("\n"):
        m = _LINE.match(line)
        if m is None or len(values) == len(KEYS):  # the form ends at the first other line, or when complete
            break
        key, value = m.groups()
        if key not in KEYS:
            raise ConfigInvalid(f"unknown key '{key[:30]}' (keys: {', '.join(KEYS)})")
        if key in values:
            raise ConfigInvalid(f"'{key}' given twice")
        values[key] = value
    missing = [k for k in KEYS if k not in values]
    if missing:
        raise ConfigInvalid(f"missing {', '.join(missing)}")
    if values["leave_one_out"] not in ("true", "false"):
        raise ConfigInvalid(f"leave_one_out: '{values['leave_one_out'][:20]}' is not true or false")
    try:
        lr = float(values["learning_rate"])
    except ValueError:
        raise ConfigInvalid(f"learning_rate: '{values['learning_rate'][:20]}' is not a number") from None
    return skill_config(
        tuple(n.strip() for n in values["augmentations"].split(",")),
        values["leave_one_out"] == "true",
        _int(values["repeat"], "repeat"),
        lr,
        _int(values["epochs"], "epochs"),
        values["loss"],
    )


def _int(text: str, key: str) -> int:
    if not re.fullmatch(r"[0-9]+", text):
        raise ConfigInvalid(f"{key}: '{text[:20]}' is not an integer")
    return int(text)


EXAMPLE = SkillConfig(("identity",), True, 1, 1e-3, 3, "output")

_GEOMETRIC = ("rotate90", "rotate180", "rotate270", "reverse", "flip_vertical", "transpose")
# The oracle's search: the menu's full product (2^8 augmentation sets × 2 × 3 × every learning rate ×
# 10 × 2) is far past what a CPU can train per task, so the oracle searches this grid of the choices
# that change the training set most (no augmentation, geometric, colours, both) at two learning rates.
ORACLE_GRID: tuple[SkillConfig, ...] = tuple(
    SkillConfig(augs, True, 1, lr, 3, "output")
    for augs in (("identity",), _GEOMETRIC, ("colours",), (*_GEOMETRIC, "colours"))
    for lr in (1e-3, 3e-3)
)


def self_edit_prompt(task: SkillTask) -> str:
    """SEAL's few-shot prompt, adapted to the line form: the task's demonstrations, the menu, an example."""
    demos = "\n\n".join(pair_text(p) for p in task.train)
    menu = "\n".join(f"- {k}: {v}" for k, v in MENU.items())
    return (
        f"Here are examples of a grid puzzle:\n\n{demos}\n\n------\n\n"
        "You are configuring how a model trains on these examples before it solves a new one. "
        f"Choose a value for each setting:\n{menu}\n\n"
        "Answer with exactly these six lines and nothing else, for example:\n"
        f"{config_text(EXAMPLE)}"
    )


def random_config(rng: random.Random) -> SkillConfig:
    """A valid configuration drawn uniformly from the menu (learning rate log-uniform): the baseline of
    an untrained writer that at least writes the form."""
    names = [n for n in AUGMENTATIONS if rng.random() < 0.3] or ["identity"]
    lr = 10 ** rng.uniform(math.log10(LR_RANGE[0]), math.log10(LR_RANGE[1]))
    return SkillConfig(
        tuple(names),
        rng.random() < 0.5,
        rng.randint(*REPEAT_RANGE),
        float(f"{lr:.1g}"),
        rng.randint(*EPOCHS_RANGE),
        rng.choice(LOSSES),
    )


FORMS = ("keyed", "free")
# tokens a value may take in the keyed form: the augmentation list is the longest (8 names)
VALUE_TOKENS = {"augmentations": 40, "leave_one_out": 6, "repeat": 6, "learning_rate": 10, "epochs": 6, "loss": 6}


def write_configs(
    model,
    tasks: list[SkillTask],
    *,
    k: int = 1,
    writer: str | None = None,
    temperature: float = 1.0,
    top_p: float = 0.95,
    max_new_tokens: int = 64,
    seed: int = 0,
    form: str = "keyed",
    progress: str | None = None,
) -> list[list[tuple[str, SkillConfig | None]]]:
    """``k`` self-edits per task, sampled from ``writer`` (an adapter; None: the base model) on
    :func:`self_edit_prompt`: per task, ``(reply, configuration or None when invalid)``.

    ``form="free"``: the model writes the whole reply (at most ``max_new_tokens``), as SEAL's model
    writes its JSON. ``form="keyed"``: the reply is written key by key — each line is started with
    its key (``augmentations:``, then ``leave_one_out:``, ...) and the model writes the value up to the
    end of the line (:data:`VALUE_TOKENS` at most). The model still chooses every value, and a value
    off the menu still makes the configuration invalid; only the form's keys are given. A 135M model
    does not write the six lines unaided (docs/skills.md: 0 of 24 replies valid)."""
    if form not in FORMS:
        raise ValueError(f"form: '{form}' is not one of {', '.join(FORMS)}")
    prompts = [model.prompt(self_edit_prompt(t)) for t in tasks for _ in range(k)]
    adapters = [writer] * len(prompts)
    if form == "free":
        replies = model.generate(
            prompts,
            adapters,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            progress=progress,
        )
    else:
        replies = [""] * len(prompts)
        for j, key in enumerate(KEYS):
            heads = [f"{r}{key}:" for r in replies]
            values = model.generate(
                [p + h for p, h in zip(prompts, heads)],
                adapters,
                max_new_tokens=VALUE_TOKENS[key],
                temperature=temperature,
                top_p=top_p,
                seed=seed + 7919 * j,
                progress=progress,
            )
            replies = [
                f"{h} {v.split(chr(10))[0].strip()}" + ("\n" if j < len(KEYS) - 1 else "")
                for h, v in zip(heads, values)
            ]
    out = []
    it = iter(replies)
    for _ in tasks:
        row = []
        for _ in range(k):
            reply = next(it)
            try:
                row.append((reply, parse_config(reply)))
            except ConfigInvalid:
                row.append((reply, None))
        out.append(row)
    return out
