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
from nnspec.nn import attention, augment, conv, graph, norm, recurrent
from nnspec.nn.base import (ACTIVATIONS, INITIALIZERS, LayerImpl, _act_hparams, _STATIC_ACT_PARAMS,  # noqa: F401 (re-exported)
                            activate, initializer, keep_mask)
from nnspec.nn.graph import kl  # noqa: F401 (re-exported: the KL a `sample` layer adds to the loss)

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
        return jnp.where(keep_mask(key, x.shape, keep), x / keep, 0.0)


class Flatten(LayerImpl):
    def apply(self, params, x, hp, *, key, train):
        rank = len(self.layer.in_shape)
        return x.reshape(x.shape[:x.ndim - rank] + (-1,))


class Rescale(LayerImpl):
    def apply(self, params, x, hp, *, key, train):
        p = self.layer.params
        return x * jnp.float32(p["scale"] / p["divide"]) + jnp.float32(p["offset"])


class Activation(LayerImpl):
    def _fn(self) -> Fn:
        return Fn(self.layer.op, self.layer.params)

    def hparams(self) -> dict[str, float]:
        return _act_hparams(self._fn())

    def apply(self, params, x, hp, *, key, train):
        return activate(self._fn(), x, hp)


LAYERS: dict[str, type[LayerImpl]] = {
    "dense": Dense, "dropout": Dropout, "flatten": Flatten, "rescale": Rescale,
    **{name: Activation for name in ACTIVATIONS},
    **conv.LAYERS, **recurrent.LAYERS, **attention.LAYERS, **graph.LAYERS, **norm.LAYERS, **augment.LAYERS,
}

# ---------------------------------------------------------------------------------- losses

_EPS = 1e-7  # probabilities are clipped to [eps, 1 - eps] before the log, as Keras does


def _per_example(values: Array, n_axes: int, reduction: str = "mean") -> Array:
    """The mean (or with `reduction="sum"` the sum) over the last `n_axes` axes (one
    example's output elements, whatever its shape: units, pixels, steps), so every loss
    and metric is one value per example."""
    if not n_axes:
        return values
    return (jnp.sum if reduction == "sum" else jnp.mean)(values, axis=tuple(range(-n_axes, 0)))


def _bce(pred: Array, y: Array, from_logits: bool, n_axes: int, class_weight: tuple[float, ...] | None = None,
         reduction: str = "mean") -> Array:
    if from_logits:
        each = optax.sigmoid_binary_cross_entropy(pred, y)
    else:
        p = jnp.clip(pred, _EPS, 1 - _EPS)
        each = -(y * jnp.log(p) + (1 - y) * jnp.log(1 - p))
    if class_weight is not None:  # each element's by its label: w0 for 0, w1 for 1
        each = each * (class_weight[0] * (1 - y) + class_weight[1] * y)
    return _per_example(each, n_axes, reduction)


def _cce(pred: Array, y: Array, from_logits: bool, labels: str, n_axes: int,
         class_weight: tuple[float, ...] | None = None, reduction: str = "mean") -> Array:
    # the class axis is the last; the others (steps, pixels) each have a class, averaged over
    logp = jax.nn.log_softmax(pred, axis=-1) if from_logits else jnp.log(jnp.clip(pred, _EPS, 1.0))
    if labels == "index":
        t = y.astype(jnp.int32)
        per = -jnp.take_along_axis(logp, t[..., None], axis=-1)[..., 0]
        if class_weight is not None:
            per = per * jnp.asarray(class_weight, jnp.float32)[t]
    else:
        per = -(y * logp).sum(-1)
        if class_weight is not None:  # a one-hot row picks its class's weight
            per = per * (y @ jnp.asarray(class_weight, jnp.float32))
    return _per_example(per, n_axes - 1, reduction)


# Per-example losses: (pred, y, n_axes, reduction) -> one value per example, averaged (or
# summed) over the `n_axes` trailing axes of one example's output (the class axis of a
# softmax is summed).
LOSSES: dict[str, Callable[..., Array]] = {
    "binary_crossentropy": _bce,
    "categorical_crossentropy": _cce,
    "mse": lambda pred, y, n_axes, reduction="mean": _per_example((pred - y) ** 2, n_axes, reduction),
    "mae": lambda pred, y, n_axes, reduction="mean": _per_example(jnp.abs(pred - y), n_axes, reduction),
    "huber": lambda pred, y, delta, n_axes, reduction="mean": _per_example(optax.huber_loss(pred, y, delta=delta),
                                                                           n_axes, reduction),
}


def loss_fn(name: str, params: Mapping[str, Any], out_shape: tuple[int, ...] = (1,)) -> Callable[[Array, Array], Array]:
    """The per-example loss of a model whose one example's output has shape `out_shape`."""
    fn = LOSSES[name]
    if params.get("class_weight") == "balanced":  # prepare.with_class_weights puts the numbers in
        raise ValueError("`class_weight=balanced` is computed from the training split: lower the program "
                         "that prepare.with_class_weights returns")
    # `batch_reduction` is the objective's (Model), not one example's
    own = {k: v for k, v in params.items() if k != "batch_reduction"}
    return lambda pred, y: fn(pred, y, **own, n_axes=len(out_shape))


# --------------------------------------------------------------------------------- metrics

def predicted_class(pred: Array, loss: str, from_logits: bool) -> Array:
    """Each example's class; for `binary_crossentropy`, one 0/1 per output element (a
    multi-label output has one per label)."""
    if loss == "binary_crossentropy":
        return (pred > (0.0 if from_logits else 0.5)).astype(jnp.int32)
    return jnp.argmax(pred, axis=-1)


def true_class(y: Array, loss: str, labels: str = "index") -> Array:
    if loss == "binary_crossentropy":
        return (y > 0.5).astype(jnp.int32)
    return jnp.argmax(y, axis=-1) if labels == "onehot" else y.astype(jnp.int32)


def probabilities(pred: Array, loss: str, from_logits: bool) -> Array:
    """What the model's outputs mean as predictions (probabilities for classifiers)."""
    if not from_logits:
        return pred
    return jax.nn.sigmoid(pred) if loss == "binary_crossentropy" else jax.nn.softmax(pred, axis=-1)


def metric_fn(name: str, loss: str, loss_params: Mapping[str, Any],
              out_shape: tuple[int, ...] = (1,)) -> Callable[[Array, Array], Array]:
    """Per-example metric values (averaged by the caller). For `binary_crossentropy`,
    `accuracy` is the fraction of an example's labels (output elements) that are right:
    per-label accuracy averaged over the labels."""
    logits = bool(loss_params.get("from_logits", False))
    labels = loss_params.get("labels", "index")
    n = len(out_shape)
    if name == "accuracy":
        per = n if loss == "binary_crossentropy" else n - 1  # a class per step: the fraction right
        return lambda pred, y: _per_example(
            (predicted_class(pred, loss, logits) == true_class(y, loss, labels)).astype(jnp.float32), per)
    if name == "mse":
        return lambda pred, y: _per_example((probabilities(pred, loss, logits) - y) ** 2, n)
    if name == "mae":
        return lambda pred, y: _per_example(jnp.abs(probabilities(pred, loss, logits) - y), n)
    raise KeyError(name)
