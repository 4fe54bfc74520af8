"""The ``kind: simulation`` recipe: a multi-agent scenario, from typed settings to a finished MLflow run.

Builds the parts (:func:`multiseal.config.builders.build_simulation`), plays the rounds, logs
per-agent metrics (``agent.<id>.<metric>``, step = round) and population metrics, then the artifacts
(:mod:`multiseal.run.artifacts`).
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from multiseal.config.builders import build_model, build_simulation
from multiseal.config.schema import Scenario
from multiseal.metric_table import select
from multiseal.rl.policies import PolicyDriver, policy_driver
from multiseal.run.artifacts import log_artifacts
from multiseal.run.recipes.registry import RECIPES, SUMMARY, Outcome
from multiseal.run.rundir import RunDir
from multiseal.run.tracker import Tracker, open_tracker
from multiseal.sim.checkpoint import STATE_CLASSES, capture, restore
from multiseal.sim.loop import Simulation
from multiseal.types import RoundRecord

SUMMARY_METRICS = select(summary=True)


def round_metrics(record: RoundRecord) -> dict[str, float]:
    """Flat MLflow metrics of one round."""
    out = {f"agent.{a}.{k}": v for a, m in record.agents.items() for k, v in m.items()}
    out.update(record.population)
    out.update({f"comm.{k}": v for k, v in record.communication.items()})
    out.update({f"seconds.{k}": v for k, v in record.seconds.items()})
    out.update({f"work.{k}": v for k, v in record.work.items()})
    out["notes.written"] = len(record.notes)
    out["adapt.sequences"] = sum(record.trained_sequences.values())
    return out


@RECIPES.register("simulation")
def run_simulation(
    scenario: Scenario,
    source: str | Path | None = None,
    progress: bool = True,
    tags: Mapping[str, str] | None = None,
    run: RunDir | None = None,
) -> Outcome:
    """Run a ``kind: simulation`` scenario (``tags`` added to the run); returns the end-of-run summary
    and the run directory.

    After every round the simulation's whole state goes to a checkpoint in the run directory, then the
    round's metrics to its journal (and on to MLflow). ``run`` resumes that run directory from its
    last complete round: the result is the uninterrupted run's, to the last bit."""
    if scenario.execution.kind == "ray":  # the agents sharded over Ray actors; this process keeps the loop
        from multiseal.run.ray_population import start

        population = start(scenario.model, scenario.execution, progress)
        try:
            return _play(scenario, population, source, progress, tags, run)
        finally:
            population.shutdown()
    return _play(scenario, build_model(scenario.model, progress), source, progress, tags, run)


