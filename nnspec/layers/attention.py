"""Attention, transformer blocks, position embeddings, normalization and reshaping: the rule side (parameters, shape rules), pure Python.

Sequence layers take one example of shape (steps, features). Parameter arrays are named
so that penalties can tell them apart: weights start with `w` (`w_q`, `w_ff1`), biases
with `b` (`b_q`), layer-norm arrays end in `scale` / `offset`; the position table is `w`.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from nnspec.layers.base import Shape, ShapeError, count, per_input, show_shape
from nnspec.params import ArgError, Bool, Entry, Float, Int, ListOf, P, Symbol

# ------------------------------------------------------------------------------- helpers

def _sequence(op: str, in_shape: Shape) -> tuple[int, int]:
    """(steps, features) of a sequence input, or E240."""
    if len(in_shape) == 2:
        return in_shape
    message = f"`{op}` expects a (steps, features) input, found shape {show_shape(in_shape)}"
    if len(in_shape) > 2:
        steps, rest = in_shape[0], math.prod(in_shape[1:])
        raise ShapeError("E240", message, f"put `reshape [{steps}, {rest}]` before it, to read {steps} steps "
                                          f"of {rest} features")
    side = math.isqrt(in_shape[0])
    if side > 1 and side * side == in_shape[0]:
        raise ShapeError("E240", message.replace("found", "found a flat input of"),
                         f"a flat input has no steps: {{fix}}, {side} steps of {side} features", want=(side, side))
    raise ShapeError("E240", message.replace("found", "found a flat input of"),
                     "declare `input x[STEPS, FEATURES]`, or put `reshape [STEPS, FEATURES]` before it")


def _key_dim(op: str, p: Mapping[str, Any], features: int) -> int:
    """`key_dim` as given, or features / heads (E243 where that does not divide)."""
    if p["key_dim"] is not None:
        return p["key_dim"]
    heads = p["heads"]
    if features % heads:
        fits = [d for d in range(1, features + 1) if features % d == 0]
        near = max(d for d in fits if d < heads)
        near = near if near > 1 else min(d for d in fits if d > heads)
        raise ShapeError("E243", f"{count(features, 'feature')} do not split into {heads} heads",
                         f"write `heads={near}`, or another number of heads that divides {features}, "
                         f"or give the size of each head with `key_dim=`", arg="heads")
    return features // heads


def _attention_shapes(p: Mapping[str, Any], features: int, key_dim: int, bias: bool, prefix: str = "") -> dict[str, Shape]:
    h = p["heads"]
    shapes: dict[str, Shape] = {}
    for part in "qkv":
        shapes[f"w_{prefix}{part}"] = (features, h, key_dim)
        if bias:
            shapes[f"b_{prefix}{part}"] = (h, key_dim)
    shapes[f"w_{prefix}o"] = (h, key_dim, features)
    if bias:
        shapes[f"b_{prefix}o"] = (features,)
    return shapes


def _sequence_out(p: Mapping[str, Any], in_shape: Shape | None) -> Shape | None:
    return in_shape if in_shape is not None and len(in_shape) == 2 else None


# ---------------------------------------------------------------------------- layer_norm

def _layer_norm_shapes(p: Mapping[str, Any], in_shape: Shape) -> dict[str, Shape]:
    features = in_shape[-1]
    shapes: dict[str, Shape] = {}
    if p["scale"]:
        shapes["scale"] = (features,)
    if p["offset"]:
        shapes["offset"] = (features,)
    return shapes


# ------------------------------------------------------------------------ self_attention

def _self_attention_shapes(p: Mapping[str, Any], in_shape: Shape) -> dict[str, Shape]:
    _, features = _sequence("self_attention", in_shape)
    return _attention_shapes(p, features, _key_dim("self_attention", p, features), p["bias"])


def attention_flops(op: str, p: Mapping[str, Any], in_shape: Shape) -> int:
    """2 per multiply-add: the q, k, v projections, the scores q·k and the weighted sum of
    the values (every step pair, a causal mask's included), the output projection; the
    softmax, scaling and biases are left out."""
    steps, d = _sequence(op, in_shape)
    hk = p["heads"] * _key_dim(op, p, d)
    return 2 * steps * d * 3 * hk + 2 * steps * steps * hk * 2 + 2 * steps * hk * d


def _self_attention_flops(p: Mapping[str, Any], in_shape: Shape, out_shape: Shape) -> int:
    return attention_flops("self_attention", p, in_shape)


# ------------------------------------------------------------------- transformer_encoder

def _encoder_shapes(p: Mapping[str, Any], in_shape: Shape) -> dict[str, Shape]:
    _, features = _sequence("transformer_encoder", in_shape)
    shapes = _attention_shapes(p, features, _key_dim("transformer_encoder", p, features), True)
    shapes.update({"ln1_scale": (features,), "ln1_offset": (features,),
                   "w_ff1": (features, p["ff"]), "b_ff1": (p["ff"],),
                   "w_ff2": (p["ff"], features), "b_ff2": (features,),
                   "ln2_scale": (features,), "ln2_offset": (features,)})
    return shapes


def _encoder_flops(p: Mapping[str, Any], in_shape: Shape, out_shape: Shape) -> int:
    # the attention, the feed-forward net's two products, and per (step, feature) element
    # 5 for each of the two layer norms and 1 for each of the two residual sums
    steps, d = _sequence("transformer_encoder", in_shape)
    return attention_flops("transformer_encoder", p, in_shape) + 2 * 2 * steps * d * p["ff"] + 12 * steps * d


# --------------------------------------------------------------------- position_embedding

def _position_shapes(p: Mapping[str, Any], in_shape: Shape) -> dict[str, Shape]:
    steps, features = _sequence("position_embedding", in_shape)
    table = p["steps"] if p["steps"] is not None else steps
    if table < steps:
        raise ShapeError("E244", f"`position_embedding` has a table of {count(table, 'step')}, "
                                 f"but its input has {count(steps, 'step')} (shape {show_shape(in_shape)})",
                         f"write `steps={steps}` or more, or leave `steps` out to take the input's", arg="steps")
    if p["sinusoidal"]:
        return {}
    return {"w": (table, features)}


# ------------------------------------------------------------------------------- reshape

def _reshape_check(p: Mapping[str, Any], given: set[str]) -> None:
    dims = p["shape"]
    bad = [d for d in dims if d < 1 and d != -1]
    if bad:
        raise ArgError("E241", f"`shape` holds {bad[0]}: each dimension is a whole number ≥ 1, or -1 for what is left",
                       f"write `reshape [{', '.join(str(d if d >= 1 else -1) for d in dims)}]`")
    if dims.count(-1) > 1:
        raise ArgError("E241", f"`shape` holds {dims.count(-1)} dimensions of -1, but at most one can be inferred",
                       "write every dimension but one")


def _reshape_out(p: Mapping[str, Any], in_shape: Shape | None) -> Shape | None:
    # unknown when the input is: after a reshape that does not fit, the shape it asks for
    # would only bring follow-on errors in the layers below
    dims = p["shape"]
    if in_shape is None:
        return None
    known = math.prod(d for d in dims if d != -1)
    return tuple(math.prod(in_shape) // known if d == -1 else d for d in dims)


def _reshape_shapes(p: Mapping[str, Any], in_shape: Shape) -> dict[str, Shape]:
    dims, n = p["shape"], math.prod(in_shape)
    written = "[" + ", ".join(map(str, dims)) + "]"
    if -1 in dims:
        known = math.prod(d for d in dims if d != -1)
        if n % known:
            raise ShapeError("E242", f"`reshape {written}` cannot hold the input's {n} values (shape {show_shape(in_shape)}): "
                                     f"{n} is not a multiple of {known}",
                             f"the known dimensions must multiply to a divisor of {n}{_divisor_example(dims, n)}",
                             arg="shape")
    elif math.prod(dims) != n:
        example = f"[{dims[0]}, -1]" if len(dims) > 1 and n % dims[0] == 0 else f"[{n}]"
        raise ShapeError("E242", f"`reshape {written}` holds {math.prod(dims)} values, but the input has {n} "
                                 f"(shape {show_shape(in_shape)})",
                         f"the dimensions must multiply to {n}; one of them may be -1 for what is left, "
                         f"as in `reshape {example}`", arg="shape")
    return {}


def _divisor_example(dims: tuple[int, ...], n: int) -> str:
    """`, as in `reshape [2, -1]``: the one known dimension moved to the nearest divisor of n."""
    known = [d for d in dims if d != -1]
    if len(known) != 1 or n < 2:
        return ""
    near = min((d for d in range(2, n) if n % d == 0), key=lambda d: (abs(d - known[0]), d), default=n)
    return ", as in `reshape [" + ", ".join("-1" if d == -1 else str(near) for d in dims) + "]`"


# ------------------------------------------------------------------------------- permute

def _permute_shapes(p: Mapping[str, Any], in_shape: Shape) -> dict[str, Shape]:
    order, rank = p["axes"], len(in_shape)
    if sorted(order) != list(range(1, rank + 1)):
        axes = ", ".join(map(str, range(1, rank + 1)))
        written = "[" + ", ".join(map(str, order)) + "]"
        example = "[" + ", ".join(map(str, range(rank, 0, -1))) + "]"
        outside = [a for a in order if not 1 <= a <= rank]
        twice = [a for a in dict.fromkeys(order) if order.count(a) > 1]
        never = [a for a in range(1, rank + 1) if a not in order]
        shape = f"(shape {show_shape(in_shape)})"
        if len(order) != rank:
            message = f"`permute {written}` lists {len(order)} {'axis' if len(order) == 1 else 'axes'}, but the input has {rank} {shape}"
        elif outside:
            message = f"`permute {written}` names axis {outside[0]}, but the input's axes are {axes} {shape}"
        else:
            message = (f"`permute {written}` names axis {twice[0]} twice and axis {never[0]} never {shape}")
        raise ShapeError("E245", message, f"write each axis {axes} once, counting from 1, in the new order, "
                                          f"as in `permute {example}`", arg="axes")
    return {}


def _permute_out(p: Mapping[str, Any], in_shape: Shape | None) -> Shape | None:
    if in_shape is None:
        return None
    return tuple(in_shape[a - 1] for a in p["axes"])


# ---------------------------------------------------------------------------------- rows

_HEADS = P("heads", Int(min=1), required=True, doc="number of attention heads")
_KEY_DIM = P("key_dim", Int(min=1), None, "size of each head's queries, keys and values (default: features / heads)")
_CAUSAL = P("causal", Bool(), False, "each step attends only to itself and earlier steps")
_DROP = P("drop_prob", Float(ge=0, lt=1), 0.0, "probability that an attention weight is dropped in training")

LAYERS: list[Entry] = [
    Entry("layer_norm", (
        P("epsilon", Float(gt=0), 1e-3, "added to the variance before the square root"),
        P("scale", Bool(), True, "learn a scale γ per feature (`false`: γ = 1)"),
        P("offset", Bool(), True, "learn an offset β per feature (`false`: β = 0)"),
    ), doc="normalizes each example over its last axis: γ·(x − mean) / √(variance + epsilon) + β",
        attrs={"param_shapes": _layer_norm_shapes, "out_shape": lambda p, s: s, "flops": per_input(5),
               "examples": [((6,), "layer_norm"), ((4, 5), "layer_norm epsilon=1e-5"),
                            ((3, 2, 4), "layer_norm scale=false offset=false")]}),
    Entry("self_attention", (
        _HEADS, _KEY_DIM, _CAUSAL, _DROP,
        P("bias", Bool(), True, "`false` for no biases in the query, key, value and output projections"),
    ), doc="multi-head scaled dot-product self-attention over the steps, projected back to the input's features",
        attrs={"param_shapes": _self_attention_shapes, "out_shape": _sequence_out, "flops": _self_attention_flops,
               "examples": [((5, 8), "self_attention heads=2"), ((4, 6), "self_attention heads=3 key_dim=4 causal=true"),
                            ((3, 4), "self_attention heads=1 drop_prob=0.5 bias=false")]}),
    Entry("transformer_encoder", (
        _HEADS, _KEY_DIM,
        P("ff", Int(min=1), required=True, doc="hidden units of the feed-forward part"),
        P("activation", Symbol("activation"), "relu", "activation of the feed-forward hidden layer"),
        P("drop_prob", Float(ge=0, lt=1), 0.0,
          "probability of dropping an attention weight, and a value of each part's output, in training"),
        _CAUSAL,
        P("norm_first", Bool(), False, "normalize before each part (pre-norm) instead of after each residual sum"),
        P("epsilon", Float(gt=0), 1e-5, "the layer norms' epsilon"),
    ), doc="one transformer encoder block: self-attention and a feed-forward net, each with a residual sum and a layer norm",
        attrs={"param_shapes": _encoder_shapes, "out_shape": _sequence_out, "flops": _encoder_flops,
               "examples": [((5, 8), "transformer_encoder heads=2 ff=16"),
                            ((4, 6), "transformer_encoder heads=2 key_dim=4 ff=8 activation=gelu causal=true norm_first=true drop_prob=0.1")]}),
    Entry("position_embedding", (
        P("sinusoidal", Bool(), False, "add fixed sines and cosines instead of a learned table"),
        P("steps", Int(min=1), None, "steps the table holds (default: the input's steps)"),
    ), doc="adds a vector per step to a (steps, features) input, so that later layers can tell the steps apart",
        attrs={"param_shapes": _position_shapes, "out_shape": _sequence_out,
               "examples": [((5, 4), "position_embedding"), ((5, 3), "position_embedding sinusoidal"),
                            ((3, 4), "position_embedding steps=6")]}),
    Entry("reshape", (
        P("shape", ListOf(Int()), required=True, positional=True,
          doc="the new shape of one example; one dimension may be -1 for what is left"),
    ), doc="gives each example a new shape holding the same values in the same order",
        attrs={"param_shapes": _reshape_shapes, "out_shape": _reshape_out, "check": _reshape_check, "weights": False,
               "examples": [((2, 6), "reshape [3, 2, 2]"), ((64,), "reshape [8, 8]"), ((64,), "reshape [4, -1]")]}),
    Entry("permute", (
        P("axes", ListOf(Int()), required=True, positional=True,
          doc="the input's axes in their new order, counting from 1"),
    ), doc="reorders the axes of each example: `permute [2, 1]` transposes a (steps, features) input",
        attrs={"param_shapes": _permute_shapes, "out_shape": _permute_out, "weights": False,
               "examples": [((3, 5), "permute [2, 1]"), ((2, 3, 4), "permute [3, 1, 2]"), ((4,), "permute [1]")]}),
]
