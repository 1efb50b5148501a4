"""Batch normalization: the rule side (parameters, shape rules), pure Python.

Batch normalization is the one layer with state that is not learned: the running mean
and variance of its input, `moving_mean` and `moving_var`. They are arrays of the layer's
parameters like any other (so checkpoints, sweeps, ensembles, predict and export carry
them with no code of their own), but no gradient reaches them and no optimizer, penalty
or weight decay touches them: each training step replaces them with their update.
"""

from __future__ import annotations

from typing import Any, Mapping

from nnspec.layers.base import Shape, ShapeError, per_input, show_shape
from nnspec.params import Bool, Entry, Float, P


def _shapes(p: Mapping[str, Any], in_shape: Shape) -> dict[str, Shape]:
    if not in_shape:
        raise ShapeError("E201", f"`batch_norm` needs a feature axis, found shape {show_shape(in_shape)}")
    c = (in_shape[-1],)
    shapes: dict[str, Shape] = {"moving_mean": c, "moving_var": c}
    if p["scale"]:
        shapes["scale"] = c
    if p["offset"]:
        shapes["offset"] = c
    return shapes


LAYERS: list[Entry] = [
    Entry("batch_norm", (
        P("momentum", Float(gt=0, lt=1), 0.99, "how much of the running statistics each step keeps"),
        P("epsilon", Float(gt=0), 1e-3, "added to the variance before its square root"),
        P("scale", Bool(), True, "learn a scale γ per feature (`false`: γ = 1)"),
        P("offset", Bool(), True, "learn an offset β per feature (`false`: β = 0)"),
    ), doc="normalizes each feature (the last axis) by the batch's mean and variance in training, "
           "by their running averages when predicting; then γ·x̂ + β",
        attrs={"param_shapes": _shapes, "out_shape": lambda p, s: s, "flops": per_input(5),
               "examples": [((6,), "batch_norm"), ((5, 5, 3), "batch_norm momentum=0.9"),
                            ((4, 2), "batch_norm scale=false offset=false")]}),
]
