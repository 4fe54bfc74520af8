"""A finished (or interrupted) run read back from its run directory, as data.

:class:`RunResult` is what ``multiseal.run(...)`` returns and ``multiseal.open_run(...)`` opens: the
run's identity (uid, MLflow run id, experiment, kind, status, seed), its resolved scenario, its
journal as a table of metrics per step (round), and its artifacts — the accuracy tensor, the notes,
the graded answers, the end-of-run summary and cost line. Everything is read from the run directory
(the source of truth, :mod:`multiseal.run.rundir`), so a run opens the same with or without a
tracking store, and nothing is read through a symbolic link.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from multiseal.errors import FileReadError, InputError, read_bytes
from multiseal.run.recipes.registry import SUMMARY
from multiseal.run.rundir import RunDir, resolve_run
from multiseal.run.tracking import runs_root

ARTIFACT_MAX_BYTES = 1 << 30  # an artifact read back whole (accuracy tensors, answers of a long run)


class RunResult:
    """One run directory, read lazily. ``metrics`` is a pandas DataFrame, one row per step."""

    def __init__(self, run: RunDir):
        self.run = run
        self._journal: list[dict[str, Any]] | None = None

    @classmethod
    def open(cls, ref: str | Path, root: str | Path | None = None) -> RunResult:
        """A run by its directory, its uid or its MLflow run id (searched under ``root``:
        ``$MULTISEAL_RUNS`` or ``./runs`` by default)."""
        return cls(resolve_run(str(ref), runs_root(root)))

    # -- identity ---------------------------------------------------------------
    @property
    def path(self) -> Path:
        return self.run.path

    @property
    def meta(self) -> dict[str, Any]:
        return self.run.meta

    @property
    def uid(self) -> str:
        return self.meta["uid"]

    @property
    def name(self) -> str:
        return self.meta["name"]

    @property
    def experiment(self) -> str:
        return self.meta["experiment"]

    @property
    def kind(self) -> str:
        return self.meta["kind"]

    @property
    def status(self) -> str:
        return self.meta["status"]

    @property
    def tags(self) -> dict[str, str]:
        return dict(self.meta.get("tags", {}))

    @property
    def run_id(self) -> str | None:
        """The MLflow run id of the first store the run was mirrored to (None: not mirrored)."""
        ids = [m.get("run_id") for m in self.run.mirrors().values() if m.get("run_id")]
        return ids[0] if ids else None

    @property
    def scenario(self) -> dict[str, Any]:
        """The resolved scenario (every setting, defaults included) as plain data."""
        return self.run.scenario

    @property
    def seed(self) -> int:
        return int(self.scenario.get("seed", 0))

    def setting(self, key: str) -> Any:
        """A setting of the resolved scenario by dotted key (``topology.kind``)."""
        node: Any = self.scenario
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise KeyError(f"{key}: not a setting of the run's scenario")
            node = node[part]
        return node

    # -- metrics ----------------------------------------------------------------
    def journal(self) -> list[dict[str, Any]]:
        if self._journal is None:
            self._journal = self.run.journal()
        return self._journal

    def history(self, key: str) -> list[tuple[int, float]]:
        """Every journalled value of metric ``key`` as (step, value), by step (the last entry of a step wins)."""
        by_step: dict[int, float] = {}
        for entry in self.journal():
            if key in entry["metrics"]:
                by_step[int(entry["step"])] = float(entry["metrics"][key])
        return sorted(by_step.items())

    def final(self, key: str) -> float:
        """The metric's value at its last step (NaN when never logged)."""
        series = self.history(key)
        return series[-1][1] if series else math.nan

    @property
    def metric_names(self) -> list[str]:
        return sorted({k for e in self.journal() for k in e["metrics"]})

    @property
    def metrics(self):
        """A pandas DataFrame: one row per step (the round, for simulations), one column per metric
        (NaN where a metric was not logged at that step)."""
        import pandas as pd

        rows: dict[int, dict[str, float]] = {}
        for entry in self.journal():
            rows.setdefault(int(entry["step"]), {}).update(entry["metrics"])
        frame = pd.DataFrame.from_dict(rows, orient="index").sort_index()
        frame.index.name = "step"
        return frame[sorted(frame.columns)] if len(frame.columns) else frame

    def agent_history(self, metric: str) -> dict[int, list[tuple[int, float]]]:
        """``{agent: [(step, value), ...]}`` of ``agent.<agent>.<metric>``."""
        agents = sorted(
            {
                int(k.split(".")[1])
                for k in self.metric_names
                if k.startswith("agent.") and k.split(".", 2)[2:] == [metric]
            }
        )
        return {a: self.history(f"agent.{a}.{metric}") for a in agents}

    # -- artifacts --------------------------------------------------------------
    def artifact(self, name: str) -> Path | None:
        """The path of artifact ``name`` (``accuracy.npz``, ``skills/table.md``) in the run directory, or
        None when the run has none; an artifact that is a link, or a name leading out of the artifact
        folder, is refused."""
        top = self.run.path / "artifacts"
        path = top / name
        for part in (top, *reversed(path.parents[: len(Path(name).parts) - 1]), path):
            if part.is_symlink():
                raise InputError(f"{part}: a symbolic link; multiseal reads nothing of a run directory through a link")
        if not path.resolve().is_relative_to(top.resolve()):
            raise InputError(f"{name}: not an artifact of {self.run.path}")
        return path if path.is_file() else None

    def _bytes(self, name: str) -> bytes | None:
        path = self.artifact(name)
        if path is None:
            return None
        try:
            return read_bytes(path, ARTIFACT_MAX_BYTES, "a run artifact", follow_links=False)
        except FileReadError as e:
            raise InputError(str(e)) from None

    def text(self, name: str) -> str | None:
        data = self._bytes(name)
        return None if data is None else data.decode("utf-8", errors="replace")

    def records(self, name: str) -> list[dict[str, Any]]:
        """A JSON-lines artifact as a list of dicts ([] when the run has none)."""
        text = self.text(name)
        return [json.loads(line) for line in text.splitlines() if line.strip()] if text else []

    @property
    def accuracy(self) -> dict[str, np.ndarray] | None:
        """A simulation's ``accuracy.npz``: ``acc[row, agent, document]`` (row 0 = the base model, row t =
        after round t), ``introduced``, ``own``, ``asked``, ``composition``, ``learnt_round``, ``doc_ids`` and
        (runs since issue 25) ``distance``: hops from each document's first recipient to each agent in the last round's graph."""
        data = self._bytes("accuracy.npz")
        if data is None:
            return None
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    @property
    def acc(self) -> np.ndarray | None:
        """``accuracy["acc"]``: the accuracy tensor ``[round + 1, agent, document]``."""
        tensor = self.accuracy
        return None if tensor is None else tensor["acc"]

    @property
    def notes(self) -> list[dict[str, Any]]:
        """Every note written (simulations: ``notes.jsonl``; knowledge: ``self_edits.jsonl``)."""
        return self.records("notes.jsonl") or self.records("self_edits.jsonl")

    @property
    def answers(self) -> list[dict[str, Any]]:
        """Every graded answer (``answers.jsonl``); a skills run's attempts (``skills/attempts.jsonl``)."""
        return self.records("answers.jsonl") or self.records("skills/attempts.jsonl")

    @property
    def summary(self) -> str:
        """The end-of-run text ``multiseal run`` printed."""
        return (self.text(SUMMARY) or "").rstrip("\n")

    @property
    def cost(self) -> str | None:
        """A simulation's cost line: where the rounds' time went, by stage."""
        return next((line for line in self.summary.splitlines() if line.startswith("cost:")), None)

    def __repr__(self) -> str:
        try:
            return f"RunResult({self.kind} {self.name!r}, {self.status}, {self.path})"
        except Exception:  # noqa: BLE001 - a corrupt run.json still has a printable path
            return f"RunResult({self.path})"
