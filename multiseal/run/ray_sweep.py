"""Sweeps on a Ray cluster: each point a Ray task with the resources the sweep file declares.

``executor: ray`` (or ``multiseal sweep FILE --executor ray [--address ADDRESS]``) runs exactly what the
local executor runs — ``python -m multiseal run BASE --set ... --tag ...`` for each point not FINISHED
yet — but as a Ray task on whichever node has the point's ``resources: {cpus, gpus}`` free, so the
cluster's resources bound the concurrency. A failed point is reported with the end of its output and
the node it ran on, and does not stop the others; ``retries: N`` runs it again up to N times. A task
whose worker or node dies counts as a failed attempt, named by node.

Plain Ray tasks, not Ray Tune: a point is a whole multiseal run that logs itself to MLflow, keeps its
own run directory and resumes by point id, so Tune's trial bookkeeping, checkpointing and result
logging would duplicate what the local executor already does; what Ray adds is resource-aware
placement and fault reporting across machines, which its core task API gives directly.

The worker runs the point with its own Python (``sys.executable`` on that node) in the driver's
working directory, so every node needs multiseal installed and the sweep's files at the same path (a
shared filesystem or the same checkout): docs/cluster.md. With more than one node the tracking store
must be reachable from all of them: a ``sqlite:`` or file store is refused before anything runs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import Any, TextIO

from multiseal.errors import InputError
from multiseal.run.sweep import PointResult, SweepResult, finished_points, interrupted_run, point_command
from multiseal.run.sweep_file import Point, Sweep

LOCAL_STORES = ("sqlite:", "file:")


def _ray():
    try:
        import ray
    except ImportError:
        raise InputError("executor ray: Ray is not installed; pip install 'multiseal[ray]'") from None
    return ray


def connect(address: str | None):
    """Join the cluster at ``address`` (else ``$RAY_ADDRESS``, else start a local instance); reuse a
    connection the caller already made."""
    ray = _ray()
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS")
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except ConnectionError as e:
            raise InputError(f"executor ray: cannot reach the Ray cluster at {address}: {e}") from None
    return ray


def alive_nodes(ray) -> list[dict]:
    return [n for n in ray.nodes() if n.get("Alive")]


def check_tracking(uri: str, nodes: int) -> None:
    """Refuse a store on one machine's disk when the points may run on other machines."""
    local = uri.startswith(LOCAL_STORES) or "://" not in uri
    if nodes > 1 and local:
        raise InputError(
            f"tracking: the store {uri} is a file on this machine, and the Ray cluster has {nodes} nodes whose "
            "runs could not write to it. Start an MLflow server that every node reaches, e.g. on this machine\n"
            "    mlflow server --host 0.0.0.0 --port 5000 --backend-store-uri sqlite:///mlflow.db\n"
            "and run the sweep with --tracking-uri http://<this machine's address>:5000 (docs/cluster.md)"
        )


def _run_point(args: list[str], env: dict[str, str], cwd: str) -> dict[str, Any]:
    """The Ray task: one point's ``multiseal run`` in a subprocess on this node."""
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, *args], env={**os.environ, **env}, cwd=cwd, capture_output=True, text=True, check=False
    )
    return {
        "rc": proc.returncode,
        "output": proc.stdout + proc.stderr,
        "seconds": time.monotonic() - t0,
        "node": socket.gethostname(),
    }


def _point_args(sweep: Sweep, point: Point) -> list[str]:
    """The point's command without the interpreter (the worker uses its own Python); an interrupted
    run that the driver can see (a shared filesystem) is resumed instead."""
    interrupted = interrupted_run(sweep, point)
    if interrupted is not None:
        return ["-m", "multiseal", "run", "--resume", str(interrupted.path), "--no-progress"]
    return point_command(sweep, point)[1:]


