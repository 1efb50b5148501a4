"""How numbers are printed on screen and in text tables: one rule everywhere."""

from __future__ import annotations

import math


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
