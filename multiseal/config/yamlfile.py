"""The one YAML reader of multiseal (scenarios, sweep files, ``--set`` values).

Safe loading only (a tag that would construct Python objects is an error), UTF-8 text only, and a key
given twice in one mapping is an error naming both lines — with a plain loader the second silently
wins, and a scenario could switch models without a word.

Bounded: a file is read through :func:`multiseal.errors.read_text` (a regular file of at most
``SCENARIO_MAX_BYTES``), nesting deeper than ``MAX_DEPTH`` levels is refused while composing, and a
document whose values, with every alias expanded, would number more than ``MAX_NODES`` is refused
before anything is constructed (an alias bomb, "billion laughs", is a few hundred bytes that expand to
billions of values: every later pass over the tree, and every message showing it, would expand it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from multiseal.errors import SCENARIO_MAX_BYTES, FileReadError, Problem, ScenarioError, read_text, shown

MAX_DEPTH = 64  # levels of nesting (a scenario needs under 10)
MAX_NODES = 200_000  # values in a document with its aliases expanded (a 256-agent inline matrix: 66k)


def _expanded_sizes(root: yaml.Node) -> dict[int, int]:
    """Per node (by ``id``) under ``root``, its number of nodes with every alias expanded (capped at
    ``MAX_NODES + 1``), counted without expanding (each distinct node once); raises ``ComposerError``
    for an alias inside its own anchor (a cycle)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            open_.discard(key)
            children = _children(node)
            sizes[key] = min(1 + sum(sizes[id(c)] for c in children), MAX_NODES + 1)
            continue
        if key in sizes:
            continue
        if key in open_:
            raise yaml.composer.ComposerError(
                None, None, "an alias refers to a node that contains it (a recursive structure)", node.start_mark
            )
        open_.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)
    return sizes


def _where_it_grows(root: yaml.Node, sizes: dict[int, int]) -> tuple[str, yaml.Node]:
    """The key path (``topology.params.a3``) and node of the smallest part of ``root`` that is itself
    too large once expanded: where the alias bomb is."""
    path, node = "", root
    while True:
        if isinstance(node, yaml.MappingNode):
            parts = [(str(k.value) if isinstance(k, yaml.ScalarNode) else "?", v) for k, v in node.value]
        elif isinstance(node, yaml.SequenceNode):
            parts = [(f"[{i}]", v) for i, v in enumerate(node.value)]
        else:
            return path, node
        big = next(((k, v) for k, v in parts if sizes.get(id(v), 0) > MAX_NODES), None)
        if big is None:
            return path, node
        key, node = big
        path = f"{path}{key}" if key.startswith("[") or not path else f"{path}.{key}"


class TooLarge(yaml.constructor.ConstructorError):
    """A document with more than ``MAX_NODES`` values once expanded; ``key`` is where it grows."""

    def __init__(self, key: str, mark: yaml.Mark):
        self.key = key
        super().__init__(
            None,
            None,
            f"more than {MAX_NODES:,} values once its aliases (*name) are expanded; "
            "an alias bomb, or a document too large to be a setting",
            mark,
        )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys in a mapping, nesting deeper than ``MAX_DEPTH``,
    documents larger than ``MAX_NODES`` values once aliases are expanded, and integers too long to read."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: yaml.Node) -> Any:
        sizes = _expanded_sizes(node)
        if sizes[id(node)] > MAX_NODES:
            key, where = _where_it_grows(node, sizes)
            raise TooLarge(key, where.start_mark)
        return super().construct_document(node)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of {len(node.value):,} characters is too long", node.start_mark
            ) from None

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
                    None,
                    None,
                    f"key '{key}' appears twice in one mapping (lines {seen[key]} and {line}); "
                    "the second would silently win",
                    key_node.start_mark,
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _UniqueKeyLoader.construct_yaml_int)


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
        text = read_text(path, SCENARIO_MAX_BYTES, what, "YAML")
    except FileReadError as e:
        raise ScenarioError(path, [Problem("", e.reason)]) from None
    try:
        raw = loads(text)
    except yaml.YAMLError as e:
        raise ScenarioError(path, [Problem(getattr(e, "key", ""), _problem(e))]) from None
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
        inner = getattr(e, "key", "")
        raise ScenarioError(
            "--set",
            [
                Problem(
                    f"{key}.{inner}" if inner and not inner.startswith("[") else key + inner,
                    f"{shown(text)} is {_problem(e)}",
                )
            ],
        ) from None
