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
    "add": Add, "multiply": Multiply, "average": Average, "concat": Concat, "embedding": Embedding,
}
