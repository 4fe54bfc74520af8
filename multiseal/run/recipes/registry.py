"""The recipe registry: one entry point per scenario ``kind`` (torchtune keeps recipes apart from
the library the same way). A recipe is ``fn(scenario, source, progress, tags) -> summary text``."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

from multiseal.config.schema import Scenario
from multiseal.registry import Registry

Recipe = Callable[[Scenario, "str | Path | None", bool, "Mapping[str, str] | None"], str]
RECIPES: Registry[Recipe] = Registry("scenario kind")
