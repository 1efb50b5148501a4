"""Image augmentation: the JAX side of `random_flip`, `random_translation`,
`random_rotation`, `random_zoom` and `random_contrast`.

Written for one image (height, width, channels) with any leading (batch) axes: each
example draws its own flip or shift from the layer's key, as dropout draws a mask per
value, so a batch, `jax.vmap` over examples, and a sweep's vmapped keys all work. Out of
training the layers are the identity (nothing of them reaches an exported model).

Each layer is a draw (`flip_draws`, `uniform_draws`: the random numbers, one set per
example) and a pure function of the image and the draws (`flip`, `translate`, `rotate`,
`zoom`, `contrast`), so tests can feed the same draws to an independent implementation.

`random_translation` follows Keras 3's `RandomTranslation`: example i moves by
dy = u·height·H rows and dx = v·width·W columns, u and v uniform in [−1, 1); output pixel
(r, c) reads the input at (r − dy, c − dx), bilinearly interpolated (or the nearest pixel,
halves rounded away from zero), and a position outside the image is read by `fill_mode`.
`random_rotation` and `random_zoom` are Keras 3's affine maps about the centre
((H − 1)/2, (W − 1)/2). All three read the input through `sample`: the four pixels
around a position, each read by `fill_mode` (with `constant`, a neighbour outside gives
`fill_value`, corner by corner, as Keras's rule does).
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


# ------------------------------------------------------------------------------ sampling

def uniform_draws(key: Array, lead: tuple[int, ...], n: int) -> tuple[Array, ...]:
    """n arrays uniform in [−1, 1) of shape `lead`, one split of `key` each."""
    return tuple(jax.random.uniform(k, lead, minval=-1.0, maxval=1.0) for k in jax.random.split(key, n))


def _fixed(i: Array, n: int, fill_mode: str) -> Array:
    """Index i of an axis of n pixels, brought inside by `fill_mode` (`constant` clips;
    the caller masks what was outside)."""
    if fill_mode == "reflect":  # d c b a | a b c d | d c b a
        m = jnp.mod(i, 2 * n)
        return jnp.where(m < n, m, 2 * n - 1 - m)
    if fill_mode == "wrap":
        return jnp.mod(i, n)
    return jnp.clip(i, 0, n - 1)  # nearest; constant


def _taps(coord: Array, interpolation: str) -> list[tuple[Array, Array | None]]:
    """(index, weight) pairs that read a float coordinate: two, or one for `nearest`."""
    if interpolation == "nearest":  # halves away from zero, as Keras rounds
        return [(jnp.where(coord >= 0, jnp.floor(coord + 0.5), jnp.ceil(coord - 0.5)).astype(jnp.int32), None)]
    base = jnp.floor(coord)
    frac = coord - base
    return [(base.astype(jnp.int32), 1.0 - frac), (base.astype(jnp.int32) + 1, frac)]


def sample(x: Array, rows: Array, cols: Array, *, fill_mode: str, fill_value: float, interpolation: str) -> Array:
    """x (..., H, W, C) read at float coordinates (rows, cols), each (..., H, W): output
    pixel (r, c) is x at (rows[r, c], cols[r, c])."""
    h, w, ch = x.shape[-3:]
    lead = x.shape[:-3]
    flat = x.reshape(lead + (h * w, ch))
    out = jnp.zeros_like(x)
    for ri, wr in _taps(rows, interpolation):
        for ci, wc in _taps(cols, interpolation):
            idx = (_fixed(ri, h, fill_mode) * w + _fixed(ci, w, fill_mode)).reshape(lead + (h * w, 1))
            v = jnp.take_along_axis(flat, jnp.broadcast_to(idx, flat.shape), axis=-2).reshape(x.shape)
            if fill_mode == "constant":
                inside = (ri >= 0) & (ri < h) & (ci >= 0) & (ci < w)
                v = jnp.where(inside[..., None], v, jnp.asarray(fill_value, x.dtype))
            if wr is not None and wc is not None:
                v = v * (wr * wc)[..., None].astype(x.dtype)
            out = out + v
    return out


def _grid(x: Array) -> tuple[Array, Array, float, float]:
    """Each output pixel's row and column less the centre's, (H, W) each, and the centre."""
    h, w = x.shape[-3], x.shape[-2]
    cy, cx = (h - 1) / 2, (w - 1) / 2
    r, c = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32) - cy, jnp.arange(w, dtype=jnp.float32) - cx, indexing="ij")
    return r, c, cy, cx


def _fill(p: Mapping) -> dict:
    return {"fill_mode": p["fill_mode"], "fill_value": p["fill_value"], "interpolation": p["interpolation"]}


# ---------------------------------------------------------------------------- translation

def translate(x: Array, dy: Array, dx: Array, *, fill_mode: str = "reflect", fill_value: float = 0.0,
              interpolation: str = "bilinear") -> Array:
    """x (..., H, W, C) with each example moved down by dy rows and right by dx columns."""
    r, c, cy, cx = _grid(x)
    return sample(x, cy + r - dy[..., None, None], cx + c - dx[..., None, None], fill_mode=fill_mode,
                  fill_value=fill_value, interpolation=interpolation)


class RandomTranslation(LayerImpl):
    def hparams(self) -> dict[str, float]:
        p = self.layer.params
        return {"height": p["height"], "width": p["width"]}

    def apply(self, params, x, hp, *, key, train):
        if not train:
            return x
        u, v = uniform_draws(_need_key(self, key), _lead(x), 2)
        h, w = x.shape[-3], x.shape[-2]
        return translate(x, u * hp["height"] * h, v * hp["width"] * w, **_fill(self.layer.params))


# ------------------------------------------------------------------- rotation and zoom

def rotate(x: Array, angle: Array, **fill) -> Array:
    """x (..., H, W, C) turned by `angle` radians (one per example) about its centre:
    output (r, c) reads the input at the centre + R(angle)·((c, r) − centre), as Keras 3's
    rotation matrix does."""
    r, c, cy, cx = _grid(x)
    cos, sin = jnp.cos(angle)[..., None, None], jnp.sin(angle)[..., None, None]
    return sample(x, cy + sin * c + cos * r, cx + cos * c - sin * r, **fill)


def zoom(x: Array, zy: Array, zx: Array, **fill) -> Array:
    """x (..., H, W, C) read at scales zy, zx (one per example) about its centre: above 1
    shows more of the image (zoomed out), below 1 less (zoomed in)."""
    r, c, cy, cx = _grid(x)
    return sample(x, cy + zy[..., None, None] * r, cx + zx[..., None, None] * c, **fill)


class RandomRotation(LayerImpl):
    def hparams(self) -> dict[str, float]:
        return {"factor": self.layer.params["factor"]}

    def apply(self, params, x, hp, *, key, train):
        if not train:
            return x
        (u,) = uniform_draws(_need_key(self, key), _lead(x), 1)
        return rotate(x, u * hp["factor"] * (2 * jnp.pi), **_fill(self.layer.params))


class RandomZoom(LayerImpl):
    def hparams(self) -> dict[str, float]:
        p = self.layer.params
        return {"height": p["height"], "width": p["width"] if p["width"] is not None else 0.0}

    def apply(self, params, x, hp, *, key, train):
        if not train:
            return x
        u, v = uniform_draws(_need_key(self, key), _lead(x), 2)
        zy = 1.0 + u * hp["height"]
        # without `width`, the height's draw for both: the aspect ratio kept, as Keras does
        zx = zy if self.layer.params["width"] is None else 1.0 + v * hp["width"]
        return zoom(x, zy, zx, **_fill(self.layer.params))


# ------------------------------------------------------------------------------- contrast

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
        (u,) = uniform_draws(_need_key(self, key), _lead(x), 1)
        return contrast(x, 1.0 + u * hp["factor"], self.layer.params["value_range"])


LAYERS: dict[str, type[LayerImpl]] = {"random_flip": RandomFlip, "random_translation": RandomTranslation,
                                      "random_rotation": RandomRotation, "random_zoom": RandomZoom,
                                      "random_contrast": RandomContrast}
