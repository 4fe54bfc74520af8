"""A multi-agent scenario, from typed settings to a finished MLflow run.

``build_simulation`` makes the parts (model, world, arrivals, graph, postbox, scheduler, agents);
``run_simulation`` plays the rounds, logs per-agent metrics (``agent.<id>.<metric>``, step = round)
and population metrics, then the artifacts: the accuracy tensor, the graph (GraphML and a PNG
coloured by final accuracy), the notes log, every graded answer and the scenario.
"""
from __future__ import annotations

import itertools
import json
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Mapping

import numpy as np

from multiseal import build
from multiseal.arrivals import build_arrivals
from multiseal.graph import DynamicGraph, is_disconnected
from multiseal.model import SharedModel
from multiseal.scenario import Scenario, resolve_relative
from multiseal.scheduler import build_scheduler
from multiseal.sharing import Postbox
from multiseal.simulation import AgentSpec, RoundRecord, Simulation

SUMMARY_METRICS = ("acc_own", "acc_received", "acc_all", "acc_unreached", "forgetting", "retention")


_simulations = itertools.count()


def agent_specs(scenario: Scenario, prefix: str | None = None) -> list[AgentSpec]:
    """One spec per agent: the scenario defaults with that agent's overrides applied.

    Adapter names get a per-process unique prefix, so several simulations can share one model.
    """
    prefix = prefix if prefix is not None else f"s{next(_simulations)}a"
    lora = build.build_lora(scenario.model.lora)
    inner = build.build_inner_loop(scenario.inner_loop)
    specs = []
    for i in range(scenario.agents.count):
        o = scenario.agents.overrides.get(i)
        a_lora, a_inner, style = lora, inner, scenario.self_edit.style
        if o is not None:
            style = o.style or style
            a_lora = replace(lora, rank=o.rank or lora.rank, alpha=o.alpha or lora.alpha)
            a_inner = replace(inner, lr=o.lr or inner.lr, epochs=inner.epochs if o.epochs is None else o.epochs)
        specs.append(AgentSpec(f"{prefix}{i}", style, a_lora, a_inner))
    return specs


def build_graphs(scenario: Scenario, source: str | Path | None = None) -> DynamicGraph:
    t = scenario.topology
    params = dict(t.params)
    if "file" in params:
        params["file"] = str(resolve_relative(params["file"], source))
    return DynamicGraph(t.kind, scenario.agents.count, directed=t.directed, params=params, seed=scenario.seed,
                        weights=t.weights, rewire_every=t.rewire_every, schedule=t.schedule)


def build_simulation(scenario: Scenario, model: SharedModel, source: str | Path | None = None,
                     progress: bool = True) -> Simulation:
    """All parts of a multi-agent run from its scenario (the model is passed in: load it once)."""
    world = build.build_world(scenario.world, scenario.seed, source)
    a = scenario.arrivals
    arrivals = build_arrivals(a.kind, scenario.agents.count, world.doc_ids, scenario.rounds,
                              docs_per_round=a.docs_per_round, copies=a.copies, source=a.source,
                              table=a.table or None, seed=scenario.seed)
    graphs = build_graphs(scenario, source)
    if is_disconnected(graphs.at(0)) and scenario.sharing.mode != "none" and scenario.agents.count > 1:
        warnings.warn(f"topology '{scenario.topology.kind}' is disconnected: some notes can never reach some agents",
                      stacklevel=2)
    s = scenario.sharing
    postbox = Postbox(scenario.agents.count, delay=s.delay, loss=s.loss, relay=s.relay, max_hops=s.max_hops,
                      seed=scenario.seed)
    return Simulation(
        model, world, arrivals, graphs, postbox,
        build_scheduler(scenario.scheduler.kind, scenario.scheduler.params),
        agent_specs(scenario), build.build_self_edit(scenario.self_edit), build.build_eval(scenario.evaluation),
        rounds=scenario.rounds, seed=scenario.seed, sharing=s.mode, mixing=s.mixing,
        replay=scenario.replay.fraction, probe_size=scenario.evaluation.retention_probe, progress=progress,
    )


def round_metrics(record: RoundRecord) -> dict[str, float]:
    """Flat MLflow metrics of one round."""
    out = {f"agent.{a}.{k}": v for a, m in record.agents.items() for k, v in m.items()}
    out.update(record.population)
    out.update({f"comm.{k}": v for k, v in record.communication.items()})
    out.update({f"seconds.{k}": v for k, v in record.seconds.items()})
    out["notes.written"] = len(record.notes)
    out["adapt.sequences"] = sum(record.trained_sequences.values())
    return out


