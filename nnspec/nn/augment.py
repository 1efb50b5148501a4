"""Image augmentation: the JAX side of `random_flip`, `random_translation` and `random_contrast`.

Written for one image (height, width, channels) with any leading (batch) axes: each
example draws its own flip or shift from the layer's key, as dropout draws a mask per
value, so a batch, `jax.vmap` over examples, and a sweep's vmapped keys all work. Out of
training the layers are the identity (nothing of them reaches an exported model).

Each layer is a draw (`flip_draws`, `translation_draws`, `contrast_draws`: the random
numbers, one set per example) and a pure function of the image and the draws (`flip`,
`translate`, `contrast`), so tests can feed the same draws to an independent
implementation.

`random_translation` follows Keras 3's `RandomTranslation`: example i moves by
dy = u·height·H rows and dx = v·width·W columns, u and v uniform in [−1, 1); output pixel
(r, c) reads the input at (r − dy, c − dx), bilinearly interpolated (or the nearest pixel,
halves rounded away from zero), and a position outside the image is read by `fill_mode`.
A translation is separable, so the rows are shifted first and then the columns: two 1-D
interpolations, which for bilinear weights equal the 2-D one (with `constant`, a
neighbour outside gives `fill_value`, as Keras's corner-by-corner rule does).
"""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp

from nnspec.nn.base import LayerImpl

Array = jax.Array

_AXIS = {"vertical": -3, "horizontal": -2}  # height, width of (..., height, width, channels)


def _lead(x: Array) -> tuple[int, ...]:
    return x.shape[:x.ndim - 3]


def _need_key(impl: LayerImpl, key: Array | None) -> Array:
    if key is None:
        raise ValueError(f"layer `{impl.layer.name}` ({impl.layer.op}) needs a `key` in training")
    return key


# ---------------------------------------------------------------------------------- flips

def flip_draws(key: Array, lead: tuple[int, ...], mode: str) -> dict[str, Array]:
    """Whether each example is flipped, by direction: booleans of shape `lead`, true with
    probability 1/2, the two directions independent (each its own split of `key`)."""
    keys = dict(zip(("horizontal", "vertical"), jax.random.split(key)))
    return {d: jax.random.bernoulli(keys[d], 0.5, lead) for d in _AXIS if d in mode}


def flip(x: Array, draws: Mapping[str, Array]) -> Array:
    for direction, flipped in draws.items():
        x = jnp.where(flipped[..., None, None, None], jnp.flip(x, axis=_AXIS[direction]), x)
    return x


class RandomFlip(LayerImpl):
    def apply(self, params, x, hp, *, key, train):
        if not train:
            return x
        return flip(x, flip_draws(_need_key(self, key), _lead(x), self.layer.params["mode"]))


# ---------------------------------------------------------------------------- translation

def translation_draws(key: Array, lead: tuple[int, ...]) -> tuple[Array, Array]:
    """(u, v), uniform in [−1, 1) of shape `lead`: each example's shift as a fraction of
    the largest (`height`, `width`)."""
    ku, kv = jax.random.split(key)
    return (jax.random.uniform(ku, lead, minval=-1.0, maxval=1.0),
            jax.random.uniform(kv, lead, minval=-1.0, maxval=1.0))


def _fixed(i: Array, n: int, fill_mode: str) -> Array:
    """Index i of an axis of n pixels, brought inside by `fill_mode` (`constant` clips;
    the caller masks what was outside)."""
    if fill_mode == "reflect":  # d c b a | a b c d | d c b a
        m = jnp.mod(i, 2 * n)
        return jnp.where(m < n, m, 2 * n - 1 - m)
    if fill_mode == "wrap":
        return jnp.mod(i, n)
    return jnp.clip(i, 0, n - 1)  # nearest; constant


def _shift(x: Array, d: Array, axis: int, fill_mode: str, fill_value: float, interpolation: str) -> Array:
    """x (..., H, W, C) shifted by d (one float per example, shape ...) along `axis`."""
    n = x.shape[axis]
    src = jnp.arange(n, dtype=jnp.float32) - d[..., None]  # (..., n): where each output pixel reads
    taps: list[tuple[Array, Array | None]]  # (index, weight) pairs; the nearest pixel has no weight
    if interpolation == "nearest":
        base = jnp.where(src >= 0, jnp.floor(src + 0.5), jnp.ceil(src - 0.5))
        taps = [(base.astype(jnp.int32), None)]
    else:
        base = jnp.floor(src)
        frac = src - base
        i0 = base.astype(jnp.int32)
        taps = [(i0, 1.0 - frac), (i0 + 1, frac)]

    def along(a: Array) -> Array:  # (..., n) -> (..., n, 1, 1) for the height, (..., 1, n, 1) for the width
        return a.reshape(a.shape[:-1] + (1,) * (3 + axis) + (n,) + (1,) * (-axis - 1))
    out = None
    for i, w in taps:
        v = jnp.take_along_axis(x, jnp.broadcast_to(along(_fixed(i, n, fill_mode)), x.shape), axis=axis)
        if fill_mode == "constant":
            v = jnp.where(along((i >= 0) & (i < n)), v, jnp.asarray(fill_value, x.dtype))
        if w is not None:
            v = v * along(w).astype(x.dtype)
        out = v if out is None else out + v
    assert out is not None
    return out


def translate(x: Array, dy: Array, dx: Array, *, fill_mode: str = "reflect", fill_value: float = 0.0,
              interpolation: str = "bilinear") -> Array:
    """x (..., H, W, C) with each example moved down by dy rows and right by dx columns."""
    x = _shift(x, dy, -3, fill_mode, fill_value, interpolation)
    return _shift(x, dx, -2, fill_mode, fill_value, interpolation)


class RandomTranslation(LayerImpl):
    def hparams(self) -> dict[str, float]:
        p = self.layer.params
        return {"height": p["height"], "width": p["width"]}

    def apply(self, params, x, hp, *, key, train):
        if not train:
            return x
        p = self.layer.params
        u, v = translation_draws(_need_key(self, key), _lead(x))
        h, w = x.shape[-3], x.shape[-2]
        return translate(x, u * hp["height"] * h, v * hp["width"] * w, fill_mode=p["fill_mode"],
                         fill_value=p["fill_value"], interpolation=p["interpolation"])


# ------------------------------------------------------------------------------- contrast

def contrast_draws(key: Array, lead: tuple[int, ...]) -> Array:
    """u, uniform in [−1, 1) of shape `lead`: each example's contrast factor is 1 + u·factor."""
    return jax.random.uniform(key, lead, minval=-1.0, maxval=1.0)


def contrast(x: Array, c: Array, value_range: tuple[float, float] | None = None) -> Array:
    """x (..., H, W, C) with each channel of each example moved from its mean m (over the
    height and width) by its factor c: (x − m)·c + m, clipped to `value_range` if given."""
    mean = jnp.mean(x, axis=(-3, -2), keepdims=True)
    y = (x - mean) * c[..., None, None, None].astype(x.dtype) + mean
    return y if value_range is None else jnp.clip(y, value_range[0], value_range[1])


class RandomContrast(LayerImpl):
    def hparams(self) -> dict[str, float]:
        return {"factor": self.layer.params["factor"]}

    def apply(self, params, x, hp, *, key, train):
        if not train:
            return x
        u = contrast_draws(_need_key(self, key), _lead(x))
        return contrast(x, 1.0 + u * hp["factor"], self.layer.params["value_range"])


LAYERS: dict[str, type[LayerImpl]] = {"random_flip": RandomFlip, "random_translation": RandomTranslation,
                                      "random_contrast": RandomContrast}
