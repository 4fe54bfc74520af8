"""User extensions named by a scenario: ``plugins: [mypackage.topologies, ...]``.

Each entry is a module importable from the Python path (installed, or on ``PYTHONPATH``); importing it
runs its registrations (``@TOPOLOGIES.register(...)``, ``STYLES.register(...)``, ...), after which the
scenario can name what it registered. Loading is opt-in only: a scenario without ``plugins:`` imports
nothing of the user's, and multiseal never scans entry points by itself. See ``docs/extending.md``.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from multiseal.errors import Problem, shown

_MODULE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def load_plugins(plugins: Any) -> list[Problem]:
    """Import every module of a scenario's ``plugins`` list; the problems, keyed ``plugins[i]``."""
    if plugins is None:
        return []
    if not isinstance(plugins, list):
        return [Problem("plugins", f"must be a list of module names, got {shown(plugins)}")]
    problems = []
    for i, name in enumerate(plugins):
        if not isinstance(name, str) or not _MODULE.match(name):
            problems.append(
                Problem(f"plugins[{i}]", f"must be a module name such as 'mypackage.topologies', got {shown(name)}")
            )
            continue
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - whatever the user's module raises is reported, not a traceback
            problems.append(
                Problem(
                    f"plugins[{i}]",
                    f"cannot import '{name}': {type(e).__name__}: {e} "
                    "(is its folder on PYTHONPATH, or the package installed?)",
                )
            )
    return problems
