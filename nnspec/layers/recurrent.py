"""Recurrent layers (simple RNN, LSTM, GRU, bidirectional) and embeddings: the rule side (parameters, shape rules), pure Python.

A recurrent layer reads one example as a sequence, shape (steps, features), one vector per
step, and keeps a state of `units` numbers from step to step. It outputs the state after
the last step, shape (units,), or with `sequences=true` the state after every step,
shape (steps, units), which is what a second recurrent layer above it reads.

Arrays, by name (the names the JAX side, the penalties and `nnspec show` use):
`w` (features, gates·units) the input kernel, `u` (units, gates·units) the recurrent
kernel, `b` (gates·units,) the bias, and for a GRU with `reset_after=true` (and a
simple_rnn or lstm with `recurrent_bias=true`) also `b_rec` (gates·units,), the recurrent
bias added to h·U (PyTorch's b_hh beside b = b_ih). Gates: 1 for simple_rnn, 4 for lstm (i, f, c, o),
3 for gru (z, r, h), in Keras's order. A bidirectional layer has a second set for the
backward cell, each name with `_back` appended. Names starting with `b` are biases.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from nnspec.layers.base import Shape, ShapeError, show_shape
from nnspec.params import ArgError, Bool, Choice, Entry, Float, Int, P, Symbol

GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}
MERGES = ("concat", "sum", "mean")


def sequence(op: str, in_shape: Shape) -> tuple[int, int]:
    """(steps, features) of a recurrent layer's input, or E230."""
    if len(in_shape) == 2:
        return in_shape[0], in_shape[1]
    if len(in_shape) == 1:
        raise ShapeError("E230", f"`{op}` expects a sequence of shape (steps, features), found a flat vector {show_shape(in_shape)}",
                         f"a recurrent layer reads one vector per step, here {in_shape[0]} steps of one feature: {{fix}}",
                         want=(in_shape[0], 1))
    steps, rest = in_shape[0], math.prod(in_shape[1:])
    raise ShapeError("E230", f"`{op}` expects a sequence of shape (steps, features), found shape {show_shape(in_shape)}",
                     f"a recurrent layer reads one vector per step: put `reshape [{steps}, {rest}]` before it "
                     f"to read {steps} steps of {rest} features")


def out_units(p: Mapping[str, Any]) -> int:
    """The width of the output at each step: both directions side by side with `merge=concat`."""
    return p["units"] * (2 if p["bidirectional"] and p["merge"] == "concat" else 1)


def _out_shape(op: str):
    def rule(p: Mapping[str, Any], in_shape: Shape | None) -> Shape | None:
        if not p["sequences"]:
            return (out_units(p),)  # the last step: whatever the input, the output is known
        if in_shape is None:
            return None
        steps, _ = sequence(op, in_shape)
        return (steps, out_units(p))
    return rule


def _param_shapes(op: str):
    def rule(p: Mapping[str, Any], in_shape: Shape) -> dict[str, Shape]:
        _, features = sequence(op, in_shape)
        width = GATES[op] * p["units"]
        one: dict[str, Shape] = {"w": (features, width), "u": (p["units"], width)}
        if p["bias"]:
            one["b"] = (width,)
            if (op == "gru" and p["reset_after"]) or p.get("recurrent_bias"):
                one["b_rec"] = (width,)
        shapes = dict(one)
        if p["bidirectional"]:
            shapes.update({f"{name}_back": shape for name, shape in one.items()})
        return shapes
    return rule


def _flops(op: str):
    def rule(p: Mapping[str, Any], in_shape: Shape, out_shape: Shape) -> int:
        # the kernels' products at every step, x_t·W and h_{t-1}·U, 2 per multiply-add, for
        # each direction; the gates' element-wise arithmetic is left out
        steps, features = sequence(op, in_shape)
        directions = 2 if p["bidirectional"] else 1
        return 2 * steps * GATES[op] * p["units"] * (features + p["units"]) * directions
    return rule


def _check(p: Mapping[str, Any], given: set[str]) -> None:
    if "merge" in given and not p["bidirectional"]:
        raise ArgError("E231", "`merge` without `bidirectional=true`",
                       "`merge` says how the forward and backward outputs combine: "
                       "add `bidirectional=true`, or remove `merge`")
    if p.get("recurrent_bias") and not p["bias"]:
        raise ArgError("E232", "`bias` is off, but `recurrent_bias` adds a second bias",
                       "the recurrent bias is a second bias beside `b`: remove `bias=false`, or `recurrent_bias`")


