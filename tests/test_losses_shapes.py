"""Losses over outputs of any shape (per pixel, per step), multi-label binary
cross-entropy, and autoencoders (`target input`): each formula against NumPy written
here, and the checks that refuse what does not fit."""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

import nnspec
from nnspec import nn
from nnspec.diagnostics import NNSpecError
from nnspec.fit import fit
from nnspec.infer import evaluate
from nnspec.prepare import prepare

RNG = np.random.default_rng(0)
SHAPE = (4, 3, 2)  # one example's output: as (height, width, channels) or (steps, k)


def _codes(text: str) -> list[str]:
    try:
        nnspec.check_text(text)
    except NNSpecError as exc:
        return [d.code for d in exc.diagnostics if d.is_error]
    return []


def _error(fn) -> NNSpecError:
    with pytest.raises(NNSpecError) as info:
        fn()
    return info.value


# ------------------------------------------------------------------ the formulas

def test_regression_losses_average_over_every_element_of_an_example():
    pred = RNG.normal(size=(5, *SHAPE)).astype(np.float32)
    y = RNG.normal(size=(5, *SHAPE)).astype(np.float32)
    err = pred.astype(np.float64) - y
    a = np.abs(err)
    delta = 0.7
    huber = np.where(a <= delta, 0.5 * err ** 2, delta * (a - 0.5 * delta))
    want = {"mse": (err ** 2), "mae": a, "huber": huber}
    for name, values in want.items():
        params = {"delta": delta} if name == "huber" else {}
        got = np.asarray(nn.loss_fn(name, params, SHAPE)(jnp.asarray(pred), jnp.asarray(y)))
        assert got.shape == (5,)
        np.testing.assert_allclose(got, values.reshape(5, -1).mean(axis=1), rtol=1e-5, err_msg=name)


@pytest.mark.parametrize("logits", [False, True])
def test_binary_crossentropy_per_pixel_with_soft_targets(logits):
    z = RNG.normal(size=(6, *SHAPE))
    p = 1 / (1 + np.exp(-z))
    y = RNG.uniform(size=(6, *SHAPE))  # pixel intensities in [0, 1], not only 0/1
    want = -(y * np.log(p) + (1 - y) * np.log(1 - p)).reshape(6, -1).mean(axis=1)
    out = z if logits else p
    got = nn.loss_fn("binary_crossentropy", {"from_logits": logits}, SHAPE)(jnp.asarray(out, jnp.float32),
                                                                             jnp.asarray(y, jnp.float32))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4)


@pytest.mark.parametrize("logits", [False, True])
def test_multilabel_binary_crossentropy_and_accuracy_agree_with_sklearn(logits):
    from sklearn.metrics import hamming_loss, log_loss
    k = 4
    y = RNG.integers(0, 2, size=(50, k)).astype(np.float32)
    z = RNG.normal(size=(50, k))
    p = 1 / (1 + np.exp(-z))
    out = jnp.asarray(z if logits else p, jnp.float32)
    params = {"from_logits": logits}
    loss = np.asarray(nn.loss_fn("binary_crossentropy", params, (k,))(out, jnp.asarray(y)))
    # per-unit BCE averaged over the units, then over the examples: sklearn's per label
    per_label = [log_loss(y[:, j], p[:, j], labels=[0, 1]) for j in range(k)]
    np.testing.assert_allclose(loss.mean(), np.mean(per_label), rtol=1e-4)
    acc = np.asarray(nn.metric_fn("accuracy", "binary_crossentropy", params, (k,))(out, jnp.asarray(y)))
    assert acc.shape == (50,)
    # per-label accuracy averaged over the labels: 1 - the Hamming loss
    np.testing.assert_allclose(acc.mean(), 1 - hamming_loss(y, (p > 0.5).astype(int)), rtol=1e-6)
    # one unit: the accuracy of one 0/1 label, as before
    one = nn.metric_fn("accuracy", "binary_crossentropy", params, (1,))(out[:, :1], jnp.asarray(y[:, :1]))
    np.testing.assert_allclose(np.asarray(one), (p[:, 0] > 0.5) == (y[:, 0] > 0.5))


def test_metrics_over_a_non_flat_output():
    pred = RNG.normal(size=(3, *SHAPE)).astype(np.float32)
    y = RNG.normal(size=(3, *SHAPE)).astype(np.float32)
    mae = nn.metric_fn("mae", "mse", {}, SHAPE)(jnp.asarray(pred), jnp.asarray(y))
    np.testing.assert_allclose(np.asarray(mae), np.abs(pred - y).reshape(3, -1).mean(1), rtol=1e-5)


# ------------------------------------------------------------------ the checker

_MODEL = """
model m {{
    input x[{inp}]
{layers}
}}

loss {loss}
optimizer adam lr=0.01
"""


