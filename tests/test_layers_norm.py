"""Batch normalization: the layer against a NumPy reference (batch statistics in training,
running statistics when predicting, Keras's update rule); the statistics weighted so an
epoch's padding never shifts them; kept out of every optimizer, penalty and decay; and,
as model state, saved, resumed exactly and stacked per model in a sweep."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnspec
from nnspec.fit import fit
from nnspec.lower import Model, lower, role
from nnspec.sweep_fit import fit_sweep

KEY = jax.random.key(0)
RNG = np.random.default_rng(0)


def layer_model(in_shape, line, *sections) -> Model:
    text = f"model m {{\n    input x[{', '.join(map(str, in_shape))}]\n    l: {line}\n}}\n" + "".join(s + "\n" for s in sections)
    return lower(nnspec.check_text(text))


def reference(x, gamma, beta, mean, var, eps):
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


@pytest.mark.parametrize("in_shape", [(5,), (4, 3), (3, 3, 2)])
def test_training_uses_the_batch_statistics_and_prediction_the_running_ones(in_shape):
    model = layer_model(in_shape, "batch_norm momentum=0.9 epsilon=1e-3")
    c = in_shape[-1]
    params = {"l": {"scale": jnp.asarray(RNG.normal(size=c), jnp.float32),
                    "offset": jnp.asarray(RNG.normal(size=c), jnp.float32),
                    "moving_mean": jnp.asarray(RNG.normal(size=c), jnp.float32),
                    "moving_var": jnp.asarray(RNG.uniform(0.5, 2, size=c), jnp.float32)}}
    x = RNG.normal(2.0, 3.0, size=(8, *in_shape)).astype(np.float32)
    p = {k: np.asarray(v, np.float64) for k, v in params["l"].items()}
    axes = tuple(range(x.ndim - 1))
    mean, var = x.mean(axis=axes, dtype=np.float64), x.var(axis=axes, dtype=np.float64)
    impl = model.layers[0]
    got, new = impl.apply_stateful(params["l"], jnp.asarray(x), {}, key=None, train=True)
    np.testing.assert_allclose(got, reference(x, p["scale"], p["offset"], mean, var, 1e-3), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(new["moving_mean"], 0.9 * p["moving_mean"] + 0.1 * mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(new["moving_var"], 0.9 * p["moving_var"] + 0.1 * var, rtol=1e-5, atol=1e-5)
    pred = model.apply(params, jnp.asarray(x))  # not training: the running statistics, nothing updated
    np.testing.assert_allclose(pred, reference(x, p["scale"], p["offset"], p["moving_mean"], p["moving_var"], 1e-3),
                               rtol=1e-4, atol=1e-4)


def test_padding_examples_do_not_count_in_the_statistics():
    model = layer_model((3,), "batch_norm")
    params = model.init(KEY)
    x = RNG.normal(size=(6, 3)).astype(np.float32)
    padded = np.concatenate([x, x[:2]])  # as an epoch pads its last batch: repeats of weight 0
    w = jnp.asarray([1.0] * 6 + [0.0] * 2)
    impl = model.layers[0]
    y_pad, new_pad = impl.apply_stateful(params["l"], jnp.asarray(padded), {}, key=None, train=True, weights=w)
    y, new = impl.apply_stateful(params["l"], jnp.asarray(x), {}, key=None, train=True)
    np.testing.assert_allclose(y_pad[:6], y, rtol=1e-5, atol=1e-5)
    for k in new:
        np.testing.assert_allclose(new_pad[k], new[k], rtol=1e-5, atol=1e-6)


def test_no_optimizer_penalty_or_decay_touches_the_running_statistics():
    model = layer_model((4,), "batch_norm momentum=0.5", "loss mse", "optimizer adamw lr=1.0 weight_decay=0.5",
                        "regularize l2=10 include_bias=true")
    assert [role(n) for n in ("w", "b", "b_rec", "scale", "ln1_offset", "moving_mean")] == [
        "weight", "bias", "bias", "bias", "bias", "state"]
    state = model.init_state(KEY)
    x = jnp.asarray(RNG.normal(1.0, 2.0, size=(16, 4)), jnp.float32)
    y = jnp.asarray(RNG.normal(size=(16, 4)), jnp.float32)
    for _ in range(3):
        before = {k: np.asarray(v) for k, v in state.params["l"].items()}
        state, _ = model.step(state, x, y, key=KEY)
        expect_mean = 0.5 * before["moving_mean"] + 0.5 * np.asarray(x).mean(0)
        expect_var = 0.5 * before["moving_var"] + 0.5 * np.asarray(x).var(0)
        np.testing.assert_allclose(state.params["l"]["moving_mean"], expect_mean, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(state.params["l"]["moving_var"], expect_var, rtol=1e-5, atol=1e-5)
    # the penalty is on neither the statistics nor (without include_bias) on γ and β
    plain = layer_model((4,), "batch_norm", "loss mse", "optimizer sgd lr=0.1", "regularize l2=10")
    p = plain.init(KEY)
    assert float(plain.penalty(p)) == 0.0


BN_SPEC = """
model moons {
    input x[2]
    dense 16
    batch_norm
    relu
    dense 1 sigmoid
}
loss binary_crossentropy
optimizer OPT
train {
    data builtin("moons", n=300)
    split val=0.2
    batch 32
    epochs 6
    metrics accuracy
}
"""


def test_a_batch_norm_model_trains_and_its_statistics_are_saved_and_resumed_exactly(tmp_path):
    program = nnspec.check_text(BN_SPEC.replace("OPT", "adam lr=0.02"))
    whole = fit(program, out=tmp_path / "whole")
    losses = [r["loss"] for r in whole.history]
    assert losses[-1] < losses[0] and whole.history[-1]["val_accuracy"] > 0.8
    stats = whole.params["batch_norm_1"]
    assert not np.allclose(stats["moving_mean"], 0) and not np.allclose(stats["moving_var"], 1)
    part = tmp_path / "part"
    fit(program, out=part, stop_after=2)
    resumed = fit(program, out=part, resume=True)
    assert [r["loss"] for r in resumed.history] == losses
    for a, b in zip(jax.tree_util.tree_leaves(whole.params), jax.tree_util.tree_leaves(resumed.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # eval and predict read the saved statistics: the kept weights' validation accuracy again
    from nnspec.infer import evaluate, load_trained
    model, params, _, _ = load_trained(program, tmp_path / "whole")
    again = evaluate(model, params, whole.splits.val, program)
    assert again["accuracy"] == pytest.approx(whole.kept["metrics"]["val"]["accuracy"])


def test_each_model_of_a_sweep_keeps_its_own_statistics():
    program = nnspec.check_text(BN_SPEC.replace("OPT", "adam lr=sweep(0.003, 0.03)"))
    result = fit_sweep(program)
    a, b = (m.params["batch_norm_1"]["moving_mean"] for m in result.members)
    assert not np.allclose(a, b)
    for m in result.members:
        alone = fit(m.program)
        np.testing.assert_allclose(alone.params["batch_norm_1"]["moving_var"], m.params["batch_norm_1"]["moving_var"],
                                   rtol=1e-5, atol=1e-6)
