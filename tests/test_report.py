"""``multiseal report`` and ``python -m analysis`` on the synthetic MLflow store of test_analysis."""

from __future__ import annotations

import re

import pytest
from mlflow import MlflowClient
from test_analysis import EXPERIMENT, SEEDS, TOPOLOGIES, fill_store

from multiseal.analysis.report import write_report
from multiseal.cli import main


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return fill_store(tmp_path_factory.mktemp("report-store"))


def _images(report_text: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report_text)


def test_report_is_markdown_with_every_figure_beside_it(store, tmp_path):
    report = write_report(EXPERIMENT, store, tmp_path / "rep", log_artifacts=False)
    assert report == tmp_path / "rep" / "report.md"
    text = report.read_text()
    assert "## Comparison" in text and "## Runs" in text
    assert "topology.kind=ring" in text and "topology.kind=star" in text
    assert "crashed" not in text  # the FAILED run is left out, and said to be
    assert "1 other run (failed" in text
    images = _images(text)
    runs = len(TOPOLOGIES) * len(SEEDS)
    assert len(images) == 4 + 5 * runs  # comparison figures + five per run
    for rel in images:
        path = report.parent / rel
        assert path.is_file() and path.stat().st_size > 1000, rel


def test_report_logs_figures_as_artifacts_of_the_runs_they_describe(store, tmp_path):
    write_report(EXPERIMENT, store, tmp_path / "rep")
    client = MlflowClient(store)
    exp = client.get_experiment_by_name(EXPERIMENT)
    for run in client.search_runs([exp.experiment_id], "attributes.status = 'FINISHED'"):
        own = [a.path for a in client.list_artifacts(run.info.run_id, "report") if not a.is_dir]
        assert len(own) == 5 and all(run.info.run_id[:8] in p for p in own), own
        comparison = client.list_artifacts(run.info.run_id, "report/comparison")
        assert len(comparison) == 4


def test_cli_report_prints_the_report_path(store, tmp_path, capsys):
    out = tmp_path / "cli-rep"
    assert (
        main(
            [
                "report",
                "--experiment",
                EXPERIMENT,
                "--tracking-uri",
                store,
                "--out",
                str(out),
                "--metric",
                "pop.diffusion",
                "--no-log",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out.strip()
    assert printed == str(out / "report.md")
    assert (out / "figures" / "compare-pop.diffusion.png").stat().st_size > 1000


def test_cli_report_unknown_experiment_or_metric_is_bad_input(store, tmp_path, capsys):
    assert main(["report", "--experiment", "nope", "--tracking-uri", store, "--out", str(tmp_path)]) == 2
    assert "no MLflow experiment 'nope'" in capsys.readouterr().err
    assert (
        main(
            [
                "report",
                "--experiment",
                EXPERIMENT,
                "--tracking-uri",
                store,
                "--out",
                str(tmp_path),
                "--metric",
                "pop.acc_al.mean",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "'pop.acc_al.mean'" in err and "pop.acc_all.mean" in err


def test_python_m_multiseal_analysis_writes_the_report_without_logging(store, tmp_path, capsys):
    from multiseal.analysis.__main__ import main as analysis_main

    assert (
        analysis_main(
            ["--experiment", EXPERIMENT, "--tracking-uri", store, "--out", str(tmp_path / "a"), "--sweep", "syn"]
        )
        == 0
    )
    assert (tmp_path / "a" / "report.md").is_file()
    assert (
        analysis_main(
            ["--experiment", EXPERIMENT, "--tracking-uri", store, "--out", str(tmp_path / "b"), "--sweep", "other"]
        )
        == 2
    )
    assert "no FINISHED runs of sweep 'other'" in capsys.readouterr().err