def _spec(layers: str, loss: str, inp: str = "20, 1", train: str = "") -> str:
    body = "\n".join(f"    {line}" for line in layers.strip().splitlines())
    return _MODEL.format(inp=inp, layers=body, loss=loss) + (f"\ntrain {{\n{train}\n}}\n" if train else "")


@pytest.mark.parametrize("loss", ["mse", "mae", "huber 0.5"])
def test_regression_losses_accept_outputs_of_any_shape(loss):
    assert _codes(_spec("lstm 8 sequences=true\ndense 2 per_step", loss)) == []


def test_binary_crossentropy_accepts_per_step_and_multilabel_outputs():
    assert _codes(_spec("lstm 8 sequences=true\ndense 1 sigmoid per_step", "binary_crossentropy")) == []
    assert _codes(_spec("dense 3 sigmoid", "binary_crossentropy", inp="5")) == []
    assert _codes(_spec("dense 3", "binary_crossentropy from_logits=true", inp="5")) == []
    # the activation is still checked, per element as for one unit
    assert _codes(_spec("dense 3 relu", "binary_crossentropy", inp="5")) == ["E302"]
    assert _codes(_spec("dense 3 sigmoid", "binary_crossentropy from_logits=true", inp="5")) == ["E303"]


def test_a_builtin_dataset_with_one_label_still_needs_one_unit():
    data = '    data builtin("waves")'
    assert _codes(_spec("lstm 8\ndense 3 sigmoid", "binary_crossentropy", train=data)) == ["E301"]
    assert _codes(_spec("lstm 8 sequences=true\ndense 1 sigmoid per_step", "binary_crossentropy", train=data)) == ["E301"]


def test_categorical_crossentropy_per_step_needs_data_with_a_class_per_step_with_a_fix_that_checks():
    layers = "lstm 8 sequences=true\ndense 4 softmax per_step"
    assert _codes(_spec(layers, "categorical_crossentropy")) == []  # a class per step (tests/test_per_step_classes.py)
    csv = '    data csv("series.csv", target="label")'
    exc = _error(lambda: nnspec.check_text(_spec(layers, "categorical_crossentropy", train=csv)))
    [d] = exc.diagnostics
    assert d.code == "E304" and "(20, 4)" in d.message and "a CSV file has one class per example" in d.notes[0]
    assert "`flatten` and `dense 4 softmax`" in d.help
    assert _codes(_spec(layers + "\nflatten\ndense 4 softmax", "categorical_crossentropy", train=csv)) == []


def test_target_input_checks_the_output_shape_the_loss_and_the_metrics():
    data = '    data builtin("digits", image=true)\n    target input'
    conv = "conv2d 4 3 relu padding=same\nconv2d 1 3 padding=same"
    assert _codes(_spec(conv, "mse", inp="8, 8, 1", train=data)) == []
    exc = _error(lambda: nnspec.check_text(_spec("flatten\ndense 64", "mse", inp="8, 8, 1", train=data)))
    [d] = exc.diagnostics
    assert d.code == "E311" and "(64,)" in d.message and "(8, 8, 1)" in d.message
    assert d.help == "end the model with `reshape [8, 8, 1]`"
    assert _codes(_spec("flatten\ndense 64\nreshape [8, 8, 1]", "mse", inp="8, 8, 1", train=data)) == []
    assert _codes(_spec("flatten\ndense 10 softmax", "categorical_crossentropy", inp="8, 8, 1", train=data)) == ["E311"]
    assert _codes(_spec(conv, "mse", inp="8, 8, 1", train=data + "\n    metrics accuracy")) == ["E305"]
    assert _codes(_spec(conv, "mse", inp="8, 8, 1", train=data + "\n    metrics mae")) == []


def test_a_csv_source_names_its_target_unless_the_targets_are_the_inputs():
    no_target = '    data csv("pixels.csv")'
    assert _codes(_spec("dense 4", "mse", inp="4", train=no_target)) == ["E106"]
    assert _codes(_spec("dense 4", "mse", inp="4", train=no_target + "\n    target input")) == []
    twice = '    data csv("pixels.csv", target="label")\n    target input'
    assert _codes(_spec("dense 4", "mse", inp="4", train=twice)) == ["E105"]
    twice = '    data npz("pixels.npz", y="labels")\n    target input'
    assert _codes(_spec("dense 4", "mse", inp="4", train=twice)) == ["E105"]


# ------------------------------------------------------------------ data and training

def _program(tmp_path: Path, text: str):
    path = tmp_path / "spec.nn"
    path.write_text(text)
    return nnspec.check_text(text, filename=str(path))


