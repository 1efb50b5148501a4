"""Batch normalization: the JAX side.

The one layer whose training output depends on the whole batch, not one example: its
statistics reduce every axis but the last, leading (batch) axes included, weighting each
example by its weight in the step (the padding that fills an epoch's last batch has
weight 0, so it never shifts the statistics). `apply_stateful` also returns the running
statistics' update, which `Model.step` writes in place of the optimizer's.
"""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp

from nnspec.nn.base import LayerImpl

Array = jax.Array


class BatchNorm(LayerImpl):
    STATEFUL = True

    def init(self, key: Array) -> dict[str, Array]:
        shapes = self.layer.param_shapes
        c = shapes["moving_mean"]
        out = {"moving_mean": jnp.zeros(c, jnp.float32), "moving_var": jnp.ones(c, jnp.float32)}
        if "scale" in shapes:
            out["scale"] = jnp.ones(c, jnp.float32)
        if "offset" in shapes:
            out["offset"] = jnp.zeros(c, jnp.float32)
        return out

    def apply(self, params, x, hp, *, key, train):
        return self.apply_stateful(params, x, hp, key=key, train=train)[0]

    def apply_stateful(self, params: Mapping[str, Array], x: Array, hp, *, key, train: bool,
                       weights: Array | None = None) -> tuple[Array, dict[str, Array]]:
        p = self.layer.params
        if train:
            axes = tuple(range(x.ndim - 1))
            if weights is None:
                mean, var = jnp.mean(x, axis=axes), jnp.var(x, axis=axes)
            else:  # weights are per example: the first axis; every other value of an example shares its weight
                w = weights.reshape(weights.shape + (1,) * (x.ndim - weights.ndim))
                w = jnp.broadcast_to(w, x.shape[:-1] + (1,))
                n = jnp.maximum(jnp.sum(w), 1e-12)
                mean = jnp.sum(w * x, axis=axes) / n
                var = jnp.sum(w * (x - mean) ** 2, axis=axes) / n
            m = p["momentum"]
            new = {"moving_mean": m * params["moving_mean"] + (1 - m) * jax.lax.stop_gradient(mean),
                   "moving_var": m * params["moving_var"] + (1 - m) * jax.lax.stop_gradient(var)}
        else:
            mean, var, new = params["moving_mean"], params["moving_var"], {}
        y = (x - mean) * jax.lax.rsqrt(var + p["epsilon"])
        if "scale" in params:
            y = y * params["scale"]
        if "offset" in params:
            y = y + params["offset"]
        return y, new


LAYERS: dict[str, type[LayerImpl]] = {"batch_norm": BatchNorm}
