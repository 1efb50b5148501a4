"""Merges and embeddings: the JAX side, one example at a time (leading batch axes ride along).

A merge's `apply` takes a tuple of arrays, one per input in the order written
(`Model.apply` passes a tuple where `MERGE` is set). Its axes are the example's, so a
non-negative `concat` axis counts from the end of the example's shape.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from nnspec.nn.base import LayerImpl, initializer

Array = jax.Array


class _Merge(LayerImpl):
    MERGE = True


class Add(_Merge):
    def apply(self, params, xs, hp, *, key, train):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Multiply(_Merge):
    def apply(self, params, xs, hp, *, key, train):
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out


class Average(Add):  # the sum, divided
    def apply(self, params, xs, hp, *, key, train):
        return super().apply(params, xs, hp, key=key, train=train) / len(xs)


class Concat(_Merge):
    def apply(self, params, xs, hp, *, key, train):
        rank = len(self.layer.in_shapes[0])
        return jnp.concatenate(xs, axis=self.layer.params["axis"] % rank - rank)


class Sample(_Merge):
    """The reparameterization trick: z = mean + exp(log_var / 2)·ε with ε ~ N(0, 1) drawn
    from the layer's key in training, so the gradient reaches the mean and the
    log-variance through z; outside training z is the mean, the most likely code
    (docs/language.md, `sample`). Its KL term is `kl` below, which `Model` adds to the loss."""

    def hparams(self) -> dict[str, float]:
        return {"beta": self.layer.params["beta"]}

    def apply(self, params, xs, hp, *, key, train):
        mean, log_var = xs
        if not train:
            return mean
        if key is None:
            raise ValueError(f"layer `{self.layer.name}` (sample) needs a `key` in training")
        eps = jax.random.normal(key, mean.shape, jnp.float32).astype(mean.dtype)
        return mean + jnp.exp(0.5 * log_var) * eps


def kl(mean: Array, log_var: Array, n_axes: int) -> Array:
    """KL(N(mean, exp(log_var)) ‖ N(0, 1)) of each example, summed over its last `n_axes`
    axes (the latent units): −½·Σ(1 + log_var − mean² − exp(log_var)), in float32."""
    mean, log_var = mean.astype(jnp.float32), log_var.astype(jnp.float32)
    each = -0.5 * (1.0 + log_var - mean ** 2 - jnp.exp(log_var))
    return jnp.sum(each, axis=tuple(range(-n_axes, 0)))


class Embedding(LayerImpl):
    """Row `t` of the table for token id `t`. With `padding=P`, token P reads zeros: its
    row starts at zero and its lookups are multiplied by 0, so it receives no gradient."""

    def init(self, key: Array) -> dict[str, Array]:
        p = self.layer.params
        table = initializer(p["init"])(key, self.layer.param_shapes["w"]).astype(jnp.float32)
        if p["padding"] is not None:
            table = table.at[p["padding"]].set(0.0)
        return {"w": table}

    def hparams(self) -> dict[str, float]:
        return {"l1": self.layer.params["l1"], "l2": self.layer.params["l2"]}

    def apply(self, params, x, hp, *, key, train):
        ids = x.astype(jnp.int32)
        out = jnp.take(params["w"], ids, axis=0)
        pad = self.layer.params["padding"]
        if pad is not None:
            out = out * (ids != pad)[..., None].astype(out.dtype)
        return out


LAYERS: dict[str, type[LayerImpl]] = {
    "add": Add, "multiply": Multiply, "average": Average, "concat": Concat, "sample": Sample,
    "embedding": Embedding,
}
