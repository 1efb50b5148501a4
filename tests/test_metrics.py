"""Metrics as statistics (nnspec/metrics.py): every metric of the registry against
scikit-learn on the same predictions, computed over uneven padded batches and merged, as
the fused epoch and the evaluation chunks do; with a leading models axis; the metrics'
arguments and their errors; early stopping on them; `eval`'s confusion matrix."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnspec
from nnspec import metrics as M
from nnspec.diagnostics import NNSpecError
from nnspec.losses import METRICS, metric_key

sk = pytest.importorskip("sklearn.metrics")
# float32 probabilities sum to 1 only to float32's precision
pytestmark = pytest.mark.filterwarnings("ignore:The y_prob values do not sum to one")

RNG = np.random.default_rng(0)
N = 203  # not a multiple of the batch: the last batch is padded with weight-0 examples
BATCH = 64


def _metric(name: str, **params):
    entry = METRICS.get(name)
    full = {**entry.defaults(), **params}
    return SimpleNamespace(name=entry.name, params=full, key=metric_key(entry.name, full))


def _loss(name: str, **params):
    return SimpleNamespace(name=name, params=params)


def _computed(metric, loss, out, pred, y, xp=np):
    """The metric over batches of BATCH (the last padded with weight 0, its padding filled
    with garbage that must not count), merged on the device, finalized with `xp`."""
    m = M.build(metric, loss, out)
    total = None
    for start in range(0, len(pred), BATCH):
        p, t = pred[start:start + BATCH], y[start:start + BATCH]
        w = np.ones(BATCH, np.float32)
        if len(p) < BATCH:
            fill = BATCH - len(p)
            w[len(p):] = 0
            p = np.concatenate([p, np.full((fill, *p.shape[1:]), np.nan, np.float32)])
            t = np.concatenate([t, t[:1].repeat(fill, 0)])
        s = m.stats(jnp.asarray(p), jnp.asarray(t), jnp.asarray(w))
        total = s if total is None else m.merge(total, s, jnp)
    if xp is np:
        total = jax.tree_util.tree_map(lambda v: np.asarray(v, np.float64), total)
    return float(m.finalize(total, xp))


def _probs(k: int) -> np.ndarray:
    z = RNG.normal(size=(N, k)) * 2
    e = np.exp(z - z.max(1, keepdims=True))
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


# --------------------------------------------------------------- each metric against scikit-learn

# one 0/1 output: probabilities, labels with some noise so no score is perfect
P1 = RNG.uniform(0.02, 0.98, size=(N, 1)).astype(np.float32)
Y1 = (RNG.uniform(size=(N, 1)) < P1).astype(np.float32)
C1 = (P1[:, 0] > 0.5).astype(int)

BINARY = [
    (_metric("accuracy"), lambda: sk.accuracy_score(Y1[:, 0], C1)),
    (_metric("precision"), lambda: sk.precision_score(Y1[:, 0], C1)),
    (_metric("recall"), lambda: sk.recall_score(Y1[:, 0], C1)),
    (_metric("f1"), lambda: sk.f1_score(Y1[:, 0], C1)),
    (_metric("f1", average="macro"), lambda: sk.f1_score(Y1[:, 0], C1, average="macro")),
    (_metric("precision", average="micro"), lambda: sk.precision_score(Y1[:, 0], C1, average="micro")),
    (_metric("recall", average="weighted"), lambda: sk.recall_score(Y1[:, 0], C1, average="weighted")),
    (_metric("precision", **{"class": 0}), lambda: sk.precision_score(Y1[:, 0], C1, pos_label=0)),
    (_metric("roc_auc"), lambda: sk.roc_auc_score(Y1[:, 0], P1[:, 0])),
    (_metric("log_loss"), lambda: sk.log_loss(Y1[:, 0], P1[:, 0])),
    (_metric("mse"), lambda: sk.mean_squared_error(Y1, P1)),
    (_metric("rmse"), lambda: sk.root_mean_squared_error(Y1, P1)),
    (_metric("mae"), lambda: sk.mean_absolute_error(Y1, P1)),
]

# a softmax of 5 classes, labels drawn from the probabilities
K = 5
PK = _probs(K)
YK = np.array([RNG.choice(K, p=p / p.sum()) for p in PK.astype(np.float64)])
CK = PK.argmax(1)

MULTICLASS = [
    (_metric("accuracy"), lambda: sk.accuracy_score(YK, CK)),
    *[(_metric(name, average=avg), lambda name=name, avg=avg: getattr(sk, f"{name}_score")(YK, CK, average=avg))
      for name in ("precision", "recall", "f1") for avg in ("micro", "macro", "weighted")],
    *[(_metric(name, **{"class": 3}), lambda name=name: getattr(sk, f"{name}_score")(YK, CK, average=None)[3])
      for name in ("precision", "recall", "f1")],
    (_metric("roc_auc"), lambda: sk.roc_auc_score(YK, PK.astype(np.float64) / PK.sum(1, keepdims=True), multi_class="ovr")),
    (_metric("roc_auc", average="weighted"),
     lambda: sk.roc_auc_score(YK, PK.astype(np.float64) / PK.sum(1, keepdims=True), multi_class="ovr", average="weighted")),
    (_metric("roc_auc", **{"class": 2}), lambda: sk.roc_auc_score(YK == 2, PK[:, 2])),
    (_metric("top_k", k=2), lambda: sk.top_k_accuracy_score(YK, PK, k=2, labels=range(K))),
    (_metric("top_k", k=4), lambda: sk.top_k_accuracy_score(YK, PK, k=4, labels=range(K))),
    (_metric("log_loss"), lambda: sk.log_loss(YK, PK.astype(np.float64) / PK.sum(1, keepdims=True), labels=range(K))),
]

# four 0/1 outputs (multi-label)
L = 4
PL = RNG.uniform(0.02, 0.98, size=(N, L)).astype(np.float32)
YL = (RNG.uniform(size=(N, L)) < PL).astype(np.float32)
CL = (PL > 0.5).astype(int)

MULTILABEL = [
    (_metric("accuracy"), lambda: 1 - sk.hamming_loss(YL, CL)),
    *[(_metric(name, average=avg), lambda name=name, avg=avg: getattr(sk, f"{name}_score")(YL, CL, average=avg))
      for name in ("precision", "recall", "f1") for avg in ("micro", "macro", "weighted")],
    (_metric("f1", **{"class": 1}), lambda: sk.f1_score(YL[:, 1], CL[:, 1])),
    (_metric("roc_auc"), lambda: sk.roc_auc_score(YL, PL)),
    (_metric("roc_auc", **{"class": 3}), lambda: sk.roc_auc_score(YL[:, 3], PL[:, 3])),
]

# regression with three outputs, far from 0 (R²'s sums of squares must not cancel in float32)
YR = (1e4 + RNG.normal(size=(N, 3)) * [1.0, 3.0, 0.5]).astype(np.float32)
PR = (YR + RNG.normal(size=(N, 3)) * 0.5).astype(np.float32)

REGRESSION = [
    (_metric("r2"), lambda: sk.r2_score(YR, PR)),
    (_metric("mse"), lambda: sk.mean_squared_error(YR, PR)),
    (_metric("mae"), lambda: sk.mean_absolute_error(YR, PR)),
    (_metric("rmse"), lambda: np.sqrt(np.mean((YR.astype(np.float64) - PR) ** 2))),  # of all elements
]

CASES = ([("binary", m, want) for m, want in BINARY] + [("multiclass", m, want) for m, want in MULTICLASS]
         + [("multilabel", m, want) for m, want in MULTILABEL] + [("regression", m, want) for m, want in REGRESSION])

SETTINGS = {
    "binary": (_loss("binary_crossentropy", from_logits=False), (1,), P1, Y1),
    "multiclass": (_loss("categorical_crossentropy", from_logits=False, labels="index"), (K,), PK, YK.astype(np.int32)),
    "multilabel": (_loss("binary_crossentropy", from_logits=False), (L,), PL, YL),
    "regression": (_loss("mse"), (3,), PR, YR),
}

# ROC AUC comes from histograms of AUC_BINS bins (nnspec/metrics.py): ties within a bin
# cost at most half the pairs that share one; everything else is exact up to float32
AUC_TOL = 1e-3


@pytest.mark.parametrize("setting,metric,want", CASES, ids=[f"{s}-{m.key}" for s, m, _ in CASES])
def test_metric_matches_scikit_learn(setting: str, metric, want) -> None:
    loss, out, pred, y = SETTINGS[setting]
    tol = AUC_TOL if metric.name == "roc_auc" else 2e-5
    expected = float(want())
    got_host = _computed(metric, loss, out, pred, y, np)
    got_device = _computed(metric, loss, out, pred, y, jnp)  # as the fused epoch finalizes, in float32
    assert got_host == pytest.approx(expected, abs=tol, rel=tol)
    assert got_device == pytest.approx(expected, abs=max(tol, 1e-4), rel=max(tol, 1e-4))


def test_every_metric_of_the_registry_is_tested() -> None:
    assert {m.name for _, m, _ in CASES} == {e.name for e in METRICS}


def test_logits_give_the_probabilities_metrics() -> None:
    """`from_logits=true`: the same numbers from the logits as from the probabilities."""
    logit1 = np.log(P1) - np.log1p(-P1)
    logk = np.log(PK)
    for metric in (_metric("roc_auc"), _metric("f1"), _metric("log_loss"), _metric("mse")):
        a = _computed(metric, _loss("binary_crossentropy", from_logits=False), (1,), P1, Y1)
        b = _computed(metric, _loss("binary_crossentropy", from_logits=True), (1,), logit1.astype(np.float32), Y1)
        assert b == pytest.approx(a, abs=1e-4), metric.key
    for metric in (_metric("roc_auc"), _metric("f1", average="macro"), _metric("top_k", k=2), _metric("log_loss")):
        a = _computed(metric, _loss("categorical_crossentropy", from_logits=False, labels="index"), (K,), PK,
                      YK.astype(np.int32))
        b = _computed(metric, _loss("categorical_crossentropy", from_logits=True, labels="onehot"), (K,),
                      logk.astype(np.float32), np.eye(K, dtype=np.float32)[YK])
        assert b == pytest.approx(a, abs=1e-4), metric.key


def test_auc_of_saturated_scores_keeps_their_order() -> None:
    """Probabilities within 1e-6 of 0 or 1 are still told apart (bins equal in logit)."""
    y = np.array([0, 1, 0, 1, 1, 0] * 10, np.float32)[:, None]
    p = np.where(y > 0, 1 - 1e-6, 1 - 1e-4).astype(np.float32)  # every positive above every negative
    p[:5] = 1e-5
    got = _computed(_metric("roc_auc"), _loss("binary_crossentropy", from_logits=False), (1,), p, y)
    assert got == pytest.approx(sk.roc_auc_score(y[:, 0], p[:, 0]), abs=AUC_TOL)


def test_auc_of_one_class_is_nan_not_a_number_made_up() -> None:
    y = np.ones((10, 1), np.float32)
    p = RNG.uniform(size=(10, 1)).astype(np.float32)
    assert np.isnan(_computed(_metric("roc_auc"), _loss("binary_crossentropy", from_logits=False), (1,), p, y))


def test_statistics_carry_a_leading_models_axis() -> None:
    """Stacked models (a sweep, under vmap): each model's statistics and values are its own."""
    loss, out = SETTINGS["multiclass"][:2]
    preds = np.stack([PK, _probs(K)])
    y = jnp.asarray(YK.astype(np.int32))
    for metric in (_metric("f1", average="macro"), _metric("roc_auc"), _metric("accuracy")):
        m = M.build(metric, loss, out)
        stats = jax.vmap(lambda p: m.stats(p, y, None))(jnp.asarray(preds))
        both = m.finalize(jax.tree_util.tree_map(lambda v: np.asarray(v, np.float64), stats), np)
        assert both.shape == (2,)
        for i in range(2):
            one = _computed(metric, loss, out, preds[i], YK.astype(np.int32))
            assert float(both[i]) == pytest.approx(one, abs=1e-6)


