"""Runs read from their run directories, offered to the paired comparisons as an experiment is.

:mod:`multiseal.analysis.paired` compares sweep points read from MLflow (:class:`ExperimentData`).
:class:`LocalRuns` gives it the same three things — the runs (as :class:`RunRecord` with a point),
their accuracy tensors and their per-agent histories — from :class:`multiseal.run.result.RunResult`
objects, so any runs can be compared, paired by seed, without a sweep, tags or a tracking store:
each group the caller names becomes a point ``group=<name>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from multiseal.analysis.load import POINT_PREFIX, RunRecord, Series
from multiseal.errors import InputError
from multiseal.run.result import RunResult

GROUP_KEY = "group"


class LocalRuns:
    """Groups of runs (``{name: [RunResult, ...]}``) as the runs of one experiment, one point per group."""

    def __init__(self, groups: Mapping[str, Sequence[RunResult]]):
        self._by_id: dict[str, RunResult] = {}
        self.runs: list[RunRecord] = []
        for name, runs in groups.items():
            seeds: dict[int, str] = {}
            for run in runs:
                if run.uid in self._by_id:
                    raise InputError(f"run {run.path} is listed twice")
                if run.seed in seeds:
                    raise InputError(
                        f"group '{name}': two runs with seed {run.seed} ({seeds[run.seed]} and "
                        f"{run.path}); runs are paired by seed"
                    )
                seeds[run.seed] = str(run.path)
                self._by_id[run.uid] = run
                self.runs.append(
                    RunRecord(
                        run_id=run.uid,
                        name=run.name,
                        status=run.status,
                        start_time=0,
                        params={"seed": str(run.seed)},
                        tags={f"{POINT_PREFIX}{GROUP_KEY}": name, f"{POINT_PREFIX}seed": str(run.seed)},
                        metrics={k: run.final(k) for k in run.metric_names},
                    )
                )
        self._accuracy: dict[str, dict[str, np.ndarray] | None] = {}

    def result(self, run: RunRecord) -> RunResult:
        return self._by_id[run.run_id]

    def history(self, run: RunRecord, key: str) -> Series:
        return self.result(run).history(key)

    def agent_history(self, run: RunRecord, metric: str) -> dict[int, Series]:
        return self.result(run).agent_history(metric)

    def accuracy(self, run: RunRecord) -> dict[str, np.ndarray] | None:
        if run.run_id not in self._accuracy:
            self._accuracy[run.run_id] = self.result(run).accuracy
        return self._accuracy[run.run_id]
