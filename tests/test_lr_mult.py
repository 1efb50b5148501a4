"""Per-array learning-rate multipliers (`lr_mult=`, `bias_lr_mult=`, Caffe's `param { lr_mult }`):
nnspec/lower.py's `lr_multipliers` and `_multiplied`, checked against steps computed by hand."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import nnspec
from nnspec.fit import fit
from nnspec.lower import lower
from nnspec.summary import summary
from nnspec.sweep_fit import fit_sweep

SPEC = """model m {{
    input x[4]
    h: dense 3 {H}
    out: dense 1 {OUT}
}}
loss mse
optimizer {OPT}
{REG}
"""


def _model(opt: str, h: str = "lr_mult=0.5 bias_lr_mult=2", out: str = "bias_lr_mult=3", reg: str = ""):
    return lower(nnspec.check_text(SPEC.format(H=h, OUT=out, OPT=opt, REG=reg)))


def _data(n: int = 8):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 4)).astype(np.float32), rng.normal(size=(n, 1)).astype(np.float32)


def _grads(p: dict, x: np.ndarray, y: np.ndarray, l2: float) -> dict:
    """∇ of mean((x·W1 + b1)·W2 + b2 − y)² + l2·Σ(every array²), by hand."""
    h = x @ p["h"]["w"] + p["h"]["b"]
    d = 2 * (h @ p["out"]["w"] + p["out"]["b"] - y) / len(x)
    dh = d @ p["out"]["w"].T
    g = {"out": {"w": h.T @ d, "b": d.sum(0)}, "h": {"w": x.T @ dh, "b": dh.sum(0)}}
    return {layer: {n: g[layer][n] + 2 * l2 * p[layer][n] for n in g[layer]} for layer in g}


MULTS = {"h": {"w": 0.5, "b": 2.0}, "out": {"w": 1.0, "b": 3.0}}


INV = "lr=inverse_time_decay(initial=0.1, rate=0.5, power=0.75) momentum=0.9"


@pytest.mark.parametrize("opt, mu, schedule, inside", [
    ("sgd lr=0.1", 0.0, None, False),
    ("momentum lr=0.1 momentum=0.9", 0.9, None, False),
    # Caffe's `inv` policy: η_t = 0.1·(1 + 0.5·t)^−0.75; the rate outside the velocity (PyTorch's) ...
    (f"momentum {INV}", 0.9, (0.5, 0.75), False),
    # ... and inside it, as Caffe's SGDSolver has it: v ← μ·v + η_t·m·g;  w ← w − v
    (f"momentum {INV} lr_in_velocity=true", 0.9, (0.5, 0.75), True),
])
def test_each_array_steps_at_its_multiple_of_the_rate(opt, mu, schedule, inside):
    model = _model(opt, reg="regularize l2=0.01 include_bias=true")
    x, y = _data()
    state = model.init_state(jax.random.key(0))
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), state.params)
    v = {layer: {n: np.zeros_like(a) for n, a in ps.items()} for layer, ps in p.items()}
    step = jax.jit(lambda s: model.step(s, x, y, key=jax.random.key(1))[0])
    for t in range(4):
        state = step(state)
        rate = 0.1 if schedule is None else 0.1 * (1 + schedule[0] * t) ** -schedule[1]
        g = _grads(p, x, y, 0.01)
        for layer in p:
            for n in p[layer]:
                if inside:
                    v[layer][n] = mu * v[layer][n] + rate * MULTS[layer][n] * g[layer][n]
                    p[layer][n] = p[layer][n] - v[layer][n]
                else:
                    v[layer][n] = mu * v[layer][n] + g[layer][n]
                    p[layer][n] = p[layer][n] - rate * MULTS[layer][n] * v[layer][n]
                np.testing.assert_allclose(np.asarray(state.params[layer][n]), p[layer][n], rtol=2e-5, atol=1e-6,
                                           err_msg=f"step {t}: {layer}.{n}")


@pytest.mark.parametrize("opt", ["sgd lr=0.1", "nesterov lr=0.1", "adagrad lr=0.1", "adadelta lr=1.0",
                                 "adam lr=0.01 clip_norm=0.5", "adamw lr=0.01 weight_decay=0.1",
                                 "rmsprop lr=0.01 momentum=0.5 clip_value=0.1",
                                 "adam lr=cosine_decay(initial=0.01, steps=10) warmup=1"])
def test_a_multiplier_scales_the_whole_step_of_every_optimizer(opt):
    """The same gradients, the same state: the multiplied arrays' steps are exactly that many
    times the others'; clipping (before) and decoupled decay (inside) included."""
    plain, multiplied = _model(opt, h="", out=""), _model(opt)
    x, y = _data()
    a = plain.init_state(jax.random.key(0))
    b = multiplied.init_state(jax.random.key(0))
    start = jax.tree_util.tree_map(np.asarray, a.params)
    for i in range(2):
        a = plain.step(a, x, y, key=jax.random.key(i))[0]
        b = multiplied.step(b, x, y, key=jax.random.key(i))[0]
        if i == 0:  # after one step from the same start, the steps differ by the multipliers alone
            for layer in start:
                for n in start[layer]:
                    np.testing.assert_allclose(np.asarray(b.params[layer][n]) - start[layer][n],
                                               MULTS[layer][n] * (np.asarray(a.params[layer][n]) - start[layer][n]),
                                               rtol=1e-4, atol=1e-7, err_msg=f"{layer}.{n}")


