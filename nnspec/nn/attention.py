"""Attention, transformer blocks, position embeddings, normalization and reshaping: the JAX side, one example at a time.

Every layer here takes one example of `layer.in_shape` with any number of leading axes
(a batch, or several under `jax.vmap`); the einsums carry them with `...`.

Attention takes one of two paths, which compute the same thing (tests check it):
- not training: `jax.nn.dot_product_attention` (XLA's fused attention, `is_causal` for
  the causal mask);
- training: the explicit softmax(q·kᵀ/√d)·v, because dropout acts on the attention
  weights and the fused call has no dropout. `drop_prob` is a traced value (sweeps
  share one program across its values), so the path depends on `train` alone.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from nnspec.checked import Fn
from nnspec.nn.base import LayerImpl, _act_hparams, activate, initializer

Array = jax.Array

_GLOROT = Fn("glorot_uniform", {})
_MAX_WAVELENGTH = 10_000.0


def _drop(x: Array, p: Array, u: Array) -> Array:
    """Inverted dropout with a traced probability `p`, given uniform draws `u` of x's shape."""
    keep = 1.0 - p
    return jnp.where(u < keep, x / keep, 0.0)


def _uniforms(key: Array, shapes: list[tuple[int, ...]]) -> list[Array]:
    """Uniform draws of several shapes from one call: each random-number call site adds
    to the compile time, and a block has three dropouts."""
    sizes = [math.prod(s) for s in shapes]
    flat = jax.random.uniform(key, (sum(sizes),))
    starts = np.cumsum([0, *sizes])
    return [flat[a:b].reshape(s) for a, b, s in zip(starts[:-1], starts[1:], shapes)]


def _need_key(layer, key: Array | None) -> Array:
    if key is None:
        raise ValueError(f"layer `{layer.name}` ({layer.op}) needs a `key` in training")
    return key


def _init_arrays(shapes, key: Array) -> dict[str, Array]:
    """Weights (`w...`) glorot-uniform, as Keras; biases and offsets 0, scales 1."""
    keys = jax.random.split(key, max(1, len(shapes)))
    out = {}
    for k, (name, shape) in zip(keys, sorted(shapes.items())):
        if name.startswith("w"):
            out[name] = initializer(_GLOROT)(k, tuple(shape)).astype(jnp.float32)
        elif name.endswith("scale"):
            out[name] = jnp.ones(shape, jnp.float32)
        else:
            out[name] = jnp.zeros(shape, jnp.float32)
    return out


def layer_norm(x: Array, scale: Array | None, offset: Array | None, epsilon: float) -> Array:
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    y = (x - mean) * jax.lax.rsqrt(var + epsilon)
    if scale is not None:
        y = y * scale
    if offset is not None:
        y = y + offset
    return y


def _weights_shape(params, x: Array) -> tuple[int, ...]:
    """The attention weights' shape for x (..., steps, features): (..., heads, steps, steps)."""
    steps, heads = x.shape[-2], params["w_q"].shape[1]
    return (*x.shape[:-2], heads, steps, steps)


def attention(params, x: Array, *, causal: bool, drop_prob: Array, u: Array | None, train: bool) -> Array:
    """Multi-head self-attention of x (..., steps, features) with projections `w_q` ... `b_o`;
    in training, `u` holds uniform draws of the attention weights' shape for dropout."""
    def project(part: str) -> Array:
        y = jnp.einsum("...tf,fhk->...thk", x, params[f"w_{part}"])
        return y + params[f"b_{part}"] if f"b_{part}" in params else y

    q, k, v = project("q"), project("k"), project("v")
    if train:
        d = q.shape[-1]
        logits = jnp.einsum("...qhd,...khd->...hqk", q, k) / math.sqrt(d)
        if causal:
            steps = q.shape[-3]
            allowed = jnp.tril(jnp.ones((steps, steps), bool))
            logits = jnp.where(allowed, logits, jnp.finfo(logits.dtype).min)
        weights = jax.nn.softmax(logits, axis=-1)
        weights = _drop(weights, drop_prob, u) if u is not None else weights
        out = jnp.einsum("...hqk,...khd->...qhd", weights, v)
    else:
        lead = q.shape[:-3]
        flat = lambda a: a.reshape((-1, *a.shape[-3:]))  # noqa: E731 (the fused call wants (B, T, N, H))
        out = jax.nn.dot_product_attention(flat(q), flat(k), flat(v), is_causal=causal)
        out = out.reshape((*lead, *out.shape[1:]))
    y = jnp.einsum("...thd,hdf->...tf", out, params["w_o"])
    return y + params["b_o"] if "b_o" in params else y


