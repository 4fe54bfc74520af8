"""Runs of an MLflow experiment, read back from any tracking URI into plain Python.

``load_experiment(name, uri)`` gives an :class:`ExperimentData`: its ``runs`` (params, tags, final
metric values), and on demand each run's metric history, accuracy tensor (``accuracy.npz``) and
communication graph (``graph.graphml``). ``tidy()`` flattens the histories into one row per
(run, metric, step) — a list of dicts, or a pandas DataFrame through :func:`to_frame`.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from multiseal.errors import InputError
from multiseal.run.tracking import client
from multiseal.run.tracking import tracking_uri as resolve_uri

POINT_PREFIX = "multiseal.point."
AGENT_KEY = re.compile(r"^agent\.(\d+)\.(.+)$")
DISTANCE_KEY = re.compile(r"^pop\.(diffusion|acc)\.(?:d(\d+)|(unreachable))$")
UNREACHABLE = -1  # the distance key of pop.diffusion.unreachable
Series = list[tuple[int, float]]  # (step = round, value), sorted by step


@dataclass(frozen=True)
class RunRecord:
    """One MLflow run: what identifies it and the last value of every metric."""

    run_id: str
    name: str
    status: str
    start_time: int
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, float]

    @property
    def point(self) -> dict[str, str]:
        """The sweep point's varying settings (tags ``multiseal.point.<key>``), seed included."""
        return {k[len(POINT_PREFIX) :]: v for k, v in self.tags.items() if k.startswith(POINT_PREFIX)}

    @property
    def seed(self) -> int | None:
        value = self.point.get("seed", self.params.get("seed"))
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None

    def group(self, over: Iterable[str] = ("seed",)) -> str:
        """The label of the runs that differ only in ``over`` (seeds, by default): the sweep point
        without those keys, else the run's name."""
        over = set(over)
        point = {k: v for k, v in self.point.items() if k not in over}
        if point:
            return " ".join(f"{k}={v}" for k, v in point.items())
        if self.point:
            return self.tags.get("multiseal.sweep", self.name)
        return self.name