def _play(
    scenario: Scenario,
    model,
    source: str | Path | None,
    progress: bool,
    tags: Mapping[str, str] | None,
    run: RunDir | None,
) -> Outcome:
    sim = build_simulation(scenario, model, source, progress)
    keep = scenario.tracking.keep_checkpoints
    with open_tracker(scenario, source, tags, run=run) as tracker:
        actions_fn = None
        if scenario.scheduler.kind == "policy":  # the policy decides through the PettingZoo interface
            actions_fn = policy_driver(sim, scenario.scheduler.params, seed=scenario.seed)
        done = _resume(tracker, sim, actions_fn) if run is not None else 0
        if done == 0 and not any(e["step"] == 0 for e in tracker.run.journal()):
            sim.start()
            tracker.metrics(_row0_metrics(sim), step=0)
            tracker.artifact_jsonl(
                "probe.jsonl", [{"qid": q.qid, "question": q.question, "answer": q.answer} for q in sim.state.probe]
            )
        elif done == 0:
            sim.start()  # the row-0 entry is in the journal already; the base model answers alike

        def on_round(record: RoundRecord) -> None:
            t0 = time.perf_counter()
            state, tensors = capture(sim)
            state["policy"] = _policy_state(actions_fn)
            size = tracker.run.checkpoint(record.round + 1, state, tensors, keep=keep, types=STATE_CLASSES)
            record.seconds["checkpoint"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            tracker.metrics(
                {**round_metrics(record), "checkpoint.bytes": size}, step=record.round + 1, round=record.round + 1
            )
            tracking.append(time.perf_counter() - t0)

        tracking: list[float] = []

        sim.run(on_round=on_round, actions_fn=actions_fn)
        log_artifacts(sim, tracker)
        where = f"MLflow run {tracker.run_id}" if tracker.run_id else "not in MLflow"
        summary = (
            summary_table(sim, scenario.evaluation.headline)
            + "\n"
            + cost_summary(sim.records, sum(tracking))
            + f"\n{where} (experiment '{scenario.tracking.experiment}'), run directory {tracker.run.path}"
        )
        tracker.artifact_text(SUMMARY, summary + "\n")
    return Outcome(summary, tracker.run.path)


def _policy_state(driver: PolicyDriver | None) -> Any:
    """The policy's state for a checkpoint (its ``state_dict()``, plain data), or None: no policy, or
    one without ``state_dict`` (with a warning, once: a resumed run then starts that policy afresh)."""
    if driver is None:
        return None
    if not hasattr(driver.policy, "state_dict"):
        if not getattr(driver, "_warned", False):
            warnings.warn(
                f"the policy {type(driver.policy).__name__} has no state_dict(); a resumed run starts it afresh",
                stacklevel=2,
            )
            driver._warned = True
        return None
    return driver.policy.state_dict()


def _resume(tracker: Tracker, sim: Simulation, actions_fn) -> int:
    """Restore ``sim`` from the run directory's newest checkpoint that proves itself; returns that
    round (0: none, the run goes on from its start). A damaged newer checkpoint is passed over and
    named; journal lines of rounds after the round resumed from are dropped (here and in MLflow)."""
    run = tracker.run
    done, state, tensors, problems = run.newest_intact(STATE_CLASSES)
    for problem in problems:
        print(f"multiseal: checkpoint passed over: {problem}", file=sys.stderr)
    if problems:
        print(
            f"multiseal: resuming {run.path} from "
            + (f"round {done}, the newest intact checkpoint" if done else "its start: no intact checkpoint"),
            file=sys.stderr,
            flush=True,
        )
    journal = run.journal()
    keep = [e for e in journal if e["step"] <= done]
    if len(keep) < len(journal):
        run.truncate_journal(done)
        tracker.mirror.forget_after(len(keep))
    if done:
        policy = state.pop("policy", None)
        restore(sim, state, tensors)
        if policy is not None and actions_fn is not None:
            actions_fn.policy.load_state_dict(policy)
    return done


def _row0_metrics(sim: Simulation) -> dict[str, float]:
    out = {}
    for a in range(len(sim.setup.agents)):
        out[f"agent.{a}.acc_world"] = float(np.nanmean(sim.state.acc[0, a]))
    return out


def cost_summary(records: Sequence[RoundRecord], tracking_seconds: float = 0.0) -> str:
    """One line: where the rounds' time went, by stage, and the work each stage did."""
    if not records:
        return "cost: no rounds played"
    sec: dict[str, float] = {}
    busy: dict[str, float] = {}  # sharded: each worker's busy seconds (part of the stages' wall time)
    work: dict[str, int] = {}
    for r in records:
        for k, v in r.seconds.items():
            if k.startswith("worker."):
                w = k.split(".")[1]
                busy[w] = busy.get(w, 0.0) + v
            else:
                sec[k] = sec.get(k, 0.0) + v
        for k, v in r.work.items():
            work[k] = work.get(k, 0) + v
    sec["tracking"] = sec.get("tracking", 0.0) + tracking_seconds
    total = sum(sec.values())
    rate = work.get("trained_tokens", 0) / sec["adapt"] if sec.get("adapt") else 0.0
    parts = [
        f"self-edit {sec.get('self_edit', 0):.0f} s ({work.get('generated_tokens', 0):,} tokens written)",
        f"sharing {sec.get('sharing', 0):.1f} s",
        *([f"retelling {sec['retell']:.0f} s"] if "retell" in sec else []),
        f"adapt {sec.get('adapt', 0):.0f} s ({work.get('trained_tokens', 0):,} tokens trained, {rate:.0f}/s)",
        f"evaluate {sec.get('evaluate', 0):.0f} s ({work.get('answered', 0):,} answers)",
        f"metrics {sec.get('metrics', 0):.1f} s",
        f"checkpoints and tracking {sec.get('checkpoint', 0) + sec['tracking']:.1f} s",
    ]
    line = f"cost: {len(records)} round(s) in {total:.0f} s: " + ", ".join(parts)
    if busy:
        line += "; workers busy " + ", ".join(
            f"{w}: {s:.0f} s" for w, s in sorted(busy.items(), key=lambda x: int(x[0]))
        )
    return line


def summary_table(sim: Simulation, headline: str) -> str:
    """A short per-agent table of the final round."""
    last = sim.records[-1] if sim.records else None
    lines = [f"final round {sim.round} of {sim.setup.rounds} ({headline} accuracy; NaN = not defined yet)"]
    head = f"{'agent':>5} {'style':<17}" + "".join(f"{m:>14}" for m in SUMMARY_METRICS)
    lines.append(head)
    for a, spec in enumerate(sim.setup.agents):
        vals = last.agents[a] if last else {}
        lines.append(
            f"{a:>5} {spec.style:<17}" + "".join(f"{vals.get(m, float('nan')):>14.3f}" for m in SUMMARY_METRICS)
        )
    if last:
        pop = last.population
        lines.append(
            f"population: acc_all {pop.get('pop.acc_all.mean', float('nan')):.3f} "
            f"(std {pop.get('pop.acc_all.std', float('nan')):.3f}), diffusion {pop.get('pop.diffusion', float('nan')):.3f}, "
            f"notes sent {sum(r.communication.get('notes', 0) for r in sim.records)}"
        )
    return "\n".join(lines)
