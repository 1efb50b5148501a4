"""Convolution, pooling and upsampling: the rule side (parameters, shape rules), pure Python.

Examples are channels last: (steps, channels) for the 1-D layers, (height, width,
channels) for the 2-D ones. `geometry` is the one place where a window's output size and
padding are worked out; the JAX side (nnspec/nn/conv.py) pads exactly as it says, so the
checker's shapes and the lowered layer's cannot disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from nnspec.layers.base import Shape, ShapeError, per_input, show_shape
from nnspec.params import Bool, Choice, Dims, Entry, Float, Int, P, Symbol

E_RANK = "E220"    # the input has the wrong number of axes
E_WINDOW = "E221"  # a window larger than the input under padding `valid`

_AXES = {1: ("length",), 2: ("height", "width")}
_LAYOUT = {1: "(steps, channels)", 2: "(height, width, channels)"}
# the layer of the other rank that does the same job, for the help of a rank mismatch
_SIBLING = {"conv1d": "conv2d", "conv2d": "conv1d", "max_pool1d": "max_pool2d", "max_pool2d": "max_pool1d",
            "avg_pool1d": "avg_pool2d", "avg_pool2d": "avg_pool1d",
            "upsampling1d": "upsampling2d", "upsampling2d": "upsampling1d"}


def axes(v: Any, n: int) -> tuple[int, ...]:
    """A window argument as one number per spatial axis (a default is a bare int)."""
    return tuple(v) if isinstance(v, tuple) else (int(v),) * n


@dataclass(frozen=True)
class Geometry:
    """A window's sweep over the spatial axes of one example."""
    window: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]  # zeros before and after, per axis
    out: tuple[int, ...]                  # output size per spatial axis


def _spatial(op: str, in_shape: Shape, n: int, code: str = E_RANK) -> tuple[int, ...]:
    """The spatial sizes of an input of rank n + 1 (channels last), or E220 (`code`)."""
    if len(in_shape) == n + 1:
        return in_shape[:n]
    found = show_shape(in_shape)
    sibling = _SIBLING.get(op)
    want: Shape | None = None
    if n == 2 and len(in_shape) == 2:
        want = (*in_shape, 1)
        help = "an image of one channel needs its channel axis too: {fix}"
        if sibling:
            help += f"; for a sequence of (steps, channels), use `{sibling}`"
    elif n == 2 and len(in_shape) == 1:
        side = math.isqrt(in_shape[0])
        if side * side == in_shape[0] and side > 1:
            want = (side, side, 1)
            help = "a flat vector has no height and width: {fix}"
        else:
            help = f"a flat vector has no height and width: `{op}` reads an image, {_LAYOUT[n]}"
    elif n == 1 and len(in_shape) == 1:
        want = (in_shape[0], 1)
        help = f"a sequence needs a channel axis, here {in_shape[0]} steps of one channel: {{fix}}"
    elif n == 1 and len(in_shape) == 3 and sibling:
        help = f"for an image of (height, width, channels), use `{sibling}`"
    else:
        help = f"`{op}` takes {_LAYOUT[n]} for each example"
    raise ShapeError(code, f"`{op}` expects an input of shape {_LAYOUT[n]}, found shape {found}", help, want=want)


