"""What every layer family's rules share: the shape error, shape text, small shape helpers.

A family module (conv.py, recurrent.py, ...) holds `LAYERS`, a list of registry rows; each
row's attrs give `out_shape(params, in_shape)` (None for an unknown input, see below),
`param_shapes(params, in_shape)` where the layer has weights (`weights: False` for a row
whose rule only checks the shape and holds none; a row with weights takes
`trainable=false`, added in nnspec/layers/__init__.py), an optional `check(params,
given)`, an optional `flops(params, in_shape, out_shape)` (the estimated FLOPs of one
example, a multiply-add counting 2; a row without one counts `per_output`, one FLOP per
output element), and `examples`: (per-example input shape, the layer as written) pairs that the
registry sweep in tests/test_lowering.py checks against the JAX side. A merge row (graph.py)
sets `merge` and reads several nodes: its rule is `merge_shape(params, [in_shape, ...])`,
one shape per input in the order written, raising ShapeError with `arg="input:I"` for the
I-th input that does not fit; a row that reads token ids sets `tokens`; an example may
carry a third element, the input's type as written (`"int vocab=10"`).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

Shape = tuple[int, ...]


class ShapeError(Exception):
    """A layer that cannot take its input's shape. `want`, where given, is an input shape
    that would fit, and `help` holds `{fix}` where the way to get it goes: the checker
    writes `declare `input x[20, 1]`` or `put `reshape [20, 1]` before it`, whichever
    fits the node that feeds the layer (`helped` writes the plain shape)."""

    def __init__(self, code: str, message: str, help: str | None = None, arg: str | None = None,
                 want: Shape | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.help, self.arg, self.want = code, message, help, arg, want

    def helped(self, fix: str | None = None) -> str | None:
        """The help with `fix` in its place (by default: an input of the shape wanted)."""
        if self.help is None or self.want is None:
            return self.help
        return self.help.replace("{fix}", fix or f"give it an input of shape {show_shape(self.want)}")


def show_shape(shape: Shape) -> str:
    """`(2,)`, `(8, 8)`; a ragged dimension (-1) shows as `?`."""
    dims = ["?" if d < 0 else str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def count(n: int, word: str) -> str:
    """`1 row`, `3 rows`."""
    return f"{n} {word}" + ("" if n == 1 else "s")


# Shape rules take None for an input whose shape is unknown (an earlier error) and
# return None unless the output does not depend on it, as `dense`'s does not.
def same(p: Mapping[str, Any], in_shape: Shape | None) -> Shape | None:
    return in_shape


# FLOP rules (docs/language.md, "FLOPs"): an estimate, per example; a multiply-add is 2.
def size(shape: Shape) -> int:
    """The number of values in one example of this shape."""
    return math.prod(shape)


def per_output(p: Mapping[str, Any], in_shape: Shape, out_shape: Shape) -> int:
    """The default rule: one FLOP per output element (an activation, a merge, a layer
    that only moves values such as flatten or reshape)."""
    return size(out_shape)


def per_input(k: int) -> Callable[[Mapping[str, Any], Shape, Shape], int]:
    """`k` FLOPs per input element: a global pool (k = 1), a normalization (k = 5)."""
    def rule(p: Mapping[str, Any], in_shape: Shape, out_shape: Shape) -> int:
        return k * size(in_shape)
    return rule
