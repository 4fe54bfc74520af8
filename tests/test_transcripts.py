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

# Metrics added since the recording, left out of the comparison (they are new results, not changes):
# key prefixes, and metric names matched as any dotted part of a key (``agent.3.note_fidelity``,
# ``pop.note_fidelity.mean``).
NEW_METRIC_PREFIXES = (
    "checkpoint.",  # issue 11: the size of each round's checkpoint
    "work.",  # issue 13: tokens generated and trained, answers given, per round
)
NEW_METRIC_NAMES = frozenset(
    {  # issue 10 item 4: the fact metrics (multiseal.sim.facts)
        "note_fidelity",
        "note_hallucination",
        "transfer_efficiency",
        "writer_miss",
        "learner_miss",
        "fact_diffusion",
        "misinformation",
        "delta",
        "delta_lo",
        "delta_hi",
        "p_holm",  # issue 10 item 7: the knowledge table paired against passage-only
        "ppl_ratio",
        "kl_base",  # issue 14: drift from the base on general text
        "acc",  # issue 25: pop.acc.d<k>, mean accuracy by graph distance
        "hop",  # issue 25: pop.hop.*.h<k>, facts by the hop a note arrived at
    }
)


def _recorded_metric(key: str) -> bool:
    return not key.startswith(NEW_METRIC_PREFIXES) and not NEW_METRIC_NAMES & set(key.split("."))


def _recorded_fields(got_rows: list[dict], want_rows: list[dict]) -> list[dict]:
    """``got_rows`` cut to the fields the recording has (rows gain fields: notes.jsonl's facts_*)."""
    fields = {k for row in want_rows for k in row}
    return [{k: v for k, v in row.items() if k in fields} for row in got_rows]


@pytest.mark.parametrize("name", sorted(CASES))
def test_scenario_replays_its_recorded_transcript(name, tmp_path):
    got = transcript(name, tmp_path)
    got["metrics"] = {k: v for k, v in got["metrics"].items() if _recorded_metric(k)}
    want = RECORDED[name]
    want_metrics = {k: v for k, v in want["metrics"].items() if "seconds" not in k}
    assert got["status"] == want["status"] == "FINISHED"
    assert sorted(got["metrics"]) == sorted(want_metrics)
    for key, series in want_metrics.items():
        assert got["metrics"][key] == series, f"{name}: metric {key} changed"
    assert sorted(got["artifacts"]) == sorted(want["artifacts"])
    for rel, rows in want["artifacts"].items():
        assert _recorded_fields(got["artifacts"][rel], rows) == rows, f"{name}: artifact {rel} changed"