def _tags_csv(tmp_path: Path, n: int = 240) -> np.ndarray:
    x = RNG.normal(size=(n, 3))
    y = np.stack([x[:, 0] > 0, x[:, 1] > 0, x[:, 0] + x[:, 2] > 0], 1).astype(int)
    rows = ["a,b,c,red,round,sweet"] + [",".join([*(f"{v:.4f}" for v in xi), *map(str, yi)]) for xi, yi in zip(x, y)]
    (tmp_path / "tags.csv").write_text("\n".join(rows) + "\n")
    return y


@pytest.mark.parametrize("out", ["dense 3 sigmoid", "dense 3"])
def test_multilabel_training_from_a_csv_file(tmp_path, out):
    _tags_csv(tmp_path)
    loss = "binary_crossentropy" + (" from_logits=true" if out == "dense 3" else "")
    text = _spec(f"dense 16 relu\n{out}", loss, inp="3",
                 train='    data csv("tags.csv", target=["red", "round", "sweet"])\n    split val=0.25\n'
                       '    epochs 30\n    metrics accuracy')
    result = fit(_program(tmp_path, text))
    assert result.splits.train.y.shape[1:] == (3,)
    assert result.history[-1]["val_accuracy"] >= 0.85  # three separable labels, each learnt
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_target_width_and_the_units_must_agree(tmp_path):
    _tags_csv(tmp_path)
    text = _spec("dense 2 sigmoid", "binary_crossentropy", inp="3",
                 train='    data csv("tags.csv", target=["red", "round", "sweet"])')
    [d] = _error(lambda: prepare(_program(tmp_path, text))).diagnostics
    assert d.code == "E403" and "3 target column(s)" in d.message and "2 output unit(s)" in d.message
    # a column of class indices is no 0/1 label: refused where it is
    (tmp_path / "three.csv").write_text("a,b,c,k\n" + "\n".join(f"{i},0,1,{i % 3}" for i in range(9)) + "\n")
    text = _spec("dense 3 sigmoid", "binary_crossentropy", inp="3", train='    data csv("three.csv", target="k")')
    [d] = _error(lambda: prepare(_program(tmp_path, text))).diagnostics
    assert d.code == "E401" and "expected a number in [0, 1]" in d.message


def test_binary_crossentropy_learns_soft_targets_that_are_not_the_inputs(tmp_path):
    """Targets in [0, 1] (a clean image for a noisy one, a probability) are what the
    cross-entropy of two Bernoulli distributions compares: its minimum is at p = y."""
    x = RNG.normal(size=(400, 4)).astype(np.float32)
    w = RNG.normal(size=(4, 3)).astype(np.float32)
    y = 1 / (1 + np.exp(-(x @ w)))  # soft: every target strictly between 0 and 1
    np.savez(tmp_path / "soft.npz", x=x, y=y)
    text = _spec("dense 3 sigmoid", "binary_crossentropy", inp="4",
                 train='    data npz("soft.npz")\n    split val=0.25\n    epochs 60\n    batch 32')
    result = fit(_program(tmp_path, text.replace("optimizer adam lr=0.01", "optimizer adam lr=0.05")))
    entropy = -np.mean(y * np.log(y) + (1 - y) * np.log(1 - y))  # the loss at p = y
    assert result.history[-1]["val_loss"] < entropy + 0.02 < result.history[0]["val_loss"]
    np.savez(tmp_path / "soft.npz", x=x, y=np.where(np.arange(400)[:, None] == 7, 1.5, y))
    [d] = _error(lambda: prepare(_program(tmp_path, text))).diagnostics
    assert d.code == "E401" and "found `1.5` at index (7, 0)" in d.message


def test_npz_targets_must_have_the_outputs_shape(tmp_path):
    x = RNG.normal(size=(20, 8, 8, 1)).astype(np.float32)
    np.savez(tmp_path / "images.npz", x=x, y=x[..., 0])  # (20, 8, 8): one axis short
    layers = "conv2d 1 3 padding=same"
    text = _spec(layers, "mse", inp="8, 8, 1", train='    data npz("images.npz")\n    batch all')
    [d] = _error(lambda: prepare(_program(tmp_path, text))).diagnostics
    assert d.code == "E403" and "(8, 8)" in d.message and "(8, 8, 1)" in d.message
    np.savez(tmp_path / "images.npz", x=x, y=2 * x)
    splits = prepare(_program(tmp_path, text))
    assert splits.train.y.shape == (20, 8, 8, 1)


