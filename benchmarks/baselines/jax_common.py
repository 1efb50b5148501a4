"""The W1/W2 network in plain JAX + Optax, as the JAX baselines (a) and (b) write it.

Parameters are a list of (w, b) pairs, Glorot-uniform weights and zero biases (nnspec's
and Keras's defaults); dropout draws a Bernoulli mask per step; the loss is Optax's
cross-entropy on logits.
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


def init(w: Workload, key: jax.Array) -> list[tuple[jax.Array, jax.Array]]:
    sizes = (w.features, *w.hidden, w.outputs)
    glorot = jax.nn.initializers.glorot_uniform()
    keys = jax.random.split(key, len(sizes) - 1)
    return [(glorot(k, (a, b), jnp.float32), jnp.zeros(b, jnp.float32))
            for k, a, b in zip(keys, sizes, sizes[1:])]


def forward(w: Workload, params, x: jax.Array, key: jax.Array | None) -> jax.Array:
    """Logits; dropout after each hidden layer when `key` is given."""
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
