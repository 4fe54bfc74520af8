"""The one YAML reader of multiseal (scenarios, sweep files, ``--set`` values).

Safe loading only (a tag that would construct Python objects is an error), UTF-8 text only, and a key
given twice in one mapping is an error naming both lines — with a plain loader the second silently
wins, and a scenario could switch models without a word.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from multiseal.errors import Problem, ScenarioError


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys in a mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                continue  # an unhashable key fails in the base loader with its own message
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' appears twice in one mapping (lines {seen[key]} and {line}); "
                                "the second would silently win", key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _problem(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
    return f"not valid YAML{where}: {getattr(e, 'problem', None) or e}"


def loads(text: str) -> Any:
    """Parse YAML text with the duplicate-key check; raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def read_yaml(path: str | Path, what: str = "a scenario") -> dict:
    """Parse a YAML mapping from a UTF-8 file; every failure is a ScenarioError naming the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ScenarioError(path, [Problem("", f"cannot read file: {e.strerror}")]) from None
    if b"\x00" in data:
        raise ScenarioError(path, [Problem("", f"a binary file, not YAML: {what} must be a UTF-8 text file")])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ScenarioError(path, [Problem("", f"not UTF-8 text (byte 0x{data[e.start]:02x} on line {line}); "
                                               "save the file as UTF-8")]) from None
    try:
        raw = loads(text)
    except yaml.YAMLError as e:
        raise ScenarioError(path, [Problem("", _problem(e))]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ScenarioError(path, [Problem("", f"{what} must be a mapping of keys to values")])
    return raw


def parse_value(text: str, key: str = "--set") -> Any:
    """A command-line value in YAML scalar/list syntax (``3``, ``0.5``, ``[0, 1]``, ``ring``)."""
    try:
        return loads(text)
    except yaml.YAMLError as e:
        raise ScenarioError("--set", [Problem(key, f"{text!r} is {_problem(e)}")]) from None