def test_an_autoencoder_compares_its_output_with_the_inputs_as_read(tmp_path):
    x = RNG.uniform(0, 16, size=(40, 4, 4, 1)).astype(np.float32)
    np.savez(tmp_path / "images.npz", x=x)  # no `y`: `target input` needs none
    text = _spec("conv2d 4 3 relu padding=same\nconv2d 1 3 padding=same", "mse", inp="4, 4, 1",
                 train='    data npz("images.npz")\n    target input\n    split val=0.25\n    batch 10\n    epochs 2\n    standardize')
    program = _program(tmp_path, text)
    result = fit(program)
    train, val = result.splits.train, result.splits.val
    # the model is fed standardized images; its targets are the images as read
    assert abs(float(train.x.mean())) < 1e-3
    np.testing.assert_allclose(result.standardizer.apply(train.y), train.x, rtol=1e-5, atol=1e-5)
    assert train.y.min() >= 0 and train.y.max() > 10
    pred = np.asarray(result.model.apply(result.params, jnp.asarray(val.x)))
    want = ((pred - val.y) ** 2).mean()
    np.testing.assert_allclose(evaluate(result.model, result.params, val, program)["loss"], want, rtol=1e-4)
    np.testing.assert_allclose(result.history[-1]["val_loss"], want, rtol=1e-4)


def test_an_autoencoder_from_a_csv_file_and_binary_crossentropy_in_range(tmp_path):
    x = RNG.uniform(size=(30, 4))
    (tmp_path / "pixels.csv").write_text("p1,p2,p3,p4\n" + "\n".join(",".join(f"{v:.4f}" for v in r) for r in x) + "\n")
    text = _spec("dense 2 relu\ndense 4 sigmoid", "binary_crossentropy", inp="4",
                 train='    data csv("pixels.csv")\n    target input\n    batch all')
    splits = prepare(_program(tmp_path, text))
    np.testing.assert_allclose(splits.train.y, splits.train.x)
    (tmp_path / "pixels.csv").write_text("p1,p2,p3,p4\n" + "\n".join(",".join(f"{16 * v:.4f}" for v in r) for r in x) + "\n")
    [d] = _error(lambda: prepare(_program(tmp_path, text))).diagnostics
    assert d.code == "E403" and "[0, 1]" in d.message


def test_the_conv_autoencoder_beats_its_baseline_by_what_its_comment_says():
    """specs/conv_autoencoder.nn claims validation MSE < 7 (its EXPECTED row trains it),
    against 18.6 for the mean training image: measured here on the same split."""
    pytest.importorskip("sklearn")
    program = nnspec.check_text((Path(__file__).parent.parent / "specs" / "conv_autoencoder.nn").read_text(),
                                filename=str(Path(__file__).parent.parent / "specs" / "conv_autoencoder.nn"))
    splits = prepare(program)
    baseline = float(((splits.val.y - splits.train.y.mean(axis=0)) ** 2).mean())
    assert 18.5 < baseline < 18.7
    text = (Path(__file__).parent.parent / "specs" / "conv_autoencoder.nn").read_text()
    assert "below 7" in text and "18.6" in text


def test_predict_prints_every_label_and_every_output_element(tmp_path, capsys, monkeypatch):
    from nnspec.cli import main
    monkeypatch.setenv("NO_COLOR", "1")
    _tags_csv(tmp_path, n=40)
    (tmp_path / "tags.nn").write_text(_spec("dense 3 sigmoid", "binary_crossentropy", inp="3", train=(
        '    data csv("tags.csv", target=["red", "round", "sweet"])\n    epochs 1')))
    (tmp_path / "in.csv").write_text("a,b,c\n5,5,5\n-5,-5,-5\n")
    x = RNG.uniform(size=(16, 2, 2, 1)).astype(np.float32)
    np.savez(tmp_path / "images.npz", x=x)
    (tmp_path / "ae.nn").write_text(_spec("conv2d 1 1 sigmoid", "binary_crossentropy", inp="2, 2, 1", train=(
        '    data npz("images.npz")\n    target input\n    batch 8\n    epochs 1')))
    (tmp_path / "pixels.csv").write_text("p1,p2,p3,p4\n0.1,0.2,0.3,0.4\n")
    outputs = []
    for spec, run, given in (("tags.nn", "r1", "in.csv"), ("ae.nn", "r2", "pixels.csv")):
        assert main(["train", str(tmp_path / spec), "--out", str(tmp_path / run)]) == 0
        capsys.readouterr()
        assert main(["predict", str(tmp_path / spec), "--run", str(tmp_path / run), "--input", str(tmp_path / given)]) == 0
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        outputs.append(out.splitlines())
    tags, pixels = outputs
    assert tags[0] == "y0,y1,y2,labels" and len(tags) == 3
    for row in tags[1:]:  # the labels column names the labels whose probability is > 0.5
        *probs, on = row.split(",")
        assert on.split() == [n for n, p in zip(("red", "round", "sweet"), probs) if float(p) > 0.5]
    # an autoencoder's outputs, one column per element, and no classes
    assert pixels[0] == "y0_0_0,y0_1_0,y1_0_0,y1_1_0" and len(pixels) == 2
    assert all(0 < float(v) < 1 for v in pixels[1].split(","))