def test_confusion_counts_match_scikit_learn() -> None:
    got = M.confusion(SETTINGS["multiclass"][0], (K,)).stats(jnp.asarray(PK), jnp.asarray(YK), None)["counts"]
    np.testing.assert_array_equal(np.asarray(got)[0], sk.confusion_matrix(YK, CK, labels=range(K)))
    got = M.confusion(SETTINGS["multilabel"][0], (L,)).stats(jnp.asarray(PL), jnp.asarray(YL), None)["counts"]
    np.testing.assert_array_equal(np.asarray(got), sk.multilabel_confusion_matrix(YL, CL))


# -------------------------------------------------------------------------- the language

def _spec(metrics: str, *, head: str = "dense 3 softmax", loss: str = "categorical_crossentropy",
          data: str = 'builtin("blobs", classes=3)', extra: str = "") -> str:
    return (f"model m {{\n    input x[2]\n    h: dense 8 relu\n    {head}\n}}\nloss {loss}\noptimizer adam lr=0.05\n"
            f"train {{\n    data {data}\n    split val=0.25\n    epochs 4\n    batch 32\n    metrics {metrics}\n{extra}}}\n")


def _errors(text: str) -> list[tuple[str, str]]:
    try:
        nnspec.check_text(text)
    except NNSpecError as exc:
        return [(d.code, d.message) for d in exc.diagnostics if d.is_error]
    return []


