"""The recipe registry: one entry point per scenario ``kind`` (torchtune keeps recipes apart from
the library the same way). A recipe is ``fn(scenario, source, progress, tags) -> Outcome``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from multiseal.config.schema import Scenario
from multiseal.registry import Registry

SUMMARY = "summary.txt"  # the artifact holding a run's end-of-run text (what the CLI prints)


@dataclass(frozen=True)
class Outcome:
    """What a recipe returns: its end-of-run text (what ``multiseal run`` prints) and the run
    directory it wrote (:class:`multiseal.run.result.RunResult` opens it)."""

    text: str
    run_dir: Path

    def __str__(self) -> str:
        return self.text


Recipe = Callable[[Scenario, "str | Path | None", bool, "Mapping[str, str] | None"], Outcome]
RECIPES: Registry[Recipe] = Registry("scenario kind")
