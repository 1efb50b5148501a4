"""The loss and metric registries: one row each, pure Python (JAX formulas live in nnspec/nn/)."""

from __future__ import annotations

from nnspec.params import Bool, Choice, Entry, Float, P, Registry

_LOGITS = P("from_logits", Bool(), False, "the model outputs logits (no sigmoid/softmax) rather than probabilities")

# `task` is what the labels are; the checker matches it against the output layer. Every
# loss is one value per example: the mean over the output's elements (units, pixels,
# steps); `categorical_crossentropy` reads the last axis as class scores, and averages
# over the others (a class at every step or pixel).
LOSSES = Registry("loss", [
    Entry("binary_crossentropy", (_LOGITS,), aliases=("bce",),
          doc="−[y·log p + (1−y)·log(1−p)] for 0/1 labels or targets in [0, 1], averaged over the output's elements (one unit: two classes; K units: K labels)",
          attrs={"task": "binary"}),
    Entry("categorical_crossentropy", (
        _LOGITS,
        P("labels", Choice(("index", "onehot")), "index", "labels are class indices, or one-hot rows"),
    ), aliases=("softmax_crossentropy",),
        doc="−Σ y_k·log p_k over k ≥ 2 classes on the last axis, averaged over any others (a class per step)",
        attrs={"task": "multiclass"}),
    Entry("mse", aliases=("mean_squared_error",), doc="mean of (y − ŷ)² over the output's elements", attrs={"task": "regression"}),
    Entry("mae", aliases=("mean_absolute_error",), doc="mean of |y − ŷ| over the output's elements", attrs={"task": "regression"}),
    Entry("huber", (P("delta", Float(gt=0), 1.0, "where the loss turns from quadratic to linear", positional=True),),
          doc="quadratic for |y − ŷ| ≤ delta, linear beyond", attrs={"task": "regression"}),
])

# `tasks`: which kinds of labels the metric makes sense for; `mode`: which way is better.
METRICS = Registry("metric", [
    Entry("accuracy", doc="fraction of examples whose predicted class is right (several 0/1 labels: of labels)",
          attrs={"tasks": ("binary", "multiclass"), "mode": "max"}),
    Entry("mse", doc="mean squared error", attrs={"tasks": ("regression", "binary"), "mode": "min"}),
    Entry("mae", doc="mean absolute error", attrs={"tasks": ("regression", "binary"), "mode": "min"}),
])
