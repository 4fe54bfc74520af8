"""A sweep file: one base scenario, a grid and/or a list of overrides, every point validated.

The format is specified in ``docs/sweeps.md``. Every point is validated (key paths, then the whole
scenario) before anything runs, and all problems are reported at once, named by their place in the
sweep file (``grid.topology.kind``, ``points[1].scheduler.kind``). A point's id is a hash of its
overrides, so it is stable across re-runs (:mod:`multiseal.run.sweep` skips finished points).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from multiseal.config.load import resolve_relative, validate_scenario
from multiseal.config.overrides import apply_overrides, check_key_path
from multiseal.config.schema import experiment_name
from multiseal.config.yamlfile import read_yaml
from multiseal.errors import Problem, ScenarioError, pydantic_problems
from multiseal.run.tracking import tracking_uri as resolve_uri

SWEEP_TAG = "multiseal.sweep"
POINT_TAG = "multiseal.point"
# The sweep's reference point, one tag per key (``multiseal.reference.topology.kind=none``) on every run.
REFERENCE_TAG = "multiseal.reference"
# Settings the sweep owns: a point may not move its run to another store or experiment.
RESERVED_KEYS = ("tracking.uri", "tracking.experiment")
# A sweep's name goes into tags and MLflow search filters: keep it to plain characters.
NAME_PATTERN = re.compile(r"[\w.\- ]+")
# The most points one sweep may have (every point is validated before anything runs, ~50 ms each):
# counted from the grid's and the points' lengths before any point is made.
MAX_POINTS = 1000


class Resources(BaseModel):
    """What one point asks of the cluster (``executor: ray``): Ray schedules points on these."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpus: float = Field(1.0, gt=0, le=1024, description="CPU cores per point (also its torch threads)")
    gpus: float = Field(0.0, ge=0, le=64, description="GPUs per point; a fraction shares one GPU between points")


class SweepFile(BaseModel):
    """The sweep file as written; ``load_sweep`` turns it into a :class:`Sweep`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str | None = Field(
        None, pattern=rf"^{NAME_PATTERN.pattern}$", description="sweep name (default: the file's stem)"
    )
    base: str = Field(description="base scenario file, relative to the sweep file")
    experiment: str | None = Field(None, description="MLflow experiment (default: the sweep name)")
    fixed: dict[str, Any] = Field(default_factory=dict, alias="set", description="overrides for every point")
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="key path -> values; all combinations")
    points: list[dict[str, Any]] = Field(default_factory=list, description="explicit points, crossed with the grid")
    jobs: int = Field(1, ge=1, description="points run at once, in separate processes")
    reference: dict[str, Any] = Field(
        default_factory=dict,
        description="key path -> value of the point the report compares every other point with, paired by seed",
    )
    executor: Literal["local", "ray"] = Field(
        "local",
        description="local: processes on this machine; ray: Ray tasks on a cluster (pip install 'multiseal[ray]')",
    )
    address: str | None = Field(
        None,
        description="ray: the cluster to join (default $RAY_ADDRESS, else a local Ray instance started for the sweep)",
    )
    resources: Resources = Field(default_factory=Resources, description="ray: what each point needs")
    retries: int = Field(0, ge=0, le=5, description="times a failed point is run again before it counts as failed")

    @field_validator("experiment")
    @classmethod
    def _experiment(cls, name: str | None) -> str | None:
        return name if name is None else experiment_name(name)

    @field_validator("grid")
    @classmethod
    def _non_empty(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        empty = [k for k, v in grid.items() if not v]
        if empty:
            raise ValueError(f"{', '.join(empty)}: needs at least one value")
        return grid


@dataclass(frozen=True)
class Point:
    """One scenario of the sweep: the overrides that make it differ from the others."""

    overrides: dict[str, Any]
    origin: dict[str, str]  # key path -> where the sweep file sets it ("grid.seed", "points[1].scheduler.kind")
    id: str

    @property
    def label(self) -> str:
        return " ".join(f"{k}={tag_value(v)}" for k, v in self.overrides.items()) or "(base)"

    def tags(self, sweep: str) -> dict[str, str]:
        tags = {SWEEP_TAG: sweep, POINT_TAG: self.id}
        tags.update({f"{POINT_TAG}.{k}": tag_value(v) for k, v in self.overrides.items()})
        return tags


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: every point's scenario is known to be valid."""

    name: str
    source: Path
    base: Path
    experiment: str
    tracking_uri: str
    fixed: dict[str, Any]
    points: list[Point]
    jobs: int = 1
    reference: dict[str, Any] = field(default_factory=dict)  # key path -> value (see docs/sweeps.md)
    executor: str = "local"  # local | ray
    address: str | None = None  # ray: the cluster
    resources: Resources = field(default_factory=Resources)  # ray: per point
    retries: int = 0

    def reference_tags(self) -> dict[str, str]:
        """``multiseal.reference.<key>`` tags naming the sweep's reference point (none without one)."""
        return {f"{REFERENCE_TAG}.{k}": tag_value(v) for k, v in self.reference.items()}

    def settings(self, point: Point) -> dict[str, Any]:
        """Every override a point's run gets, in the order they are applied."""
        return {
            "tracking.run_name": f"{self.name}: {point.label}",
            **self.fixed,
            **point.overrides,
            "tracking.uri": self.tracking_uri,
            "tracking.experiment": self.experiment,
        }


