"""`class_weight=balanced`: n / (classes · count) counted on the training split, as
scikit-learn's `compute_class_weight("balanced")`, stored with the run."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

import nnspec
from nnspec.checkpoint import read_meta
from nnspec.cli import main

SPEC = """
model m {
    input x[2]
    h: dense 8 relu
    out: OUT
}
loss LOSS
optimizer adam lr=0.02
train {
    data npz("given.npz")
    split val=0.25
    epochs 3
    seed 4
    metrics accuracy
}
"""


def _data(k: int, n: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    p = np.array([0.7, 0.2, 0.1][:k]) / np.sum([0.7, 0.2, 0.1][:k])
    y = rng.choice(k, size=n, p=p)
    return x + y[:, None].astype(np.float32), y


def _spec(loss: str, out: str) -> str:
    return SPEC.replace("LOSS", loss).replace("OUT", out)


@pytest.mark.parametrize("k, out, loss", [
    (3, "dense 3 softmax", "categorical_crossentropy"),
    (2, "dense 1 sigmoid", "binary_crossentropy"),
])
def test_balanced_weights_are_scikit_learns_on_the_training_split_and_train_as_written(tmp_path, k, out, loss):
    from sklearn.utils.class_weight import compute_class_weight
    x, y = _data(k)
    result = nnspec.train(_spec(f"{loss} class_weight=balanced", out), data=(x, y), out=tmp_path / "run")
    train_y = y[np.asarray(result.splits.rows.train)]
    want = compute_class_weight("balanced", classes=np.arange(k), y=train_y)
    got = result.splits.class_weights[""]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # the same run as the weights written out
    written = nnspec.train(_spec(f"{loss} class_weight=[{', '.join(repr(w) for w in got)}]", out), data=(x, y))
    for a, b in zip(result.history, written.history):
        assert a["loss"] == b["loss"] and a["val_loss"] == b["val_loss"]
    # stored with the run, and eval's loss is the weighted one the run reported
    meta = read_meta(tmp_path / "run" / "checkpoint.npz")
    assert meta["class_weights"] == {"": list(got)}
    assert nnspec.load(tmp_path / "run").evaluate(data=(x, y))["loss"] == pytest.approx(
        result.kept["metrics"]["val"]["loss"], rel=1e-5)


def test_a_class_with_no_training_example_is_refused_at_the_loss(tmp_path):
    x, y = _data(3)
    with pytest.raises(nnspec.NNSpecError) as info:
        nnspec.train(_spec("categorical_crossentropy class_weight=balanced", "dense 4 softmax"), data=(x, y))
    (d,) = info.value.diagnostics
    assert d.code == "E401" and "class 3 has no example" in d.message and d.primary_span is not None


def test_soft_targets_have_no_classes_to_count(tmp_path):
    x, _ = _data(2)
    y = np.random.default_rng(1).uniform(size=(len(x), 1)).astype(np.float32)
    with pytest.raises(nnspec.NNSpecError, match="values between 0 and 1"):
        nnspec.train(_spec("binary_crossentropy class_weight=balanced", "dense 1 sigmoid"), data=(x, y))


def test_compile_shows_the_step_with_a_note(tmp_path):
    (tmp_path / "m.nn").write_text(_spec("categorical_crossentropy class_weight=balanced", "dense 3 softmax"))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["compile", str(tmp_path / "m.nn"), "--emit", "jaxpr"])
    assert code == 0 and "counted on the training data" in err.getvalue() and "Traceback" not in err.getvalue()
    assert out.getvalue().strip()


def test_the_ir_and_fmt_keep_the_word(tmp_path):
    text = _spec("categorical_crossentropy class_weight=balanced", "dense 3 softmax")
    program = nnspec.check_text(text)
    assert program.loss.params["class_weight"] == "balanced"
    from nnspec.format import format_source
    assert "class_weight=balanced" in format_source(text)
    assert json.loads(nnspec.ir.to_json(program.spec))  # serializable
