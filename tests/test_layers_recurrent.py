"""Recurrent layers: the lowered `simple_rnn`, `lstm` and `gru` against a NumPy reference
written here with plain loops over time, in Keras's equations and gate order:

    simple_rnn  h_t = g(x_t·W + h_{t-1}·U + b)
    lstm        [i, f, c̃, o] = x_t·W + h_{t-1}·U + b          (W, U, b split in 4, this order)
                c_t = σ(f)·c_{t-1} + σ(i)·g(c̃);  h_t = σ(o)·g(c_t)
    gru         [xz, xr, xh] = x_t·W + b,  [hz, hr, hh] = h_{t-1}·U + b_rec   (split in 3)
                z = σ(xz + hz), r = σ(xr + hr)
                reset_after=true:  h̃ = g(xh + r·hh)
                reset_after=false: h̃ = g(xh + (r·h_{t-1})·U_h), U_h the last third of U (no b_rec)
                h_t = z·h_{t-1} + (1 − z)·h̃

g is the activation (tanh), σ the recurrent activation (sigmoid); the state starts at 0.
A bidirectional layer runs a second cell (arrays `*_back`) over the reversed sequence;
its outputs are put back in time order, and with `sequences=false` its output is its
state after reading x_0. Then the two are concatenated, added or averaged.
Also: jit, grad and vmap, the initializers, penalties on the recurrent kernel, the
checker's errors, the `waves` dataset, and a small sequence model that learns.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnspec
from nnspec.check import check_source
from nnspec.datasets import DataSource
from nnspec.lower import lower

KEY = jax.random.key(0)
REPO = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------- the NumPy reference

def sigmoid(v: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-v))


def ref_direction(op: str, p: dict[str, np.ndarray], x: np.ndarray, *, units: int, reverse: bool,
                  reset_after: bool = True, g=np.tanh, sigma=sigmoid) -> np.ndarray:
    """One cell over one example x (steps, features): its state after every step it read,
    in the order it read them."""
    h = np.zeros(units)
    c = np.zeros(units)
    w, u = p["w"], p["u"]
    b = p.get("b", np.zeros(w.shape[1]))
    b_rec = p.get("b_rec", np.zeros(w.shape[1]))
    outs = []
    steps = range(len(x) - 1, -1, -1) if reverse else range(len(x))
    for t in steps:
        xt = x[t]
        if op == "simple_rnn":
            h = g(xt @ w + h @ u + b)
        elif op == "lstm":
            z = xt @ w + h @ u + b
            i, f, cc, o = (z[k * units:(k + 1) * units] for k in range(4))
            c = sigma(f) * c + sigma(i) * g(cc)
            h = sigma(o) * g(c)
        else:
            xw = xt @ w + b
            xz, xr, xh = (xw[k * units:(k + 1) * units] for k in range(3))
            if reset_after:
                hu = h @ u + b_rec
                hz, hr, hh = (hu[k * units:(k + 1) * units] for k in range(3))
                z, r = sigma(xz + hz), sigma(xr + hr)
                cand = g(xh + r * hh)
            else:
                z = sigma(xz + h @ u[:, :units])
                r = sigma(xr + h @ u[:, units:2 * units])
                cand = g(xh + (r * h) @ u[:, 2 * units:])
            h = z * h + (1 - z) * cand
        outs.append(h)
    return np.array(outs)


def reference(op: str, params: dict[str, np.ndarray], x: np.ndarray, *, units: int, sequences: bool = False,
              bidirectional: bool = False, merge: str = "concat", **kw) -> np.ndarray:
    fwd = ref_direction(op, params, x, units=units, reverse=False, **kw)
    out = fwd if sequences else fwd[-1]
    if not bidirectional:
        return out
    back_params = {k[:-len("_back")]: v for k, v in params.items() if k.endswith("_back")}
    bwd = ref_direction(op, back_params, x, units=units, reverse=True, **kw)
    back = bwd[::-1] if sequences else bwd[-1]  # time order; the state after reading x_0
    if merge == "concat":
        return np.concatenate([out, back], axis=-1)
    return out + back if merge == "sum" else (out + back) / 2


# ------------------------------------------------------------------------- helpers

def model_of(line: str, in_shape: tuple[int, int], extra: str = ""):
    return lower(nnspec.check_text(f"model m {{\n    input x[{in_shape[0]}, {in_shape[1]}]\n    l: {line}\n{extra}}}\n"))


def random_params(model, seed: int = 1) -> dict:
    """Every array of the model drawn anew from N(0, 0.5²): biases too, so that none is 0."""
    rng = np.random.default_rng(seed)
    shapes = jax.eval_shape(model.init, KEY)
    return jax.tree_util.tree_map(lambda s: jnp.asarray(rng.normal(0, 0.5, s.shape), jnp.float32), shapes)


def as_numpy(params: dict) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, np.float64) for k, v in params["l"].items()}


CASES = [
    # (layer as written, reference keywords)
    ("simple_rnn 4", dict(op="simple_rnn", units=4)),
    ("simple_rnn 4 sequences=true", dict(op="simple_rnn", units=4, sequences=True)),
    ("simple_rnn 3 bias=false", dict(op="simple_rnn", units=3)),
    ("simple_rnn 3 relu sequences=true", dict(op="simple_rnn", units=3, sequences=True,
                                               g=lambda v: np.maximum(v, 0))),
    ("simple_rnn 3 bidirectional=true", dict(op="simple_rnn", units=3, bidirectional=True)),
    ("lstm 4", dict(op="lstm", units=4)),
    ("lstm 4 sequences=true", dict(op="lstm", units=4, sequences=True)),
    ("lstm 3 bias=false sequences=true", dict(op="lstm", units=3, sequences=True)),
    ("lstm 3 bidirectional=true", dict(op="lstm", units=3, bidirectional=True)),
    ("lstm 3 sequences=true bidirectional=true", dict(op="lstm", units=3, sequences=True, bidirectional=True)),
    ("lstm 3 bidirectional=true merge=sum", dict(op="lstm", units=3, bidirectional=True, merge="sum")),
    ("lstm 2 sequences=true bidirectional=true merge=mean",
     dict(op="lstm", units=2, sequences=True, bidirectional=True, merge="mean")),
    ("lstm 3 relu recurrent_activation=tanh", dict(op="lstm", units=3, g=lambda v: np.maximum(v, 0), sigma=np.tanh)),
    ("gru 4", dict(op="gru", units=4)),
    ("gru 4 sequences=true", dict(op="gru", units=4, sequences=True)),
    ("gru 3 reset_after=false", dict(op="gru", units=3, reset_after=False)),
    ("gru 3 reset_after=false sequences=true bias=false", dict(op="gru", units=3, reset_after=False, sequences=True)),
    ("gru 3 bias=false", dict(op="gru", units=3)),
    ("gru 3 sequences=true bidirectional=true", dict(op="gru", units=3, sequences=True, bidirectional=True)),
    ("gru 3 bidirectional=true merge=mean reset_after=false",
     dict(op="gru", units=3, bidirectional=True, merge="mean", reset_after=False)),
]


@pytest.mark.parametrize("line,kw", CASES, ids=[c[0] for c in CASES])
def test_matches_the_numpy_reference(line: str, kw: dict) -> None:
    model = model_of(line, (5, 3))
    params = random_params(model)
    x = np.random.default_rng(2).normal(size=(4, 5, 3))
    want = np.stack([reference(params=as_numpy(params), x=xi, **kw) for xi in x])
    one = np.asarray(model.apply(params, jnp.asarray(x[0], jnp.float32)))
    np.testing.assert_allclose(one, want[0], rtol=1e-5, atol=1e-5)
    batch = np.asarray(model.apply(params, jnp.asarray(x, jnp.float32)))
    np.testing.assert_allclose(batch, want, rtol=1e-5, atol=1e-5)
    mapped = jax.vmap(lambda xi: model.apply(params, xi))(jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(np.asarray(mapped), want, rtol=1e-5, atol=1e-5)
    assert batch.shape == (4, *model.program.model.layers[0].out_shape)


def test_extra_leading_axes_are_carried_along() -> None:
    model = model_of("gru 3 sequences=true bidirectional=true", (4, 2))
    params = random_params(model)
    x = np.random.default_rng(3).normal(size=(2, 3, 4, 2))
    got = np.asarray(model.apply(params, jnp.asarray(x, jnp.float32)))
    want = np.array([[reference("gru", as_numpy(params), xij, units=3, sequences=True, bidirectional=True)
                      for xij in xi] for xi in x])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_stacked_layers_read_each_step() -> None:
    model = model_of("lstm 4 sequences=true", (6, 2), "    top: gru 3\n    out: dense 1\n")
    assert [layer.out_shape for layer in model.program.model.layers] == [(6, 4), (3,), (1,)]
    params = random_params(model)
    x = np.random.default_rng(4).normal(size=(6, 2))
    lower_seq = reference("lstm", as_numpy(params), x, units=4, sequences=True)
    top = reference("gru", {k: np.asarray(v, np.float64) for k, v in params["top"].items()}, lower_seq, units=3)
    out = top @ np.asarray(params["out"]["w"], np.float64) + np.asarray(params["out"]["b"], np.float64)
    np.testing.assert_allclose(np.asarray(model.apply(params, jnp.asarray(x, jnp.float32))), out, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ jit, grad, init

def test_jit_and_grad() -> None:
    model = lower(nnspec.check_text(
        "model m {\n    input x[5, 2]\n    h: lstm 3 bidirectional=true\n    out: dense 1\n}\nloss mse\noptimizer sgd\n"))
    params = random_params(model)
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.normal(size=(8, 5, 2)), jnp.float32)
    y = jnp.asarray(rng.normal(size=(8, 1)), jnp.float32)
    np.testing.assert_allclose(np.asarray(jax.jit(model.apply)(params, x)), np.asarray(model.apply(params, x)),
                               rtol=1e-6, atol=1e-6)
    grads = jax.jit(jax.grad(lambda p: model.loss(p, x, y)))(params)
    assert set(grads["h"]) == {"w", "u", "b", "w_back", "u_back", "b_back"}
    assert all(np.all(np.isfinite(np.asarray(g))) and np.any(np.asarray(g) != 0)
               for g in jax.tree_util.tree_leaves(grads))
    loss = jax.jit(lambda p: model.loss(p, x, y))
    eps = 1e-2
    for name, index in [("u", (1, 7)), ("w_back", (0, 2)), ("b", (4,))]:
        def moved(delta):
            p = jax.tree_util.tree_map(lambda a: a, params)
            p["h"] = dict(p["h"], **{name: p["h"][name].at[index].add(delta)})
            return float(loss(p))
        numeric = (moved(eps) - moved(-eps)) / (2 * eps)
        assert float(grads["h"][name][index]) == pytest.approx(numeric, rel=2e-2, abs=2e-4)


def test_initial_values() -> None:
    model = model_of("lstm 3 bidirectional=true", (4, 2))
    p = model.init(KEY)["l"]
    for suffix in ("", "_back"):
        u = np.asarray(p["u" + suffix])
        assert u.shape == (3, 12)
        np.testing.assert_allclose(u @ u.T, np.eye(3), atol=1e-5)  # orthogonal: its rows orthonormal
        b = np.asarray(p["b" + suffix])
        np.testing.assert_array_equal(b, np.r_[np.zeros(3), np.ones(3), np.zeros(6)])  # i, f, c, o
        limit = np.sqrt(6 / (2 + 12))  # glorot_uniform over (features, 4·units)
        w = np.asarray(p["w" + suffix])
        assert np.all(np.abs(w) <= limit) and np.abs(w).max() > limit / 2
    assert not np.allclose(p["u"], p["u_back"])  # two cells, drawn apart
    q = model_of("lstm 2 forget_bias=0 bias_init=ones recurrent_init=orthogonal(2)", (4, 2)).init(KEY)["l"]
    np.testing.assert_array_equal(np.asarray(q["b"]), np.r_[np.ones(2), np.zeros(2), np.ones(4)])
    u = np.asarray(q["u"])
    np.testing.assert_allclose(u @ u.T, 4 * np.eye(2), atol=1e-5)


def test_orthogonal_bias_is_a_unit_vector() -> None:
    model = lower(nnspec.check_text("model m {\n    input x[3]\n    l: dense 5 bias_init=orthogonal\n}\n"))
    b = np.asarray(model.init(KEY)["l"]["b"])
    assert b.shape == (5,) and np.linalg.norm(b) == pytest.approx(1.0, abs=1e-5)


def test_penalties_and_decay_cover_both_kernels_not_the_biases() -> None:
    text = ("model m {\n    input x[4, 2]\n    l: gru 3 bidirectional=true l2=0.5\n    out: dense 1\n}\n"
            "loss mse\noptimizer sgd\n")
    model = lower(nnspec.check_text(text))
    params = random_params(model)
    want = 0.5 * sum(float(np.sum(np.asarray(params["l"][k]) ** 2)) for k in ("w", "u", "w_back", "u_back"))
    assert float(model.penalty(params)) == pytest.approx(want, rel=1e-5)
    from nnspec.checked import Regularization
    from nnspec.lower import _decay_mask
    mask = _decay_mask(Regularization())(params)
    assert mask["l"] == {"w": True, "u": True, "b": False, "b_rec": False,
                         "w_back": True, "u_back": True, "b_back": False, "b_rec_back": False}


def test_the_activations_parameters_are_traced() -> None:
    model = model_of("simple_rnn 3 leaky_relu(0.2)", (4, 2))
    hp = model.hparams()
    assert float(hp["l"]["slope"]) == pytest.approx(0.2)
    params = random_params(model)
    x = np.random.default_rng(6).normal(size=(4, 2))
    other = jax.tree_util.tree_map(lambda v: v, hp)
    other["l"]["slope"] = np.float32(0.7)
    got = np.asarray(jax.jit(lambda p, x, h: model.apply(p, x, hparams=h))(params, jnp.asarray(x, jnp.float32), other))
    want = reference("simple_rnn", as_numpy(params), x, units=3, g=lambda v: np.where(v >= 0, v, 0.7 * v))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


# -------------------------------------------------------------------------- checker

def diags_of(body: str) -> list[tuple[str, str, str]]:
    text = "model m {\n" + body + "}\n"
    _, diags, src = check_source(text, "x.nn")
    spans = [d.primary_span for d in diags]
    return [(d.code, d.message, src.text[s.start:s.end] if s else "") for d, s in zip(diags, spans)]


def test_shapes_and_parameter_counts() -> None:
    program = nnspec.check_text("model m {\n    input x[10, 3]\n    a: simple_rnn 4 sequences=true\n"
                                "    b: lstm 5 sequences=true bidirectional=true\n    c: gru 2 bidirectional=true merge=sum\n}\n")
    a, b, c = program.model.layers
    assert (a.out_shape, b.out_shape, c.out_shape) == ((10, 4), (10, 10), (2,))
    assert a.n_params == 3 * 4 + 4 * 4 + 4
    assert b.n_params == 2 * (4 * 5 * 4 + 5 * 5 * 4 + 5 * 4)
    assert c.n_params == 2 * (10 * 6 + 2 * 6 + 6 + 6)  # gru, reset_after: two biases


def test_a_flat_input_is_refused_at_the_layer() -> None:
    assert diags_of("    input x[2]\n    lstm 8\n    dense 1\n") == [
        ("E230", "`lstm` expects a sequence of shape (steps, features), found a flat vector (2,)", "lstm 8")]
    # the second of two stacked layers, the first without sequences=true
    got = diags_of("    input x[5, 2]\n    gru 8\n    simple_rnn 4\n")
    assert [(c, s) for c, _, s in got] == [("E230", "simple_rnn 4")]
    got = diags_of("    input x[4, 4, 1]\n    lstm 8\n")
    assert got == [("E230", "`lstm` expects a sequence of shape (steps, features), found shape (4, 4, 1)", "lstm 8")]


def test_merge_without_bidirectional() -> None:
    assert diags_of("    input x[5, 2]\n    lstm 8 merge=sum\n") == [
        ("E231", "`merge` without `bidirectional=true`", "merge=sum")]
    assert diags_of("    input x[5, 2]\n    lstm 8 bidirectional=false merge=sum\n")[0][0] == "E231"
    assert diags_of("    input x[5, 2]\n    lstm 8 bidirectional merge=sum\n") == []


def test_arguments_belong_to_their_layer() -> None:
    assert [c for c, _, _ in diags_of("    input x[5, 2]\n    simple_rnn 8 recurrent_activation=relu\n")] == ["E102"]
    assert [c for c, _, _ in diags_of("    input x[5, 2]\n    lstm 8 reset_after=false\n")] == ["E102"]
    assert [c for c, _, _ in diags_of("    input x[5, 2]\n    gru 8 merge=max bidirectional\n")] == ["E104"]


# --------------------------------------------------------------- data and training

def test_waves_dataset() -> None:
    from nnspec.data import load
    one = load(DataSource.of("builtin", name="waves", n=40, steps=12, noise=0.0), seed=3, base_dir=REPO)
    again = load(DataSource.of("builtin", name="waves", n=40, steps=12, noise=0.0), seed=3, base_dir=REPO)
    other = load(DataSource.of("builtin", name="waves", n=40, steps=12, noise=0.0), seed=4, base_dir=REPO)
    assert one.x.shape == (40, 12, 1) and one.y.shape == (40, 1)
    np.testing.assert_array_equal(one.x, again.x)
    assert not np.array_equal(one.x, other.x)
    assert sorted(np.unique(one.y)) == [0, 1] and one.y.sum() == 20
    # without noise, the number of sign changes tells the class: 1-2 cycles cross zero at
    # most 4 times, 3-4 cycles at least 5 times
    crossings = (np.diff(np.sign(one.x[:, :, 0]), axis=1) != 0).sum(1)
    assert np.all(crossings[one.y[:, 0] == 0] <= 4) and np.all(crossings[one.y[:, 0] == 1] >= 5)


def test_waves_shape_is_checked_against_the_input() -> None:
    text = ("model m {\n    input x[20]\n    dense 1 sigmoid\n}\nloss binary_crossentropy\noptimizer sgd\n"
            'train {\n    data builtin("waves", steps=30)\n}\n')
    _, diags, _ = check_source(text, "x.nn")
    assert [(d.code, d.message, d.help) for d in diags] == [
        ("E311", "dataset `waves` has examples of shape (30, 1), but the model's input is (20,)", "declare `input x[30, 1]`")]


def test_a_small_sequence_model_learns() -> None:
    from nnspec.fit import fit
    text = ("model m {\n    input wave[12, 1]\n    gru 6\n    dense 1 sigmoid\n}\n"
            "loss binary_crossentropy\noptimizer adam lr=0.03\n"
            'train {\n    data builtin("waves", n=128, steps=12, noise=0.1)\n    batch 16\n    epochs 6\n    seed 0\n}\n')
    result = fit(nnspec.check_text(text), base_dir=REPO)
    losses = [row["loss"] for row in result.history]
    assert losses[-1] < 0.8 * losses[0], losses
