"""What every layer family's JAX side shares: activations, initializers, `LayerImpl`.

A family module (conv.py, recurrent.py, ...) holds `LAYERS`, a dict from op name to a
`LayerImpl` subclass, written for ONE example (leading batch axes are carried along; see
nnspec/nn/__init__.py). It mirrors the rule rows of nnspec/layers/<family>.py.
"""

from __future__ import annotations

import math
from typing import Callable, Literal, Mapping

import jax
import jax.numpy as jnp
from jax.extend.random import threefry_2x32

from nnspec.checked import Fn, Layer

Array = jax.Array

# ----------------------------------------------------------------------------- activations

ACTIVATIONS: dict[str, Callable[..., Array]] = {
    "sigmoid": lambda x: jax.nn.sigmoid(x),
    "tanh": lambda x: jnp.tanh(x),
    "relu": lambda x: jax.nn.relu(x),
    "leaky_relu": lambda x, slope: jnp.where(x >= 0, x, slope * x),
    "elu": lambda x, alpha: jnp.where(x > 0, x, alpha * jnp.expm1(jnp.minimum(x, 0))),
    "gelu": lambda x, approximate: jax.nn.gelu(x, approximate=approximate),
    "softplus": lambda x: jax.nn.softplus(x),
    "silu": lambda x: jax.nn.silu(x),
    "softmax": lambda x: jax.nn.softmax(x, axis=-1),
    "log_softmax": lambda x: jax.nn.log_softmax(x, axis=-1),
    "identity": lambda x: x,
}

# Activation params that change the program's structure stay static; the rest are traced.
_STATIC_ACT_PARAMS = {"approximate"}


def activate(fn: Fn | None, x: Array, hp: Mapping[str, Array]) -> Array:
    if fn is None:
        return x
    kwargs = {k: (v if k in _STATIC_ACT_PARAMS else hp[k]) for k, v in fn.params.items()}
    return ACTIVATIONS[fn.name](x, **kwargs)


# ---------------------------------------------------------------------------- initializers

def _variance_scaling(scale: float, mode: Literal["fan_in", "fan_avg"],
                      dist: Literal["truncated_normal", "uniform"]) -> Callable:
    """`jax.nn.initializers.variance_scaling`, which Keras's initializers of the same names
    match: `*_normal` draws a normal truncated at ±2σ, rescaled to the stated variance."""
    def init(key: Array, shape: tuple[int, ...]) -> Array:
        # a bias has one axis: it is both fan-in and fan-out (jax wants them named)
        axes = {"in_axis": -1, "out_axis": -1} if len(shape) == 1 else {}
        return jax.nn.initializers.variance_scaling(scale, mode, dist, **axes)(key, shape)
    return init


def _orthogonal(gain: float) -> Callable:
    """`jax.nn.initializers.orthogonal` over the last axis (Keras's `Orthogonal`); a bias,
    with one axis, is drawn as a single row: a random unit vector times `gain`."""
    def init(key: Array, shape: tuple[int, ...]) -> Array:
        full = shape if len(shape) >= 2 else (1, *shape)
        return jax.nn.initializers.orthogonal(gain)(key, full).reshape(shape)
    return init


INITIALIZERS: dict[str, Callable[..., Callable]] = {
    "zeros": lambda: lambda key, shape: jnp.zeros(shape),
    "ones": lambda: lambda key, shape: jnp.ones(shape),
    "constant": lambda value: lambda key, shape: jnp.full(shape, value, jnp.float32),
    "normal": lambda mean, stddev: lambda key, shape: mean + stddev * jax.random.normal(key, shape),
    "uniform": lambda low, high: lambda key, shape: jax.random.uniform(key, shape, minval=low, maxval=high),
    "glorot_normal": lambda: _variance_scaling(1.0, "fan_avg", "truncated_normal"),
    "glorot_uniform": lambda: _variance_scaling(1.0, "fan_avg", "uniform"),
    "he_normal": lambda: _variance_scaling(2.0, "fan_in", "truncated_normal"),
    "he_uniform": lambda: _variance_scaling(2.0, "fan_in", "uniform"),
    "lecun_normal": lambda: _variance_scaling(1.0, "fan_in", "truncated_normal"),
    "lecun_uniform": lambda: _variance_scaling(1.0, "fan_in", "uniform"),
    "orthogonal": lambda gain: _orthogonal(gain),
}


def initializer(fn: Fn) -> Callable[[Array, tuple[int, ...]], Array]:
    return INITIALIZERS[fn.name](**fn.params)


# ---------------------------------------------------------------------------------- layers

class LayerImpl:
    """One layer lowered: `init(key) -> params` and `apply(params, x, hp, *, key, train)`;
    `hparams()` gives the traced hyperparameters' starting values."""

    # A STATEFUL layer (batch_norm) also has `apply_stateful(params, x, hp, *, key, train,
    # weights) -> (y, updates)`: `updates` replace some of its arrays after a training step.
    STATEFUL = False

    def __init__(self, layer: Layer) -> None:
        self.layer = layer

    def init(self, key: Array) -> dict[str, Array]:
        return {}

    def hparams(self) -> dict[str, float]:
        return {}

    def apply(self, params: Mapping[str, Array], x: Array | tuple[Array, ...], hp: Mapping[str, Array], *,
              key: Array | None, train: bool) -> Array:
        """`x` is one array, or a merge's (MERGE) tuple of them, one per input."""
        raise NotImplementedError


def keep_mask(key: Array, shape: tuple[int, ...], keep: Array | float) -> Array:
    """Which elements a dropout keeps: True with probability `keep`, each element from 16
    random bits, not the 32 of `jax.random.uniform`. An element is kept when its 16 bits,
    as an integer u in [0, 65536), are below ceil(keep·65536), so the probability is
    ceil(keep·65536)/65536: keep itself for multiples of 1/65536 (0.5, 0.75, ...), and
    within 1/65536 of it otherwise (0.8 keeps 0.8000031).

    The bits are Threefry-2x32's, as `jax.random.bits` draws them, but with every hash
    used whole: hash j of the key (counter (j, 0)) gives 64 bits, the masks of elements
    4j..4j+3 (in the mask's row-major order). So an element's bits depend on its position
    alone, not on the mask's size: the first rows of a batch padded for several devices
    get the masks they get unpadded. `jax.random.bits` (JAX's partitionable Threefry)
    spends a hash on each 32-bit word; this takes half the hashes, and on the CPU 1.4x
    less time for a 128×256 mask and 4x for a 32×128 one (`python -m benchmarks.masks`).
    Keys of another generator (`jax_default_prng_impl`) draw with `jax.random.bits`."""
    n = math.prod(shape)
    data = jax.random.key_data(key)
    if data.shape[-1:] != (2,):  # not a Threefry key
        words = jax.random.bits(key, ((n + 1) // 2,), jnp.uint32)
    else:
        hashes = -(-n // 4)
        count = jax.lax.iota(jnp.uint32, hashes)
        both = threefry_2x32(data, jnp.concatenate([count, jnp.zeros_like(count)]))  # (y0 of every hash, y1 of every hash)
        words = jnp.stack([both[:hashes], both[hashes:]], axis=-1).reshape(-1)
    halves = jnp.stack([words & 0xFFFF, words >> 16], axis=-1).reshape(-1)[:n].reshape(shape)
    return halves < jnp.ceil(keep * 65536.0).astype(jnp.uint32)


def _act_hparams(fn: Fn | None) -> dict[str, float]:
    if fn is None:
        return {}
    return {k: float(v) for k, v in fn.params.items() if k not in _STATIC_ACT_PARAMS}
