"""`sample_weight "COLUMN"`: each example's weight in the loss, from a CSV column.

The loss of a batch is Σ w·loss / Σ w (and so is an epoch's, the validation loss and
`eval`'s); the metrics count every example alike, as Keras's `metrics` do. The column is
read as a weight, never as a feature; bad weights are E401 at the `sample_weight` line.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import nnspec
from cli_helpers import run_cli
from nnspec.diagnostics import NNSpecError

SPEC = """\
model m {{
    input x[2]
    dense 1 sigmoid
}}
loss binary_crossentropy
optimizer sgd lr=0.5
train {{
    data csv("d.csv", target="y")
    batch {batch}
    epochs {epochs}
    metrics accuracy
{extra}}}
"""


def table(folder: Path, n: int = 60, *, weights=None, bad: tuple[int, str] | None = None) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2))
    y = (x[:, 0] - x[:, 1] > 0).astype(int)
    w = rng.uniform(0.1, 4.0, size=n) if weights is None else np.asarray(weights, float)
    cells = [f"{v:.4f}" for v in w]
    if bad is not None:
        cells[bad[0]] = bad[1]
    with open(folder / "d.csv", "w") as f:
        f.write("a,wt,b,y\n")
        for (a, b), c, t in zip(x, cells, y):
            f.write(f"{a:.4f},{c},{b:.4f},{t}\n")
    return np.round(x, 4), y, np.round(w, 4)


def spec(folder: Path, extra: str = '    sample_weight "wt"\n', *, batch: str = "all", epochs: int = 1) -> Path:
    path = folder / "w.nn"
    path.write_text(SPEC.format(batch=batch, epochs=epochs, extra=extra))
    return path


def test_a_step_descends_the_weighted_mean_loss(tmp_path) -> None:
    """One full-batch SGD step against NumPy: the gradient of Σ w·bce / Σ w, from zero weights."""
    x, y, w = table(tmp_path)
    path = spec(tmp_path, '    sample_weight "wt"\n')
    path.write_text(path.read_text().replace("dense 1 sigmoid", "dense 1 sigmoid init=zeros()"))
    result = nnspec.train(path)
    p = 0.5  # sigmoid(0)
    grad_z = w * (p - y) / w.sum()
    kernel = -0.5 * (x.T @ grad_z)
    bias = -0.5 * grad_z.sum()
    layer = next(iter(result.params.values()))
    np.testing.assert_allclose(np.asarray(layer["w"])[:, 0], kernel, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.asarray(layer["b"]), [bias], rtol=1e-5, atol=1e-7)
    assert result.history[0]["loss"] == pytest.approx(np.log(2), rel=1e-6)  # every example at p = 0.5


def test_the_reported_loss_is_weighted_and_the_accuracy_is_not(tmp_path) -> None:
    x, y, w = table(tmp_path)
    result = nnspec.train(spec(tmp_path, '    sample_weight "wt"\n', batch="16", epochs=2))
    layer = next(iter(result.params.values()))
    z = x @ np.asarray(layer["w"], np.float64)[:, 0] + float(np.asarray(layer["b"])[0])
    p = np.clip(1 / (1 + np.exp(-z)), 1e-7, 1 - 1e-7)
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    kept = result.kept["metrics"]["train"]
    assert kept["loss"] == pytest.approx(np.average(bce, weights=w), rel=1e-4)
    assert kept["loss"] != pytest.approx(bce.mean(), rel=1e-3)
    assert kept["accuracy"] == pytest.approx(np.mean((p > 0.5) == y))
    # the last batch of 60 in batches of 16 is padded: the epoch's loss is still Σ w·l / Σ w
    assert np.isfinite(result.history[-1]["loss"])


def test_weights_of_one_train_what_no_weights_train(tmp_path) -> None:
    table(tmp_path, weights=np.ones(60))
    a = nnspec.train(spec(tmp_path, batch="16", epochs=2))
    path = spec(tmp_path, "", batch="16", epochs=2)  # the same, the weight column left out
    path.write_text(path.read_text().replace('csv("d.csv", target="y")', 'csv("d.csv", target="y", features=["a", "b"])'))
    b = nnspec.train(path)
    for k in a.params:
        for name in a.params[k]:
            np.testing.assert_allclose(np.asarray(a.params[k][name]), np.asarray(b.params[k][name]), rtol=1e-6)
    assert a.history[-1]["loss"] == pytest.approx(b.history[-1]["loss"], rel=1e-6)


def test_eval_reports_the_weighted_loss_of_the_test_rows(tmp_path) -> None:
    table(tmp_path)
    path = spec(tmp_path, '    split test=0.25\n    sample_weight "wt"\n', batch="16", epochs=2)
    result = nnspec.train(path, out=tmp_path / "run")
    code, out, err = run_cli("eval", path, "--run", tmp_path / "run", "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report["metrics"]["loss"] == pytest.approx(result.kept["metrics"]["test"]["loss"], rel=1e-6)


@pytest.mark.parametrize("bad, message", [
    ((3, "-1"), "line 5, column `wt`"),
    ((7, ""), "line 9, column `wt`"),
    ((0, "heavy"), "line 2, column `wt`"),
])
def test_a_bad_weight_is_located(tmp_path, bad, message) -> None:
    table(tmp_path, bad=bad)
    with pytest.raises(NNSpecError) as err:
        nnspec.train(spec(tmp_path))
    (d,) = err.value.diagnostics
    assert d.code == "E401" and d.message.startswith("cannot use the weight column")
    assert any(message in n for n in d.notes), d.notes
    primary = next(label for label in d.labels if label.primary)
    text = (tmp_path / "w.nn").read_text()
    assert text[primary.span.start:primary.span.end] == 'sample_weight "wt"'  # the line that names the column


def test_all_zero_training_weights_are_refused(tmp_path) -> None:
    table(tmp_path, weights=np.zeros(60))
    with pytest.raises(NNSpecError) as err:
        nnspec.train(spec(tmp_path))
    assert err.value.diagnostics[0].code == "E401" and "weight 0" in err.value.diagnostics[0].message


def test_the_column_must_exist_and_not_be_a_target(tmp_path) -> None:
    table(tmp_path)
    for column, words in (("heft", "no column named `heft`"), ("y", "both a target and the weight column")):
        with pytest.raises(NNSpecError) as err:
            nnspec.train(spec(tmp_path, f'    sample_weight "{column}"\n'))
        assert words in err.value.diagnostics[0].message.lower() or words in str(err.value.diagnostics[0].notes), \
            err.value.diagnostics[0].message


@pytest.mark.parametrize("change, words", [
    (('data csv("d.csv", target="y")', 'data npz("d.npz")'), "not of `npz` data"),
    (('data csv("d.csv", target="y")', 'data csv("d.csv", target="y") val=csv("v.csv", target="y")'),
     "not of separate validation or test files"),
])
def test_sample_weights_that_cannot_be_honoured_are_E331(tmp_path, change, words) -> None:
    text = SPEC.format(batch="all", epochs=1, extra='    sample_weight "wt"\n').replace(*change)
    with pytest.raises(NNSpecError) as err:
        nnspec.check_text(text)
    (d,) = err.value.diagnostics
    assert d.code == "E331" and words in d.message
