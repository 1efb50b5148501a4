"""The loss and metric registries: one row each, pure Python (JAX formulas live in nnspec/nn/)."""

from __future__ import annotations

from typing import Any, Mapping

from nnspec.params import ArgError, Bool, Choice, Entry, Float, Int, ListOf, P, Registry, Union

# ROC AUC is computed from histograms of the scores (nnspec/metrics.py): this many bins,
# equal in logit, over [-AUC_RANGE, AUC_RANGE]; an example outside falls in the end bin.
AUC_BINS = 4096
AUC_RANGE = 16.0

_LOGITS = P("from_logits", Bool(), False, "the model outputs logits (no sigmoid/softmax) rather than probabilities")
_CLASS_WEIGHT = P("class_weight", Union((ListOf(Float(gt=0)), Choice(("balanced",)))), None,
                  "each class's weight in the loss, `[w0, w1, ...]`: an example's loss is multiplied by its true "
                  "class's; `balanced`: n / (classes · count of the class) on the training split (scikit-learn's)")

_REDUCTION = P("reduction", Choice(("mean", "sum")), "mean",
               "how one example's output elements (units, pixels, steps) make its loss: their `mean`, or their "
               "`sum` (PyTorch's `reduction='sum'` over a flat output, keras-io's `ops.sum` over the pixels); "
               "the batch as `batch_reduction` says")
_BATCH_REDUCTION = P("batch_reduction", Choice(("mean", "sum")), "mean",
                     "how a batch's examples make the step's objective: the `mean` of their losses (Keras), or "
                     "their `sum` (PyTorch's `reduction='sum'`); the reported loss is the mean either way")

# `task` is what the labels are; the checker matches it against the output layer. Every
# loss is one value per example: the mean over the output's elements (units, pixels,
# steps), or with `reduction=sum` their sum; `categorical_crossentropy` reads the last
# axis as class scores, and averages (sums) over the others (a class at every step or pixel).
LOSSES = Registry("loss", [
    Entry("binary_crossentropy", (_LOGITS, _CLASS_WEIGHT, _REDUCTION, _BATCH_REDUCTION), aliases=("bce",),
          doc="−[y·log p + (1−y)·log(1−p)] for 0/1 labels or targets in [0, 1], averaged over the output's elements (one unit: two classes; K units: K labels)",
          attrs={"task": "binary"}),
    Entry("categorical_crossentropy", (
        _LOGITS,
        P("labels", Choice(("index", "onehot")), "index", "labels are class indices, or one-hot rows"),
        _CLASS_WEIGHT, _REDUCTION, _BATCH_REDUCTION,
    ), aliases=("softmax_crossentropy",),
        doc="−Σ y_k·log p_k over k ≥ 2 classes on the last axis, averaged over any others (a class per step)",
        attrs={"task": "multiclass"}),
    Entry("mse", (_REDUCTION, _BATCH_REDUCTION), aliases=("mean_squared_error",), doc="mean of (y − ŷ)² over the output's elements",
          attrs={"task": "regression"}),
    Entry("mae", (_REDUCTION, _BATCH_REDUCTION), aliases=("mean_absolute_error",), doc="mean of |y − ŷ| over the output's elements",
          attrs={"task": "regression"}),
    Entry("huber", (P("delta", Float(gt=0), 1.0, "where the loss turns from quadratic to linear", positional=True),
                    _REDUCTION, _BATCH_REDUCTION),
          doc="quadratic for |y − ŷ| ≤ delta, linear beyond", attrs={"task": "regression"}),
])

# `tasks`: which kinds of labels the metric makes sense for; `mode`: which way is better.
# Each metric is computed from statistics summed over the batches (nnspec/metrics.py), so
# precision, F1, AUC and R² are those of the whole split, not means of batch values.
_AVERAGES = ("binary", "micro", "macro", "weighted")
_AVERAGE = P("average", Choice(_AVERAGES), "binary",
             "`binary`: of class 1 of one 0/1 output; `micro`: of all decisions pooled; `macro`: the mean over "
             "the classes (labels); `weighted`: that mean weighted by each class's support", positional=True)
_CLASS = P("class", Int(min=0), None, "only this class (of a softmax) or label (of several 0/1 outputs)")


def _one_choice(values: dict[str, Any], given: set[str]) -> None:
    if "class" in given and "average" in given:
        raise ArgError("E315", "give `average` or `class`, not both",
                       "`class=K` is the score of one class, `average` combines the classes' scores")


def _pr(name: str, doc: str) -> Entry:
    return Entry(name, (_AVERAGE, _CLASS), doc=doc,
                 attrs={"tasks": ("binary", "multiclass"), "mode": "max", "check": _one_choice})


METRICS = Registry("metric", [
    Entry("accuracy", doc="fraction of examples whose predicted class is right (several 0/1 labels: of labels)",
          attrs={"tasks": ("binary", "multiclass"), "mode": "max"}),
    _pr("precision", "tp / (tp + fp): of the examples predicted positive, the fraction that are"),
    _pr("recall", "tp / (tp + fn): of the positive examples, the fraction found"),
    _pr("f1", "2·tp / (2·tp + fp + fn): the harmonic mean of precision and recall"),
    Entry("roc_auc", (P("average", Choice(("macro", "weighted")), "macro",
                        "how several classes' (labels') one-vs-rest areas are combined", positional=True), _CLASS),
          aliases=("auc",),
          doc=f"area under the ROC curve: the chance that a positive example scores above a negative one "
              f"(one-vs-rest per class; scores binned, {AUC_BINS} bins)",
          attrs={"tasks": ("binary", "multiclass"), "mode": "max", "check": _one_choice}),
    Entry("log_loss", doc="mean −log of the probability given to the true class (labels)",
          attrs={"tasks": ("binary", "multiclass"), "mode": "min"}),
    Entry("top_k", (P("k", Int(min=1), 5, "how many of the highest-scoring classes may hold the true one",
                      positional=True),),
          doc="fraction of examples whose true class is among the k highest-scoring",
          attrs={"tasks": ("multiclass",), "mode": "max"}),
    Entry("mse", doc="mean squared error", attrs={"tasks": ("regression", "binary"), "mode": "min"}),
    Entry("rmse", doc="√mse: the root of the mean squared error over all the output's elements",
          attrs={"tasks": ("regression", "binary"), "mode": "min"}),
    Entry("mae", doc="mean absolute error", attrs={"tasks": ("regression", "binary"), "mode": "min"}),
    Entry("r2", doc="1 − Σ(y − ŷ)² / Σ(y − ȳ)²: the fraction of the targets' variance explained, per output "
                    "element, averaged over them", attrs={"tasks": ("regression",), "mode": "max"}),
])


def metric_key(name: str, params: Mapping[str, Any]) -> str:
    """The name a metric's values go by in the history, on screen and in `monitor`:
    `f1`, `f1_macro`, `precision_class2`, `top_5`."""
    if name == "top_k":
        return f"top_{params['k']}"
    if params.get("class") is not None:
        return f"{name}_class{params['class']}"
    entry = METRICS.get(name)
    average = params.get("average")
    if entry is not None and average is not None and average != entry.param("average").default:  # type: ignore[union-attr]
        return f"{name}_{average}"
    return name
