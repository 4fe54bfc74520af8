"""Recipes: running a validated scenario end to end, one per scenario ``kind``, chosen by registry.

Each returns an :class:`Outcome`: the summary the CLI prints and the run directory; everything else
goes to the run directory and the MLflow run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from multiseal.config.schema import Scenario
from multiseal.run.recipes import knowledge, restem, simulation, skills  # noqa: F401  (each registers its kind)
from multiseal.run.recipes.registry import RECIPES, Outcome
from multiseal.run.rundir import RunDir


def run_recipe(
    scenario: Scenario,
    source: str | Path | None = None,
    progress: bool = True,
    tags: Mapping[str, str] | None = None,
    run: RunDir | None = None,
) -> Outcome:
    """Run ``scenario`` (loaded from ``source``) with the recipe of its kind; returns its summary text
    and run directory.

    ``tags`` are added to the MLflow run (a sweep marks its points this way); ``run`` resumes that run
    directory (kinds that checkpoint rounds only: ``simulation``)."""
    recipe = RECIPES.get(scenario.kind)
    return (
        recipe(scenario, source, progress, tags) if run is None else recipe(scenario, source, progress, tags, run=run)
    )
