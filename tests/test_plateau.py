"""`lr=reduce_on_plateau(...)`: Keras's ReduceLROnPlateau, epoch by epoch, resumed exactly,
one rule per model of a sweep, and the history records the rate of every epoch."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import nnspec
from nnspec.diagnostics import NNSpecError
from nnspec.fit import fit
from nnspec.sweep_fit import fit_sweep

SPEC = """
model moons {
    input x[2]
    dense 16 relu
    dense 1 sigmoid
}
loss binary_crossentropy
optimizer adam lr=LR
train {
    data builtin("moons", n=400)
    split val=0.25
    batch 32
    epochs EPOCHS
    metrics accuracy
    seed 3
}
"""


def spec(lr: str, epochs: int = 24) -> str:
    return SPEC.replace("LR", lr).replace("EPOCHS", str(epochs))


def keras_rates(values, *, initial, factor, patience, min_lr=0.0, min_delta=1e-4, cooldown=0, mode="min"):
    """The rate of each epoch as Keras 3's ReduceLROnPlateau.on_epoch_end sets it (its code,
    transcribed), from the monitored values of the epochs before it."""
    op = (lambda a, b: np.less(a, b - min_delta)) if mode == "min" else (lambda a, b: np.greater(a, b + min_delta))
    best = np.inf if mode == "min" else -np.inf
    wait = cooldown_counter = 0
    lr = np.float32(initial)
    rates = []
    for current in values:
        rates.append(float(lr))
        if cooldown_counter > 0:
            cooldown_counter -= 1
            wait = 0
        if op(current, best):
            best = current
            wait = 0
        elif not cooldown_counter > 0:
            wait += 1
            if wait >= patience:
                if lr > np.float32(min_lr):
                    lr = np.float32(max(lr * np.float32(factor), min_lr))
                    cooldown_counter = cooldown
                    wait = 0
    return rates


@pytest.mark.parametrize("rule,kw", [
    ("initial=0.05, factor=0.5, patience=2, min_lr=0.001", dict(initial=0.05, factor=0.5, patience=2, min_lr=0.001)),
    ("initial=0.05, factor=0.3, patience=1, cooldown=2, min_delta=0.001",
     dict(initial=0.05, factor=0.3, patience=1, cooldown=2, min_delta=0.001)),
    ("initial=0.05, factor=0.5, patience=2, monitor=val_accuracy",
     dict(initial=0.05, factor=0.5, patience=2, mode="max")),
])
def test_the_rate_follows_keras_rule_on_the_monitored_values(rule, kw):
    result = nnspec.train(spec(f"reduce_on_plateau({rule})"))
    monitor = "val_accuracy" if kw.get("mode") == "max" else "val_loss"
    values = [np.float32(r[monitor]) for r in result.history]
    rates = [r["lr"] for r in result.history]
    assert rates == pytest.approx(keras_rates(values, **kw), rel=1e-6)
    assert len(set(rates)) > 2, "the test must see the rate lowered more than once"


def test_the_rate_is_the_one_the_optimizer_uses():
    """An epoch at rate r takes the steps a constant rate r would take from the same state:
    two runs that agree until the first reduction, and differ after it."""
    plateau = nnspec.train(spec("reduce_on_plateau(initial=0.05, factor=0.1, patience=1)"))
    constant = nnspec.train(spec("0.05"))
    first = next(i for i, r in enumerate(plateau.history) if r["lr"] < 0.05)
    assert first >= 2
    assert [r["loss"] for r in plateau.history[:first]] == [r["loss"] for r in constant.history[:first]]
    assert plateau.history[first]["loss"] != constant.history[first]["loss"]


def test_resume_is_exact(tmp_path):
    program = nnspec.check_text(spec("reduce_on_plateau(initial=0.05, factor=0.5, patience=1, cooldown=1)", 12))
    whole = fit(program, out=tmp_path / "whole")
    fit(program, out=tmp_path / "part", stop_after=5)
    resumed = fit(program, out=tmp_path / "part", resume=True)
    assert [r["lr"] for r in resumed.history] == [r["lr"] for r in whole.history]
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in whole.history]
    assert len(set(r["lr"] for r in whole.history[5:])) > 1, "a reduction must happen after the resume"
    for a, b in zip(jax.tree_util.tree_leaves(whole.params), jax.tree_util.tree_leaves(resumed.params)):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_each_model_of_a_sweep_has_its_own_plateau():
    program = nnspec.check_text(spec("reduce_on_plateau(initial=sweep(0.003, 0.05), factor=0.5, patience=1)", 10))
    result = fit_sweep(program)
    assert len(result.members) == 2
    rates = []
    for member in result.members:
        alone = fit(member.program)
        assert [r["lr"] for r in member.history] == [r["lr"] for r in alone.history]
        assert [r["loss"] for r in member.history] == pytest.approx([r["loss"] for r in alone.history], rel=1e-5)
        rates.append([r["lr"] for r in member.history])
    assert rates[0][0] == pytest.approx(0.003) and rates[1][0] == pytest.approx(0.05)
    assert [r / rates[0][0] for r in rates[0]] != [r / rates[1][0] for r in rates[1]]


def test_inverse_time_decay_is_keras_decay():
    """`inverse_time_decay(initial, rate)` is Keras 2's `decay=`: lr / (1 + d·t) at step t
    (from 0); with `power` it is Caffe's `inv`: lr·(1 + γ·t)^−p."""
    from nnspec.lower import _lr_at
    from nnspec.checked import Fn
    fn = Fn("inverse_time_decay", {"initial": 0.1, "rate": 0.01, "power": 0.75, "every": 1})
    steps = np.arange(0, 1000, 37)
    got = [float(_lr_at(np.int32(t), fn, {"initial": np.float32(0.1)}, 0)) for t in steps]
    np.testing.assert_allclose(got, 0.1 * (1 + 0.01 * steps) ** -0.75, rtol=1e-6)
    result = nnspec.train(spec("inverse_time_decay(initial=0.05, rate=0.5)", 2))
    assert result.history[-1]["loss"] < result.history[0]["loss"] * 1.5


@pytest.mark.parametrize("lr,drop_split,code,under", [
    ("reduce_on_plateau(initial=0.01, monitor=val_auc)", False, "E306", "val_auc"),
    ("reduce_on_plateau(initial=0.01)", True, "E307", "reduce_on_plateau(initial=0.01)"),
])
def test_a_monitor_that_is_not_measured_is_refused_where_it_is_written(lr, drop_split, code, under):
    text = spec(lr)
    if drop_split:
        text = text.replace("    split val=0.25\n", "")
    with pytest.raises(NNSpecError) as exc:
        nnspec.check_text(text)
    errors = [d for d in exc.value.diagnostics if d.is_error]
    assert [d.code for d in errors] == [code]
    assert "the learning rate's plateau rule monitors" in errors[0].message
    span = errors[0].primary_span
    assert text[span.start:span.end] == under