def test_metric_arguments_and_keys() -> None:
    program = nnspec.check_text(_spec("accuracy f1(macro) precision(class=2) top_k(2) roc_auc recall(average=weighted)"))
    keys = [m.key for m in program.train.metrics]
    assert keys == ["accuracy", "f1_macro", "precision_class2", "top_2", "roc_auc", "recall_weighted"]
    assert program.train.metrics[1].params == {"average": "macro", "class": None}


@pytest.mark.parametrize("metrics,code,message", [
    ("r2", "E305", "`r2` does not apply to a multiclass classification loss"),
    ("top_k(3)", "E314", "`top_k(3)` of 3 classes is always 1"),
    ("precision(class=3)", "E314", "`class=3` does not exist: the output has 3 classes"),
    ("f1", "E315", "`f1` of 3 classes needs to say how they are combined"),
    ("f1(macro, class=1)", "E315", "give `average` or `class`, not both"),
    ("f1(mean)", "E104", "`mean` is not one of `binary`, `micro`, `macro`, `weighted`"),
    ("f1(macro) f1(average=macro)", "E105", "`f1_macro` given twice"),
])
def test_metric_errors(metrics: str, code: str, message: str) -> None:
    assert (code, message) in _errors(_spec(metrics))


def test_binary_metrics_need_no_averaging_for_one_output() -> None:
    text = _spec("precision recall f1 roc_auc log_loss precision(class=0)", head="dense 1 sigmoid",
                 loss="binary_crossentropy", data='builtin("moons")')
    assert _errors(text) == []
    assert ("E314", "`class=2` does not exist: the output has 2 classes") in _errors(
        text.replace("precision(class=0)", "precision(class=2)"))
    assert _errors(text.replace("log_loss", "top_k"))[0][0] == "E305"