def _common(gated: bool) -> tuple:
    """Parameters every recurrent layer takes, in the order they are documented."""
    return (
        P("units", Int(min=1), required=True, positional=True, doc="size of the state carried from step to step"),
        P("activation", Symbol("activation"), "tanh",
          "applied to the candidate state (and in lstm to the cell)" if gated else "applied to the new state",
          positional=True),
        *((P("recurrent_activation", Symbol("activation"), "sigmoid", "applied to the gates"),) if gated else ()),
        P("sequences", Bool(), False,
          "`true`: output the state after every step, (steps, units); `false`: only after the last, (units,)"),
        P("bidirectional", Bool(), False, "also run a second cell from the last step to the first"),
        P("merge", Choice(MERGES), "concat",
          "how a bidirectional layer combines its two outputs: side by side (2·units), added, or averaged"),
        P("bias", Bool(), True, "`false` for no bias"),
        P("init", Symbol("initializer"), "glorot_uniform", "how the input kernel `w` starts"),
        P("recurrent_init", Symbol("initializer"), "orthogonal", "how the recurrent kernel `u` starts"),
        P("bias_init", Symbol("initializer"), "zeros", "how the bias starts"),
    )



# PyTorch's RNN and LSTM add two biases, b_ih and b_hh: the same function as one (their
# sum), but twice the bias parameters, and each starts from its own draw.
_RECURRENT_BIAS = P("recurrent_bias", Bool(), False,
                    "`true`: a second bias `b_rec` added to h·U, as PyTorch's b_hh beside b_ih")

# Keras's `dropout=` and `recurrent_dropout=`: one mask per example over x_t and one over
# h_{t-1}, the same at every step (Keras 3's cells: one mask shared by the gates).
_DROPOUT = (P("drop_prob", Float(ge=0, lt=1), 0.0,
              "probability that an input feature x_t is dropped in training, the same features at every step"),
            P("recurrent_drop_prob", Float(ge=0, lt=1), 0.0,
              "probability that a unit of the state h_{t-1} is dropped where it enters the step, the same units at every step"))

_PENALTY = (P("l1", Float(ge=0), 0.0, "L1 penalty on this layer's kernels `w` and `u`"),
            P("l2", Float(ge=0), 0.0, "L2 penalty on this layer's kernels `w` and `u`"))

_EXAMPLES = {
    "simple_rnn": [((6, 3), "simple_rnn 4"), ((6, 3), "simple_rnn 4 relu sequences=true"),
                   ((5, 2), "simple_rnn 3 bidirectional=true bias=false"),
                   ((5, 2), "simple_rnn 3 sequences=true bidirectional=true merge=sum"),
                   ((5, 2), "simple_rnn 3 recurrent_bias=true")],
    "lstm": [((6, 3), "lstm 4"), ((6, 3), "lstm 4 sequences=true bidirectional=true"),
             ((1, 1), "lstm 2 bias=false"), ((5, 2), "lstm 3 bidirectional=true merge=mean"),
             ((5, 2), "lstm 3 recurrent_bias=true bidirectional=true"),
             ((5, 2), "lstm 3 drop_prob=0.2 recurrent_drop_prob=0.3 bidirectional=true")],
    "gru": [((6, 3), "gru 4"), ((6, 3), "gru 4 sequences=true reset_after=false"),
            ((5, 2), "gru 3 bidirectional=true"), ((5, 2), "gru 3 sequences=true bidirectional=true bias=false"),
            ((5, 2), "gru 3 drop_prob=0.2 recurrent_drop_prob=0.2 reset_after=false")],
}


def _entry(op: str, extra: tuple, doc: str) -> Entry:
    common = _common(gated=op != "simple_rnn")
    return Entry(op, (*common, *extra, *_DROPOUT, *_PENALTY), doc=doc,
                 attrs={"out_shape": _out_shape(op), "param_shapes": _param_shapes(op), "check": _check,
                        "flops": _flops(op),
                        "examples": _EXAMPLES[op]})


LAYERS: list[Entry] = [
    _entry("simple_rnn", (_RECURRENT_BIAS,), "a fully connected recurrent layer (Elman): h_t = g(x_t·W + h_{t-1}·U + b)"),
    _entry("lstm", (
        _RECURRENT_BIAS,
        P("forget_bias", Float(), 1.0, "starting value of the forget gate's bias (Keras's `unit_forget_bias`)"),
    ), "long short-term memory: input, forget and output gates around a cell state, in Keras's gate order i, f, c, o"),
    _entry("gru", (
        P("reset_after", Bool(), True,
          "`true`: the reset gate multiplies h_{t-1}·U + b_rec (Keras 2 and cuDNN); `false`: it multiplies h_{t-1} before U"),
    ), "gated recurrent unit: update and reset gates, in Keras's gate order z, r, h"),
]
