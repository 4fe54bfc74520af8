"""``python -m multiseal.analysis --experiment NAME [--tracking-uri URI] --out DIR``: the report of an experiment.

The same report as ``multiseal report``, but read-only on the MLflow store unless ``--log`` is given.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from multiseal.errors import InputError


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m multiseal.analysis", description=__doc__.splitlines()[0])
    p.add_argument("--experiment", required=True, help="MLflow experiment name")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    p.add_argument("--out", metavar="DIR", help="report folder (default: reports/<experiment>)")
    p.add_argument("--metric", default="pop.acc_all.mean", help="metric of the comparison bar chart")
    p.add_argument("--sweep", help="only the runs of this sweep")
    p.add_argument("--log", action="store_true", help="also log the figures as artifacts of their runs")
    args = p.parse_args(argv)
    from multiseal.analysis.report import write_report

    try:
        print(
            write_report(
                args.experiment,
                args.tracking_uri,
                args.out,
                metric=args.metric,
                sweep=args.sweep,
                log_artifacts=args.log,
            )
        )
    except InputError as e:
        print(f"analysis: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
