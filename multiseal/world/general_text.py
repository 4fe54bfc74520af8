"""A shipped general-text set: 300 short public-domain English prose passages.

Used for forgetting measures that need ordinary text rather than questions (perplexity, or the KL
divergence between a trained model's and the base model's next-token distributions). The passages
are from Jane Austen's six novels, as packaged in Debian's ``r-cran-janeaustenr``; source, licence
and the exact selection procedure are in ``data/general_text.md`` beside this module.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files

_RESOURCE = "general_text.txt"


@lru_cache(maxsize=1)
def general_text() -> tuple[str, ...]:
    """Every shipped passage, in file order (one a line; blank lines skipped)."""
    raw = (files("multiseal.world") / "data" / _RESOURCE).read_text(encoding="utf-8")
    return tuple(line.strip() for line in raw.splitlines() if line.strip())


def general_passages(n: int) -> list[str]:
    """The first ``n`` passages; a ValueError unless ``1 <= n <=`` the number shipped."""
    passages = general_text()
    if isinstance(n, bool) or not isinstance(n, int):
        raise ValueError(f"n must be an int, got {type(n).__name__}")
    if not 1 <= n <= len(passages):
        raise ValueError(f"n must be between 1 and {len(passages)} (the passages shipped), got {n}")
    return list(passages[:n])
