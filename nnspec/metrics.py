"""Metrics as statistics: what a batch adds up to, and the number made from the sum.

A metric is three pure functions for ONE output of a model (nnspec/losses.py holds the
rows, the checker their arguments):

    stats(pred, y, weights) -> Stats      one batch's statistics, on the device (weights 0: padding)
    merge(a, b, xp) -> Stats              two batches' statistics combined (xp: jax.numpy or numpy)
    finalize(stats, xp) -> value          the metric, from the statistics of a whole split

so precision, F1, ROC AUC and R² are those of the whole split, never means of per-batch
values. Statistics are sums (of per-example values, of confusion counts, of score
histograms), except R²'s, which are merged by Chan's formula so that no large sum of
squares cancels in float32. `merge` and `finalize` use only elementwise arithmetic and
reductions over trailing axes, so statistics with any leading axes (the models of a
stack, under `jax.vmap`) combine and finalize as they are.

ROC AUC is computed from per-class histograms of the scores: `AUC_BINS` bins equal in
logit over [-AUC_RANGE, AUC_RANGE] (end bins take what lies beyond). Two examples in one
bin count as a tie (half a pair), so the area differs from the exact one by at most half
the fraction of positive-negative pairs that share a bin: below 1e-3 for scores spread
over more than a few bins (tests/test_metrics.py compares with scikit-learn).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

from nnspec import nn
from nnspec.losses import AUC_BINS, AUC_RANGE

Array = Any
Stats = dict[str, Array]


@dataclass(frozen=True)
class Metric:
    """One metric of one output: its key and its three functions (module docstring)."""
    key: str
    stats: Callable[[Array, Array, Array | None], Stats]
    merge: Callable[[Stats, Stats, Any], Stats]
    finalize: Callable[[Stats, Any], Array]


def _sum(a: Stats, b: Stats, xp: Any) -> Stats:
    return {k: a[k] + b[k] for k in a}


def _weights(w: Array | None, pred: Array) -> Array:
    return jnp.ones(pred.shape[0], jnp.float32) if w is None else w


def _total(v: Array, w: Array) -> Array:
    """Σ w·v over the batch (first) axis; padding (weight 0) counts for nothing, even NaN."""
    w = w.reshape(w.shape + (1,) * (v.ndim - 1))
    return jnp.sum(jnp.where(w > 0, v, 0.0) * w, axis=0)


def _div(a: Array, b: Array, xp: Any) -> Array:
    """a / b, 0 where b is 0 (scikit-learn's `zero_division=0`)."""
    return xp.where(b > 0, a / xp.where(b > 0, b, 1), 0.0)


# ------------------------------------------------------------------ means of per-example values

def _mean(key: str, per_example: Callable[[Array, Array], Array], then: Callable | None = None) -> Metric:
    def stats(pred, y, w):
        w = _weights(w, pred)
        return {"sum": _total(per_example(pred, y), w), "count": jnp.sum(w)}

    def finalize(s, xp):
        with _quiet(xp):
            v = s["sum"] / s["count"]
        return then(v, xp) if then is not None else v
    return Metric(key, stats, _sum, finalize)


def _top_k(k: int, labels: str) -> Callable[[Array, Array], Array]:
    def per(pred, y):
        t = nn.true_class(y, "categorical_crossentropy", labels)
        mine = jnp.take_along_axis(pred, t[..., None], axis=-1)
        # ties count for the true class: the rank is the number of classes scored above it
        return (jnp.sum(pred > mine, axis=-1) < k).astype(jnp.float32)
    return per


def _log_loss(loss: str, params: Mapping[str, Any], out: tuple[int, ...]) -> Callable[[Array, Array], Array]:
    logits = bool(params.get("from_logits", False))
    if loss == "binary_crossentropy":
        return lambda pred, y: nn._bce(pred, y.reshape(pred.shape), logits, len(out))
    return lambda pred, y: nn._cce(pred, y, logits, params.get("labels", "index"), 1)


# -------------------------------------------------------------------------------- confusion

def _classes(loss: str, params: Mapping[str, Any], out: tuple[int, ...]):
    """(the examples' true and predicted classes as (batch, L) integers, C classes): one
    row of C = out[0] classes for a softmax; L = the output's elements, two classes each,
    for 0/1 outputs."""
    logits = bool(params.get("from_logits", False))
    labels = params.get("labels", "index")
    if loss == "binary_crossentropy":
        def classes(pred, y):
            b = pred.shape[0]
            t = nn.true_class(y.reshape(pred.shape), loss)
            return t.reshape(b, -1), nn.predicted_class(pred, loss, logits).reshape(b, -1)
        return classes, 2
    return (lambda pred, y: (nn.true_class(y, loss, labels)[:, None],
                             nn.predicted_class(pred, loss, logits)[:, None])), out[0]


def _confusion_stats(loss: str, params: Mapping[str, Any], out: tuple[int, ...]) -> Callable:
    classes, c = _classes(loss, params, out)

    def stats(pred, y, w):
        w = _weights(w, pred)
        t, p = classes(pred, y)
        rows = jax.nn.one_hot(t, c) * w[:, None, None]
        return {"counts": jnp.einsum("bli,blj->lij", rows, jax.nn.one_hot(p, c))}
    return stats


def confusion(loss: Any, out_shape: tuple[int, ...]) -> Metric:
    """The confusion counts of a classifier's output, `[label, true class, predicted class]`:
    one (C, C) matrix for a softmax, one (2, 2) per element for 0/1 outputs."""
    out = tuple(out_shape)
    return Metric("confusion", _confusion_stats(loss.name, loss.params, out), _sum, lambda s, xp: s["counts"])


def _per_class(counts: Array, xp: Any) -> tuple[Array, Array, Array]:
    """(tp, fp, fn) per class, over the last axis: a softmax's C classes, the two classes
    of one 0/1 output, or the positive class of each of several 0/1 outputs (labels)."""
    if counts.shape[-3] == 1:
        m = counts[..., 0, :, :]
        tp = xp.diagonal(m, axis1=-2, axis2=-1)
        return tp, m.sum(-2) - tp, m.sum(-1) - tp
    return counts[..., 1, 1], counts[..., 0, 1], counts[..., 1, 0]


_SCORES = {
    "precision": lambda tp, fp, fn, xp: _div(tp, tp + fp, xp),
    "recall": lambda tp, fp, fn, xp: _div(tp, tp + fn, xp),
    "f1": lambda tp, fp, fn, xp: _div(2 * tp, 2 * tp + fp + fn, xp),
}


def _from_confusion(key: str, name: str, metric: Mapping[str, Any], loss: Any, out: tuple[int, ...]) -> Metric:
    score = _SCORES[name]
    average, cls = metric.get("average", "binary"), metric.get("class")

    def finalize(s, xp):
        tp, fp, fn = _per_class(s["counts"], xp)
        if cls is not None or average == "binary":
            i = 1 if cls is None else cls
            return score(tp[..., i], fp[..., i], fn[..., i], xp)
        if average == "micro":
            return score(tp.sum(-1), fp.sum(-1), fn.sum(-1), xp)
        each = score(tp, fp, fn, xp)
        if average == "macro":
            return each.mean(-1)
        support = tp + fn  # weighted
        return _div((each * support).sum(-1), support.sum(-1), xp)
    return Metric(key, _confusion_stats(loss.name, loss.params, out), _sum, finalize)


# ---------------------------------------------------------------------------------- ROC AUC

def _scores(loss: str, params: Mapping[str, Any]) -> Callable[[Array], Array]:
    """Each class's (label's) score as a logit, (batch, K): a monotone map of the
    probability, so the ranking, and the area, are the probabilities'."""
    logits = bool(params.get("from_logits", False))

    def logit_of(p):
        return jnp.log(p) - jnp.log1p(-p)
    if loss == "binary_crossentropy":
        return lambda pred: (pred if logits else logit_of(pred)).reshape(pred.shape[0], -1)
    if logits:
        def multi(pred):
            logp = jax.nn.log_softmax(pred, axis=-1)
            return logp - jnp.log1p(-jnp.exp(logp))
        return multi
    return logit_of


def _auc(key: str, metric: Mapping[str, Any], loss: Any, out: tuple[int, ...]) -> Metric:
    scores = _scores(loss.name, loss.params)
    classes, _ = _classes(loss.name, loss.params, out)
    multiclass = loss.name == "categorical_crossentropy"
    k = out[0] if multiclass else math.prod(out)
    average, cls = metric.get("average", "macro"), metric.get("class")

    def stats(pred, y, w):
        w = _weights(w, pred)
        t, _ = classes(pred, y)
        pos = jax.nn.one_hot(t[:, 0], k) if multiclass else t.astype(jnp.float32)  # (batch, K)
        s = jnp.clip(jnp.nan_to_num(scores(pred)), -AUC_RANGE, AUC_RANGE)
        b = jnp.clip(jnp.floor((s + AUC_RANGE) / (2 * AUC_RANGE) * AUC_BINS), 0, AUC_BINS - 1).astype(jnp.int32)
        col = jnp.broadcast_to(jnp.arange(k), b.shape)
        w = jnp.where(w > 0, w, 0.0)[:, None]
        zero = jnp.zeros((k, AUC_BINS), jnp.float32)
        return {"pos": zero.at[col, b].add(w * pos), "neg": zero.at[col, b].add(w * (1 - pos))}

    def finalize(st, xp):
        pos, neg = st["pos"], st["neg"]
        p, n = pos.sum(-1), neg.sum(-1)
        above = p[..., None] - xp.cumsum(pos, axis=-1)  # positives in higher bins
        with _quiet(xp):
            each = (neg * (above + 0.5 * pos)).sum(-1) / (p * n)
        each = xp.where(p * n > 0, each, xp.nan)  # one class only: no area
        if cls is not None:
            return each[..., cls if k > 1 else 0]
        if average == "weighted":
            return (each * p).sum(-1) / p.sum(-1)
        return each.mean(-1)
    return Metric(key, stats, _sum, finalize)


# --------------------------------------------------------------------------------------- R²

def _r2(key: str, out: tuple[int, ...]) -> Metric:
    def stats(pred, y, w):
        w = _weights(w, pred)
        b = pred.shape[0]
        p, t = pred.reshape(b, -1), y.reshape(b, -1).astype(jnp.float32)
        n = jnp.sum(w)[None]
        mean = _total(t, w) / jnp.where(n > 0, n, 1.0)
        return {"n": n, "mean": mean, "m2": _total((t - mean) ** 2, w), "sse": _total((t - p) ** 2, w)}

    def merge(a, b, xp):
        n = a["n"] + b["n"]
        safe = xp.where(n > 0, n, 1.0)
        d = b["mean"] - a["mean"]
        return {"n": n, "mean": a["mean"] + d * b["n"] / safe,
                "m2": a["m2"] + b["m2"] + d * d * a["n"] * b["n"] / safe, "sse": a["sse"] + b["sse"]}

    def finalize(s, xp):
        m2, sse = s["m2"], s["sse"]
        # scikit-learn's `force_finite`: a constant target scores 1 if predicted exactly, else 0
        each = xp.where(m2 > 0, 1 - sse / xp.where(m2 > 0, m2, 1.0), xp.where(sse == 0, 1.0, 0.0))
        return xp.where(s["n"][..., 0] > 0, each.mean(-1), xp.nan)
    return Metric(key, stats, merge, finalize)


# ------------------------------------------------------------------------------------ build

def build(metric: Any, loss: Any, out_shape: tuple[int, ...]) -> Metric:
    """The Metric of `metric` (a checked.MetricProgram: name, params, key) for one output
    of shape `out_shape` (one example's) trained with `loss` (name, params)."""
    name, params, key, out = metric.name, metric.params, metric.key, tuple(out_shape)
    if name in ("accuracy", "mse", "mae"):
        return _mean(key, nn.metric_fn(name, loss.name, loss.params, out))
    if name == "rmse":
        return _mean(key, nn.metric_fn("mse", loss.name, loss.params, out), lambda v, xp: xp.sqrt(v))
    if name == "log_loss":
        return _mean(key, _log_loss(loss.name, loss.params, out))
    if name == "top_k":
        return _mean(key, _top_k(params["k"], loss.params.get("labels", "index")))
    if name in _SCORES:
        return _from_confusion(key, name, params, loss, out)
    if name == "roc_auc":
        return _auc(key, params, loss, out)
    if name == "r2":
        return _r2(key, out)
    raise KeyError(name)


# ----------------------------------------------------------------- several metrics together

def on(name: str, metric: Metric, key: str | None = None) -> Metric:
    """`metric` of one output of a model with several: it reads that output's prediction
    and targets (`pred[name]`, `y[name]`), and goes by `key`."""
    return Metric(key or metric.key, lambda pred, y, w: metric.stats(pred[name], y[name], w),
                  metric.merge, metric.finalize)


def stats_of(metrics: Mapping[str, Metric], pred: Array, y: Array, w: Array | None = None) -> dict[str, Stats]:
    return {k: m.stats(pred, y, w) for k, m in metrics.items()}


def merge(metrics: Mapping[str, Metric], a: dict[str, Stats], b: dict[str, Stats], xp: Any = jnp) -> dict[str, Stats]:
    return {k: m.merge(a[k], b[k], xp) for k, m in metrics.items()}


def finalize(metrics: Mapping[str, Metric], stats: Mapping[str, Stats], xp: Any = jnp) -> dict[str, Array]:
    return {k: m.finalize(stats[k], xp) for k, m in metrics.items()}


def zeros(metrics: Mapping[str, Metric], pred: Any, y: Any) -> dict[str, Stats]:
    """Statistics of no examples (what `merge` starts from), for batches shaped as
    `pred`, `y` (arrays or jax.ShapeDtypeStruct)."""
    shapes = jax.eval_shape(lambda p, t: stats_of(metrics, p, t), pred, y)
    return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


class _quiet:
    """NumPy's division warnings off (0/0 is a NaN the metric reports, not a problem)."""

    def __init__(self, xp: Any) -> None:
        import numpy as np
        self.ctx = np.errstate(invalid="ignore", divide="ignore") if xp is np else None

    def __enter__(self) -> None:
        if self.ctx is not None:
            self.ctx.__enter__()

    def __exit__(self, *exc: Any) -> None:
        if self.ctx is not None:
            self.ctx.__exit__(*exc)