class ExperimentData:
    """The runs of one experiment plus cached access to their histories and artifacts.

    ``statuses`` picks which runs count (FINISHED by default); ``sweep`` keeps only the runs tagged
    ``multiseal.sweep=<sweep>``. ``all_runs`` keeps every run, whatever its status.
    """

    def __init__(
        self,
        experiment: str,
        tracking_uri: str | None = None,
        sweep: str | None = None,
        statuses: Iterable[str] = ("FINISHED",),
    ):
        self.name = experiment
        self.tracking_uri = resolve_uri(tracking_uri)
        self.client = client(self.tracking_uri, create=False)  # a report reads: it creates no store
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            known = ", ".join(sorted(e.name for e in self.client.search_experiments())) or "none"
            raise InputError(f"no MLflow experiment '{experiment}' at {self.tracking_uri} (experiments there: {known})")
        self.experiment_id = exp.experiment_id
        query = f"tags.`multiseal.sweep` = '{sweep}'" if sweep else ""
        self.all_runs = sorted((_record(r) for r in self._search(query)), key=_order)
        wanted = set(statuses)
        self.runs, self.duplicates = _one_per_point_and_seed([r for r in self.all_runs if r.status in wanted])
        self._tmp = tempfile.TemporaryDirectory(prefix="multiseal-analysis-")
        self._history: dict[tuple[str, str], Series] = {}
        self._artifacts: dict[tuple[str, str], Path | None] = {}

    def _search(self, query: str) -> list[Any]:
        out, token = [], None
        while True:
            page = self.client.search_runs([self.experiment_id], query, max_results=1000, page_token=token)
            out.extend(page)
            token = page.token
            if not token:
                return out

    # -- metrics --------------------------------------------------------------
    def history(self, run: RunRecord, key: str) -> Series:
        """Every logged value of ``key`` in ``run`` as (step, value), by step (the last write of a step wins)."""
        cache = (run.run_id, key)
        if cache not in self._history:
            if key not in run.metrics:
                self._history[cache] = []
            else:
                by_step: dict[int, tuple[int, float]] = {}
                for m in self.client.get_metric_history(run.run_id, key):
                    if m.step not in by_step or m.timestamp >= by_step[m.step][0]:
                        by_step[m.step] = (m.timestamp, m.value)
                self._history[cache] = [(s, v) for s, (_, v) in sorted(by_step.items())]
        return self._history[cache]

    def agent_history(self, run: RunRecord, metric: str) -> dict[int, Series]:
        """``{agent: series}`` of ``agent.<agent>.<metric>``."""
        agents = sorted(int(m.group(1)) for k in run.metrics if (m := AGENT_KEY.match(k)) and m.group(2) == metric)
        return {a: self.history(run, f"agent.{a}.{metric}") for a in agents}

    def diffusion_history(self, run: RunRecord, family: str = "diffusion") -> dict[int, Series]:
        """``{graph distance: series}`` of ``pop.diffusion.d<k>`` (``-1`` = unreachable); with
        ``family="acc"``, of the mean accuracy by distance ``pop.acc.d<k>`` (the distance × round table)."""
        out = {}
        for k in run.metrics:
            if (m := DISTANCE_KEY.match(k)) and m.group(1) == family:
                out[int(m.group(2)) if m.group(2) is not None else UNREACHABLE] = self.history(run, k)
        return dict(sorted(out.items()))

    def tidy(self, metrics: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """One row per (run, metric key, step): run and point columns, ``key``, ``agent`` (None for
        population metrics), ``metric`` (the key without its ``agent.<id>.`` prefix), ``step``, ``value``."""
        wanted = set(metrics) if metrics is not None else None
        rows = []
        for run in self.runs:
            base = {
                "run_id": run.run_id,
                "run_name": run.name,
                "group": run.group(),
                "seed": run.seed,
                **{f"point.{k}": v for k, v in run.point.items()},
            }
            for key in sorted(run.metrics):
                m = AGENT_KEY.match(key)
                metric = m.group(2) if m else key
                if wanted is not None and key not in wanted and metric not in wanted:
                    continue
                for step, value in self.history(run, key):
                    rows.append(
                        {
                            **base,
                            "key": key,
                            "agent": int(m.group(1)) if m else None,
                            "metric": metric,
                            "step": step,
                            "value": value,
                        }
                    )
        return rows

    # -- artifacts ------------------------------------------------------------
    def artifact(self, run: RunRecord, path: str) -> Path | None:
        """A local copy of one artifact of ``run``, or None when the run has no such artifact."""
        cache = (run.run_id, path)
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one small file: no bar
        if cache not in self._artifacts:
            dst = Path(self._tmp.name) / run.run_id
            dst.mkdir(exist_ok=True)
            try:
                self._artifacts[cache] = Path(self.client.download_artifacts(run.run_id, path, str(dst)))
            except Exception:  # noqa: BLE001 - MLflow raises different errors per store for a missing file
                self._artifacts[cache] = None
        return self._artifacts[cache]

    def accuracy(self, run: RunRecord) -> dict[str, np.ndarray] | None:
        """The run's ``accuracy.npz``: ``acc[row, agent, doc]``, ``introduced``, ``own``, ``learnt_round``, ``doc_ids``."""
        path = self.artifact(run, "accuracy.npz")
        if path is None:
            return None
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def graph(self, run: RunRecord):
        """The run's ``graph.graphml`` (a networkx DiGraph, nodes carry ``final_accuracy``), or None."""
        import networkx as nx

        path = self.artifact(run, "graph.graphml")
        return nx.read_graphml(path, node_type=int) if path is not None else None

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self) -> ExperimentData:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_experiment(experiment: str, tracking_uri: str | None = None, sweep: str | None = None) -> ExperimentData:
    """The FINISHED runs of ``experiment`` at ``tracking_uri`` (see :class:`ExperimentData`)."""
    return ExperimentData(experiment, tracking_uri, sweep)


def to_frame(rows: list[dict[str, Any]]):
    """``tidy()`` rows as a pandas DataFrame (pandas comes with MLflow)."""
    import pandas as pd

    return pd.DataFrame(rows)


def _one_per_point_and_seed(runs: list[RunRecord]) -> tuple[list[RunRecord], list[RunRecord]]:
    """One run per (sweep, point, seed): a point that ran twice (a sweep restarted after a crash) is
    counted once — the latest run — never as an extra seed. Returns (kept, duplicates)."""
    latest: dict[tuple[str, str, int | None], RunRecord] = {}
    keep: list[RunRecord] = []
    for run in runs:
        point = run.tags.get("multiseal.point")
        if point is None:
            keep.append(run)
            continue
        key = (run.tags.get("multiseal.sweep", ""), point, run.seed)
        if key not in latest or run.start_time >= latest[key].start_time:
            latest[key] = run
    kept_ids = {r.run_id for r in keep} | {r.run_id for r in latest.values()}
    return [r for r in runs if r.run_id in kept_ids], [r for r in runs if r.run_id not in kept_ids]


def _record(run: Any) -> RunRecord:
    return RunRecord(
        run_id=run.info.run_id,
        name=run.info.run_name or run.info.run_id,
        status=run.info.status,
        start_time=run.info.start_time or 0,
        params=dict(run.data.params),
        tags=dict(run.data.tags),
        metrics=dict(run.data.metrics),
    )


def _order(run: RunRecord) -> tuple:
    seed = run.seed if run.seed is not None else -1
    return (run.group(), seed, run.start_time)