def _same_padding(size: int, window: int, stride: int) -> tuple[int, tuple[int, int]]:
    """Keras's and TensorFlow's `same`: ceil(size / stride) outputs, the padding split
    evenly with any odd one after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return out, (total // 2, total - total // 2)


def geometry(op: str, p: Mapping[str, Any], in_shape: Shape, n: int, *, window: str = "kernel") -> Geometry:
    """Where a convolution's kernel or a pool's window (the param `window`) goes over the
    input, with `stride`, `dilation` and `padding` from `p`; E220/E221 if it cannot."""
    sizes = _spatial(op, in_shape, n)
    win = axes(p[window], n)
    stride = axes(p["stride"] if p.get("stride") is not None else win, n)
    dilation = axes(p.get("dilation", 1), n)
    pads, out = [], []
    for axis, (size, k, s, d) in enumerate(zip(sizes, win, stride, dilation)):
        reach = (k - 1) * d + 1
        if p["padding"] == "same":
            o, pad = _same_padding(size, reach, s)
        else:
            if reach > size:
                raise _too_large(window, _AXES[n][axis], k, d, reach, size)
            o, pad = (size - reach) // s + 1, (0, 0)
        out.append(o)
        pads.append(pad)
    return Geometry(win, stride, dilation, tuple(pads), tuple(out))


def _too_large(window: str, axis: str, k: int, d: int, reach: int, size: int) -> ShapeError:
    what = "kernel" if window == "kernel" else "pooling window"
    if d > 1:
        arg = "dilation" if k <= size else window
        msg = f"the dilated kernel's {axis}, {reach} (kernel {k}, dilation {d}), is larger than the input's, {size}"
        fix = (f"a `dilation` of at most {(size - 1) // (k - 1)}" if k <= size
               else f"a `{window}` of at most {size} with a smaller `dilation`")
    else:
        arg = window
        msg = f"the {what}'s {axis}, {k}, is larger than the input's, {size}"
        fix = f"a `{window}` of at most {size}"
    return ShapeError(E_WINDOW, f"{msg}, with `padding=valid`", f"use `padding=same`, or {fix}", arg=arg)


# ------------------------------------------------------------------------- shape rules

def _rank(op: str) -> int:
    return 1 if op.endswith("1d") else 2


def _conv_shapes(op: str):
    n = _rank(op)

    def shapes(p: Mapping[str, Any], in_shape: Shape) -> dict[str, Shape]:
        geometry(op, p, in_shape, n)
        cin = in_shape[-1]
        out = {"w": (*axes(p["kernel"], n), cin, p["filters"])}
        if p["bias"]:
            out["b"] = (p["filters"],)
        return out
    return shapes


def _conv_out(op: str):
    n = _rank(op)

    def out(p: Mapping[str, Any], in_shape: Shape | None) -> Shape | None:
        return None if in_shape is None else (*geometry(op, p, in_shape, n).out, p["filters"])
    return out


def _depthwise_shapes(p: Mapping[str, Any], in_shape: Shape) -> dict[str, Shape]:
    geometry("depthwise_conv2d", p, in_shape, 2)
    cin, m = in_shape[-1], p["depth_multiplier"]
    out = {"w": (*axes(p["kernel"], 2), cin, m)}
    if p["bias"]:
        out["b"] = (cin * m,)
    return out


def _depthwise_out(p: Mapping[str, Any], in_shape: Shape | None) -> Shape | None:
    if in_shape is None:
        return None
    return (*geometry("depthwise_conv2d", p, in_shape, 2).out, in_shape[-1] * p["depth_multiplier"])


def _separable_shapes(p: Mapping[str, Any], in_shape: Shape) -> dict[str, Shape]:
    geometry("separable_conv2d", p, in_shape, 2)
    cin, m = in_shape[-1], p["depth_multiplier"]
    out = {"w_depthwise": (*axes(p["kernel"], 2), cin, m), "w_pointwise": (1, 1, cin * m, p["filters"])}
    if p["bias"]:
        out["b"] = (p["filters"],)
    return out


def transpose_padding(p: Mapping[str, Any], in_shape: Shape) -> Geometry:
    """conv2d_transpose as the transpose (the gradient) of a conv2d with the same kernel,
    stride and padding: each input value adds kernel × value onto the output. `valid`
    gives (n − 1)·stride + reach outputs, `same` n·stride (Keras's sizes); `padding` is
    what the equivalent convolution over the stride-dilated input pads with."""
    sizes = _spatial("conv2d_transpose", in_shape, 2)
    win, stride, dilation = axes(p["kernel"], 2), axes(p["stride"], 2), axes(p["dilation"], 2)
    pads, out = [], []
    for size, k, s, d in zip(sizes, win, stride, dilation):
        reach = (k - 1) * d + 1
        if p["padding"] == "same":
            total = max(reach - s, 0)  # what the forward conv pads an n·s input with
            lo, hi = total // 2, total - total // 2
            pads.append((reach - 1 - lo, reach - 1 - hi + max(s - reach, 0)))
            out.append(size * s)
        else:
            pads.append((reach - 1, reach - 1))
            out.append((size - 1) * s + reach)
    return Geometry(win, stride, dilation, tuple(pads), tuple(out))


def _transpose_shapes(p: Mapping[str, Any], in_shape: Shape) -> dict[str, Shape]:
    transpose_padding(p, in_shape)
    out = {"w": (*axes(p["kernel"], 2), in_shape[-1], p["filters"])}
    if p["bias"]:
        out["b"] = (p["filters"],)
    return out


def _transpose_out(p: Mapping[str, Any], in_shape: Shape | None) -> Shape | None:
    return None if in_shape is None else (*transpose_padding(p, in_shape).out, p["filters"])


def _pool_out(op: str):
    n = _rank(op)

    def out(p: Mapping[str, Any], in_shape: Shape | None) -> Shape | None:
        return None if in_shape is None else (*geometry(op, p, in_shape, n, window="size").out, in_shape[-1])
    return out


def _upsampling_out(op: str):
    n = _rank(op)

    def out(p: Mapping[str, Any], in_shape: Shape | None) -> Shape | None:
        if in_shape is None:
            return None
        sizes = _spatial(op, in_shape, n)
        return (*(d * f for d, f in zip(sizes, axes(p["size"], n))), in_shape[-1])
    return out


def _global_out(op: str):
    def out(p: Mapping[str, Any], in_shape: Shape | None) -> Shape | None:
        if in_shape is None:
            return None
        if len(in_shape) < 2:
            raise ShapeError(E_RANK, f"`{op}` expects an input with a channel axis, (steps, channels) or "
                                     f"(height, width, channels), found shape {show_shape(in_shape)}",
                             "it pools every axis but the last, so it belongs after a convolution or a pooling layer")
        return (in_shape[-1],)
    return out


# ----------------------------------------------------------------------------- FLOPs
# 2 per multiply-add of the kernel at every output position (padding included); the bias
# and activation are left out, as for dense. A pool counts one per window element read.

def _conv_flops(op: str):
    n = _rank(op)

    def rule(p: Mapping[str, Any], in_shape: Shape, out_shape: Shape) -> int:
        return 2 * math.prod(axes(p["kernel"], n)) * in_shape[-1] * p["filters"] * math.prod(out_shape[:-1])
    return rule


def _depthwise_flops(p: Mapping[str, Any], in_shape: Shape, out_shape: Shape) -> int:
    # each output channel reads one input channel: conv2d's count divided by the groups, cin
    return 2 * math.prod(axes(p["kernel"], 2)) * out_shape[-1] * math.prod(out_shape[:-1])


def _separable_flops(p: Mapping[str, Any], in_shape: Shape, out_shape: Shape) -> int:
    mid = in_shape[-1] * p["depth_multiplier"]
    return 2 * math.prod(out_shape[:-1]) * mid * (math.prod(axes(p["kernel"], 2)) + p["filters"])


def _transpose_flops(p: Mapping[str, Any], in_shape: Shape, out_shape: Shape) -> int:
    # each input value adds kernel × value onto the output: the kernel's products per input position
    return 2 * math.prod(axes(p["kernel"], 2)) * in_shape[-1] * p["filters"] * math.prod(in_shape[:-1])


def _pool_flops(op: str):
    n = _rank(op)

    def rule(p: Mapping[str, Any], in_shape: Shape, out_shape: Shape) -> int:
        return math.prod(axes(p["size"], n)) * math.prod(out_shape)
    return rule


# ----------------------------------------------------------------------------- the rows

_PADDING = P("padding", Choice(("valid", "same")), "valid",
             "`valid`: only where the window fits inside; `same`: zeros around, ceil(size / stride) outputs")


def _conv_params(n: int, *, filters: bool = True, multiplier: bool = False,
                 stride: str = "step between windows") -> tuple:
    return (
        *((P("filters", Int(min=1), required=True, positional=True, doc="number of filters: output channels"),)
          if filters else ()),
        P("kernel", Dims(n), required=True, positional=True,
          doc="kernel size" + ("" if n == 1 else ", one number for a square or [height, width]")),
        P("activation", Symbol("activation"), None, "applied to the output", positional=True),
        *((P("depth_multiplier", Int(min=1), 1, "filters per input channel"),) if multiplier else ()),
        P("stride", Dims(n), 1, stride),
        _PADDING,
        P("dilation", Dims(n), 1, "spacing between kernel taps (1: adjacent)"),
        P("bias", Bool(), True, "`false` for no bias"),
        P("init", Symbol("initializer"), "glorot_uniform", "how the kernel starts"),
        P("bias_init", Symbol("initializer"), "zeros", "how the bias starts"),
        P("l1", Float(ge=0), 0.0, "L1 penalty on this layer's kernel"),
        P("l2", Float(ge=0), 0.0, "L2 penalty on this layer's kernel"),
    )


def _pool_params(n: int) -> tuple:
    return (P("size", Dims(n), 2, "window size" + ("" if n == 1 else ", one number for a square or [height, width]"),
              positional=True),
            P("stride", Dims(n), None, "step between windows (default: `size`, windows side by side)"),
            _PADDING)


def _conv(op: str, doc: str, examples: list) -> Entry:
    return Entry(op, _conv_params(_rank(op)), doc=doc,
                 attrs={"param_shapes": _conv_shapes(op), "out_shape": _conv_out(op), "flops": _conv_flops(op),
                        "examples": examples})


def _pool(op: str, doc: str, examples: list) -> Entry:
    return Entry(op, _pool_params(_rank(op)), doc=doc, attrs={"out_shape": _pool_out(op), "flops": _pool_flops(op),
                                                                 "examples": examples})


LAYERS: list[Entry] = [
    _conv("conv1d", "slides `filters` kernels along the steps: y[t] = g(Σ x[t·stride + i·dilation] · W[i] + b)",
          [((10, 3), "conv1d 4 3"), ((9, 2), "conv1d 5 3 relu stride=2 padding=same"),
           ((12, 1), "conv1d 2 [3] dilation=2 bias=false")]),
    _conv("conv2d", "slides `filters` kernels over the image: "
                    "y[i, j] = g(Σ x[i·s + a·d, j·s + b·d] · W[a, b] + b)",
          [((8, 8, 1), "conv2d 4 3 relu"), ((7, 9, 2), "conv2d 3 [2, 3] stride=[2, 1] padding=same"),
           ((9, 9, 3), "conv2d 2 3 dilation=2 bias=false")]),
    Entry("depthwise_conv2d", _conv_params(2, filters=False, multiplier=True),
          doc="one kernel per input channel (times `depth_multiplier`), channels kept apart",
          attrs={"param_shapes": _depthwise_shapes, "out_shape": _depthwise_out, "flops": _depthwise_flops,
                 "examples": [((8, 8, 3), "depthwise_conv2d 3"),
                              ((7, 7, 2), "depthwise_conv2d 3 relu depth_multiplier=2 stride=2 padding=same")]}),
    Entry("separable_conv2d", _conv_params(2, multiplier=True),
          doc="a depthwise_conv2d, then a 1×1 conv2d mixing the channels into `filters`",
          attrs={"param_shapes": _separable_shapes, "out_shape": _conv_out("separable_conv2d"),
                 "flops": _separable_flops,
                 "examples": [((8, 8, 3), "separable_conv2d 4 3 relu"),
                              ((9, 7, 2), "separable_conv2d 5 [3, 2] depth_multiplier=2 padding=same stride=2")]}),
    Entry("conv2d_transpose", _conv_params(2, stride="how far apart neighbouring inputs land on the output: "
                                                      "the factor the size grows by"),
          doc="the transpose of conv2d: each input value adds kernel × value onto a larger output",
          attrs={"param_shapes": _transpose_shapes, "out_shape": _transpose_out, "flops": _transpose_flops,
                 "examples": [((4, 4, 3), "conv2d_transpose 2 3 stride=2"),
                              ((3, 5, 2), "conv2d_transpose 4 [2, 3] relu stride=2 padding=same"),
                              ((4, 4, 1), "conv2d_transpose 1 3 stride=[1, 3] padding=same dilation=2")]}),
    Entry("upsampling1d", (P("size", Dims(1), 2, "how many times each step is repeated", positional=True),),
          doc="repeats each step `size` times (nearest neighbour)",
          attrs={"out_shape": _upsampling_out("upsampling1d"),
                 "examples": [((5, 2), "upsampling1d"), ((3, 1), "upsampling1d 3")]}),
    Entry("upsampling2d", (P("size", Dims(2), 2, "how many times each row and column is repeated, or [rows, columns]",
                             positional=True),),
          doc="repeats each pixel into a size × size block (nearest neighbour)",
          attrs={"out_shape": _upsampling_out("upsampling2d"),
                 "examples": [((4, 4, 2), "upsampling2d"), ((2, 3, 1), "upsampling2d [3, 2]")]}),
    _pool("max_pool1d", "the largest value in each window, channel by channel",
          [((10, 3), "max_pool1d"), ((9, 2), "max_pool1d 3 stride=2 padding=same")]),
    _pool("max_pool2d", "the largest value in each window, channel by channel",
          [((8, 8, 2), "max_pool2d"), ((7, 9, 1), "max_pool2d [3, 2] stride=2 padding=same")]),
    _pool("avg_pool1d", "the mean of each window, channel by channel (padding does not count)",
          [((10, 3), "avg_pool1d"), ((9, 2), "avg_pool1d 3 stride=2 padding=same")]),
    _pool("avg_pool2d", "the mean of each window, channel by channel (padding does not count)",
          [((8, 8, 2), "avg_pool2d"), ((7, 9, 1), "avg_pool2d 3 stride=[2, 1] padding=same")]),
    Entry("global_avg_pool", doc="the mean over every axis but the last: one number per channel",
          attrs={"out_shape": _global_out("global_avg_pool"), "flops": per_input(1),
                 "examples": [((6, 3), "global_avg_pool"), ((4, 5, 2), "global_avg_pool")]}),
    Entry("global_max_pool", doc="the largest value over every axis but the last: one number per channel",
          attrs={"out_shape": _global_out("global_max_pool"), "flops": per_input(1),
                 "examples": [((6, 3), "global_max_pool"), ((4, 5, 2), "global_max_pool")]}),
]
