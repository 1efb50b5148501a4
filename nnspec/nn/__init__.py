"""The JAX side of the registries: activations, initializers, layers, losses, metrics.

Layers are stax pairs written for ONE example: `init(key, in_shape) -> params` and
`apply(params, x, hp, *, key, train) -> y`; each family of them has its own module here
(conv.py, recurrent.py, attention.py), and `LAYERS` below gathers them. They use only last-axis operations, so the
same code runs on a batch (extra leading axes) and under `jax.vmap`; tests check both.
`hp` holds the layer's hyperparameters as arrays (traced values), never Python constants,
so one compiled program can train many settings.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from nnspec.checked import Fn
from nnspec.nn import attention, conv, graph, norm, recurrent
from nnspec.nn.base import (ACTIVATIONS, INITIALIZERS, LayerImpl, _act_hparams, _STATIC_ACT_PARAMS,  # noqa: F401 (re-exported)
                            activate, initializer)

Array = jax.Array

# ---------------------------------------------------------------------------------- layers

class Dense(LayerImpl):
    def init(self, key: Array) -> dict[str, Array]:
        p = self.layer.params
        shapes = self.layer.param_shapes
        kw, kb = jax.random.split(key)
        out = {}
        if p["weights"] is not None:
            out["w"] = jnp.asarray(p["weights"], jnp.float32)
        else:
            out["w"] = initializer(p["init"])(kw, shapes["w"]).astype(jnp.float32)
        if "b" in shapes:
            if isinstance(p["bias"], tuple):
                out["b"] = jnp.asarray(p["bias"], jnp.float32)
            else:
                out["b"] = initializer(p["bias_init"])(kb, shapes["b"]).astype(jnp.float32)
        return out

    def hparams(self) -> dict[str, float]:
        p = self.layer.params
        return {"l1": p["l1"], "l2": p["l2"], **_act_hparams(p["activation"])}

    def apply(self, params, x, hp, *, key, train):
        y = x @ params["w"]
        if "b" in params:
            y = y + params["b"]
        return activate(self.layer.params["activation"], y, hp)


class Dropout(LayerImpl):
    def hparams(self) -> dict[str, float]:
        return {"drop_prob": self.layer.params["drop_prob"]}

    def apply(self, params, x, hp, *, key, train):
        if not train:
            return x
        if key is None:
            raise ValueError(f"layer `{self.layer.name}` (dropout) needs a `key` in training")
        keep = 1.0 - hp["drop_prob"]
        mask = jax.random.uniform(key, x.shape) < keep
        return jnp.where(mask, x / keep, 0.0)


class Flatten(LayerImpl):
    def apply(self, params, x, hp, *, key, train):
        rank = len(self.layer.in_shape)
        return x.reshape(x.shape[:x.ndim - rank] + (-1,))


class Activation(LayerImpl):
    def _fn(self) -> Fn:
        return Fn(self.layer.op, self.layer.params)

    def hparams(self) -> dict[str, float]:
        return _act_hparams(self._fn())

    def apply(self, params, x, hp, *, key, train):
        return activate(self._fn(), x, hp)


LAYERS: dict[str, type[LayerImpl]] = {
    "dense": Dense, "dropout": Dropout, "flatten": Flatten,
    **{name: Activation for name in ACTIVATIONS},
    **conv.LAYERS, **recurrent.LAYERS, **attention.LAYERS, **graph.LAYERS, **norm.LAYERS,
}

# ---------------------------------------------------------------------------------- losses

_EPS = 1e-7  # probabilities are clipped to [eps, 1 - eps] before the log, as Keras does


def _bce(pred: Array, y: Array, from_logits: bool) -> Array:
    if from_logits:
        return optax.sigmoid_binary_cross_entropy(pred, y).sum(-1)
    p = jnp.clip(pred, _EPS, 1 - _EPS)
    return -(y * jnp.log(p) + (1 - y) * jnp.log(1 - p)).sum(-1)


def _cce(pred: Array, y: Array, from_logits: bool, labels: str) -> Array:
    logp = jax.nn.log_softmax(pred, axis=-1) if from_logits else jnp.log(jnp.clip(pred, _EPS, 1.0))
    if labels == "index":
        return -jnp.take_along_axis(logp, y.astype(jnp.int32)[..., None], axis=-1)[..., 0]
    return -(y * logp).sum(-1)


# Per-example losses: (pred, y) -> one value per example.
LOSSES: dict[str, Callable[..., Array]] = {
    "binary_crossentropy": lambda pred, y, from_logits: _bce(pred, y, from_logits),
    "categorical_crossentropy": _cce,
    "mse": lambda pred, y: jnp.mean((pred - y) ** 2, axis=-1),
    "mae": lambda pred, y: jnp.mean(jnp.abs(pred - y), axis=-1),
    "huber": lambda pred, y, delta: jnp.mean(optax.huber_loss(pred, y, delta=delta), axis=-1),
}


def loss_fn(name: str, params: Mapping[str, Any]) -> Callable[[Array, Array], Array]:
    fn = LOSSES[name]
    return lambda pred, y: fn(pred, y, **params)


# --------------------------------------------------------------------------------- metrics

def predicted_class(pred: Array, loss: str, from_logits: bool) -> Array:
    if loss == "binary_crossentropy":
        return (pred[..., 0] > (0.0 if from_logits else 0.5)).astype(jnp.int32)
    return jnp.argmax(pred, axis=-1)


def true_class(y: Array, loss: str, labels: str = "index") -> Array:
    if loss == "binary_crossentropy":
        return (y[..., 0] > 0.5).astype(jnp.int32)
    return jnp.argmax(y, axis=-1) if labels == "onehot" else y.astype(jnp.int32)


def probabilities(pred: Array, loss: str, from_logits: bool) -> Array:
    """What the model's outputs mean as predictions (probabilities for classifiers)."""
    if not from_logits:
        return pred
    return jax.nn.sigmoid(pred) if loss == "binary_crossentropy" else jax.nn.softmax(pred, axis=-1)


def metric_fn(name: str, loss: str, loss_params: Mapping[str, Any]) -> Callable[[Array, Array], Array]:
    """Per-example metric values (averaged by the caller)."""
    logits = bool(loss_params.get("from_logits", False))
    labels = loss_params.get("labels", "index")
    if name == "accuracy":
        return lambda pred, y: (predicted_class(pred, loss, logits) == true_class(y, loss, labels)).astype(jnp.float32)
    if name == "mse":
        return lambda pred, y: jnp.mean((probabilities(pred, loss, logits) - y) ** 2, axis=-1)
    if name == "mae":
        return lambda pred, y: jnp.mean(jnp.abs(probabilities(pred, loss, logits) - y), axis=-1)
    raise KeyError(name)
