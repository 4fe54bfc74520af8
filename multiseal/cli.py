"""The ``multiseal`` command line: run, validate (and later sweep, report).

Bad input — a malformed scenario or data file, an unknown key, an impossible setting — prints a
clear message naming the file and key path and exits with status 2, before any model is loaded.
"""
from __future__ import annotations

import argparse
import os
import sys
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

    val = sub.add_parser("validate", help="check a scenario and its data without loading a model",
                         description="Check a scenario file and its data files; report every problem at once.")
    val.add_argument("scenario", nargs="+", help="scenario YAML file(s)")
    val.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a setting by dotted key path (repeatable)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except InputError as e:
        print(f"multiseal: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("multiseal: interrupted", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    from multiseal.overrides import parse_assignments
    from multiseal.scenario import load_scenario

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
        from multiseal.runs import run_scenario

        print(run_scenario(scenario, args.scenario, progress=not args.no_progress))
        return 0
    raise AssertionError(args.command)


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
