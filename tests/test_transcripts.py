"""No behaviour change: shipped scenarios on tiny-random replay their recorded metric transcripts.

The transcripts (``tests/transcripts/transcripts.json``) were recorded through the CLI before the
architecture refactor; every metric at every step, the notes, the self-edits and every graded answer
must come out identical. See ``tests/transcripts/cases.py``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "transcripts"))
from cases import CASES, FIXTURE, transcript  # noqa: E402

RECORDED = json.loads(FIXTURE.read_text())


@pytest.mark.parametrize("name", sorted(CASES))
def test_scenario_replays_its_recorded_transcript(name, tmp_path):
    got = transcript(name, tmp_path)
    # Added since the recording (issue 11): the size of each round's checkpoint, not a result.
    got["metrics"] = {k: v for k, v in got["metrics"].items() if not k.startswith("checkpoint.")}
    want = RECORDED[name]
    want_metrics = {k: v for k, v in want["metrics"].items() if "seconds" not in k}
    assert got["status"] == want["status"] == "FINISHED"
    assert sorted(got["metrics"]) == sorted(want_metrics)
    for key, series in want_metrics.items():
        assert got["metrics"][key] == series, f"{name}: metric {key} changed"
    assert sorted(got["artifacts"]) == sorted(want["artifacts"])
    for rel, rows in want["artifacts"].items():
        assert got["artifacts"][rel] == rows, f"{name}: artifact {rel} changed"
