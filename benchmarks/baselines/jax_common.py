"""The workloads' networks in plain JAX + Optax, as the JAX baselines (a) and (b) write them.

The MLP's parameters (W1-W3) are a list of (w, b) pairs; the CNN's (W4) and the LSTM's
(W5) a dict. Kernels start Glorot-uniform and biases at zero (nnspec's and Keras's
defaults); the LSTM's recurrent kernel starts orthogonal and its forget gate's bias at
1 (Keras's `unit_forget_bias`, nnspec's `forget_bias`), its gates in Keras's order
i, f, c, o. Dropout draws a Bernoulli mask per step; the loss is Optax's cross-entropy
on logits.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.workloads import Workload


def load(npz) -> tuple[np.ndarray, np.ndarray]:
    with np.load(npz) as f:
        return f["x"], f["y"]


def init(w: Workload, key: jax.Array):
    if w.arch == "cnn":
        return _init_cnn(w, key)
    if w.arch == "lstm":
        return _init_lstm(w, key)
    sizes = (w.features, *w.hidden, w.outputs)
    glorot = jax.nn.initializers.glorot_uniform()
    keys = jax.random.split(key, len(sizes) - 1)
    return [(glorot(k, (a, b), jnp.float32), jnp.zeros(b, jnp.float32))
            for k, a, b in zip(keys, sizes, sizes[1:])]


def _init_cnn(w: Workload, key: jax.Array) -> dict[str, jax.Array]:
    glorot = jax.nn.initializers.glorot_uniform()  # fan in/out: kh·kw·channels, as Keras's
    (c1, c2), k1, k2, k3 = w.hidden, *jax.random.split(key, 3)
    return {"w1": glorot(k1, (3, 3, w.features, c1)), "b1": jnp.zeros(c1),
            "w2": glorot(k2, (3, 3, c1, c2)), "b2": jnp.zeros(c2),
            "w3": glorot(k3, (c2, w.outputs)), "b3": jnp.zeros(w.outputs)}


def _init_lstm(w: Workload, key: jax.Array) -> dict[str, jax.Array]:
    units, (kw, ku, kd) = w.hidden[0], jax.random.split(key, 3)
    glorot = jax.nn.initializers.glorot_uniform()
    return {"w": glorot(kw, (w.features, 4 * units)),
            "u": jax.nn.initializers.orthogonal()(ku, (units, 4 * units)),
            "b": jnp.zeros(4 * units).at[units:2 * units].set(1.0),
            "wd": glorot(kd, (units, w.outputs)), "bd": jnp.zeros(w.outputs)}


def _cnn(params, x: jax.Array) -> jax.Array:
    conv = lambda x, k, pad: jax.lax.conv_general_dilated(  # noqa: E731
        x, k, (1, 1), pad, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    x = jax.nn.relu(conv(x, params["w1"], "SAME") + params["b1"])
    x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    x = jax.nn.relu(conv(x, params["w2"], "VALID") + params["b2"])
    return x.mean(axis=(1, 2)) @ params["w3"] + params["b3"]


def _lstm(params, x: jax.Array) -> jax.Array:
    xw = jnp.swapaxes(x @ params["w"] + params["b"], 0, 1)  # (steps, batch, 4·units)
    units = params["u"].shape[0]

    def cell(carry, xw_t):
        h, c = carry
        i, f, g, o = jnp.split(xw_t + h @ params["u"], 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), None

    zeros = jnp.zeros((x.shape[0], units), x.dtype)
    (h, _), _ = jax.lax.scan(cell, (zeros, zeros), xw)
    return h @ params["wd"] + params["bd"]


def forward(w: Workload, params, x: jax.Array, key: jax.Array | None) -> jax.Array:
    """Logits; dropout after each hidden layer when `key` is given."""
    if w.arch == "cnn":
        return _cnn(params, x)
    if w.arch == "lstm":
        return _lstm(params, x)
    keys = jax.random.split(key, len(params) - 1) if key is not None and w.drop_prob else None
    for i, (wt, b) in enumerate(params[:-1]):
        x = jax.nn.relu(x @ wt + b)
        if keys is not None:
            keep = 1.0 - w.drop_prob
            x = jnp.where(jax.random.bernoulli(keys[i], keep, x.shape), x / keep, 0.0)
    wt, b = params[-1]
    return x @ wt + b


def loss_fn(w: Workload):
    """(params, x, y, key) -> mean loss over the batch."""
    def loss(params, x, y, key):
        logits = forward(w, params, x, key)
        if w.classes == 2:
            return optax.sigmoid_binary_cross_entropy(logits[:, 0], y.astype(jnp.float32)).mean()
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return loss


def optimizer(w: Workload) -> optax.GradientTransformation:
    return optax.sgd(w.lr) if w.optimizer == "sgd" else optax.adam(w.lr)
