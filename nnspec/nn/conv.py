"""Convolution, pooling and upsampling: the JAX side, one example at a time.

Each layer folds whatever leading axes come with the example (a batch, or several under
vmap) into one batch axis, runs the XLA primitive (`conv_general_dilated`,
`conv_transpose`, `reduce_window`) on that, and unfolds. Windows, strides and padding come
from nnspec/layers/conv.py's `geometry`, the checker's own rule.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
from jax import lax

from nnspec.layers.conv import axes, geometry, transpose_padding
from nnspec.nn.base import LayerImpl, _act_hparams, activate, initializer

Array = jax.Array

_DIMS = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC")}

# The largest patch matrix (bytes, one batch of one model) a convolution is computed by:
# it holds kernel-size times the input's values, and the gradient keeps it.
PATCHES_MAX_BYTES = 256 * 2**20


def _by_patches(x: Array, w: Array, g) -> Array | None:
    """The convolution of `x` (batch, *spatial, channels) with `w` (*kernel, in, out) as
    patches @ kernel: each kernel tap's strided slice of the padded input, side by side
    on the channel axis (tap-major, the kernel's own order), times `w` as a (taps·in, out)
    matrix. None where that is not worth it: off the CPU backend, or too large, or for a
    batch of symbolic size (`nnspec export`: the primitive suits every size and device)."""
    rank = w.ndim - 2
    taps = math.prod(w.shape[:rank])
    if jax.default_backend() != "cpu" or not isinstance(x.shape[0], int) or \
            x.shape[0] * math.prod(g.out) * taps * x.shape[-1] * x.dtype.itemsize > PATCHES_MAX_BYTES:
        return None
    x = jnp.pad(x, ((0, 0), *g.padding, (0, 0)))
    slices = []
    for offsets in itertools.product(*(range(k) for k in w.shape[:rank])):
        start = [o * d for o, d in zip(offsets, g.dilation)]
        limit = [s + (n - 1) * st + 1 for s, n, st in zip(start, g.out, g.stride)]
        slices.append(lax.slice(x, (0, *start, 0), (x.shape[0], *limit, x.shape[-1]), (1, *g.stride, 1)))
    patches = slices[0] if len(slices) == 1 else jnp.concatenate(slices, axis=-1)
    return patches @ w.reshape(-1, w.shape[-1])


class _Windowed(LayerImpl):
    """Folds the leading axes into one batch axis around `_run` (one batch of examples)."""
    rank = 2

    def apply(self, params, x, hp, *, key, train):
        in_shape = tuple(self.layer.in_shape)
        lead = x.shape[:x.ndim - len(in_shape)]
        y = self._run(params, x.reshape((-1, *in_shape)), hp)
        return y.reshape((*lead, *y.shape[1:]))

    def _run(self, params, x: Array, hp) -> Array:
        raise NotImplementedError


class _Conv(_Windowed):
    """conv1d and conv2d; depthwise and separable are variations of its `_run`."""

    def init(self, key: Array) -> dict[str, Array]:
        p = self.layer.params
        shapes = self.layer.param_shapes
        kernels = [name for name in shapes if name != "b"]
        keys = jax.random.split(key, len(kernels) + 1)
        out = {name: initializer(p["init"])(k, shapes[name]).astype(jnp.float32) for name, k in zip(kernels, keys)}
        if "b" in shapes:
            out["b"] = initializer(p["bias_init"])(keys[-1], shapes["b"]).astype(jnp.float32)
        return out

    def hparams(self) -> dict[str, float]:
        p = self.layer.params
        return {"l1": p["l1"], "l2": p["l2"], **_act_hparams(p["activation"])}

    def _conv(self, x: Array, w: Array, groups: int = 1) -> Array:
        g = geometry(self.layer.op, self.layer.params, self.layer.in_shape, self.rank)
        y = _by_patches(x, w, g) if groups == 1 else None
        if y is not None:
            return y
        return lax.conv_general_dilated(x, w, g.stride, g.padding, rhs_dilation=g.dilation,
                                        dimension_numbers=_DIMS[self.rank], feature_group_count=groups)

    def _finish(self, params, y: Array, hp) -> Array:
        if "b" in params:
            y = y + params["b"]
        return activate(self.layer.params["activation"], y, hp)

    def _run(self, params, x, hp):
        return self._finish(params, self._conv(x, params["w"]), hp)


class Conv1D(_Conv):
    rank = 1


class Conv2D(_Conv):
    rank = 2


def _depthwise(w: Array) -> Array:
    """(kh, kw, cin, m) -> the (kh, kw, 1, cin·m) kernel of a grouped conv, with output
    channel c·m + j holding input channel c's j-th filter."""
    kh, kw, cin, m = w.shape
    return w.reshape(kh, kw, 1, cin * m)


class DepthwiseConv2D(_Conv):
    def _run(self, params, x, hp):
        return self._finish(params, self._conv(x, _depthwise(params["w"]), groups=x.shape[-1]), hp)


class SeparableConv2D(_Conv):
    def _run(self, params, x, hp):
        y = self._conv(x, _depthwise(params["w_depthwise"]), groups=x.shape[-1])
        y = lax.conv_general_dilated(y, params["w_pointwise"], (1, 1), "VALID", dimension_numbers=_DIMS[2])
        return self._finish(params, y, hp)


class Conv2DTranspose(_Conv):
    def _run(self, params, x, hp):
        g = transpose_padding(self.layer.params, self.layer.in_shape)
        # the transpose of a convolution correlates the stride-dilated input with the flipped kernel
        w = jnp.flip(params["w"], axis=(0, 1))
        y = lax.conv_transpose(x, w, g.stride, g.padding, rhs_dilation=g.dilation, dimension_numbers=_DIMS[2])
        return self._finish(params, y, hp)


class _Pool(_Windowed):
    def _window(self):
        g = geometry(self.layer.op, self.layer.params, self.layer.in_shape, self.rank, window="size")
        one = (1,)
        return one + g.window + one, one + g.stride + one, ((0, 0), *g.padding, (0, 0))

    def _tiles(self, x: Array) -> tuple[Array, tuple[int, ...]] | None:
        """Where the windows tile the input (stride = window, no padding): `x` as
        (batch, out₁, window₁, out₂, window₂, ..., channels), and the window axes; else None.
        A remainder that no window covers is left out, as `reduce_window` leaves it."""
        g = geometry(self.layer.op, self.layer.params, self.layer.in_shape, self.rank, window="size")
        if g.stride != g.window or any(p != (0, 0) for p in g.padding):
            return None
        covered = (slice(None), *(slice(0, n * k) for n, k in zip(g.out, g.window)))
        x = x[covered]
        shape = [d for n, k in zip(g.out, g.window) for d in (n, k)]
        return x.reshape(x.shape[0], *shape, x.shape[-1]), tuple(range(2, 2 + 2 * self.rank, 2))


class MaxPool(_Pool):
    def _run(self, params, x, hp):
        tiles = self._tiles(x)
        if tiles is not None:
            return jnp.max(tiles[0], axis=tiles[1])
        window, stride, padding = self._window()
        return lax.reduce_window(x, -jnp.inf, lax.max, window, stride, padding)


class AvgPool(_Pool):
    def _run(self, params, x, hp):
        tiles = self._tiles(x)
        if tiles is not None:
            return jnp.mean(tiles[0], axis=tiles[1])
        window, stride, padding = self._window()
        total = lax.reduce_window(x, 0.0, lax.add, window, stride, padding)
        # padded zeros do not count: divide by how many real values each window holds
        ones = jnp.ones((1, *x.shape[1:-1], 1), x.dtype)
        return total / lax.reduce_window(ones, 0.0, lax.add, window, stride, padding)


class Upsampling(_Windowed):
    def _run(self, params, x, hp):
        for axis, factor in enumerate(axes(self.layer.params["size"], self.rank), start=1):
            x = jnp.repeat(x, factor, axis=axis)
        return x


class _Global(LayerImpl):
    """Reduces every example axis but the last (the channels), any leading axes kept."""
    reduce: staticmethod

    def apply(self, params, x, hp, *, key, train):
        rank = len(self.layer.in_shape)
        return self.reduce(x, axis=tuple(range(x.ndim - rank, x.ndim - 1)))


class GlobalAvgPool(_Global):
    reduce = staticmethod(jnp.mean)


class GlobalMaxPool(_Global):
    reduce = staticmethod(jnp.max)


def _of_rank(cls: type[LayerImpl], rank: int) -> type[LayerImpl]:
    return type(f"{cls.__name__}{rank}D", (cls,), {"rank": rank})


LAYERS: dict[str, type[LayerImpl]] = {
    "conv1d": Conv1D, "conv2d": Conv2D, "depthwise_conv2d": DepthwiseConv2D, "separable_conv2d": SeparableConv2D,
    "conv2d_transpose": Conv2DTranspose,
    "upsampling1d": _of_rank(Upsampling, 1), "upsampling2d": _of_rank(Upsampling, 2),
    "max_pool1d": _of_rank(MaxPool, 1), "max_pool2d": _of_rank(MaxPool, 2),
    "avg_pool1d": _of_rank(AvgPool, 1), "avg_pool2d": _of_rank(AvgPool, 2),
    "global_avg_pool": GlobalAvgPool, "global_max_pool": GlobalMaxPool,
}