def test_early_stopping_on_any_metric_with_its_direction() -> None:
    t = nnspec.check_text(_spec("f1(macro) log_loss", extra="    early_stop monitor=val_f1_macro\n")).train
    assert (t.early_stop.monitor, t.early_stop.mode) == ("val_f1_macro", "max")
    t = nnspec.check_text(_spec("f1(macro) log_loss", extra="    early_stop monitor=val_log_loss\n")).train
    assert t.early_stop.mode == "min"
    errs = _errors(_spec("f1(macro)", extra="    early_stop monitor=val_f1\n"))
    assert errs and errs[0][0] == "E306"


# ---------------------------------------------------------------------- training and eval

def test_trained_metrics_match_scikit_learn_on_the_models_predictions(tmp_path: Path) -> None:
    """The epoch's and the evaluation's values are those of the split, from the kept weights."""
    from nnspec.fit import fit
    from nnspec.infer import predict
    text = _spec("accuracy f1(macro) roc_auc precision(class=1) top_k(2) log_loss",
                 extra="    early_stop monitor=val_roc_auc patience=10\n")
    program = nnspec.check_text(text)
    result = fit(program)
    val = result.splits.val
    prob = np.asarray(predict(result.model, result.params, jnp.asarray(val.x)), np.float64)
    y = np.asarray(val.y)
    got = result.kept["metrics"]["val"]
    assert got["accuracy"] == pytest.approx(sk.accuracy_score(y, prob.argmax(1)), abs=1e-6)
    assert got["f1_macro"] == pytest.approx(sk.f1_score(y, prob.argmax(1), average="macro"), abs=1e-6)
    assert got["precision_class1"] == pytest.approx(sk.precision_score(y, prob.argmax(1), average=None)[1], abs=1e-6)
    assert got["roc_auc"] == pytest.approx(sk.roc_auc_score(y, prob / prob.sum(1, keepdims=True), multi_class="ovr"),
                                           abs=AUC_TOL)
    assert got["top_2"] == pytest.approx(sk.top_k_accuracy_score(y, prob, k=2), abs=1e-6)
    assert got["log_loss"] == pytest.approx(got["loss"], rel=1e-5)
    # the last epoch's validation values are the kept weights' (no restore_best)
    last = result.history[-1]
    for key in ("val_f1_macro", "val_roc_auc", "val_top_2"):
        assert last[key] == pytest.approx(got[key[4:]], abs=1e-5)
    assert list(last)[:3] == ["epoch", "loss", "accuracy"]


