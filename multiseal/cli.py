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
from collections.abc import Sequence

from multiseal.errors import InputError

EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 1  # the input was good but the run failed at run time (a lost worker, a full disk)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="multiseal",
        description="Multi-agent self-adapting language models: run SEAL agents that share self-edits.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run", help="run a scenario and log it to MLflow", description="Run a scenario end to end and log it to MLflow."
    )
    run.add_argument("scenario", nargs="?", help="scenario YAML file (not with --resume)")
    run.add_argument(
        "--resume",
        metavar="RUN",
        help="continue a run from its last complete round: its run "
        "directory, run uid or MLflow run id (found under ./runs or $MULTISEAL_RUNS)",
    )
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting by dotted key path, e.g. --set topology.kind=ring (repeatable)",
    )
    run.add_argument("--tracking-uri", help="MLflow tracking URI (overrides tracking.uri)")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument(
        "--tag",
        dest="tags",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="add a tag to the MLflow run (repeatable)",
    )

    sy = sub.add_parser(
        "sync",
        help="upload a run directory to a tracking store (idempotent)",
        description="Upload a run directory (params, journal metrics, artifacts, status) to an "
        "MLflow tracking store; what the store already has is not sent again.",
    )
    sy.add_argument("run_dir", nargs="+", help="run directory (runs/<experiment>/<run>)")
    sy.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")

    rs = sub.add_parser(
        "runs",
        help="list run directories; find and settle runs whose process is gone",
        description="List the run directories under a folder with their status; a RUNNING run "
        "whose process is gone is shown as 'gone'.",
    )
    rs.add_argument("--dir", metavar="FOLDER", help="folder of run directories (default: $MULTISEAL_RUNS or ./runs)")
    rs.add_argument("--mark-killed", action="store_true", help="mark gone runs KILLED (here and in MLflow)")
    rs.add_argument("--resume", action="store_true", help="resume gone simulation runs, one after another")
    rs.add_argument("--tracking-uri", help="MLflow tracking URI for --mark-killed (default: each run's own)")

    val = sub.add_parser(
        "validate",
        help="check a scenario and its data without loading a model",
        description="Check a scenario file and its data files; report every problem at once.",
    )
    val.add_argument("scenario", nargs="+", help="scenario YAML file(s)")
    val.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting by dotted key path (repeatable)",
    )

    sw = sub.add_parser(
        "sweep",
        help="run a scenario over a grid of overrides and seeds",
        description="Run every point of a sweep file (one MLflow run each); points already "
        "FINISHED in MLflow are skipped, so an interrupted sweep resumes.",
    )
    sw.add_argument("sweep_file", help="sweep YAML file")
    sw.add_argument("--dry-run", action="store_true", help="list the points (and which are finished) and stop")
    sw.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="points run at once in separate processes "
        "(default: the file's `jobs:`, else 1); each needs its own copy of the model in memory",
    )
    sw.add_argument("--tracking-uri", help="MLflow tracking URI (overrides the base scenario's tracking.uri)")
    sw.add_argument(
        "--executor",
        choices=["local", "ray"],
        help="local processes (default) or Ray tasks on a cluster (default: the file's `executor:`)",
    )
    sw.add_argument(
        "--address",
        help="with --executor ray: the Ray cluster (default: the file's `address:`, "
        "else $RAY_ADDRESS, else a local Ray instance)",
    )
    sw.add_argument("--no-progress", action="store_true", help="hide progress bars")
    sw.add_argument(
        "--power-from",
        metavar="EXPERIMENT",
        help="with --dry-run: from this earlier experiment (same store), the minimum detectable "
        "difference with the sweep's seeds and the seeds --target needs, per metric",
    )
    sw.add_argument(
        "--target",
        type=float,
        default=0.05,
        metavar="DIFF",
        help="the paired difference --power-from sizes the sweep for (default: %(default)s)",
    )

    rep = sub.add_parser(
        "report",
        help="write a report (Markdown + PNG figures) of an experiment's runs",
        description="Tables with mean and 95%% CI over seeds and figures for every run of an "
        "MLflow experiment; figures are also logged as artifacts of their runs.",
    )
    rep.add_argument("--experiment", required=True, help="MLflow experiment name (a sweep's name by default)")
    rep.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)"
    )
    rep.add_argument("--out", metavar="DIR", help="report folder (default: reports/<experiment>)")
    rep.add_argument(
        "--metric",
        default="pop.acc_all.mean",
        help="metric compared across sweep points in the bar chart (default: %(default)s)",
    )
    rep.add_argument("--sweep", help="only the runs of this sweep (tag multiseal.sweep)")
    rep.add_argument("--no-log", action="store_true", help="do not log the figures as MLflow artifacts")
    rep.add_argument(
        "--reference",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="compare every point with this one, paired by seed (repeatable, e.g. "
        "--reference topology.kind=none; default: the sweep file's `reference:`)",
    )
    return p