def run_on_ray(sweep: Sweep, out: TextIO | None = None) -> SweepResult:
    """Run every point not finished yet as a Ray task (see the module docstring)."""
    out = out or sys.stdout
    ray = connect(sweep.address)
    nodes = alive_nodes(ray)
    check_tracking(sweep.tracking_uri, len(nodes))
    done = finished_points(sweep)
    todo = [p for p in sweep.points if p.id not in done]
    result = SweepResult([PointResult(p, "skipped") for p in sweep.points if p.id in done])
    res = sweep.resources
    total = ray.cluster_resources()
    print(
        f"sweep '{sweep.name}' on Ray ({len(nodes)} node(s), {total.get('CPU', 0):g} CPU, {total.get('GPU', 0):g} GPU; "
        f"{res.cpus:g} CPU and {res.gpus:g} GPU per point): {len(sweep.points)} point(s), "
        f"{len(result.results)} finished already, {len(todo)} to run "
        f"(experiment '{sweep.experiment}' at {sweep.tracking_uri})",
        file=out,
        flush=True,
    )
    if res.cpus > total.get("CPU", 0) or res.gpus > total.get("GPU", 0):
        raise InputError(
            f"resources: a point needs {res.cpus:g} CPU and {res.gpus:g} GPU, more than the whole "
            f"cluster has ({total.get('CPU', 0):g} CPU, {total.get('GPU', 0):g} GPU)"
        )
    threads = str(max(1, int(res.cpus)))
    env = {
        "TOKENIZERS_PARALLELISM": "false",
        "MULTISEAL_THREADS": threads,
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
    }
    if "MULTISEAL_RUNS" in os.environ:
        env["MULTISEAL_RUNS"] = os.environ["MULTISEAL_RUNS"]
    task = ray.remote(num_cpus=res.cpus, num_gpus=res.gpus, max_retries=0)(_run_point)
    cwd = os.getcwd()
    attempts: dict[str, int] = {}
    pending: dict[Any, Point] = {}

    def submit(point: Point) -> None:
        attempts[point.id] = attempts.get(point.id, 0) + 1
        print(
            f"[{point.id}] {point.label}" + (f" (attempt {attempts[point.id]})" if attempts[point.id] > 1 else ""),
            file=out,
            flush=True,
        )
        pending[task.remote(_point_args(sweep, point), env, cwd)] = point

    for p in todo:
        submit(p)
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            point = pending.pop(ready[0])
            try:
                got = ray.get(ready[0])
            except Exception as e:  # noqa: BLE001 - the worker or its node died: Ray says how
                got = {"rc": None, "output": f"{type(e).__name__}: {e}", "seconds": 0.0, "node": _node_of(e)}
            ok = got["rc"] == 0
            status = (
                "finished"
                if ok
                else (f"FAILED (exit {got['rc']})" if got["rc"] is not None else "FAILED (worker lost)")
            )
            print(f"  {point.id} {status} in {got['seconds']:.0f} s on {got['node']}", file=out)
            lines = got["output"].strip().splitlines()
            print("\n".join("    " + line for line in (lines if ok else lines[-40:])), file=out, flush=True)
            if not ok and attempts[point.id] <= sweep.retries:
                print(f"  {point.id}: retry {attempts[point.id]} of {sweep.retries}", file=out, flush=True)
                submit(point)
                continue
            result.results.append(PointResult(point, "finished" if ok else "failed", got["seconds"], got["output"]))
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=False)  # the task's subprocess gets SIGINT... then SIGTERM from its parent's death
        raise
    failed = result.failed
    print(
        f"sweep '{sweep.name}': {len(result.results) - len(failed)} of {len(sweep.points)} point(s) finished"
        + (f", {len(failed)} failed: {', '.join(r.point.id for r in failed)}" if failed else ""),
        file=out,
        flush=True,
    )
    return result


def _node_of(error: Exception) -> str:
    """The node a failed task ran on, where Ray's error says (else 'unknown node')."""
    text = str(error)
    for marker in ("ip: ", "IP: ", "node_ip_address="):
        if marker in text:
            return text.split(marker, 1)[1].split()[0].strip(",)")
    return "unknown node"
