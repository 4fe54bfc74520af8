"""A sweep's executor: local processes (:mod:`multiseal.run.sweep`) or Ray tasks (:mod:`multiseal.run.ray_sweep`).

Neither module imports Ray itself at import time; :mod:`multiseal.run.ray_sweep` imports it when a sweep
runs on Ray, so a local sweep works without Ray installed.
"""

from __future__ import annotations

from typing import TextIO

from multiseal.run.ray_sweep import run_on_ray
from multiseal.run.sweep import SweepResult, run_sweep
from multiseal.run.sweep_file import Sweep


def execute(sweep: Sweep, progress: bool = True, out: TextIO | None = None) -> SweepResult:
    """Run the sweep's points that are not FINISHED with the sweep's ``executor``."""
    if sweep.executor == "ray":
        return run_on_ray(sweep, out=out)
    return run_sweep(sweep, progress=progress, out=out)
