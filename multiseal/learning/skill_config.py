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
    return "\n".join([
        f"augmentations: {', '.join(config.augmentations)}",
        f"leave_one_out: {str(config.leave_one_out).lower()}",
        f"repeat: {config.repeat}",
        f"learning_rate: {config.learning_rate:g}",
        f"epochs: {config.epochs}",
        f"loss: {config.loss}",
    ])


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
    names = tuple(n.strip() for n in values["augmentations"].split(","))
    bad = [n for n in names if n not in AUGMENTATIONS]
    if bad:
        raise ConfigInvalid(f"augmentations: '{bad[0][:30]}' is not one of {', '.join(AUGMENTATIONS)}")
    if len(set(names)) < len(names):
        raise ConfigInvalid("augmentations: a name given twice")
    if values["leave_one_out"] not in ("true", "false"):
        raise ConfigInvalid(f"leave_one_out: '{values['leave_one_out'][:20]}' is not true or false")
    repeat = _int(values["repeat"], "repeat", REPEAT_RANGE)
    epochs = _int(values["epochs"], "epochs", EPOCHS_RANGE)
    try:
        lr = float(values["learning_rate"])
    except ValueError:
        raise ConfigInvalid(f"learning_rate: '{values['learning_rate'][:20]}' is not a number") from None
    if not (math.isfinite(lr) and LR_RANGE[0] <= lr <= LR_RANGE[1]):
        raise ConfigInvalid(f"learning_rate: {lr:g} is not from {LR_RANGE[0]:g} to {LR_RANGE[1]:g}")
    if values["loss"] not in LOSSES:
        raise ConfigInvalid(f"loss: '{values['loss'][:20]}' is not one of {', '.join(LOSSES)}")
    return SkillConfig(names, values["leave_one_out"] == "true", repeat, lr, epochs, values["loss"])


def _int(text: str, key: str, bounds: tuple[int, int]) -> int:
    if not re.fullmatch(r"[0-9]+", text):
        raise ConfigInvalid(f"{key}: '{text[:20]}' is not an integer")
    value = int(text)
    if not bounds[0] <= value <= bounds[1]:
        raise ConfigInvalid(f"{key}: {value} is not from {bounds[0]} to {bounds[1]}")
    return value


EXAMPLE = SkillConfig(("identity",), True, 1, 1e-3, 3, "output")

_GEOMETRIC = ("rotate90", "rotate180", "rotate270", "reverse", "flip_vertical", "transpose")
# The oracle's search: the menu's full product (2^8 augmentation sets × 2 × 3 × every learning rate ×
# 10 × 2) is far past what a CPU can train per task, so the oracle searches this grid of the choices
# that change the training set most (no augmentation, geometric, colours, both) at two learning rates.
ORACLE_GRID: tuple[SkillConfig, ...] = tuple(
    SkillConfig(augs, True, 1, lr, 3, "output")
    for augs in (("identity",), _GEOMETRIC, ("colours",), (*_GEOMETRIC, "colours")) for lr in (1e-3, 3e-3))


def self_edit_prompt(task: SkillTask) -> str:
    """SEAL's few-shot prompt, adapted to the line form: the task's demonstrations, the menu, an example."""
    demos = "\n\n".join(pair_text(p) for p in task.train)
    menu = "\n".join(f"- {k}: {v}" for k, v in MENU.items())
    return (f"Here are examples of a grid puzzle:\n\n{demos}\n\n------\n\n"
            "You are configuring how a model trains on these examples before it solves a new one. "
            f"Choose a value for each setting:\n{menu}\n\n"
            "Answer with exactly these six lines and nothing else, for example:\n"
            f"{config_text(EXAMPLE)}")


def random_config(rng: random.Random) -> SkillConfig:
    """A valid configuration drawn uniformly from the menu (learning rate log-uniform): the baseline of
    an untrained writer that at least writes the form."""
    names = [n for n in AUGMENTATIONS if rng.random() < 0.3] or ["identity"]
    lr = 10 ** rng.uniform(math.log10(LR_RANGE[0]), math.log10(LR_RANGE[1]))
    return SkillConfig(tuple(names), rng.random() < 0.5, rng.randint(*REPEAT_RANGE), float(f"{lr:.1g}"),
                       rng.randint(*EPOCHS_RANGE), rng.choice(LOSSES))


def write_configs(model, tasks: list[SkillTask], *, k: int = 1, writer: str | None = None, temperature: float = 1.0,
                  top_p: float = 0.95, max_new_tokens: int = 64, seed: int = 0,
                  progress: str | None = None) -> list[list[tuple[str, SkillConfig | None]]]:
    """``k`` self-edits per task, sampled from ``writer`` (an adapter; None: the base model) on
    :func:`self_edit_prompt`: per task, ``(reply, configuration or None when invalid)``."""
    prompts = [model.prompt(self_edit_prompt(t)) for t in tasks for _ in range(k)]
    replies = iter(model.generate(prompts, [writer] * len(prompts), max_new_tokens=max_new_tokens,
                                  temperature=temperature, top_p=top_p, seed=seed, progress=progress))
    out = []
    for _ in tasks:
        row = []
        for _ in range(k):
            reply = next(replies)
            try:
                row.append((reply, parse_config(reply)))
            except ConfigInvalid:
                row.append((reply, None))
        out.append(row)
    return out