def _terminate(signum, frame):  # noqa: ARG001 - signal handler signature
    # `kill` (SIGTERM) ends a run like Ctrl-C: MLflow marks it KILLED, never leaves it RUNNING
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
        signal.signal(signal.SIGHUP, _terminate)  # a closed terminal ends a run as `kill` does
    try:
        return _dispatch(args)
    except InputError as e:
        print(f"multiseal: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as e:
        from multiseal.run.rundir import NO_SPACE

        if e.errno not in NO_SPACE:
            raise
        where = f" writing {e.filename}" if e.filename else ""
        print(f"multiseal: error: {os.strerror(e.errno).lower()}{where}", file=sys.stderr)
        return EXIT_RUN_FAILED
    except KeyboardInterrupt:
        print("multiseal: interrupted", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    from multiseal.config.overrides import parse_assignments

    if args.command == "validate":
        from multiseal.api import validate

        overrides = parse_assignments(args.overrides)
        bad = 0
        for path in args.scenario:  # every file is checked, and every bad one reported
            checked = validate(path, overrides)
            if not checked.ok:
                bad += 1
                print(f"multiseal: error: {checked.message}", file=sys.stderr)
                continue
            sc = checked.scenario
            size = (
                f"{sc.tasks.kind} tasks" if sc.kind == "skills" else f"{sc.agents.count} agent(s), {sc.rounds} round(s)"
            )
            print(f"{path}: ok ({sc.kind}, {size}, model {sc.model.base}; {checked.cost})", flush=True)
        return EXIT_BAD_INPUT if bad else 0
    if args.command == "run":
        return _run(args)
    if args.command == "sync":
        from multiseal.run.runs import sync_runs

        _check_run_dirs(args.run_dir)  # all readable before a store is opened (or created)
        return sync_runs(args.run_dir, args.tracking_uri)
    if args.command == "runs":
        from multiseal.run.runs import list_runs

        return list_runs(args.dir, mark_killed=args.mark_killed, resume=args.resume, uri=args.tracking_uri)
    if args.command == "sweep":
        from multiseal.api import sweep as run_sweep
        from multiseal.run.sweep import describe
        from multiseal.run.sweep_file import load_sweep

        if args.jobs is not None and args.jobs < 1:
            raise InputError(f"--jobs: must be at least 1, got {args.jobs}")
        sweep = load_sweep(
            args.sweep_file,
            tracking_uri=args.tracking_uri,
            jobs=args.jobs,
            executor=args.executor,
            address=args.address,
        )
        if args.power_from and not args.dry_run:
            raise InputError("--power-from: only with --dry-run (it sizes a sweep before it runs)")
        if args.dry_run:
            print(describe(sweep))
            if args.power_from:
                print(_power(sweep, args.power_from, args.target))
            return 0
        done = run_sweep(sweep, progress=not args.no_progress)
        print(
            f"report: multiseal report --experiment '{done.plan.experiment}'"
            + (f" --tracking-uri '{args.tracking_uri}'" if args.tracking_uri else "")
        )
        return 1 if done.failed else 0
    if args.command == "report":
        from multiseal.analysis.paired import parse_reference
        from multiseal.analysis.report import write_report

        print(
            write_report(
                args.experiment,
                args.tracking_uri,
                args.out,
                metric=args.metric,
                sweep=args.sweep,
                log_artifacts=not args.no_log,
                reference=parse_reference(args.reference),
            )
        )
        return 0
    raise AssertionError(args.command)


def _power(sweep, experiment: str, target: float) -> str:
    """``sweep --dry-run --power-from``: the power table of an earlier experiment in the sweep's store,
    against the sweep's reference where the experiment varies its keys, else the reference the
    experiment's runs were tagged with (an earlier pilot often varies other settings than the sweep)."""
    from multiseal.analysis.load import load_experiment
    from multiseal.analysis.paired import power_table, resolve_reference
    from multiseal.run.sweep_file import tag_value

    if not target > 0:
        raise InputError(f"--target: must be a positive difference, got {target}")
    seeds = len({tag_value(p.overrides.get("seed", sweep.fixed.get("seed"))) for p in sweep.points})
    with load_experiment(experiment, sweep.tracking_uri) as data:
        if not data.runs:
            raise InputError(f"--power-from: experiment '{experiment}' has no FINISHED runs")
        given = {k: tag_value(v) for k, v in sweep.reference.items()}
        varied = {k for run in data.runs for k in run.point if k != "seed"}
        if not set(given) <= varied:
            given = {}
        reference = resolve_reference(data.runs, given or None, f"{sweep.source}: reference (in '{experiment}')")
        if not reference:
            raise InputError("--power-from: no reference point to pair with: add `reference:` to the sweep file")
        return power_table(data, reference, target, seeds)


def _run(args: argparse.Namespace) -> int:
    """``multiseal run``: validate everything and check the tracking store, then load the model."""
    from multiseal.api import run_scenario
    from multiseal.config.overrides import parse_assignments

    overrides = parse_assignments(args.overrides)
    if args.tracking_uri:
        overrides["tracking.uri"] = args.tracking_uri
    if args.resume:
        if args.scenario or args.overrides or args.tags:  # (--tracking-uri is allowed: the run mirrors there)
            raise InputError("--resume: the run's own scenario is used; give no scenario file, --set or --tag")
    elif args.scenario is None:
        raise InputError("run: give a scenario file, or --resume RUN")
    from multiseal.run.ray_population import WorkerLost

    try:
        result = run_scenario(
            args.scenario,
            overrides,
            progress=not args.no_progress,
            tags=_parse_tags(args.tags),
            resume=args.resume,
            before_model=_quiet_libraries,
        )
    except WorkerLost as e:  # the run is marked FAILED already; resume it with --resume once the cluster is back
        print(
            f"multiseal: error: {e}; the run is marked FAILED (resume it with multiseal run --resume)", file=sys.stderr
        )
        return 1
    print(result.summary)
    return 0


def _check_run_dirs(paths: Sequence[str]) -> None:
    """Every path is a run directory whose ``run.json`` and ``scenario.json`` read as JSON objects;
    an InputError naming the first that is not (``sync`` checks this before it opens any store)."""
    from multiseal.run.rundir import RunDir

    for path in paths:
        run = RunDir.open(path)
        for name in ("run.json", "scenario.json"):
            try:
                data = run.meta if name == "run.json" else run.scenario
            except (OSError, ValueError) as e:
                raise InputError(f"{path}: not a readable run directory: {name}: {str(e)[:200]}") from None
            if not isinstance(data, dict):
                raise InputError(
                    f"{path}: not a readable run directory: {name} holds a JSON {type(data).__name__}, not an object"
                )


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
