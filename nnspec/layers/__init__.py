"""The layer, activation and initializer registries: one row each, pure Python.

A layer row knows its parameters, its per-example output shape and the shapes of its
weights (stax's `init(key, in_shape) -> (out_shape, params)`, minus the arrays). The
JAX side (nnspec/nn/) implements the same rows; tests sweep both and compare shapes.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Callable, Mapping

from nnspec.layers import attention, augment, conv, graph, norm, recurrent
from nnspec.layers.base import Shape, ShapeError, count, per_output, same, show_shape, size
from nnspec.params import (ArgError, Array, Bool, Entry, Float, Int, P, Registry, Symbol,
                           Union)

__all__ = ["ACTIVATIONS", "INITIALIZERS", "LAYERS", "Shape", "ShapeError", "show_shape", "out_shape", "param_shapes",
           "flops"]

# `output` says what the activation's values are, for loss/output agreement.
ACTIVATIONS = Registry("activation", [
    Entry("sigmoid", doc="1 / (1 + e^-x): squashes to (0, 1), a probability", attrs={"output": "probability"}),
    Entry("tanh", doc="hyperbolic tangent: squashes to (-1, 1)", attrs={"output": "bounded"}),
    Entry("relu", doc="max(0, x)", attrs={"output": "nonnegative"}),
    Entry("leaky_relu", (P("slope", Float(ge=0), 0.01, "slope for x < 0", positional=True),),
          doc="x for x ≥ 0, slope·x below", attrs={"output": "other"}),
    Entry("elu", (P("alpha", Float(gt=0), 1.0, "scale of the negative part", positional=True),),
          doc="x for x > 0, alpha·(e^x − 1) below", attrs={"output": "other"}),
    Entry("gelu", (P("approximate", Bool(), False, "use the tanh approximation"),),
          doc="x·Φ(x), the Gaussian error linear unit", attrs={"output": "other"}),
    Entry("softplus", doc="log(1 + e^x), a smooth relu", attrs={"output": "nonnegative"}),
    Entry("silu", aliases=("swish",), doc="x·sigmoid(x)", attrs={"output": "other"}),
    Entry("softmax", doc="e^x / Σe^x over the last axis: a probability distribution",
          attrs={"output": "distribution"}),
    Entry("log_softmax", doc="log of softmax: log-probabilities", attrs={"output": "log_distribution"}),
    Entry("identity", aliases=("linear",), doc="x unchanged: a linear output", attrs={"output": "linear"}),
])


def _uniform_bounds(p: Mapping[str, Any], given: set[str]) -> None:
    if p["low"] >= p["high"]:
        raise ArgError("E104", f"`low` ({p['low']:g}) must be less than `high` ({p['high']:g})",
                       "swap them, or widen the range")


INITIALIZERS = Registry("initializer", [
    Entry("zeros", doc="all 0"),
    Entry("ones", doc="all 1"),
    Entry("constant", (P("value", Float(), required=True, positional=True, doc="the value"),),
          doc="every entry the same value"),
    Entry("normal", (P("mean", Float(), 0.0, "mean μ"), P("stddev", Float(gt=0), 0.05, "standard deviation σ")),
          doc="N(μ, σ²), the textbook's Gaussian initialization"),
    Entry("uniform", (P("low", Float(), -0.05, "smallest value"), P("high", Float(), 0.05, "largest value (exclusive)")),
          doc="U(low, high)", attrs={"check": _uniform_bounds}),
    Entry("glorot_normal", aliases=("xavier_normal",), doc="N(0, 2 / (fan_in + fan_out)) truncated at ±2σ and rescaled to that variance, as in Keras and JAX"),
    Entry("glorot_uniform", aliases=("xavier_uniform",), doc="U(±√(6 / (fan_in + fan_out))), the default"),
    Entry("he_normal", doc="N(0, 2 / fan_in) truncated at ±2σ and rescaled to that variance, for relu layers"),
    Entry("he_uniform", doc="U(±√(6 / fan_in)), for relu layers"),
    Entry("lecun_normal", aliases=("lecun",), doc="N(0, 1 / fan_in) truncated at ±2σ and rescaled to that variance"),
    Entry("lecun_uniform", doc="U(±√(3 / fan_in))"),
    Entry("orthogonal", (P("gain", Float(gt=0), 1.0, "multiplies the orthogonal matrix", positional=True),),
          doc="a random orthogonal matrix (rows or columns orthonormal) times `gain`, over the last axis; "
              "the default of recurrent kernels"),
])


def _array_shape(a: Any) -> Shape:
    """The shape of a nested tuple; -1 marks a ragged level."""
    if not isinstance(a, tuple):
        return ()
    if not a:
        return (0,)
    inner = {_array_shape(x) for x in a}
    return (len(a), *inner.pop()) if len(inner) == 1 else (len(a), -1)


def _dense_shapes(p: Mapping[str, Any], in_shape: Shape) -> dict[str, Shape]:
    # `per_step`: the same weights for every step, over the last axis (what `x @ w` does anyway)
    if not p["per_step"] and len(in_shape) != 1:
        raise ShapeError("E201", f"`dense` expects a flat vector, found shape {show_shape(in_shape)}",
                         "add a `flatten` layer before it, or write `per_step` to apply it to each step's last axis")
    n_in = in_shape[-1]
    shapes: dict[str, Shape] = {"w": (n_in, p["units"])}
    if p["bias"] is not False:
        shapes["b"] = (p["units"],)
    if p["weights"] is not None:
        got = _array_shape(p["weights"])
        if got != shapes["w"]:
            raise ShapeError("E202", f"`weights` has shape {show_shape(got)}, but this layer needs {show_shape(shapes['w'])}",
                             f"write {count(n_in, 'row')} of {count(p['units'], 'number')}: one row per input, one column per unit",
                             arg="weights")
    if isinstance(p["bias"], tuple):
        got = _array_shape(p["bias"])
        if got != (p["units"],):
            raise ShapeError("E202", f"`bias` has shape {show_shape(got)}, but this layer needs ({p['units']},)",
                             f"write a list of {count(p['units'], 'number')}, one per unit", arg="bias")
    return shapes


def _dense_flops(p: Mapping[str, Any], in_shape: Shape, out_shape: Shape) -> int:
    # the products x·W only, 2 per multiply-add, at every step with `per_step`; the bias
    # and activation (one per output each) are left out, as the usual count does
    return 2 * size(in_shape) * p["units"]


def _dense_check(p: Mapping[str, Any], given: set[str]) -> None:
    if p["weights"] is not None and "init" in given:
        raise ArgError("E108", "both `weights` and `init` given", "literal `weights` replace the initializer: remove one")
    if isinstance(p["bias"], tuple) and "bias_init" in given:
        raise ArgError("E108", "both literal `bias` values and `bias_init` given", "remove one")


def _rescale_check(p: Mapping[str, Any], given: set[str]) -> None:
    if not given:
        raise ArgError("E106", "`rescale` without `scale`, `divide` or `offset` changes nothing",
                       "say how: `rescale divide=255` for pixels 0..255 to [0, 1]")
    if p["scale"] == 0:
        raise ArgError("E104", "`rescale 0` maps every input to the same value", "use a scale other than 0")


_PENALTY = (P("l1", Float(ge=0), 0.0, "L1 penalty on this layer's weights"),
            P("l2", Float(ge=0), 0.0, "L2 penalty on this layer's weights"))

_LAYERS = [
    Entry("dense", (
        P("units", Int(min=1), required=True, positional=True, doc="number of units (neurons)"),
        P("activation", Symbol("activation"), None, "applied to the output", positional=True),
        P("bias", Union((Bool(), Array())), True, "`false` for no bias, or literal values [b1, ...]"),
        P("init", Symbol("initializer"), "glorot_uniform", "how the weights start"),
        P("bias_init", Symbol("initializer"), "zeros", "how the bias starts"),
        P("weights", Array(), None, "literal weights: one row per input, one column per unit"),
        *_PENALTY,
        P("per_step", Bool(), False, "apply to the last axis of a longer input, the same weights at every step"),
    ), doc="fully connected: y = g(x·W + b)",
        attrs={"param_shapes": _dense_shapes, "check": _dense_check, "flops": _dense_flops,
               "out_shape": lambda p, s: (p["units"],) if not p["per_step"] else None if s is None else (*s[:-1], p["units"]),
               "examples": [((5,), "dense 3"), ((5,), "dense 4 relu bias=false"), ((1,), "dense 1 sigmoid"),
                            ((4, 6), "dense 3 relu per_step"), ((2, 3, 5), "dense 2 per_step=true"),
                            ((5,), "dense 3 per_step")]}),
    Entry("dropout", (P("drop_prob", Float(ge=0, lt=1), required=True, positional=True,
                        doc="probability that a unit is dropped (set to 0) in training"),),
          doc="zeroes each unit with probability drop_prob in training, scales the rest by 1/(1-drop_prob)",
          attrs={"out_shape": same, "examples": [((6,), "dropout 0.5"), ((2, 3), "dropout 0.1")]}),
    Entry("rescale", (
        P("scale", Float(), 1.0, "multiplies every input value", positional=True),
        P("divide", Float(gt=0), 1.0, "divides every input value (`divide=255` for pixels 0..255 to [0, 1])"),
        P("offset", Float(), 0.0, "added after scaling (`divide=127.5 offset=-1` for pixels to [-1, 1])"),
    ), doc="a fixed rescaling of the input, no weights: y = x·scale / divide + offset (Keras's Rescaling)",
        attrs={"out_shape": same, "check": _rescale_check,
               "examples": [((4,), "rescale divide=255"), ((3, 3, 1), "rescale divide=127.5 offset=-1"),
                            ((2, 5), "rescale 0.5 offset=2")]}),
    Entry("flatten", doc="reshapes the example to a flat vector",
          attrs={"out_shape": lambda p, s: None if s is None else (math.prod(s),),
                 "examples": [((8, 8), "flatten"), ((2, 3, 4), "flatten"), ((7,), "flatten")]}),
    *(Entry(a.name, a.params, doc=a.doc, aliases=a.aliases,
            attrs={"out_shape": same, "activation": a.name,
                   "examples": [((4,), a.name), ((2, 5), f"{a.name} 0.3" if a.name == "leaky_relu" else a.name)]})
      for a in ACTIVATIONS),
    # one module per family, each a list of rows (nnspec/layers/base.py says what a row holds)
    *conv.LAYERS, *recurrent.LAYERS, *attention.LAYERS, *graph.LAYERS, *norm.LAYERS, *augment.LAYERS,
]


def _frozen_check(check: Callable | None) -> Callable:
    """The row's own check, then: a penalty on a frozen layer's weights is refused, as it
    would add a constant to the loss and change no weight."""
    def both(p: Mapping[str, Any], given: set[str]) -> None:
        if check is not None:
            check(p, given)
        written = [n for n in ("l1", "l2") if n in given and p[n]]
        if not p["trainable"] and written:
            raise ArgError("E108", f"`{written[0]}` penalizes the weights of a frozen layer (trainable=false)",
                           "frozen weights never change, so their penalty is a constant that changes no gradient: "
                           f"remove `{written[0]}`, or leave out `trainable=false`")
        mults = [n for n in ("lr_mult", "bias_lr_mult") if n in given]
        if not p["trainable"] and mults:
            raise ArgError("E108", f"`{mults[0]}` multiplies the learning rate of a frozen layer (trainable=false)",
                           f"frozen weights take no step to multiply: remove `{mults[0]}`, or leave out `trainable=false`")
        if p["lr_mult"] == 0:
            raise ArgError("E117", "`lr_mult` of 0 freezes the layer's weights",
                           "write `trainable=false` instead: it keeps no optimizer state for them, "
                           "and says what it means")
    return both


# Caffe's per-parameter `param { lr_mult: ... }`: the layer's arrays take steps of
# lr_mult·η (every term of the step, decoupled weight decay included), its biases bias_lr_mult·η
_LR_MULTS = (
    P("lr_mult", Float(ge=0), 1.0, "multiplies the learning rate for this layer's arrays (Caffe's `lr_mult`)"),
    P("bias_lr_mult", Float(ge=0), None, "multiplies the learning rate for this layer's biases (and a "
                                         "normalization's scale and offset) instead of `lr_mult`"),
)


def freezable(entry: Entry) -> Entry:
    """A row with weights takes `trainable=false` (Keras's `trainable=False`): its arrays
    keep their initial (or loaded) values through training; and `lr_mult=`, `bias_lr_mult=`:
    its arrays' multiples of the learning rate."""
    if "param_shapes" not in entry.attrs or entry.attrs.get("weights") is False:
        return entry
    trainable = P("trainable", Bool(), True, "`false` freezes this layer's weights: no optimizer step, "
                                           "no weight decay, no penalty")
    return replace(entry, params=(*entry.params, trainable, *_LR_MULTS),
                   attrs={**entry.attrs, "check": _frozen_check(entry.attrs.get("check"))})


LAYERS = Registry("layer", [freezable(e) for e in _LAYERS])


def out_shape(op: str, params: Mapping[str, Any], in_shape: Shape) -> Shape:
    """The per-example output shape, raising ShapeError where the input does not fit."""
    entry = LAYERS.get(op)
    assert entry is not None
    if "param_shapes" in entry.attrs:
        entry.attrs["param_shapes"](params, in_shape)
    return entry.attrs["out_shape"](params, in_shape)


def param_shapes(op: str, params: Mapping[str, Any], in_shape: Shape) -> dict[str, Shape]:
    """The trainable arrays of one layer, by name, with their shapes."""
    entry = LAYERS.get(op)
    assert entry is not None
    fn: Callable | None = entry.attrs.get("param_shapes")
    return fn(params, in_shape) if fn else {}


def flops(op: str, params: Mapping[str, Any], in_shape: Shape, out_shape: Shape) -> int:
    """Estimated FLOPs of one example through this layer: its row's `flops` rule, or one
    per output element (nnspec/layers/base.py's `per_output`) for a row without one."""
    entry = LAYERS.get(op)
    assert entry is not None
    return entry.attrs.get("flops", per_output)(params, in_shape, out_shape)
