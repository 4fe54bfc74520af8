"""multiseal's Python API: what the command line does, as functions that return data.

::

    import multiseal as ms

    scenario = ms.load("scenarios/quickstart.yaml", overrides={"rounds": 1})   # or a dict
    ms.validate(scenario).problems          # () when valid; else Problem(path, message) items
    result = ms.run_scenario("scenarios/quickstart.yaml", {"rounds": 1})   # a RunResult
    result.metrics                           # pandas DataFrame, one row per round
    result.acc                               # acc[round, agent, document]
    again = ms.open_run(result.path)         # the same object, from the run directory (or uid, MLflow id)
    ms.compare({"isolated": [a0, a1], "ring": [b0, b1]}, reference="isolated").table()
    done = ms.sweep("scenarios/sweeps/topologies.yaml")   # every point; done.groups for compare

A data file named by a relative path (``world.path``, ``tasks.path``) is found beside the scenario
file when the file's path is given, and in the working folder when a dict or a :class:`Scenario` is.
(``ms.run`` is the subpackage :mod:`multiseal.run`, hence ``run_scenario``.) ``multiseal validate``,
``multiseal run`` and ``multiseal sweep`` call these same functions; bad input
raises :class:`multiseal.errors.InputError` (``ScenarioError`` carries the problems) before any model
loads, as on the command line. ``import multiseal`` loads none of this until a name is used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from multiseal.analysis.local import GROUP_KEY, LocalRuns
from multiseal.analysis.paired import PAIRED_METRICS, PairedResult, format_paired, paired_comparisons
from multiseal.config.schema import Scenario
from multiseal.errors import InputError, Problem, ScenarioError
from multiseal.run.result import RunResult
from multiseal.run.sweep import SweepResult

__all__ = [
    "load",
    "validate",
    "Validation",
    "run_scenario",
    "open_run",
    "RunResult",
    "compare",
    "Comparison",
    "sweep",
    "SweepRuns",
]

ScenarioLike = str | Path | Mapping[str, Any] | Scenario


def load(source: ScenarioLike, overrides: Mapping[str, Any] | None = None) -> Scenario:
    """The typed, checked scenario from a YAML file, a dict (paths in it relative to the working
    folder) or a :class:`Scenario`; ``overrides`` sets dotted keys (``{"topology.kind": "ring"}``) as
    ``--set`` does. Raises :class:`ScenarioError` naming every problem."""
    from multiseal.config.load import load_scenario, validate_scenario
    from multiseal.config.overrides import apply_overrides

    if isinstance(source, (str, Path)):
        return load_scenario(source, dict(overrides or {}))
    raw = source.model_dump(mode="json") if isinstance(source, Scenario) else dict(source)
    if overrides:
        raw = apply_overrides(raw, dict(overrides))
    return validate_scenario(raw, None)


@dataclass(frozen=True)
class Validation:
    """What ``multiseal validate`` reports for one scenario: the problems (none: valid), the
    scenario, and the estimate of its cost (time and memory)."""

    problems: tuple[Problem, ...]
    scenario: Scenario | None = None
    cost: str | None = None
    message: str = ""  # the command line's text for the problems

    @property
    def ok(self) -> bool:
        return not self.problems


def validate(source: ScenarioLike, overrides: Mapping[str, Any] | None = None) -> Validation:
    """Check a scenario and its data files without loading a model; every problem as data."""
    from multiseal.config.estimate import estimate

    try:
        scenario = load(source, overrides)
        cost = estimate(scenario, source if isinstance(source, (str, Path)) else None).summary()
    except ScenarioError as e:
        return Validation(tuple(e.problems), message=str(e))
    except InputError as e:
        return Validation((Problem("", str(e)),), message=str(e))
    return Validation((), scenario, cost)


def run_scenario(
    source: ScenarioLike | None,
    overrides: Mapping[str, Any] | None = None,
    *,
    progress: bool = False,
    tags: Mapping[str, str] | None = None,
    resume: str | Path | None = None,
    before_model: Callable[[], None] | None = None,
) -> RunResult:
    """Run a scenario to the end (validated first; the tracking store checked before the model loads)
    and return its :class:`RunResult`. ``tags`` are added to the run; ``resume`` (a run directory,
    uid or MLflow run id) continues an interrupted simulation from its last intact checkpoint, with
    its own scenario (``source`` is then None; ``overrides`` may only set ``tracking.uri``, the store
    it mirrors to). ``before_model`` is called once everything is checked, before the model loads."""
    from multiseal.run.recipes import run_recipe
    from multiseal.run.tracking import check_reachable

    rundir = None
    if resume is not None:
        from multiseal.run.runs import resumable

        if source is not None or set(overrides or {}) - {"tracking.uri"}:
            raise InputError("resume: the run's own scenario is used; give no scenario or settings")
        rundir, scenario, path = resumable(str(resume), (overrides or {}).get("tracking.uri"))
    elif source is None:
        raise InputError("run: give a scenario (a file, a dict or a Scenario), or resume=RUN")
    else:
        scenario = load(source, overrides)
        path = source if isinstance(source, (str, Path)) else None
    check_reachable(scenario.tracking.uri)
    if before_model is not None:
        before_model()
    outcome = run_recipe(scenario, path, progress=progress, tags=tags, run=rundir)
    return RunResult.open(outcome.run_dir)


def open_run(ref: str | Path | RunResult, root: str | Path | None = None) -> RunResult:
    """A run by its directory, uid or MLflow run id (looked for under ``root``: ``$MULTISEAL_RUNS`` or
    ``./runs``)."""
    return ref if isinstance(ref, RunResult) else RunResult.open(ref, root)


@dataclass(frozen=True)
class Comparison:
    """Groups of runs compared with a reference group, paired by seed (:mod:`multiseal.analysis.paired`:
    cluster bootstrap per metric, Holm over the groups, the power figures)."""

    result: PairedResult
    reference: str

    @property
    def rows(self):
        return self.result.rows

    @property
    def notes(self) -> list[str]:
        return self.result.notes

    def table(self) -> str:
        """The Markdown table ``multiseal report`` writes."""
        return format_paired(self.result)

    def frame(self):
        """The rows as a pandas DataFrame."""
        import dataclasses

        import pandas as pd

        return pd.DataFrame([{**dataclasses.asdict(r), "outcome": r.outcome} for r in self.rows])


def compare(
    groups: Mapping[str, Sequence[RunResult | str | Path]],
    reference: str,
    metrics: Sequence[str] = PAIRED_METRICS,
    *,
    resamples: int | None = None,
    seed: int = 0,
    confidence: float = 0.95,
    alpha: float = 0.05,
    power: float = 0.8,
    root: str | Path | None = None,
) -> Comparison:
    """Every group against ``reference``, paired by seed: the runs of two groups with the same seed are
    compared cell by cell (see :mod:`multiseal.analysis.paired`). Runs are given as
    :class:`RunResult` objects or anything :func:`open_run` takes. Metrics a run did not record are
    left out."""
    if reference not in groups:
        raise InputError(f"reference: '{reference}' is not one of the groups ({', '.join(groups)})")
    if len(groups) < 2:
        raise InputError("compare: give the reference group and at least one other")
    opened = {name: [open_run(r, root) for r in runs] for name, runs in groups.items()}
    data = LocalRuns(opened)
    kwargs = {"resamples": resamples} if resamples is not None else {}
    result = paired_comparisons(
        data, {GROUP_KEY: reference}, metrics, seed=seed, confidence=confidence, alpha=alpha, power=power, **kwargs
    )
    return Comparison(result, reference)


@dataclass
class SweepRuns:
    """A sweep that ran: each point's outcome, and (read on first use) its runs on this machine grouped
    by point with the seed left out of the label, ready for :func:`compare`."""

    plan: Any  # multiseal.run.sweep_file.Sweep
    result: SweepResult
    _groups: dict[str, list[RunResult]] | None = field(default=None, repr=False)

    @property
    def failed(self):
        return self.result.failed

    @property
    def groups(self) -> dict[str, list[RunResult]]:
        """``{point label without the seed: [the newest FINISHED run of each seed]}``."""
        if self._groups is None:
            from multiseal.run.sweep import sweep_runs

            found = sweep_runs(self.plan)
            self._groups = {}
            for point in self.plan.points:
                done = [RunResult(r) for r in found.get(point.id, []) if r.meta.get("status") == "FINISHED"]
                if done:
                    self._groups.setdefault(self.label(point), []).append(done[-1])
        return self._groups

    @property
    def reference(self) -> str | None:
        """The group of the sweep file's ``reference`` point, if it names one."""
        from multiseal.run.sweep_file import tag_value

        ref = {k: tag_value(v) for k, v in self.plan.reference.items()}
        for point in self.plan.points:
            if ref and all(tag_value(self.plan.settings(point).get(k)) == v for k, v in ref.items()):
                return self.label(point)
        return None

    @staticmethod
    def label(point) -> str:
        from multiseal.run.sweep_file import tag_value

        return " ".join(f"{k}={tag_value(v)}" for k, v in point.overrides.items() if k != "seed") or "(base)"


def sweep(
    path: str | Path | Any,
    *,
    tracking_uri: str | None = None,
    jobs: int | None = None,
    executor: str | None = None,
    address: str | None = None,
    progress: bool = False,
    out: TextIO | None = None,
) -> SweepRuns:
    """Run every point of a sweep file (or a loaded :class:`multiseal.run.sweep_file.Sweep`) that has
    not FINISHED (as ``multiseal sweep``; ``out``: where
    the per-point lines go, stdout by default). ``groups`` then gathers the points' finished run
    directories on this machine (a Ray sweep's runs on other nodes are in the tracking store, not here)."""
    from multiseal.run.executors import execute
    from multiseal.run.sweep_file import Sweep, load_sweep

    plan = (
        path
        if isinstance(path, Sweep)
        else load_sweep(path, tracking_uri=tracking_uri, jobs=jobs, executor=executor, address=address)
    )
    return SweepRuns(plan, execute(plan, progress=progress, out=out))