def test_multipliers_and_frozen_layers_together():
    model = _model("adam lr=0.01", h="trainable=false", out="lr_mult=2 bias_lr_mult=0")
    x, y = _data()
    state = model.init_state(jax.random.key(0))
    start = jax.tree_util.tree_map(np.asarray, state.params)
    state = model.step(state, x, y, key=jax.random.key(1))[0]
    assert np.array_equal(np.asarray(state.params["h"]["w"]), start["h"]["w"])  # frozen
    assert np.array_equal(np.asarray(state.params["out"]["b"]), start["out"]["b"])  # bias_lr_mult=0
    # adam's first step is η·sign(g) (nearly): 2η for lr_mult=2
    np.testing.assert_allclose(np.abs(np.asarray(state.params["out"]["w"]) - start["out"]["w"]), 0.02, rtol=1e-3)


def test_the_summary_shows_the_multipliers():
    text = summary(_model("sgd", h="lr_mult=0.5 bias_lr_mult=2", out="lr_mult=3").program)
    assert "h (dense, lr ×0.5, bias lr ×2)" in text
    assert "out (dense, lr ×3)" in text
    assert "lr ×" not in summary(_model("sgd", h="", out="bias_lr_mult=1").program)  # 1 is no multiplier
    assert "out (dense, bias lr ×2)" in summary(_model("sgd", h="", out="bias_lr_mult=2").program)


def test_a_sweep_over_a_multiplier_trains_each_value_as_alone():
    text = """model m {
    input x[2]
    h: dense 8 relu bias_lr_mult=sweep(1, 4)
    dense 1 sigmoid
}
loss binary_crossentropy
optimizer momentum lr=0.05
train {
    data builtin("moons", n=200)
    batch 32
    epochs 2
    seed 0
}
"""
    result = fit_sweep(nnspec.check_text(text))
    assert [m.program.model.layers[0].lr_mult("b") for m in result.members] == [1.0, 4.0]
    biases = [np.asarray(m.params["h"]["b"]) for m in result.members]
    assert not np.allclose(biases[0], biases[1])
    for member in result.members:
        alone = fit(member.program)
        np.testing.assert_allclose(np.asarray(alone.params["h"]["b"]), np.asarray(member.params["h"]["b"]),
                                   rtol=1e-5, atol=1e-6)


def test_optimizer_state_of_the_other_momentum_form_is_refused(tmp_path):
    """`lr_in_velocity=true` keeps η·v in the arrays where the default keeps v: the same
    shapes, other numbers, so going on from a run of the other form is refused (E405);
    a multiplier leaves the state as it is, so going on with one is allowed."""
    from nnspec.diagnostics import NNSpecError
    base = """model m {
    input x[2]
    h: dense 4 relu H
    out: dense 1 sigmoid
}
loss binary_crossentropy
optimizer momentum OPT
train {
    data builtin("moons", n=100)
    epochs 1
START}
"""
    (tmp_path / "a.nn").write_text(base.replace("H", "").replace("OPT", "").replace("START", ""))
    nnspec.train(nnspec.check_text((tmp_path / "a.nn").read_text(), filename=str(tmp_path / "a.nn")),
                 out=tmp_path / "a")
    start = '    start_from "a" optimizer=true\n'
    other = base.replace("H", "").replace("OPT", "lr_in_velocity=true").replace("START", start)
    (tmp_path / "c.nn").write_text(other)
    with pytest.raises(NNSpecError) as err:
        nnspec.train(nnspec.check_text(other, filename=str(tmp_path / "c.nn")), out=tmp_path / "c")
    assert err.value.diagnostics[0].code == "E405"
    same = base.replace("H", "bias_lr_mult=2").replace("OPT", "").replace("START", start)
    (tmp_path / "b.nn").write_text(same)
    nnspec.train(nnspec.check_text(same, filename=str(tmp_path / "b.nn")), out=tmp_path / "b")
