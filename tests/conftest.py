"""Shared fixtures: one tiny random model and one SmolLM2 for the whole session.

Both models are loaded once; tests add adapters to them, so every test must delete what it adds.
``make_adapter`` does that for you and hands out names no other test uses (peft keeps the last
adapter resident after ``delete_adapter``, so a name can never be reused on the same model).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator

import pytest
import torch

from multiseal.config.builders import build_simulation
from multiseal.learning.model import SharedModel, build_shared_model
from multiseal.types import LoraSettings

# One intra-op thread unless MULTISEAL_TEST_THREADS says otherwise. On a 2-core machine shared with
# other processes, OpenMP's parallel regions wait for a descheduled sibling thread: measured here with
# the load at ~5, a 64x64 linear took 16 ms with 2 threads and 5 us with 1, and a SmolLM2 forward on
# 8x60 tokens 5.6 s against 1.7 s.
torch.set_num_threads(int(os.environ.get("MULTISEAL_TEST_THREADS", "1")))


@pytest.fixture(autouse=True, scope="session")
def _run_directories(tmp_path_factory) -> Iterator[None]:
    """Run directories of in-process runs go to a temporary folder, not ./runs of the checkout."""
    old = os.environ.get("MULTISEAL_RUNS")
    os.environ["MULTISEAL_RUNS"] = str(tmp_path_factory.mktemp("runs"))
    yield
    if old is None:
        os.environ.pop("MULTISEAL_RUNS", None)
    else:
        os.environ["MULTISEAL_RUNS"] = old


_names = itertools.count()


def unique_adapter_name(prefix: str = "t") -> str:
    """An adapter name used nowhere else in this session (no '.', not a substring of 'lora_')."""
    return f"{prefix}{next(_names)}x"


@pytest.fixture(scope="session")
def tiny_model() -> SharedModel:
    return build_shared_model("tiny-random", progress=False)


@pytest.fixture(scope="session")
def tiny_model64() -> SharedModel:
    """tiny-random in float64, for tests that compare two ways of computing one training result.

    In float32 such a comparison turns each CPU's rounding into a result: Adam divides by sqrt(v),
    so on its first steps a weight whose gradient is near Adam's eps moves by up to ``lr`` whatever
    the gradient's size, and a rounding difference of one unit (6e-8) in such a gradient became a
    gap of 8e-3 of the update on one AVX2 machine and 0 on another. In float64 the unit roundoff is
    1.1e-16, 5e8 times smaller: with the same amplification (8e-3 / 6e-8, about 1.4e5) the gap is
    about 1.5e-11, and a bound of 1e-6 holds on any IEEE-754 CPU with five orders of magnitude to
    spare, while anything structural (a wrong row, a missed step, a shared optimiser state) moves
    the adapter by a share of its whole update (> 1e-1)."""
    return build_shared_model("tiny-random", dtype="float64", progress=False)


@pytest.fixture(scope="session")
def smollm2_model() -> SharedModel:
    return build_shared_model("smollm2-135m", progress=False)


@pytest.fixture
def make_adapter() -> Iterator[Callable[..., str]]:
    """``make_adapter(model, settings=LoraSettings(), init_from=None, seed=0) -> name``; deleted after the test."""
    made: list[tuple[SharedModel, str]] = []

    def make(
        model: SharedModel, settings: LoraSettings | None = None, init_from: str | None = None, seed: int = 0
    ) -> str:
        name = unique_adapter_name()
        model.add_adapter(name, settings or LoraSettings(), init_from=init_from, seed=seed)
        made.append((model, name))
        return name

    yield make
    for model, name in reversed(made):
        if name in model.adapters:
            model.delete_adapter(name)


@pytest.fixture
def run_sim(tiny_model):
    """``run_sim(scenario) -> Simulation``: built on tiny-random and run to the end; closed after the test."""
    made = []

    def run(sc):
        sim = build_simulation(sc, tiny_model, progress=False)
        made.append(sim)
        sim.run()
        return sim

    yield run
    for sim in made:
        sim.close()


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """A local Ray instance (2 CPUs) for one test module, shut down after it. One at a time on this
    machine: the suite runs in two pytest-xdist processes, and a file lock makes the second Ray module
    wait for the first."""
    import fcntl
    import tempfile

    ray = pytest.importorskip("ray")
    with open(os.path.join(tempfile.gettempdir(), f"multiseal-tests-ray-{os.getuid()}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            yield ray
        finally:
            ray.shutdown()
            fcntl.flock(lock, fcntl.LOCK_UN)