class LayerNorm(LayerImpl):
    def init(self, key):
        return _init_arrays(self.layer.param_shapes, key)

    def apply(self, params, x, hp, *, key, train):
        return layer_norm(x, params.get("scale"), params.get("offset"), self.layer.params["epsilon"])


class SelfAttention(LayerImpl):
    def init(self, key):
        return _init_arrays(self.layer.param_shapes, key)

    def hparams(self):
        return {"drop_prob": self.layer.params["drop_prob"]}

    def apply(self, params, x, hp, *, key, train):
        u = jax.random.uniform(_need_key(self.layer, key), _weights_shape(params, x)) if train else None
        return attention(params, x, causal=self.layer.params["causal"], drop_prob=hp["drop_prob"], u=u, train=train)


class TransformerEncoder(LayerImpl):
    """Post-norm (default): x = LN(x + drop(attn(x))); x = LN(x + drop(ff(x))).
    Pre-norm (`norm_first`): x = x + drop(attn(LN(x))); x = x + drop(ff(LN(x)))."""

    def init(self, key):
        return _init_arrays(self.layer.param_shapes, key)

    def hparams(self):
        p = self.layer.params
        return {"drop_prob": p["drop_prob"], **_act_hparams(p["activation"])}

    def apply(self, params, x, hp, *, key, train):
        p = self.layer.params
        eps = p["epsilon"]
        u_attn: Array | None
        u1: Array | None
        u2: Array | None
        if train:
            u_attn, u1, u2 = _uniforms(_need_key(self.layer, key), [_weights_shape(params, x), x.shape, x.shape])
        else:
            u_attn = u1 = u2 = None
        drop = lambda y, u: _drop(y, hp["drop_prob"], u) if u is not None else y  # noqa: E731
        ln1 = lambda y: layer_norm(y, params["ln1_scale"], params["ln1_offset"], eps)  # noqa: E731
        ln2 = lambda y: layer_norm(y, params["ln2_scale"], params["ln2_offset"], eps)  # noqa: E731

        def attn(y):
            return attention(params, y, causal=p["causal"], drop_prob=hp["drop_prob"], u=u_attn, train=train)

        def ff(y):
            h = activate(p["activation"], y @ params["w_ff1"] + params["b_ff1"], hp)
            return h @ params["w_ff2"] + params["b_ff2"]

        if p["norm_first"]:
            x = x + drop(attn(ln1(x)), u1)
            return x + drop(ff(ln2(x)), u2)
        x = ln1(x + drop(attn(x), u1))
        return ln2(x + drop(ff(x), u2))


def sinusoidal_table(steps: int, features: int) -> np.ndarray:
    """sin(t / 10000^(2i/d)) at even features 2i, cos at odd ones 2i+1 (Vaswani et al., 2017)."""
    t = np.arange(steps, dtype=np.float64)[:, None]
    f = np.arange(features)
    angles = t * np.power(_MAX_WAVELENGTH, -(2 * (f // 2)) / features)[None, :]
    return np.where(f % 2 == 0, np.sin(angles), np.cos(angles)).astype(np.float32)


class PositionEmbedding(LayerImpl):
    def init(self, key):
        return _init_arrays(self.layer.param_shapes, key)

    def apply(self, params, x, hp, *, key, train):
        steps, features = self.layer.in_shape
        if self.layer.params["sinusoidal"]:
            return x + jnp.asarray(sinusoidal_table(steps, features))
        return x + params["w"][:steps]


class Reshape(LayerImpl):
    def apply(self, params, x, hp, *, key, train):
        lead = x.shape[:x.ndim - len(self.layer.in_shape)]
        return x.reshape((*lead, *self.layer.out_shape))


class Permute(LayerImpl):
    def apply(self, params, x, hp, *, key, train):
        n = x.ndim - len(self.layer.in_shape)
        return jnp.transpose(x, (*range(n), *(n + a - 1 for a in self.layer.params["axes"])))


LAYERS: dict[str, type[LayerImpl]] = {
    "layer_norm": LayerNorm, "self_attention": SelfAttention, "transformer_encoder": TransformerEncoder,
    "position_embedding": PositionEmbedding, "reshape": Reshape, "permute": Permute,
}
