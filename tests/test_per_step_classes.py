"""`categorical_crossentropy` with a class at every step: an output (steps, classes), class
targets (examples, steps) or one-hot (examples, steps, classes) from an `.npz` file or the
built-in `running_max`; the loss and accuracy averaged over the steps, as Keras's and
PyTorch's (a loss per step, then the mean); and the checker's and the reader's errors."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import nnspec
from nnspec.diagnostics import NNSpecError
from nnspec.nn import loss_fn, metric_fn

from cli_helpers import run_cli

MODEL = """
model m {
    input x[STEPS, 3]
    lstm 8 sequences
    out: dense CLASSES ACT per_step
}

loss categorical_crossentropy LOSS
optimizer adam lr=0.02
"""


def spec(train: str = "", steps: int = 4, classes: int = 5, act: str = "softmax", loss: str = "") -> str:
    text = MODEL.replace("STEPS", str(steps)).replace("CLASSES", str(classes)).replace("ACT", act)
    text = text.replace(" LOSS", f" {loss}" if loss else "")
    return text + (f"\ntrain {{\n{train}\n}}\n" if train else "")


def codes(text: str) -> list[str]:
    try:
        nnspec.check_text(text)
    except NNSpecError as exc:
        return [d.code for d in exc.diagnostics if d.is_error]
    return []


# ---------------------------------------------------------------------------- the loss

@pytest.mark.parametrize("from_logits", [False, True])
def test_the_loss_is_the_mean_over_steps_of_each_steps_cross_entropy(from_logits):
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(6, 4, 5)).astype(np.float32)
    probs = np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)
    y = rng.integers(0, 5, (6, 4))
    want = -np.log(np.take_along_axis(probs, y[..., None], -1)[..., 0]).mean(axis=1)
    pred = jnp.asarray(scores if from_logits else probs)
    index = loss_fn("categorical_crossentropy", {"from_logits": from_logits, "labels": "index"}, (4, 5))
    onehot = loss_fn("categorical_crossentropy", {"from_logits": from_logits, "labels": "onehot"}, (4, 5))
    np.testing.assert_allclose(np.asarray(index(pred, jnp.asarray(y))), want, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(onehot(pred, jnp.asarray(np.eye(5)[y]))), want, rtol=1e-5)
    accuracy = metric_fn("accuracy", "categorical_crossentropy", {"from_logits": from_logits, "labels": "index"}, (4, 5))
    np.testing.assert_allclose(np.asarray(accuracy(pred, jnp.asarray(y))), (scores.argmax(-1) == y).mean(axis=1))


def test_a_flat_output_keeps_its_loss():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(3), size=5).astype(np.float32)
    y = rng.integers(0, 3, 5)
    fn = loss_fn("categorical_crossentropy", {"from_logits": False, "labels": "index"}, (3,))
    np.testing.assert_allclose(np.asarray(fn(jnp.asarray(probs), jnp.asarray(y))), -np.log(probs[np.arange(5), y]), rtol=1e-5)


# ------------------------------------------------------------------------------ the data

def _npz(tmp_path, y, n=64, steps=4):
    x = np.random.default_rng(2).normal(size=(n, steps, 3)).astype(np.float32)
    np.savez(tmp_path / "seq.npz", x=x, y=y)
    return str(tmp_path / "seq.npz")


def test_index_and_one_hot_targets_train_alike(tmp_path):
    y = np.random.default_rng(3).integers(0, 5, (64, 4))
    np.savez(tmp_path / "index.npz", x=np.random.default_rng(2).normal(size=(64, 4, 3)).astype(np.float32), y=y)
    np.savez(tmp_path / "onehot.npz", x=np.load(tmp_path / "index.npz")["x"], y=np.eye(5)[y])
    train = '    data npz("PATH")\n    batch 16\n    epochs 3\n    metrics accuracy'
    a = nnspec.train(spec(train.replace("PATH", str(tmp_path / "index.npz"))))
    b = nnspec.train(spec(train.replace("PATH", str(tmp_path / "onehot.npz"))))
    c = nnspec.train(spec(train.replace("PATH", str(tmp_path / "index.npz")), loss="labels=onehot"))
    assert [r["loss"] for r in a.history] == pytest.approx([r["loss"] for r in b.history], rel=1e-6)
    assert [r["loss"] for r in a.history] == pytest.approx([r["loss"] for r in c.history], rel=1e-6)
    assert 0 <= a.history[-1]["accuracy"] <= 1


@pytest.mark.parametrize("y,message", [
    (np.zeros((64,), int) + np.arange(64) % 5, "has shape (64,), but the model gives a class at each of (4) positions"),
    (np.arange(64 * 3).reshape(64, 3) % 5, "has shape (64, 3), but the model gives a class at each of (4) positions"),
    (np.full((64, 4), 0.5), "expected a class index (0, 1, 2, …), found `0.5` at index (0, 0)"),
])
def test_targets_of_the_wrong_shape_or_kind_are_refused_where_they_are(tmp_path, y, message):
    text = spec(f'    data npz("{_npz(tmp_path, y)}")\n    epochs 1')
    with pytest.raises(NNSpecError) as exc:
        nnspec.train(text)
    (diag,) = [d for d in exc.value.diagnostics if d.is_error]
    assert diag.code == "E401" and message in diag.message, diag.message


def test_a_class_beyond_the_outputs_is_refused(tmp_path):
    y = np.arange(64 * 4).reshape(64, 4) % 7
    with pytest.raises(NNSpecError) as exc:
        nnspec.train(spec(f'    data npz("{_npz(tmp_path, y)}")\n    epochs 1'))
    (diag,) = [d for d in exc.value.diagnostics if d.is_error]
    assert diag.code == "E403" and "a label 6, but the model has only 5 output units" in diag.message


# --------------------------------------------------------------------------- the checker

def test_a_class_per_step_checks_against_the_data_it_reads():
    assert codes(spec()) == []  # no data yet: a file may have a class per step
    assert codes(spec('    data npz("seq.npz")')) == []
    assert codes(spec('    data builtin("blobs")')) == ["E304"]  # one class per example
    assert codes(spec('    data csv("seq.csv", target="label")')) == ["E304"]
    assert codes(spec(act="sigmoid")) == ["E302"]  # still a distribution at every step
    assert codes(spec(classes=1)) == ["E301"]


def test_the_running_max_dataset_needs_its_shape():
    rm = '    data builtin("running_max", steps=4, vocab=5)'
    ok = ("model m {\n    input tokens[4] int vocab=5\n    embedding 8\n    lstm 8 sequences\n"
          "    dense 5 softmax per_step\n}\nloss categorical_crossentropy\noptimizer adam\n"
          f"train {{\n{rm}\n}}\n")
    assert codes(ok) == []
    with pytest.raises(NNSpecError) as exc:
        nnspec.check_text(ok.replace("lstm 8 sequences", "lstm 8").replace(" per_step", ""))
    (diag,) = exc.value.diagnostics
    assert diag.code == "E311" and diag.message == (
        "dataset `running_max` has one of 5 classes at each of 4 steps, but the model's output has shape (5,)")
    assert codes(ok.replace("dense 5", "dense 4")) == ["E311"]


def test_predict_gives_the_class_of_every_step(tmp_path):
    text = ("model m {\n    input tokens[5] int vocab=6\n    embedding 8\n    lstm 8 sequences\n"
            "    dense 6 softmax per_step\n}\nloss categorical_crossentropy\noptimizer adam lr=0.02\n"
            'train {\n    data builtin("running_max", n=200, steps=5, vocab=6)\n    epochs 2\n}\n')
    (tmp_path / "rm.nn").write_text(text)
    rows = np.random.default_rng(0).integers(1, 6, (3, 5))
    (tmp_path / "in.csv").write_text("x1,x2,x3,x4,x5\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    assert run_cli("train", tmp_path / "rm.nn", "--out", tmp_path / "run", "-q")[0] == 0
    code, out, err = run_cli("predict", tmp_path / "rm.nn", "--run", tmp_path / "run", "--input", tmp_path / "in.csv")
    assert code == 0, err
    header, *lines = out.splitlines()
    assert header.split(",")[-1] == "classes" and len(header.split(",")) == 5 * 6 + 1
    for line in lines:
        cells = line.split(",")
        probs = np.array(cells[:-1], float).reshape(5, 6)
        np.testing.assert_allclose(probs.sum(1), 1, atol=1e-4)
        assert cells[-1].split() == [str(i) for i in probs.argmax(1)]


def test_running_max_is_learned_at_every_step():
    text = """
model running_max {
    input tokens[10] int vocab=8
    embedding 16
    lstm 32 sequences
    dense 8 softmax per_step
}

loss categorical_crossentropy
optimizer adam lr=0.01

train {
    data builtin("running_max", n=1000)
    split val=0.2
    batch 64
    epochs 10
    metrics accuracy
}
"""
    result = nnspec.train(text)
    assert result.history[-1]["val_accuracy"] > 0.95
    from nnspec.data import GENERATORS
    x, y = GENERATORS["running_max"](np.random.default_rng(0), n=5, steps=6, vocab=9)
    assert (y == np.maximum.accumulate(x, axis=1)).all() and x.min() >= 1 and x.max() <= 8
