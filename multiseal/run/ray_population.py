"""A population sharded over Ray actors (``execution: {kind: ray, workers: W}``).

Each worker is a Ray actor with the resources ``execution.resources_per_worker`` declares. It loads the
base model once (:func:`multiseal.config.builders.build_model`, in its own process, on its own GPU when
it was given one) and holds a :class:`~multiseal.sim.population.Shard`: the adapters of its block of
agents, their note writing, training and answering. The driver keeps the round loop: it routes notes
over the graph, asks each worker for its agents' part of every stage at once, gathers the results and
logs everything itself, so workers write nothing to their own disks and a local tracking store
works for a sharded run on any number of nodes.

Every call is made with the inputs and seeds the in-process population gives the same group, so the
run equals the in-process run with the same ``execution.workers`` to the last bit
(:mod:`multiseal.sim.population`). A worker that dies (its process killed, its node lost) fails the
run with :class:`WorkerLost`, naming the worker, its agents and its node; the round in progress is
never logged, and the run is marked FAILED. Ray stays out of a local run's imports: this module imports
it only when a sharded run starts.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from multiseal.config.schema import ExecutionSection, ModelSection
from multiseal.errors import InputError
from multiseal.sim.population import Population, Shard


class WorkerLost(RuntimeError):
    """A worker of a sharded population died; the run cannot go on."""


class ShardWorker:
    """The Ray actor's body: one base model and the shard on it (made a Ray actor by :func:`start`)."""

    def __init__(self, model: dict, threads: int, index: int):
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from multiseal.config.builders import build_model

        cfg = ModelSection.model_validate(model)
        if not cfg.threads:
            cfg = cfg.model_copy(update={"threads": threads})
        t0 = time.perf_counter()
        self.shard = Shard(build_model(cfg, progress=False))
        self.index, self.load_seconds = index, time.perf_counter() - t0

    def where(self) -> dict[str, Any]:
        """The worker's process, node and the seconds its model took to load."""
        return {"pid": os.getpid(), "node": socket.gethostname(), "load_seconds": self.load_seconds}

    def call(self, method: str, args: tuple, kwargs: dict) -> tuple[Any, float]:
        """``shard.method(*args, **kwargs)`` and the seconds it took; tensors come back on the CPU."""
        t0 = time.perf_counter()
        out = getattr(self.shard, method)(*args, **kwargs)
        if method == "adapter_state":
            out = {k: v.cpu() for k, v in out.items()}
        return out, time.perf_counter() - t0


class RayPopulation(Population):
    """A :class:`Population` whose shards are Ray actors; each stage's calls run on all workers at once."""

    actors_info: list[dict] = []
    remote = True

    def _map(self, calls):
        from ray.exceptions import RayActorError

        refs = []
        for g, method, args, kwargs in calls:
            if method == "train":  # no progress bars inside workers: the driver's output stays readable
                args = (*args[:3], None)
            kwargs = {k: (None if k == "progress" else v) for k, v in kwargs.items()}
            refs.append((g, self.shards[g].call.remote(method, args, kwargs)))
        out = []
        for g, ref in refs:
            try:
                result, seconds = _ray().get(ref)
            except RayActorError as e:
                raise WorkerLost(self.lost(g, e)) from None
            self._add_seconds(g, seconds)
            out.append(result)
        return out

    def lost(self, g: int, error: Exception) -> str:
        info = self.actors_info[g] if g < len(self.actors_info) else {}
        agents = ", ".join(map(str, self.groups[g])) if g < len(self.groups) else "?"
        return (
            f"worker {g} (agents {agents}; pid {info.get('pid', '?')} on {info.get('node', '?')}) died during "
            f"{self.stage}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        )

    def shutdown(self) -> None:
        """Stop the workers (their models and adapters go with them)."""
        ray = _ray()
        for actor in self.shards:
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001 - already dead
                pass


def _ray():
    try:
        import ray
    except ImportError:
        raise InputError("execution.kind ray: Ray is not installed; pip install 'multiseal[ray]'") from None
    return ray


def start(model: ModelSection, execution: ExecutionSection, progress: bool = True) -> RayPopulation:
    """Connect to the cluster (``execution.address``, else ``$RAY_ADDRESS``, else a local instance) and
    start ``execution.workers`` actors, each loading the base model; returns when all have loaded it."""
    from multiseal.run.ray_sweep import connect

    ray = connect(execution.address)
    res = execution.resources_per_worker
    total = ray.cluster_resources()
    if res.cpus * execution.workers > total.get("CPU", 0) or res.gpus * execution.workers > total.get("GPU", 0):
        raise InputError(
            f"execution: {execution.workers} worker(s) × ({res.cpus:g} CPU, {res.gpus:g} GPU) need more than the "
            f"Ray cluster has ({total.get('CPU', 0):g} CPU, {total.get('GPU', 0):g} GPU)"
        )
    actor = ray.remote(ShardWorker).options(num_cpus=res.cpus, num_gpus=res.gpus, max_restarts=0)
    threads = max(1, int(res.cpus))
    if progress:
        print(
            f"starting {execution.workers} Ray worker(s) ({res.cpus:g} CPU, {res.gpus:g} GPU each), "
            f"each loading {model.base}",
            flush=True,
        )
    actors = [actor.remote(model.model_dump(), threads, g) for g in range(execution.workers)]
    try:
        info = ray.get([a.where.remote() for a in actors])
        desc, _ = ray.get(actors[0].call.remote("describe", (), {}))
    except Exception:
        for a in actors:
            ray.kill(a)
        raise
    pop = RayPopulation(actors, desc["tokenizer"], desc["chat"], desc["device"], desc["name"])
    pop.actors_info = info
    return pop
