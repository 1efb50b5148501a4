"""How numbers, and text read from the user's files, are shown on screen: one rule each."""

from __future__ import annotations

import math
from typing import Any


def format_value(v: float) -> str:
    """`v` with four decimals in the usual range, in scientific notation outside it
    (so a loss of 3e-5 reads `3.000e-05`, not `0.0000`); `nan`, `inf` and `-inf` as such."""
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0 or 1e-3 <= abs(v) < 1e5:
        return f"{v:.4f}"
    return f"{v:.3e}"


def excerpt(text: Any, limit: int = 60) -> str:
    """At most `limit` characters of text read from a file, unprintable ones escaped and
    a cut marked with `…`: an error message must never replay a file's content."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text)[:limit + 1])
    return text if len(text) <= limit else text[:limit - 1] + "…"
