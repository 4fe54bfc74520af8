"""The ``multiseal`` command line: run, validate, sweep, report.

Bad input — a malformed scenario or data file, an unknown key, an impossible setting — prints a
clear message naming the file and key path and exits with status 2, before any model is loaded.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Sequence

from multiseal.errors import InputError

EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="multiseal",
        description="Multi-agent self-adapting language models: run SEAL agents that share self-edits.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run a scenario and log it to MLflow",
                         description="Run a scenario end to end and log it to MLflow.")
    run.add_argument("scenario", help="scenario YAML file")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a setting by dotted key path, e.g. --set topology.kind=ring (repeatable)")
    run.add_argument("--tracking-uri", help="MLflow tracking URI (overrides tracking.uri)")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument("--tag", dest="tags", action="append", default=[], metavar="KEY=VALUE",
                     help="add a tag to the MLflow run (repeatable)")

    val = sub.add_parser("validate", help="check a scenario and its data without loading a model",
                         description="Check a scenario file and its data files; report every problem at once.")
    val.add_argument("scenario", nargs="+", help="scenario YAML file(s)")
    val.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a setting by dotted key path (repeatable)")

    sw = sub.add_parser("sweep", help="run a scenario over a grid of overrides and seeds",
                        description="Run every point of a sweep file (one MLflow run each); points already "
                                    "FINISHED in MLflow are skipped, so an interrupted sweep resumes.")
    sw.add_argument("sweep_file", help="sweep YAML file")
    sw.add_argument("--dry-run", action="store_true", help="list the points (and which are finished) and stop")
    sw.add_argument("--jobs", type=int, metavar="N", help="points run at once in separate processes "
                    "(default: the file's `jobs:`, else 1); each needs its own copy of the model in memory")
    sw.add_argument("--tracking-uri", help="MLflow tracking URI (overrides the base scenario's tracking.uri)")
    sw.add_argument("--no-progress", action="store_true", help="hide progress bars")

    rep = sub.add_parser("report", help="write a report (Markdown + PNG figures) of an experiment's runs",
                         description="Tables with mean and 95%% CI over seeds and figures for every run of an "
                                     "MLflow experiment; figures are also logged as artifacts of their runs.")
    rep.add_argument("--experiment", required=True, help="MLflow experiment name (a sweep's name by default)")
    rep.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    rep.add_argument("--out", metavar="DIR", help="report folder (default: reports/<experiment>)")
    rep.add_argument("--metric", default="pop.acc_all.mean",
                     help="metric compared across sweep points in the bar chart (default: %(default)s)")
    rep.add_argument("--sweep", help="only the runs of this sweep (tag multiseal.sweep)")
    rep.add_argument("--no-log", action="store_true", help="do not log the figures as MLflow artifacts")
    return p


def _terminate(signum, frame):  # noqa: ARG001 - signal handler signature
    # `kill` (SIGTERM) ends a run like Ctrl-C: MLflow marks it KILLED, never leaves it RUNNING
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return _dispatch(args)
    except InputError as e:
        print(f"multiseal: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("multiseal: interrupted", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    from multiseal.config.load import load_scenario
    from multiseal.config.overrides import parse_assignments

    if args.command == "validate":
        overrides = parse_assignments(args.overrides)
        for path in args.scenario:
            sc = load_scenario(path, overrides)
            print(f"{path}: ok ({sc.kind}, {sc.agents.count} agent(s), {sc.rounds} round(s), model {sc.model.base})")
        return 0
    if args.command == "run":
        overrides = parse_assignments(args.overrides)
        if args.tracking_uri:
            overrides["tracking.uri"] = args.tracking_uri
        scenario = load_scenario(args.scenario, overrides)
        _quiet_libraries()
        from multiseal.run.recipes import run_scenario

        print(run_scenario(scenario, args.scenario, progress=not args.no_progress, tags=_parse_tags(args.tags)))
        return 0
    if args.command == "sweep":
        from multiseal.run.sweep import describe, run_sweep
        from multiseal.run.sweep_file import load_sweep

        if args.jobs is not None and args.jobs < 1:
            raise InputError(f"--jobs: must be at least 1, got {args.jobs}")
        sweep = load_sweep(args.sweep_file, tracking_uri=args.tracking_uri, jobs=args.jobs)
        if args.dry_run:
            print(describe(sweep))
            return 0
        result = run_sweep(sweep, progress=not args.no_progress)
        print(f"report: multiseal report --experiment '{sweep.experiment}'"
              + (f" --tracking-uri '{args.tracking_uri}'" if args.tracking_uri else ""))
        return 1 if result.failed else 0
    if args.command == "report":
        from multiseal.analysis.report import write_report

        print(write_report(args.experiment, args.tracking_uri, args.out, metric=args.metric, sweep=args.sweep,
                           log_artifacts=not args.no_log))
        return 0
    raise AssertionError(args.command)


def _parse_tags(items: list[str]) -> dict[str, str]:
    """``["a=1", "b.c=x"]`` → ``{"a": "1", "b.c": "x"}``; a missing ``=`` or a bad key is an error."""
    from multiseal.errors import Problem, ScenarioError

    tags, problems = {}, []
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(Problem(item, "expected KEY=VALUE"))
        elif not all(c.isalnum() or c in "_-. /" for c in key):
            problems.append(Problem(key, "a tag key may hold letters, digits, '_', '-', '.', ' ' and '/' only"))
        else:
            tags[key] = value
    if problems:
        raise ScenarioError("--tag", problems)
    return tags


def _quiet_libraries() -> None:
    """Keep the terminal for multiseal's own progress: silence library chatter we cannot act on."""
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=UserWarning, module="peft")
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


if __name__ == "__main__":
    sys.exit(main())
