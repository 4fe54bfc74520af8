"""MLflow tracking: params, stepped metrics, artifacts, and honest run status."""

from __future__ import annotations

import mlflow
import pytest

from multiseal.run.tracker import Tracker
from multiseal.run.tracking import tracking_uri


def _client(uri):
    return mlflow.MlflowClient(uri)


def test_params_metrics_and_artifacts_land_in_the_store(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with Tracker(uri, "exp", "r1", params={"topology.kind": "ring", "agents.count": 3}) as t:
        t.metrics({"agent.0.acc_all": 0.5, "undefined": float("nan")}, step=1)
        t.metrics({"agent.0.acc_all": 0.75}, step=2)
        t.artifact_jsonl("notes.jsonl", [{"a": 1}, {"a": 2}])
        run_id = t.run_id
    run = _client(uri).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["topology.kind"] == "ring"
    hist = _client(uri).get_metric_history(run_id, "agent.0.acc_all")
    assert [(m.step, m.value) for m in hist] == [(1, 0.5), (2, 0.75)]
    assert "undefined" not in run.data.metrics
    assert [f.path for f in _client(uri).list_artifacts(run_id)] == ["notes.jsonl"]


def test_a_run_that_raises_is_marked_failed(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with pytest.raises(RuntimeError):
        with Tracker(uri, "exp", "boom") as t:
            run_id = t.run_id
            raise RuntimeError("boom")
    assert _client(uri).get_run(run_id).info.status == "FAILED"


def test_an_interrupted_run_is_marked_killed(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with pytest.raises(KeyboardInterrupt):
        with Tracker(uri, "exp", "stop") as t:
            run_id = t.run_id
            raise KeyboardInterrupt
    assert _client(uri).get_run(run_id).info.status == "KILLED"


def test_uri_precedence(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(None) == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri(None) == "http://127.0.0.1:5000"
    assert tracking_uri("sqlite:///x.db") == "sqlite:///x.db"