def run_simulation(scenario: Scenario, source: str | Path | None = None, progress: bool = True,
                   tags: Mapping[str, str] | None = None) -> str:
    """Run a ``kind: simulation`` scenario under MLflow (``tags`` added to the run); returns the
    end-of-run summary table."""
    from multiseal.runs import open_tracker

    model = build.build_model(scenario.model, progress)
    sim = build_simulation(scenario, model, source, progress)
    with open_tracker(scenario, source, tags) as tracker:
        sim.start()
        tracker.metrics(_row0_metrics(sim), step=0)
        tracker.artifact_jsonl("probe.jsonl", [{"qid": q.qid, "question": q.question, "answer": q.answer}
                                               for q in sim.probe])
        actions_fn = None
        if scenario.scheduler.kind == "policy":  # the policy decides through the PettingZoo interface
            from multiseal.policies import policy_driver

            actions_fn = policy_driver(sim, scenario.scheduler.params, seed=scenario.seed)
        sim.run(on_round=lambda rec: tracker.metrics(round_metrics(rec), step=rec.round + 1), actions_fn=actions_fn)
        log_artifacts(sim, tracker)
        summary = summary_table(sim, scenario.evaluation.headline)
        tracker.artifact_text("summary.txt", summary + "\n")
        run_id = tracker.run_id
    return f"{summary}\nMLflow run {run_id} (experiment '{scenario.tracking.experiment}')"


def _row0_metrics(sim: Simulation) -> dict[str, float]:
    out = {}
    for a in range(len(sim.agents)):
        out[f"agent.{a}.acc_world"] = float(np.nanmean(sim.acc[0, a]))
    return out


def summary_table(sim: Simulation, headline: str) -> str:
    """A short per-agent table of the final round."""
    last = sim.records[-1] if sim.records else None
    lines = [f"final round {sim.round} of {sim.rounds} ({headline} accuracy; NaN = not defined yet)"]
    head = f"{'agent':>5} {'style':<17}" + "".join(f"{m:>14}" for m in SUMMARY_METRICS)
    lines.append(head)
    for a, spec in enumerate(sim.agents):
        vals = last.agents[a] if last else {}
        lines.append(f"{a:>5} {spec.style:<17}" + "".join(f"{vals.get(m, float('nan')):>14.3f}" for m in SUMMARY_METRICS))
    if last:
        pop = last.population
        lines.append(f"population: acc_all {pop.get('pop.acc_all.mean', float('nan')):.3f} "
                     f"(std {pop.get('pop.acc_all.std', float('nan')):.3f}), diffusion {pop.get('pop.diffusion', float('nan')):.3f}, "
                     f"notes sent {sum(r.communication.get('notes', 0) for r in sim.records)}")
    return "\n".join(lines)


def log_artifacts(sim: Simulation, tracker) -> None:
    """The accuracy tensor, the graph, the notes log and every graded answer."""
    import networkx as nx

    folder = tracker.artifact_dir()
    tensor = folder / "accuracy.npz"
    np.savez_compressed(tensor, acc=sim.acc, composition=sim.composition, introduced=sim.introduced,
                        own=sim.own, learnt_round=sim.learnt, doc_ids=np.array([d.doc_id for d in sim.world.documents]))
    tracker.artifact_file(tensor)
    g = nx.DiGraph(sim.graphs.at(max(sim.round - 1, 0)))
    final = np.nanmean(sim.acc[sim.round], axis=1) if sim.round else np.nanmean(sim.acc[0], axis=1)
    for a in g.nodes:
        g.nodes[a]["final_accuracy"] = float(final[a])
        g.nodes[a]["style"] = sim.agents[a].style
    gml = folder / "graph.graphml"
    nx.write_graphml(g, gml)
    tracker.artifact_file(gml)
    tracker.artifact_file(draw_graph(g, final, folder / "graph.png"))
    tracker.artifact_jsonl("notes.jsonl", [
        {"note_id": n.note_id, "author": n.author, "doc_id": n.doc_id, "round": n.round, "style": n.style,
         "tokens": n.tokens, "text": n.text, "sequences": list(n.sequences)} for n in sim.notes_log])
    tracker.artifact_jsonl("answers.jsonl", sim.outcomes)
    tracker.artifact_text("communication.json", json.dumps(
        {f"{u}->{v}": c for (u, v), c in sim.postbox.sent_by_edge().items()}, indent=1))


def draw_graph(g, values: np.ndarray, path: Path) -> Path:
    """The communication graph, nodes coloured by final mean accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx

    fig, ax = plt.subplots(figsize=(4.5, 4))
    pos = nx.circular_layout(g)
    nodes = nx.draw_networkx_nodes(g, pos, ax=ax, node_color=[values[a] for a in g.nodes], cmap="viridis",
                                   vmin=0.0, vmax=1.0, node_size=500)
    nx.draw_networkx_labels(g, pos, ax=ax, font_color="white")
    nx.draw_networkx_edges(g, pos, ax=ax, arrows=g.is_directed(), alpha=0.5)
    fig.colorbar(nodes, ax=ax, label="final accuracy (all documents)")
    ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
