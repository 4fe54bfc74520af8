"""Post-hoc analysis of multiseal runs logged to MLflow: load, compare over seeds, draw.

    from multiseal.analysis import load_experiment, comparison_table, format_markdown, run_figures
    data = load_experiment("topologies", "sqlite:///mlflow.db")
    print(format_markdown(comparison_table(data.runs)))
    run_figures(data, data.runs[0], "figures/")

``python -m multiseal.analysis --experiment NAME --out DIR`` writes the same report as ``multiseal report``.
"""
from multiseal.analysis.compare import (
    DEFAULT_METRICS,
    Summary,
    compare,
    comparison_table,
    curves,
    format_markdown,
    groups,
)
from multiseal.analysis.figures import comparison_figures, run_figures
from multiseal.analysis.load import ExperimentData, RunRecord, load_experiment, to_frame

__all__ = [
    "DEFAULT_METRICS", "ExperimentData", "RunRecord", "Summary", "compare", "comparison_figures",
    "comparison_table", "curves", "format_markdown", "groups", "load_experiment", "run_figures", "to_frame",
]
