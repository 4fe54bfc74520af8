"""Post-hoc analysis of multiseal runs logged to MLflow: load, compare over seeds, draw.

    from multiseal.analysis import load_experiment, comparison_table, format_markdown, run_figures
    data = load_experiment("topologies", "sqlite:///mlflow.db")
    print(format_markdown(comparison_table(data.runs)))
    run_figures(data, data.runs[0], "figures/")
    print(format_paired(paired_comparisons(data, {"topology.kind": "none"})))  # paired, vs a reference

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
from multiseal.analysis.paired import (
    PAIRED_METRICS,
    Comparison,
    PairedResult,
    format_paired,
    paired_comparisons,
    power_table,
)

__all__ = [
    "DEFAULT_METRICS",
    "PAIRED_METRICS",
    "Comparison",
    "ExperimentData",
    "PairedResult",
    "RunRecord",
    "Summary",
    "compare",
    "comparison_figures",
    "comparison_table",
    "curves",
    "format_markdown",
    "format_paired",
    "groups",
    "load_experiment",
    "paired_comparisons",
    "power_table",
    "run_figures",
    "to_frame",
]
