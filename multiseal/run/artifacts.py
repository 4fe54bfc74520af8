"""What a finished simulation leaves in its MLflow run: the accuracy tensor, the graph (GraphML and
a figure), the notes (with their hops, sources and the facts each states correctly, wrongly or not at
all), every graded answer, the distance × round table of mean accuracy (``distance_rounds.csv``: rows are
graph distances from a document's first recipient, -1 unreachable; columns the base row and each round),
per-fact diffusion (``facts.jsonl``, worlds with facts), and the communication per edge.
``plot_graph`` is the one graph figure, used here and by the reports (:mod:`multiseal.analysis.figures`)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import networkx as nx
import numpy as np

from multiseal.run.tracker import Tracker
from multiseal.sim.diffusion import distance_rounds
from multiseal.sim.facts import FactIndex, fact_rows
from multiseal.sim.loop import Simulation
from multiseal.sim.stages.measure import distance_matrix, item_matrix
from multiseal.types import Note


def plot_graph(graph: nx.DiGraph, path: str | Path, title: str = "") -> Path:
    """The communication graph, nodes coloured by their ``final_accuracy`` attribute."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 4))
    nodes = list(graph.nodes)
    values = [float(graph.nodes[n].get("final_accuracy", math.nan)) for n in nodes]
    pos = nx.circular_layout(graph)
    drawn = nx.draw_networkx_nodes(
        graph, pos, nodelist=nodes, ax=ax, node_color=values, cmap="viridis", vmin=0.0, vmax=1.0, node_size=500
    )
    nx.draw_networkx_labels(graph, pos, ax=ax, font_color="white")
    one_way = graph.is_directed() and any(not graph.has_edge(v, u) for u, v in graph.edges)
    nx.draw_networkx_edges(graph, pos, ax=ax, arrows=one_way, alpha=0.5, node_size=500)
    fig.colorbar(drawn, ax=ax, label="final accuracy (all documents)")
    ax.set_title(title or "communication graph", fontsize="medium")
    ax.set_axis_off()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def log_artifacts(sim: Simulation, tracker: Tracker) -> None:
    """The accuracy tensor, the graph, the notes log and every graded answer."""
    setup, state = sim.setup, sim.state
    folder = tracker.artifact_dir()
    rows = range(sim.round + 1)
    distances = [distance_matrix(setup, setup.graphs.at(max(t - 1, 0))) for t in rows]
    tensor = folder / "accuracy.npz"
    np.savez_compressed(
        tensor,
        acc=state.acc,
        asked=state.asked,
        composition=state.composition,
        introduced=state.introduced,
        own=state.own,
        learnt_round=state.learnt,
        distance=distances[-1],  # (agents, documents) hops from each document's first recipient in the last graph
        doc_ids=np.array([d.doc_id for d in setup.world.documents]),
    )
    tracker.artifact_file(tensor)
    g = nx.DiGraph(setup.graphs.at(max(sim.round - 1, 0)))
    final = np.nanmean(state.acc[sim.round], axis=1) if sim.round else np.nanmean(state.acc[0], axis=1)
    for a in g.nodes:
        g.nodes[a]["final_accuracy"] = float(final[a])
        g.nodes[a]["style"] = setup.agents[a].style
    gml = folder / "graph.graphml"
    nx.write_graphml(g, gml)
    tracker.artifact_file(gml)
    tracker.artifact_file(plot_graph(g, folder / "graph.png"))
    facts = setup.facts
    tracker.artifact_jsonl(
        "notes.jsonl",
        [
            {
                "note_id": n.note_id,
                "author": n.author,
                "doc_id": n.doc_id,
                "round": n.round,
                "style": n.style,
                "tokens": n.tokens,
                "hops": n.hops,
                "sources": list(n.sources),
                "text": n.text,
                "sequences": list(n.sequences),
                **_fact_fields(facts, n),
            }
            for n in state.notes_log
        ],
    )
    tracker.artifact_jsonl("answers.jsonl", state.outcomes)
    table = distance_rounds(state.acc[: sim.round + 1], state.introduced[: sim.round + 1], distances)
    header = ["distance", "base", *(f"round {t}" for t in rows[1:])]
    tracker.artifact_text(
        "distance_rounds.csv",
        "\n".join([",".join(header)] + [",".join([str(d), *(f"{v:.6g}" for v in vs)]) for d, vs in table.items()])
        + "\n",
    )
    if facts:
        qids = sorted(facts.question.values())
        grades = [[dict(zip(qids, m)) for m in item_matrix(setup, state, t, qids)] for t in rows]
        tracker.artifact_jsonl("facts.jsonl", fact_rows(facts, grades, state.introduced, distances, setup.doc_index))
    tracker.artifact_text(
        "communication.json",
        json.dumps({f"{u}->{v}": c for (u, v), c in state.postbox.sent_by_edge().items()}, indent=1),
    )


def _fact_fields(facts: FactIndex, note: Note) -> dict[str, list[str]]:
    """A note's ``facts_correct``, ``facts_wrong`` and ``facts_omitted`` (fact ids; :mod:`multiseal.sim.facts`)."""
    scored = facts.score(note)
    return {
        "facts_correct": list(scored.correct),
        "facts_wrong": list(scored.wrong),
        "facts_omitted": list(scored.omitted),
    }