def test_eval_prints_and_writes_the_confusion_matrix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Overlapping blobs, so the matrix has errors off its diagonal to get right."""
    from nnspec.cli import main
    from nnspec.infer import load_trained, predict
    from nnspec.prepare import prepare
    spec = tmp_path / "m.nn"
    spec.write_text(_spec("accuracy f1(macro)", data='builtin("blobs", classes=3, spread=2.0)')
                    .replace("split val=0.25", "split val=0.25 test=0.25"))
    run = tmp_path / "run"
    assert main(["train", str(spec), "--out", str(run), "-q"]) == 0
    capsys.readouterr()
    assert main(["eval", "--run", str(run)]) == 0
    got = capsys.readouterr()
    doc = json.loads((run / "confusion.json").read_text())
    matrix = np.array(doc["matrix"])
    assert doc["split"] == "test" and matrix.sum() == doc["examples"] == 250
    # the same predictions, by the Python API
    program = nnspec.check_text(spec.read_text())
    model, params, std, _ = load_trained(program, run)
    test = prepare(model.program, tmp_path, standardizer=std).test
    pred = np.asarray(predict(model, params, jnp.asarray(test.x))).argmax(1)
    np.testing.assert_array_equal(matrix, sk.confusion_matrix(test.y, pred, labels=range(3)))
    assert matrix.trace() < matrix.sum()  # some examples are wrong
    lines = got.out.splitlines()
    at = lines.index("confusion matrix (rows: true class, columns: predicted class)")
    assert lines[at + 1].split() == ["0", "1", "2"]
    for t in range(3):
        assert lines[at + 2 + t].split() == ["true", str(t), *map(str, matrix[t])]
    f1 = float(next(line for line in lines if line.split()[:1] == ["f1_macro"]).split()[1])
    assert f1 == pytest.approx(sk.f1_score(test.y, pred, average="macro"), abs=1e-4)
    csv_rows = (run / "confusion.csv").read_text().splitlines()
    assert csv_rows[0] == "true,predicted_0,predicted_1,predicted_2"
    assert csv_rows[1:] == [f"{t}," + ",".join(map(str, matrix[t])) for t in range(3)]
    assert "wrote the confusion matrix to" in got.err


def test_confusion_table_of_several_labels() -> None:
    from nnspec.show import confusion_files, confusion_table
    counts = sk.multilabel_confusion_matrix(YL, CL)
    text = confusion_table(counts).splitlines()
    assert text[1].split() == ["label", "tn", "fp", "fn", "tp"]
    for i, m in enumerate(counts):
        assert text[2 + i].split() == [str(i), *map(str, (m[0, 0], m[0, 1], m[1, 0], m[1, 1]))]
    doc, csv_text = confusion_files(counts, "val", N)
    assert np.array_equal(np.array(json.loads(doc)["labels"]), counts)
    assert csv_text.splitlines()[1] == "0,0," + ",".join(map(str, counts[0, 0]))


@pytest.mark.slow
def test_a_sweeps_stacked_metrics_are_each_members_own() -> None:
    """Stacked models (vmap over the fused epoch and the evaluation): each member's metrics
    are those of training its setting alone, and early stopping on one stops per model."""
    from nnspec.fit import fit
    from nnspec.sweep_fit import fit_sweep
    text = _spec("f1(macro) roc_auc top_k(2)",
                 extra="    early_stop monitor=val_roc_auc patience=2\n").replace("lr=0.05", "lr=sweep(0.003, 0.05)")
    result = fit_sweep(nnspec.check_text(text))
    assert len(result.members) == 2
    keys = ("f1_macro", "roc_auc", "top_2", "val_f1_macro", "val_roc_auc", "val_top_2")
    for member in result.members:
        alone = fit(member.program)
        assert len(alone.history) == len(member.history)
        for a, b in zip(alone.history, member.history):
            assert [b[k] for k in keys] == pytest.approx([a[k] for k in keys], abs=1e-5)


def test_regression_metrics_of_a_trained_model_match_scikit_learn() -> None:
    from nnspec.fit import fit
    from nnspec.infer import predict
    text = _spec("r2 rmse mae mse", head="dense 1", loss="mse", data='builtin("regression")',
                 extra="    early_stop monitor=val_r2 patience=3\n").replace("input x[2]", "input x[1]")
    program = nnspec.check_text(text)
    assert program.train.early_stop.mode == "max"
    result = fit(program)
    val = result.splits.val
    pred = np.asarray(predict(result.model, result.params, jnp.asarray(val.x)), np.float64)
    y = np.asarray(val.y, np.float64).reshape(pred.shape)
    got = result.kept["metrics"]["val"]
    assert got["r2"] == pytest.approx(sk.r2_score(y, pred), abs=1e-5)
    assert got["rmse"] == pytest.approx(sk.root_mean_squared_error(y, pred), rel=1e-5)
    assert got["mae"] == pytest.approx(sk.mean_absolute_error(y, pred), rel=1e-5)
    assert got["mse"] == pytest.approx(got["loss"], rel=1e-6)


# -------------------------------------------------------------------------- class weights

@pytest.mark.parametrize("labels,from_logits", [("index", False), ("onehot", True)])
def test_class_weights_scale_each_examples_loss_by_its_true_class(labels: str, from_logits: bool) -> None:
    """Σ w_y·loss / N (Keras's class_weight): scikit-learn's weighted log loss times Σw / N."""
    from nnspec import nn
    w = (1.0, 3.0, 0.5, 2.0, 1.5)
    pred = np.log(PK) if from_logits else PK
    y = np.eye(K, dtype=np.float32)[YK] if labels == "onehot" else YK.astype(np.int32)
    fn = nn.loss_fn("categorical_crossentropy", {"from_logits": from_logits, "labels": labels, "class_weight": w}, (K,))
    got = float(np.mean(np.asarray(fn(jnp.asarray(pred), jnp.asarray(y)), np.float64)))
    sw = np.asarray(w)[YK]
    probs = PK.astype(np.float64) / PK.sum(1, keepdims=True)
    assert got == pytest.approx(sk.log_loss(YK, probs, sample_weight=sw, labels=range(K)) * sw.sum() / N, rel=1e-4)


def test_binary_class_weights_weigh_each_label_by_its_value() -> None:
    from nnspec import nn
    fn = nn.loss_fn("binary_crossentropy", {"from_logits": False, "class_weight": (0.5, 4.0)}, (L,))
    got = np.asarray(fn(jnp.asarray(PL), jnp.asarray(YL)), np.float64)
    p, y = PL.astype(np.float64), YL.astype(np.float64)
    want = np.mean(-(y * np.log(p) * 4.0 + (1 - y) * np.log(1 - p) * 0.5), axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_class_weights_are_used_in_training_and_metrics_stay_unweighted() -> None:
    from nnspec.fit import fit
    text = _spec("log_loss").replace("loss categorical_crossentropy",
                                     "loss categorical_crossentropy class_weight=[1, 4, 1]")
    result = fit(nnspec.check_text(text))
    got = result.kept["metrics"]["val"]
    val = result.splits.val
    from nnspec.infer import predict
    prob = np.asarray(predict(result.model, result.params, jnp.asarray(val.x)), np.float64)
    plain = sk.log_loss(val.y, np.clip(prob, 1e-7, 1), labels=range(3))
    sw = np.asarray([1.0, 4.0, 1.0])[np.asarray(val.y)]
    assert got["log_loss"] == pytest.approx(plain, rel=1e-3, abs=1e-6)
    weighted = np.mean(sw * -np.log(np.clip(prob[np.arange(len(prob)), np.asarray(val.y)], 1e-7, 1)))
    assert got["loss"] == pytest.approx(weighted, rel=1e-3, abs=1e-6)
    assert got["loss"] != pytest.approx(got["log_loss"], rel=1e-2)
    assert ("E316", "2 class weights for 2 classes (0 and 1)") not in _errors(
        _spec("f1", head="dense 1 sigmoid", loss="binary_crossentropy class_weight=[1, 2]", data='builtin("moons")'))
    assert ("E316", "3 class weights for 2 classes (0 and 1)") in _errors(
        _spec("f1", head="dense 1 sigmoid", loss="binary_crossentropy class_weight=[1, 2, 3]", data='builtin("moons")'))
