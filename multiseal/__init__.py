"""multiseal: multi-agent self-adapting language models (SEAL agents that share self-edits).

The Python API (:mod:`multiseal.api`), imported on first use so that ``import multiseal`` stays
fast and imports neither torch nor Ray::

    import multiseal as ms
    result = ms.run_scenario("scenarios/quickstart.yaml")
    result.metrics, result.acc, result.summary

``load``, ``validate``, ``run_scenario``, ``open_run``, ``compare``, ``sweep``; the objects they return:
``Validation``, ``RunResult``, ``Comparison``, ``SweepRuns``.
"""

from __future__ import annotations

from typing import Any

API = (
    "load",
    "validate",
    "Validation",
    "run_scenario",
    "open_run",
    "RunResult",
    "compare",
    "Comparison",
    "sweep",
    "SweepRuns",
)
__all__ = list(API)


def __getattr__(name: str) -> Any:
    if name in API:
        from multiseal import api

        return getattr(api, name)
    raise AttributeError(f"module 'multiseal' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted([*globals(), *API])