# --------------------------------------------------------------------------- values


def tag_value(v: Any) -> str:
    """How a point's value reads in a tag and a label: strings as they are, the rest as YAML."""
    return v if isinstance(v, str) else yaml_value(v)


def yaml_value(v: Any) -> str:
    """A one-line YAML text that ``multiseal.overrides.parse_value`` reads back as ``v``."""
    text = yaml.safe_dump(v, default_flow_style=True, width=math.inf).strip()
    return text.removesuffix("...").strip()


def point_id(overrides: dict[str, Any]) -> str:
    """A stable short hash of a point's full overrides (key order does not matter)."""
    blob = json.dumps(overrides, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


# --------------------------------------------------------------------------- loading


def read_sweep_file(path: str | Path) -> SweepFile:
    """Parse and type-check a sweep file; every problem is named by its key path."""
    path = Path(path)
    raw = read_yaml(path, "a sweep file")
    try:
        spec = SweepFile.model_validate(raw)
    except ValidationError as e:
        raise ScenarioError(path, pydantic_problems(e)) from None
    size = max(1, len(spec.points)) * math.prod(len(v) for v in spec.grid.values())
    if size > MAX_POINTS:
        factors = [f"{len(v)} {k}" for k, v in spec.grid.items()] + (
            [f"{len(spec.points)} points"] if spec.points else []
        )
        raise ScenarioError(
            path,
            [
                Problem(
                    "grid" if spec.grid else "points",
                    (
                        f"{size:,} points ({' × '.join(factors)}): more than {MAX_POINTS:,}, the most one sweep may have; "
                        "split it into several sweep files"
                    ),
                )
            ],
        )
    return spec


def expand_points(spec: SweepFile) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The points' overrides (each explicit point × each grid combination) and where each key comes from."""
    keys = list(spec.grid)
    combos = [dict(zip(keys, values)) for values in itertools.product(*spec.grid.values())] if keys else [{}]
    listed = spec.points or [{}]
    overrides, origins = [], []
    for i, explicit in enumerate(listed):
        for combo in combos:
            overrides.append({**explicit, **combo})
            origin = {k: f"points[{i}].{k}" for k in explicit}
            origin.update({k: f"grid.{k}" for k in combo})
            origins.append(origin)
    return overrides, origins


def _key_problems(spec: SweepFile) -> tuple[list[Problem], set[str]]:
    """Bad or conflicting key paths, each reported once at its place in the sweep file, and the
    keys that cannot be applied at all."""
    places = [(f"set.{k}", k) for k in spec.fixed] + [(f"grid.{k}", k) for k in spec.grid]
    places += [(f"points[{i}].{k}", k) for i, p in enumerate(spec.points) for k in p]
    problems, bad = [], set()
    for place, key in places:
        if key in RESERVED_KEYS:
            problems.append(
                Problem(place, "is set by the sweep (use the sweep file's `experiment:` or --tracking-uri)")
            )
            bad.add(key)
        elif msg := check_key_path(key):
            problems.append(Problem(place, msg))
            bad.add(key)
    for key in spec.grid:
        if key in spec.fixed:
            problems.append(Problem(f"grid.{key}", "is also under `set:`"))
        problems += [Problem(f"points[{i}].{key}", "is also in `grid:`") for i, p in enumerate(spec.points) if key in p]
    for i, p in enumerate(spec.points):
        problems += [Problem(f"points[{i}].{k}", "is also under `set:`") for k in p if k in spec.fixed]
    return problems, bad


def load_sweep(
    path: str | Path,
    tracking_uri: str | None = None,
    jobs: int | None = None,
    executor: str | None = None,
    address: str | None = None,
) -> Sweep:
    """Read a sweep file and validate every point's scenario; raise ScenarioError with every problem.

    ``tracking_uri`` (e.g. from the command line) wins over the base scenario's ``tracking.uri``;
    ``jobs``, ``executor`` and ``address`` over the file's.
    """
    path = Path(path)
    spec = read_sweep_file(path)
    base = resolve_relative(spec.base, path)
    if not base.is_file():
        raise ScenarioError(path, [Problem("base", f"no such scenario file: {base}")])
    problems, bad_keys = _key_problems(spec)  # bad keys are left out below, so the rest is still checked
    name = spec.name or path.stem
    if not NAME_PATTERN.fullmatch(name):
        raise ScenarioError(
            path, [Problem("name", f"'{name}' (the file's stem): use letters, digits, '_', '-', '.', ' '")]
        )
    base_raw = read_yaml(base)
    uri = resolve_uri(tracking_uri or _base_uri(base_raw))
    sweep = Sweep(
        name,
        path,
        base,
        spec.experiment or name,
        uri,
        dict(spec.fixed),
        [],
        jobs or spec.jobs,
        dict(spec.reference),
        executor or spec.executor,
        address or spec.address,
        spec.resources,
        spec.retries,
    )
    seen: set[str] = set()
    for overrides, origin in zip(*expand_points(spec)):
        point = Point(overrides, origin, point_id({**spec.fixed, **overrides}))
        if point.id in seen:
            problems.append(Problem(next(iter(origin.values()), "points"), f"point {point.label} appears twice"))
            continue
        seen.add(point.id)
        problems += _point_problems(sweep, point, base_raw, bad_keys)
        sweep.points.append(point)
    problems += _reference_problems(spec, sweep.points)
    if problems:
        raise ScenarioError(path, _dedupe(problems))
    return sweep


def _reference_problems(spec: SweepFile, points: list[Point]) -> list[Problem]:
    """``reference:`` names keys the grid or points vary (not the seed, which pairs runs), with
    values that one point takes together."""
    varying = list(dict.fromkeys([*spec.grid, *(k for p in spec.points for k in p)]))
    problems = []
    for key, value in spec.reference.items():
        if key == "seed":
            problems.append(
                Problem("reference.seed", "runs are paired by seed: name the other keys of the reference point")
            )
        elif key not in varying:
            problems.append(
                Problem(
                    f"reference.{key}",
                    "is not a key the grid or points vary (they vary: "
                    f"{', '.join(k for k in varying if k != 'seed') or 'nothing'})",
                )
            )
        else:
            values = list(dict.fromkeys(tag_value(p.overrides[key]) for p in points if key in p.overrides))
            if tag_value(value) not in values:
                problems.append(
                    Problem(
                        f"reference.{key}",
                        f"'{tag_value(value)}' is not one of the values the sweep gives it: {', '.join(values)}",
                    )
                )
    if spec.reference and not problems:
        wanted = {k: tag_value(v) for k, v in spec.reference.items()}
        if not any(all(k in p.overrides and tag_value(p.overrides[k]) == v for k, v in wanted.items()) for p in points):
            label = " ".join(f"{k}={v}" for k, v in wanted.items())
            problems.append(Problem("reference", f"no point has {label}"))
    return problems


def _base_uri(raw: dict) -> str | None:
    tracking = raw.get("tracking")
    return tracking.get("uri") if isinstance(tracking, dict) else None


def _point_problems(sweep: Sweep, point: Point, base_raw: dict, skip: set[str] = frozenset()) -> list[Problem]:
    """The point's scenario validated in full (without the keys in ``skip``, already reported); each
    problem is pinned on the override that caused it."""
    settings = {k: v for k, v in sweep.settings(point).items() if k not in skip}
    try:
        validate_scenario(apply_overrides(base_raw, settings, sweep.base), sweep.base)
        return []
    except ScenarioError as e:
        found = e.problems
    origin = {**{k: f"set.{k}" for k in sweep.fixed}, **point.origin}
    out = []
    for p in found:
        culprit = _culprit(p.path, origin)
        if culprit is not None:
            out.append(Problem(origin[culprit], f"{p.message}" + (f" (at {p.path})" if p.path != culprit else "")))
        else:
            out.append(Problem(f"{sweep.base.name} {p.path}".strip(), f"{p.message} (at point {point.label})"))
    return out


def _culprit(path: str, origin: dict[str, str]) -> str | None:
    """The override key a problem at ``path`` belongs to: the same key, one inside it or one above it."""
    for key in sorted(origin, key=len, reverse=True):
        if path == key or path.startswith(key + ".") or (path and key.startswith(path + ".")):
            return key
    return None


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: dict[tuple[str, str], Problem] = {}
    for p in problems:
        seen.setdefault((p.path, p.message), p)
    return list(seen.values())
