"""The studies under ``analysis/`` run end to end on tiny-random: a small sweep of the same shape as the
study's, run through the public API, and the script's tables and figure from it."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

BASE = """\
name: tiny-travel-base
kind: simulation
seed: 0
rounds: 2
model: {base: tiny-random, lora: {rank: 4, alpha: 8}}
world: {kind: synthetic, documents: 2, questions_per_doc: [2, 2]}
agents: 5
arrivals:
  kind: table
  table:
    - {round: 0, agent: 0, docs: [d000]}
    - {round: 0, agent: 2, docs: [d001]}
self_edit: {style: rewrite, max_new_tokens: 8}
inner_loop: {epochs: 1, batch_size: 2}
topology: {kind: ring}
sharing: {mode: notes, relay: true}
evaluation: {max_new_tokens: 4, retention_probe: 2, drift_passages: 2, drift_length: 16}
"""
SWEEP = """\
name: tiny-travel
base: base.yaml
grid:
  seed: [0, 1]
points:
  - {topology.kind: none, scheduler.kind: isolated, sharing.relay: false}
  - {topology.kind: ring, sharing.relay: true, sharing.retell: false}
  - {topology.kind: ring, sharing.relay: false, sharing.retell: true}
reference: {topology.kind: none, scheduler.kind: isolated, sharing.relay: false}
jobs: 1
"""


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"analysis_{name}", ROOT / "analysis" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_travel_study_script_reports_a_tiny_sweep(tmp_path, monkeypatch, capsys):
    travel = _script("travel")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MULTISEAL_THREADS", "1")
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "sweep.yaml").write_text(SWEEP)
    assert travel.main(["sweep.yaml", "--figure", str(tmp_path / "fig.png")]) == 0
    text = capsys.readouterr().out
    for heading in ("Against isolated agents", "Retelling against forwarding", "by graph distance", "per hop"):
        assert heading in text, text
    assert "ring, retelling" in text and "ring, forwarding" in text
    assert (tmp_path / "fig.png").stat().st_size > 0

    groups, reference = travel.groups_of("sweep.yaml", run=False)
    assert travel.short(reference) == "isolated" and len(groups) == 3
    rows = travel.by_distance(groups, reference)
    assert {r["distance"] for r in rows} == {1, 2}  # a ring of 5: every agent within two hops
    # the Δ at distance k is the mean over seeds' cells of (arm − isolated) at the final round
    ref = {r.seed: r for r in groups[reference]}
    for row in rows:
        diffs = []
        for run in groups[row["arm"]]:
            a, b = run.accuracy, ref[run.seed].accuracy
            cells = (a["distance"] == row["distance"]) & ~a["own"]
            diffs.extend((a["acc"][-1] - b["acc"][-1])[cells & np.isfinite(a["acc"][-1] - b["acc"][-1])])
        assert math.isclose(row["delta"], float(np.mean(diffs)), rel_tol=1e-9, abs_tol=1e-12)
        assert row["verdict"] in ("higher", "lower", "not distinguishable")


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "analysis").glob("*.py")))
def test_every_study_script_has_a_docstring_and_a_main(name):
    module = _script(name)
    assert module.__doc__ and callable(getattr(module, "main", None))
