"""Dotted-key overrides of a scenario tree (``topology.kind=ring``), used by the CLI and sweeps.

A key path must name a real scenario setting: ``topology.kind`` is fine, ``topology.knd`` is an
error naming the bad part. Free-form sections (``topology.params.*``, ``scheduler.params.*``,
``arrivals.table``) take any sub-key.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from multiseal.config.schema import Scenario
from multiseal.config.yamlfile import parse_value
from multiseal.errors import Problem, ScenarioError


def _model_field(model: type[BaseModel], key: str):
    return model.model_fields.get(key)


def check_key_path(path: str) -> str | None:
    """None when ``path`` names a scenario setting, else the reason it does not."""
    model: Any = Scenario
    parts = path.split(".")
    for i, part in enumerate(parts):
        if model is None:
            return None  # inside a free-form mapping
        field = _model_field(model, part)
        if field is None:
            if model.__name__ == "AgentsSection" and part.isdigit():
                continue
            if model.__name__ in ("AgentOverride",):
                pass
            so_far = ".".join(parts[: i + 1])
            known = ", ".join(model.model_fields)
            return f"unknown key '{so_far}' (known here: {known})"
        ann = field.annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return None


def apply_overrides(raw: dict, overrides: dict[str, Any], source: str | Path | None = None) -> dict:
    """A copy of ``raw`` with each dotted key set; every bad key is reported at once."""
    problems = [Problem(k, msg) for k in overrides if (msg := check_key_path(k))]
    if problems:
        raise ScenarioError(source, problems)
    out = copy.deepcopy(raw)
    for key, value in overrides.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            if isinstance(node.get(part), int) and part == "agents":
                node[part] = {"count": node[part]}
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return out


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=ring"]`` → ``{"a.b": 1, "c": "ring"}``; a missing ``=`` is an error."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ScenarioError("--set", [Problem(item, "expected KEY=VALUE")])
        k, v = item.split("=", 1)
        out[k.strip()] = parse_value(v, k.strip())
    return out
