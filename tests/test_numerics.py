"""Numerics: what nnspec computes, against references each test computes itself.

The references are formulas written out in NumPy (in float64 unless the formula itself
is about float32, like Keras's probability clipping) or optax called directly. Every
activation, initializer, loss, optimizer and schedule in the registries is swept: a row
added to a registry without a reference here fails `test_*_has_a_reference`.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import nnspec
from nnspec.fit import fit
from nnspec.trainer import Stopper
from nnspec.layers import ACTIVATIONS, INITIALIZERS
from nnspec.losses import LOSSES
from nnspec.lower import Model, lower
from nnspec.optim import OPTIMIZERS, SCHEDULES

KEY = jax.random.key(0)


def compile_spec(model_body: str, *sections: str) -> Model:
    """Lower `model m { model_body }` followed by top-level sections (`loss mse`, ...)."""
    text = "model m {\n" + model_body + "\n}\n" + "".join(s + "\n" for s in sections)
    return lower(nnspec.check_text(text))


def np_sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def to_np(tree: Any) -> Any:
    return jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), tree)


# ------------------------------------------------------------------------------ perceptron

def test_textbook_perceptron() -> None:
    model = compile_spec("input x[2]\ndense 1 sigmoid weights=[[3], [-2]] bias=[1]")
    params = model.init(KEY)
    x = np.array([[0, 0], [1, 0], [0, 1], [1, 1], [-1, 2], [2, -1], [-1, -1], [0.5, -0.5],
                  [-3, 0], [0, -2], [1.5, 2.5], [-0.25, 0.75]], np.float32)
    want = np_sigmoid(1 + 3 * x[:, 0].astype(np.float64) - 2 * x[:, 1])
    got = np.asarray(model.apply(params, x))
    assert got.shape == (len(x), 1)
    np.testing.assert_allclose(got[:, 0], want, rtol=0, atol=1e-6)
    # one example at a time gives the same numbers as the batch
    for xi, yi in zip(x, got):
        np.testing.assert_allclose(np.asarray(model.apply(params, xi)), yi, rtol=0, atol=1e-7)
    # the worked example in specs/perceptron.nn: x = (-1, 2) gives σ(−6) ≈ 0.0025
    assert abs(float(model.apply(params, jnp.array([-1.0, 2.0]))[0]) - 0.0024726232) < 1e-6


# ----------------------------------------------------------------------------- activations

def _gelu_exact(x: np.ndarray) -> np.ndarray:
    return x * 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


# (activation, its arguments as written after the name, NumPy formula)
ACTIVATION_CASES: list[tuple[str, str, Callable[[np.ndarray], np.ndarray]]] = [
    ("sigmoid", "", np_sigmoid),
    ("tanh", "", np.tanh),
    ("relu", "", lambda x: np.maximum(x, 0)),
    ("leaky_relu", "", lambda x: np.where(x >= 0, x, 0.01 * x)),
    ("leaky_relu", "0.2", lambda x: np.where(x >= 0, x, 0.2 * x)),
    ("elu", "", lambda x: np.where(x > 0, x, np.expm1(x))),
    ("elu", "0.5", lambda x: np.where(x > 0, x, 0.5 * np.expm1(x))),
    ("gelu", "", _gelu_exact),
    ("gelu", "approximate=true", _gelu_tanh),
    ("softplus", "", lambda x: np.log1p(np.exp(x))),
    ("silu", "", lambda x: x * np_sigmoid(x)),
    ("softmax", "", _softmax),
    ("log_softmax", "", _log_softmax),
    ("identity", "", lambda x: x),
]

ACT_X = np.array([[-20, -5, -1.5, -0.3, 0, 0.3, 1.5, 5],
                  [0, 0, 0, 0, 0, 0, 0, 0],
                  [2, -1, 0.5, 3, -0.7, 0.01, -0.01, 10]], np.float32)


def test_every_activation_has_a_reference() -> None:
    assert {a.name for a in ACTIVATIONS} == {name for name, _, _ in ACTIVATION_CASES}


@pytest.mark.parametrize("name,args,ref", ACTIVATION_CASES,
                         ids=[f"{n}({a})" if a else n for n, a, _ in ACTIVATION_CASES])
def test_activation_matches_formula(name: str, args: str, ref: Callable) -> None:
    want = ref(ACT_X.astype(np.float64))
    # as a layer of its own ...
    layer = compile_spec(f"input x[8]\n{name} {args}")
    np.testing.assert_allclose(np.asarray(layer.apply({}, ACT_X)), want, rtol=1e-5, atol=1e-6)
    # ... and ending a dense layer whose weights are the identity
    eye = "[" + ", ".join("[" + ", ".join("1" if i == j else "0" for j in range(8)) + "]" for i in range(8)) + "]"
    call = f"{name}({args})" if args else name
    dense = compile_spec(f"input x[8]\ndense 8 {call} weights={eye} bias=false")
    np.testing.assert_allclose(np.asarray(dense.apply(dense.init(KEY), ACT_X)), want, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- initializers

FAN_IN, FAN_OUT = 400, 200  # not square, so a swapped fan_in/fan_out shows


def _exactly(value: float) -> Callable[[np.ndarray], None]:
    def check(w: np.ndarray) -> None:
        assert np.all(w == np.float32(value))
    return check


def _normal(mean: float, std: float) -> Callable[[np.ndarray], None]:
    def check(w: np.ndarray) -> None:
        n = w.size
        assert abs(w.mean() - mean) < 5 * std / math.sqrt(n)
        assert w.std() == pytest.approx(std, rel=0.02)
        # a Gaussian, not a uniform of the same variance: 68.3% within one σ
        assert np.mean(np.abs(w - mean) < std) == pytest.approx(0.6827, abs=0.01)
    return check


# A standard normal truncated to [-2, 2] has standard deviation 0.87962566103423978; Keras
# and JAX divide it out, so the draws have the stated variance and reach ±2σ/0.8796.
_TRUNC_STD = 0.87962566103423978


def _truncated_normal(std: float) -> Callable[[np.ndarray], None]:
    def check(w: np.ndarray) -> None:
        bound = 2 * std / _TRUNC_STD
        assert np.abs(w).max() <= bound * (1 + 1e-6)
        assert np.abs(w).max() > 0.99 * bound  # truncated there, not earlier
        assert abs(w.mean()) < 5 * std / math.sqrt(w.size)
        assert w.std() == pytest.approx(std, rel=0.02)
        # within one stated σ: P(|z| < 0.8796) / P(|z| < 2) for a standard normal z
        within = math.erf(_TRUNC_STD / math.sqrt(2)) / math.erf(2 / math.sqrt(2))
        assert np.mean(np.abs(w) < std) == pytest.approx(within, abs=0.01)
    return check


def _uniform(low: float, high: float) -> Callable[[np.ndarray], None]:
    def check(w: np.ndarray) -> None:
        width = high - low
        assert w.min() >= low and w.max() <= high
        assert w.min() < low + 0.001 * width and w.max() > high - 0.001 * width
        assert abs(w.mean() - (low + high) / 2) < 5 * width / math.sqrt(12 * w.size)
        assert w.var() == pytest.approx(width ** 2 / 12, rel=0.02)
    return check


def _sym_uniform(limit: float) -> Callable[[np.ndarray], None]:
    return _uniform(-limit, limit)


def _orthogonal(gain: float) -> Callable[[np.ndarray], None]:
    def check(w: np.ndarray) -> None:
        small = min(w.shape)  # the shorter side's vectors are orthonormal, times `gain`
        gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
        np.testing.assert_allclose(gram, gain ** 2 * np.eye(small), atol=1e-5 * gain ** 2)
        assert np.linalg.matrix_rank(w) == small
    return check


# initializer as written after `init=`, and the check of a FAN_IN x FAN_OUT sample
INIT_CASES: dict[str, tuple[str, Callable[[np.ndarray], None]]] = {
    "zeros": ("zeros", _exactly(0.0)),
    "ones": ("ones", _exactly(1.0)),
    "constant": ("constant(0.7)", _exactly(0.7)),
    "normal": ("normal(mean=0.5, stddev=0.2)", _normal(0.5, 0.2)),
    "uniform": ("uniform(low=-0.3, high=0.1)", _uniform(-0.3, 0.1)),
    "glorot_normal": ("glorot_normal", _truncated_normal(math.sqrt(2 / (FAN_IN + FAN_OUT)))),
    "glorot_uniform": ("glorot_uniform", _sym_uniform(math.sqrt(6 / (FAN_IN + FAN_OUT)))),
    "he_normal": ("he_normal", _truncated_normal(math.sqrt(2 / FAN_IN))),
    "he_uniform": ("he_uniform", _sym_uniform(math.sqrt(6 / FAN_IN))),
    "lecun_normal": ("lecun_normal", _truncated_normal(math.sqrt(1 / FAN_IN))),
    "lecun_uniform": ("lecun_uniform", _sym_uniform(math.sqrt(3 / FAN_IN))),
    "orthogonal": ("orthogonal(1.5)", _orthogonal(1.5)),
}


def test_every_initializer_has_a_reference() -> None:
    assert {e.name for e in INITIALIZERS} == set(INIT_CASES)


@pytest.mark.parametrize("name", list(INIT_CASES))
def test_initializer_statistics(name: str) -> None:
    init, check = INIT_CASES[name]
    model = compile_spec(f"input x[{FAN_IN}]\nd: dense {FAN_OUT} init={init}")
    params = model.init(KEY)
    w = np.asarray(params["d"]["w"])
    assert w.shape == (FAN_IN, FAN_OUT) and w.dtype == np.float32
    check(w.astype(np.float64))
    assert np.all(np.asarray(params["d"]["b"]) == 0)  # the default bias_init


@pytest.mark.parametrize("name", ["glorot_normal", "glorot_uniform", "he_normal", "he_uniform",
                                  "lecun_normal", "lecun_uniform"])
def test_named_initializers_are_jaxs(name: str) -> None:
    """The names mean what they mean in JAX and Keras: the same key draws the same array."""
    from nnspec.checked import Fn
    from nnspec.nn import initializer
    key = jax.random.key(7)
    ours = initializer(Fn(name, {}))(key, (FAN_IN, FAN_OUT))
    theirs = getattr(jax.nn.initializers, name)()(key, (FAN_IN, FAN_OUT))
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


def test_bias_init_uses_its_own_initializer() -> None:
    model = compile_spec("input x[3]\nd: dense 500 init=zeros bias_init=constant(-0.25)")
    params = model.init(KEY)
    assert np.all(np.asarray(params["d"]["w"]) == 0)
    assert np.all(np.asarray(params["d"]["b"]) == np.float32(-0.25))


# ---------------------------------------------------------------------------------- losses

EPS32 = (np.float32(1e-7), np.float32(1 - 1e-7))


def np_bce(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    # p is clipped to [1e-7, 1 - 1e-7] before the log, as Keras does; the bounds are float32
    p = np.clip(p.astype(np.float32), *EPS32).astype(np.float64)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p)).sum(-1)


def np_bce_logits(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    # log σ(z) = −log(1 + e^−z), log(1 − σ(z)) = −log(1 + e^z)
    return (y * np.logaddexp(0, -z) + (1 - y) * np.logaddexp(0, z)).sum(-1)


def np_cce(logp: np.ndarray, y: np.ndarray, labels: str) -> np.ndarray:
    if labels == "index":
        return -logp[np.arange(len(y)), y.astype(int)]
    return -(y * logp).sum(-1)


def _cce_probs(z, y, labels):
    return np_cce(np.log(np.clip(_softmax(z), 1e-7, 1.0)), y, labels)


def _huber(delta: float) -> Callable:
    def ref(z, y):
        r = np.abs(z - y)
        return np.where(r <= delta, 0.5 * r ** 2, delta * (r - 0.5 * delta)).mean(-1)
    return ref


def _binary(rng):
    z = np.clip(rng.normal(scale=1.5, size=(64, 1)), -4, 4)
    return z, rng.integers(0, 2, size=(64, 1)).astype(np.float64)


def _index(rng):
    return rng.normal(scale=2.0, size=(64, 4)), rng.integers(0, 4, size=64).astype(np.float64)


def _onehot(rng):
    z, y = _index(rng)
    return z, np.eye(4)[y.astype(int)]


def _regression(rng):
    return rng.normal(scale=1.5, size=(64, 3)), rng.normal(size=(64, 3))


# (id, registry name, `loss` line, model body taking the inputs z to predictions,
#  example maker, NumPy per-example loss of (z, y))
LOSS_CASES = [
    ("bce", "binary_crossentropy", "loss binary_crossentropy", "input z[1]\nsigmoid",
     _binary, lambda z, y: np_bce(np_sigmoid(z), y)),
    ("bce_logits", "binary_crossentropy", "loss binary_crossentropy from_logits=true", "input z[1]\nidentity",
     _binary, np_bce_logits),
    ("cce_index", "categorical_crossentropy", "loss categorical_crossentropy", "input z[4]\nsoftmax",
     _index, lambda z, y: _cce_probs(z, y, "index")),
    ("cce_index_logits", "categorical_crossentropy", "loss categorical_crossentropy from_logits=true",
     "input z[4]\nidentity", _index, lambda z, y: np_cce(_log_softmax(z), y, "index")),
    ("cce_onehot", "categorical_crossentropy", "loss categorical_crossentropy labels=onehot",
     "input z[4]\nsoftmax", _onehot, lambda z, y: _cce_probs(z, y, "onehot")),
    ("cce_onehot_logits", "categorical_crossentropy",
     "loss categorical_crossentropy labels=onehot from_logits=true", "input z[4]\nidentity",
     _onehot, lambda z, y: np_cce(_log_softmax(z), y, "onehot")),
    ("mse", "mse", "loss mse", "input z[3]\nidentity", _regression, lambda z, y: ((z - y) ** 2).mean(-1)),
    ("mae", "mae", "loss mae", "input z[3]\nidentity", _regression, lambda z, y: np.abs(z - y).mean(-1)),
    ("huber", "huber", "loss huber", "input z[3]\nidentity", _regression, _huber(1.0)),
    ("huber_0.7", "huber", "loss huber 0.7", "input z[3]\nidentity", _regression, _huber(0.7)),
]


def test_every_loss_has_a_reference() -> None:
    assert {e.name for e in LOSSES} == {case[1] for case in LOSS_CASES}


@pytest.mark.parametrize("case", LOSS_CASES, ids=[c[0] for c in LOSS_CASES])
def test_loss_matches_formula(case) -> None:
    _, name, line, body, make, ref = case
    model = compile_spec(body, line)
    assert model.program.loss.name == name
    z, y = make(np.random.default_rng(0))
    z32, y32 = z.astype(np.float32), y.astype(np.float32)
    want = ref(z32.astype(np.float64), y)
    params = model.init(KEY)
    per = np.asarray(model.per_example_loss(model.apply(params, z32), y32))
    assert per.shape == (len(z),)
    np.testing.assert_allclose(per, want, rtol=1e-5, atol=1e-6)
    # the batch loss is the mean (no penalties in these specs)
    assert float(model.loss(params, z32, y32)) == pytest.approx(want.mean(), rel=1e-5)


def test_bce_on_probabilities_agrees_with_bce_on_logits() -> None:
    z, y = _binary(np.random.default_rng(1))
    z, y = z.astype(np.float32), y.astype(np.float32)
    probs = compile_spec("input z[1]\nsigmoid", "loss binary_crossentropy")
    logits = compile_spec("input z[1]\nidentity", "loss binary_crossentropy from_logits=true")
    np.testing.assert_allclose(np.asarray(probs.per_example_loss(probs.apply({}, z), y)),
                               np.asarray(logits.per_example_loss(logits.apply({}, z), y)), rtol=1e-5)


def test_bce_clips_saturated_probabilities() -> None:
    # σ(±30) is 1 or ~1e-13 in float32: without the clip the loss of a wrong answer is inf
    z = np.array([[30], [-30], [30], [-30]], np.float32)
    y = np.array([[0], [1], [1], [0]], np.float32)
    lo, hi = EPS32
    want = [-np.log(np.float32(1) - hi), -np.log(lo), -np.log(hi), -np.log(np.float32(1) - lo)]
    probs = compile_spec("input z[1]\nsigmoid", "loss binary_crossentropy")
    got = np.asarray(probs.per_example_loss(probs.apply({}, z), y))
    np.testing.assert_allclose(got, np.array(want, np.float64), rtol=1e-5, atol=1e-6)
    assert got[0] == pytest.approx(15.94, abs=0.01) and got[1] == pytest.approx(16.12, abs=0.01)
    # from logits nothing is clipped: the exact −log σ(−30) = 30
    logits = compile_spec("input z[1]\nidentity", "loss binary_crossentropy from_logits=true")
    np.testing.assert_allclose(np.asarray(logits.per_example_loss(z, y)), [30, 30, 0, 0], atol=1e-5)


# ------------------------------------------------------------------------------ optimizers
# A linear layer with the mean squared error: the gradient is easy to write by hand.

OPT_BODY = "input x[3]\nout: dense 2 bias_init=constant(0.1)"
_rng = np.random.default_rng(42)
OPT_X = _rng.normal(size=(8, 3)).astype(np.float32)
OPT_Y = _rng.normal(size=(8, 2)).astype(np.float32)
STEPS = 20


def mse_of(params, x, y):
    """The spec's loss written by hand: a linear layer and the mean squared error."""
    pred = x @ params["out"]["w"] + params["out"]["b"]
    return jnp.mean(jnp.mean((pred - y) ** 2, axis=-1))


def np_grads(p: dict, x: np.ndarray, y: np.ndarray) -> dict:
    r = x @ p["w"] + p["b"] - y
    g = 2 * r / r.size
    return {"w": x.T @ g, "b": g.sum(0)}


def spec_args(hp: dict[str, Any]) -> str:
    return " ".join(f"{k}={str(v).lower() if isinstance(v, bool) else repr(v)}" for k, v in hp.items())


# optimizer -> (non-default hyperparameters, the same optimizer built with optax directly)
OPTIMIZER_CASES: dict[str, tuple[dict[str, Any], Callable[[dict], optax.GradientTransformation]]] = {
    "sgd": ({"lr": 0.05}, lambda h: optax.sgd(h["lr"])),
    "momentum": ({"lr": 0.05, "momentum": 0.7}, lambda h: optax.sgd(h["lr"], momentum=h["momentum"])),
    "nesterov": ({"lr": 0.05, "momentum": 0.6},
                 lambda h: optax.sgd(h["lr"], momentum=h["momentum"], nesterov=True)),
    "adagrad": ({"lr": 0.2, "initial_accumulator": 0.3, "eps": 1e-4},
                lambda h: optax.adagrad(h["lr"], initial_accumulator_value=h["initial_accumulator"], eps=h["eps"])),
    "adadelta": ({"lr": 0.5, "rho": 0.8, "eps": 1e-4}, lambda h: optax.adadelta(h["lr"], rho=h["rho"], eps=h["eps"])),
    "adam": ({"lr": 0.02, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6},
             lambda h: optax.adam(h["lr"], b1=h["beta1"], b2=h["beta2"], eps=h["eps"])),
    "adamw": ({"lr": 0.02, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6, "weight_decay": 0.05},
              lambda h: optax.adamw(h["lr"], b1=h["beta1"], b2=h["beta2"], eps=h["eps"],
                                    weight_decay=h["weight_decay"])),
    # eps well above the default: centered RMSProp divides by E[g²] − E[g]², which nearly
    # vanishes here, so a tiny eps would amplify float rounding past the tolerance
    "rmsprop": ({"lr": 0.01, "decay": 0.8, "eps": 1e-3, "momentum": 0.5, "centered": True},
                lambda h: optax.rmsprop(h["lr"], decay=h["decay"], eps=h["eps"], momentum=h["momentum"],
                                        centered=h["centered"])),
}


def test_every_optimizer_has_a_reference() -> None:
    assert {e.name for e in OPTIMIZERS} == set(OPTIMIZER_CASES)


def nnspec_trajectory(optimizer_line: str, steps: int = STEPS, y: np.ndarray = OPT_Y,
                      *sections: str) -> tuple[dict, list[dict]]:
    """The initial parameters and the parameters after each of `steps` model.step calls."""
    model = compile_spec(OPT_BODY, "loss mse", optimizer_line, *sections)
    state = model.init_state(KEY)
    p0 = state.params
    step = jax.jit(model.step)
    out = []
    for _ in range(steps):
        state, _ = step(state, OPT_X, y, key=KEY)
        out.append(state.params)
    return p0, out


@functools.cache
def optimizer_run(name: str) -> tuple[dict, list[dict]]:
    return nnspec_trajectory(f"optimizer {name} {spec_args(OPTIMIZER_CASES[name][0])}")


def optax_trajectory(opt: optax.GradientTransformation, params: dict, steps: int = STEPS,
                     y: np.ndarray = OPT_Y) -> list[dict]:
    @jax.jit
    def update(params, state):
        g = jax.grad(mse_of)(params, OPT_X, y)
        updates, state = opt.update(g, state, params)
        return optax.apply_updates(params, updates), state

    state, out = opt.init(params), []
    for _ in range(steps):
        params, state = update(params, state)
        out.append(params)
    return out


def assert_same_trajectory(got: list, want: list, tol: float) -> None:
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        for layer in w:
            for name in w[layer]:
                np.testing.assert_allclose(np.asarray(g[layer][name]), np.asarray(w[layer][name]),
                                           rtol=tol, atol=tol, err_msg=f"step {i + 1}, {layer}.{name}")


@pytest.mark.parametrize("name", list(OPTIMIZER_CASES))
def test_optimizer_matches_optax(name: str) -> None:
    hp, make = OPTIMIZER_CASES[name]
    p0, got = optimizer_run(name)
    want = optax_trajectory(make(hp), p0)
    assert_same_trajectory(got, want, 1e-6)
    assert not np.allclose(np.asarray(got[-1]["out"]["w"]), np.asarray(p0["out"]["w"]))


def _np_sgd(h, p, x, y, steps):
    for _ in range(steps):
        g = np_grads(p, x, y)
        p = {k: p[k] - h["lr"] * g[k] for k in p}
        yield p


def _np_momentum(h, p, x, y, steps, nesterov=False):
    v = {k: np.zeros_like(a) for k, a in p.items()}
    mu = h["momentum"]
    for _ in range(steps):
        g = np_grads(p, x, y)
        v = {k: mu * v[k] + g[k] for k in p}  # optax's form: the velocity sums raw gradients
        step = {k: g[k] + mu * v[k] for k in p} if nesterov else v
        p = {k: p[k] - h["lr"] * step[k] for k in p}
        yield p


def _np_adagrad(h, p, x, y, steps):
    acc = {k: np.full_like(a, h["initial_accumulator"]) for k, a in p.items()}
    for _ in range(steps):
        g = np_grads(p, x, y)
        acc = {k: acc[k] + g[k] ** 2 for k in p}
        p = {k: p[k] - h["lr"] * g[k] / np.sqrt(acc[k] + h["eps"]) for k in p}
        yield p


def _np_adam(h, p, x, y, steps):
    b1, b2 = h["beta1"], h["beta2"]
    m = {k: np.zeros_like(a) for k, a in p.items()}
    v = {k: np.zeros_like(a) for k, a in p.items()}
    for t in range(1, steps + 1):
        g = np_grads(p, x, y)
        m = {k: b1 * m[k] + (1 - b1) * g[k] for k in p}
        v = {k: b2 * v[k] + (1 - b2) * g[k] ** 2 for k in p}
        m_hat = {k: m[k] / (1 - b1 ** t) for k in p}
        v_hat = {k: v[k] / (1 - b2 ** t) for k in p}
        p = {k: p[k] - h["lr"] * m_hat[k] / (np.sqrt(v_hat[k]) + h["eps"]) for k in p}
        yield p


NUMPY_UPDATES = {
    "sgd": _np_sgd,
    "momentum": _np_momentum,
    "nesterov": functools.partial(_np_momentum, nesterov=True),
    "adagrad": _np_adagrad,
    "adam": _np_adam,
}


@pytest.mark.parametrize("name", list(NUMPY_UPDATES))
def test_optimizer_matches_its_update_equations(name: str) -> None:
    p0, got = optimizer_run(name)
    hp = OPTIMIZER_CASES[name][0]
    start = to_np(p0)["out"]
    want = [{"out": p} for p in NUMPY_UPDATES[name](hp, start, OPT_X.astype(np.float64),
                                                     OPT_Y.astype(np.float64), STEPS)]
    assert_same_trajectory(got, want, 1e-5)


# ------------------------------------------------------------------------------- schedules

def _cosine(initial: float, steps: int, final: float) -> Callable[[int], float]:
    return lambda t: initial * ((1 - final) * 0.5 * (1 + math.cos(math.pi * min(t, steps) / steps)) + final)


def _warmup(n: int, peak: float, after: Callable[[int], float]) -> Callable[[int], float]:
    return lambda t: peak * t / n if t < n else after(t - n)


# (`lr=` text, `warmup`, the learning rate at step t = 0, 1, 2, ...)
SCHEDULE_CASES: list[tuple[str, int, Callable[[int], float]]] = [
    ("constant(0.05)", 0, lambda t: 0.05),
    ("step_decay(initial=0.2, factor=0.5, every=3)", 0, lambda t: 0.2 * 0.5 ** (t // 3)),
    ("step_decay(initial=0.2, every=4)", 0, lambda t: 0.2 * 0.5 ** (t // 4)),
    ("exponential_decay(initial=0.2, rate=0.5, every=4)", 0, lambda t: 0.2 * 0.5 ** (t / 4)),
    ("cosine_decay(initial=0.2, steps=8, final=0.1)", 0, _cosine(0.2, 8, 0.1)),
    ("0.1", 4, _warmup(4, 0.1, lambda t: 0.1)),
    ("cosine_decay(initial=0.2, steps=6)", 3, _warmup(3, 0.2, _cosine(0.2, 6, 0.0))),
    # Keras 2's decay=: lr / (1 + d·t); Caffe's inv: lr·(1 + γ·t)^−p
    ("inverse_time_decay(initial=0.2, rate=0.5)", 0, lambda t: 0.2 / (1 + 0.5 * t)),
    ("inverse_time_decay(initial=0.2, rate=0.3, power=0.75, every=2)", 0, lambda t: 0.2 * (1 + 0.3 * t / 2) ** -0.75),
    # within an epoch the plateau rule's rate stands still (tests/test_plateau.py moves it)
    ("reduce_on_plateau(initial=0.2)", 0, lambda t: 0.2),
    ("reduce_on_plateau(initial=0.2, factor=0.5)", 3, _warmup(3, 0.2, lambda t: 0.2)),
]


def test_every_schedule_has_a_case() -> None:
    assert {e.name for e in SCHEDULES} <= {lr.split("(")[0] for lr, _, _ in SCHEDULE_CASES}


@pytest.mark.parametrize("lr,warmup,formula", SCHEDULE_CASES,
                         ids=[f"{lr} warmup={w}" for lr, w, _ in SCHEDULE_CASES])
def test_schedule_learning_rates(lr: str, warmup: int, formula: Callable[[int], float]) -> None:
    model = compile_spec(OPT_BODY, "loss mse", f"optimizer sgd lr={lr} warmup={warmup}")
    state = model.init_state(KEY)
    step = jax.jit(model.step)
    grad = jax.jit(jax.grad(mse_of))
    assert float(state.opt_state.hyperparams["learning_rate"]) == pytest.approx(formula(0), rel=1e-6)
    for t in range(12):
        g = grad(state.params, OPT_X, OPT_Y)
        before = state.params
        state, _ = step(state, OPT_X, OPT_Y, key=KEY)
        # after the update at step t the state holds the rate that update used
        assert float(state.opt_state.hyperparams["learning_rate"]) == pytest.approx(formula(t), rel=1e-6, abs=1e-9)
        for name in ("w", "b"):  # and sgd moved by exactly that rate times the gradient
            np.testing.assert_allclose(np.asarray(state.params["out"][name]),
                                       np.asarray(before["out"][name]) - formula(t) * np.asarray(g["out"][name]),
                                       rtol=1e-5, atol=1e-7)


# -------------------------------------------------------------------------------- clipping

BIG_Y = OPT_Y * 10  # gradients well beyond the clipping thresholds


def test_clip_norm_matches_optax() -> None:
    p0, got = nnspec_trajectory("optimizer sgd lr=0.1 clip_norm=0.5", 10, BIG_Y)
    want = optax_trajectory(optax.chain(optax.clip_by_global_norm(0.5), optax.sgd(0.1)), p0, 10, BIG_Y)
    assert_same_trajectory(got, want, 1e-6)
    # the first step by hand: g·min(1, c/‖g‖), ‖g‖ over all arrays together
    start = to_np(p0)["out"]
    g = np_grads(start, OPT_X.astype(np.float64), BIG_Y.astype(np.float64))
    norm = math.sqrt(sum(float((a ** 2).sum()) for a in g.values()))
    assert norm > 2
    first = {k: start[k] - 0.1 * g[k] * min(1.0, 0.5 / norm) for k in g}
    assert_same_trajectory(got[:1], [{"out": first}], 1e-5)


def test_clip_value_matches_optax() -> None:
    p0, got = nnspec_trajectory("optimizer sgd lr=0.1 clip_value=0.05", 10, BIG_Y)
    want = optax_trajectory(optax.chain(optax.clip(0.05), optax.sgd(0.1)), p0, 10, BIG_Y)
    assert_same_trajectory(got, want, 1e-6)
    start = to_np(p0)["out"]
    g = np_grads(start, OPT_X.astype(np.float64), BIG_Y.astype(np.float64))
    assert max(np.abs(a).max() for a in g.values()) > 0.5
    first = {k: start[k] - 0.1 * np.clip(g[k], -0.05, 0.05) for k in g}
    assert_same_trajectory(got[:1], [{"out": first}], 1e-5)


# --------------------------------------------------------------------------------- dropout

@pytest.mark.parametrize("drop_prob", [0.3, 0.75])
def test_dropout_statistics(drop_prob: float) -> None:
    n = 100_000
    model = compile_spec(f"input x[{n}]\ndropout {drop_prob}")
    x = jnp.asarray(np.random.default_rng(0).uniform(0.5, 2.0, size=n).astype(np.float32))
    y = np.asarray(model.apply({}, x, key=jax.random.key(3), train=True))
    dropped = y == 0
    assert dropped.mean() == pytest.approx(drop_prob, abs=0.01)
    np.testing.assert_allclose(y[~dropped], np.asarray(x)[~dropped] / (1 - drop_prob), rtol=1e-6)
    # another key drops other units
    y2 = np.asarray(model.apply({}, x, key=jax.random.key(4), train=True))
    assert np.mean(dropped != (y2 == 0)) > 0.1
    # outside training it is exactly the identity, key or not
    assert np.array_equal(np.asarray(model.apply({}, x)), np.asarray(x))
    assert np.array_equal(np.asarray(model.apply({}, x, key=jax.random.key(3), train=False)), np.asarray(x))


def _threefry_2x32(k0: int, k1: int, x0: np.ndarray, x1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Threefry-2x32 with 20 rounds (Salmon et al. 2011, Random123's constants), in NumPy."""
    u = np.uint32
    rotations = ((13, 15, 26, 6), (17, 29, 16, 24))
    ks = (u(k0), u(k1), u(k0) ^ u(k1) ^ u(0x1BD11BDA))
    x0, x1 = x0.astype(u) + ks[0], x1.astype(u) + ks[1]
    for group in range(5):
        for r in rotations[group % 2]:
            x0 = x0 + x1
            x1 = ((x1 << u(r)) | (x1 >> u(32 - r))) ^ x0
        x0, x1 = x0 + ks[(group + 1) % 3], x1 + ks[(group + 2) % 3] + u(group + 1)
    return x0, x1


@pytest.mark.parametrize("keep", [0.5, 0.8, 0.25, 1e-4])
def test_the_keep_mask_is_16_bits_of_each_threefry_hash_below_keep_times_65536(keep: float) -> None:
    # an independent reading: hash j of the key at counter (j, 0) gives the words y0, y1,
    # whose low then high 16 bits are elements 4j..4j+3, each kept when that integer is
    # below keep·65536
    from nnspec.nn.base import keep_mask
    shape = (3, 7, 5)  # 105 elements: 27 hashes, the last one's last three halves unused
    key = jax.random.key(11)
    k0, k1 = (int(v) for v in np.asarray(jax.random.key_data(key)))
    with np.errstate(over="ignore"):
        y0, y1 = _threefry_2x32(k0, k1, np.arange(27), np.zeros(27))
    words = np.stack([y0, y1], axis=-1).reshape(-1).astype(np.int64)
    halves = np.stack([words & 0xFFFF, words >> 16], axis=-1).reshape(-1)[:105].reshape(shape)
    np.testing.assert_array_equal(np.asarray(keep_mask(key, shape, keep)), halves < keep * 65536)
    # the probability it keeps with: ceil(keep·65536)/65536, within 1/65536 of keep
    assert abs(math.ceil(keep * 65536) / 65536 - keep) < 1 / 65536
    big = np.asarray(keep_mask(jax.random.key(5), (400_000,), keep))
    assert big.mean() == pytest.approx(math.ceil(keep * 65536) / 65536, abs=4 * math.sqrt(keep * (1 - keep) / 4e5) + 1e-6)


def test_an_elements_keep_mask_does_not_depend_on_the_masks_size() -> None:
    # a batch padded to split over devices (1437 examples to 1440) keeps the masks of its
    # real rows; and a key of another generator draws its own mask, of the same rule
    from nnspec.nn.base import keep_mask
    key = jax.random.key(2)
    short, padded = np.asarray(keep_mask(key, (1437, 17), 0.7)), np.asarray(keep_mask(key, (1440, 17), 0.7))
    np.testing.assert_array_equal(short, padded[:1437])
    other = np.asarray(keep_mask(jax.random.key(2, impl="rbg"), (1000, 100), 0.7))
    assert other.shape == (1000, 100) and other.mean() == pytest.approx(0.7, abs=0.01)
    assert np.mean(other != np.asarray(keep_mask(key, (1000, 100), 0.7))) > 0.1


def test_dropout_probability_is_a_traced_hyperparameter() -> None:
    n = 100_000
    model = compile_spec(f"input x[{n}]\nd: dropout 0.3")
    hp = model.hparams()
    hp["d"]["drop_prob"] = jnp.asarray(0.6, jnp.float32)
    y = np.asarray(model.apply({}, jnp.ones(n), key=KEY, train=True, hparams=hp))
    assert np.mean(y == 0) == pytest.approx(0.6, abs=0.01)
    np.testing.assert_allclose(y[y != 0], 1 / 0.4, rtol=1e-6)


# ----------------------------------------------------------------------------- penalties

PENALTY_BODY = "input x[3]\na: dense 4 bias_init=constant(0.5)\nb: dense 2 bias_init=constant(-0.25){extra}"


def _sums(params) -> dict[str, dict[str, tuple[float, float]]]:
    """Σw² and Σ|w| of every array, in float64."""
    p = to_np(params)
    return {layer: {k: (float((a ** 2).sum()), float(np.abs(a).sum())) for k, a in arrays.items()}
            for layer, arrays in p.items()}


# (per-layer arguments of `b`, `regularize` line, the penalty from Σw² (s2) and Σ|w| (s1))
PENALTY_CASES = [
    ("", "regularize l2=0.01", lambda s2, s1: 0.01 * (s2["a"]["w"] + s2["b"]["w"])),
    ("", "regularize l1=0.02", lambda s2, s1: 0.02 * (s1["a"]["w"] + s1["b"]["w"])),
    ("", "regularize l1=0.02 l2=0.01",
     lambda s2, s1: 0.02 * (s1["a"]["w"] + s1["b"]["w"]) + 0.01 * (s2["a"]["w"] + s2["b"]["w"])),
    ("", "regularize l2=0.01 include_bias=true",
     lambda s2, s1: 0.01 * sum(s2[layer][k] for layer in "ab" for k in "wb")),
    ("", "regularize l1=0.02 include_bias=true",
     lambda s2, s1: 0.02 * sum(s1[layer][k] for layer in "ab" for k in "wb")),
    (" l2=0.3", "", lambda s2, s1: 0.3 * s2["b"]["w"]),
    (" l1=0.3", "", lambda s2, s1: 0.3 * s1["b"]["w"]),
    (" l2=0.3", "regularize l2=0.01", lambda s2, s1: 0.01 * (s2["a"]["w"] + s2["b"]["w"]) + 0.3 * s2["b"]["w"]),
    ("", "", lambda s2, s1: 0.0),
]


@pytest.mark.parametrize("extra,reg,formula", PENALTY_CASES,
                         ids=[f"b{e or ''}|{r or 'none'}" for e, r, _ in PENALTY_CASES])
def test_penalty(extra: str, reg: str, formula) -> None:
    model = compile_spec(PENALTY_BODY.format(extra=extra), "loss mse", reg)
    params = model.init(KEY)
    s = _sums(params)
    want = formula({l: {k: v[0] for k, v in d.items()} for l, d in s.items()},
                   {l: {k: v[1] for k, v in d.items()} for l, d in s.items()})
    assert float(model.penalty(params)) == pytest.approx(want, rel=1e-5, abs=1e-8)
    # and the loss is the mean error plus the penalty
    x = jnp.asarray(OPT_X)
    y = jnp.zeros((len(OPT_X), 2))
    mean = float(jnp.mean(jnp.mean((model.apply(params, x) - y) ** 2, axis=-1)))
    assert float(model.loss(params, x, y)) == pytest.approx(mean + want, rel=1e-5)


def test_penalty_of_a_layer_named_regularize() -> None:
    # the layer's own hyperparameters must not collide with the `regularize` section's
    model = compile_spec("input x[3]\nregularize: dense 2 leaky_relu(0.2) l2=0.5", "loss mse")
    params = model.init(KEY)
    w = np.asarray(params["regularize"]["w"], np.float64)
    assert float(model.penalty(params)) == pytest.approx(0.5 * float((w ** 2).sum()), rel=1e-5)
    z = OPT_X.astype(np.float64) @ w
    np.testing.assert_allclose(np.asarray(model.apply(params, OPT_X)), np.where(z >= 0, z, 0.2 * z),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("include_bias", [False, True])
def test_decoupled_weight_decay(include_bias: bool) -> None:
    lr, wd = 0.1, 0.05
    flag = " include_bias=true" if include_bias else ""
    plain = compile_spec(OPT_BODY, "loss mse", f"optimizer sgd lr={lr}")
    decayed = compile_spec(OPT_BODY, "loss mse", f"optimizer sgd lr={lr}", f"regularize weight_decay={wd}{flag}")
    p0 = plain.init(KEY)
    a, _ = jax.jit(plain.step)(plain.init_state(KEY), OPT_X, OPT_Y, key=KEY)
    b, _ = jax.jit(decayed.step)(decayed.init_state(KEY), OPT_X, OPT_Y, key=KEY)
    for name in ("w", "b"):
        shrink = lr * wd * np.asarray(p0["out"][name]) if (name == "w" or include_bias) else 0.0
        np.testing.assert_allclose(np.asarray(b.params["out"][name]),
                                   np.asarray(a.params["out"][name]) - shrink, rtol=1e-6, atol=1e-7)
    # it is not an L2 term in the loss
    assert float(decayed.penalty(p0)) == 0.0


# ------------------------------------------------------------------------- early stopping
# Convention (as implemented): an epoch improves when it beats the best so far by more than
# `min_delta`; `patience` non-improving epochs are tolerated and the next one stops training.
# Keras and Lightning stop one epoch sooner (after `patience` non-improving epochs).

# (curve, mode, patience, min_delta, epoch it stops at or None, best epoch)
STOPPER_CASES = [
    ([1.0, 0.8, 0.85, 0.9, 0.7, 0.75, 0.76, 0.77, 0.6], "min", 2, 0.0, 4, 2),
    ([1.0, 0.9, 0.95, 0.8], "min", 0, 0.0, 3, 2),
    ([1.0, 0.97, 0.96, 0.94, 0.5], "min", 1, 0.05, 2, 1),
    ([1.0, 0.97, 0.96, 0.94, 0.5], "min", 1, 0.0, None, 5),
    ([1.0, 1.0, 1.0, 1.0], "min", 1, 0.0, 2, 1),  # ties are not improvements
    ([0.5, 0.6, 0.6, 0.7, 0.65, 0.69, 0.9], "max", 1, 0.0, 3, 2),
    ([0.5, 0.6, 0.62, 0.7, 0.71, 0.72], "max", 1, 0.05, 3, 2),
    ([3.0, 2.0, 1.0], "min", 0, 0.0, None, 3),
]


@pytest.mark.parametrize("curve,mode,patience,min_delta,stop,best", STOPPER_CASES)
def test_early_stopping_epoch(curve, mode, patience, min_delta, stop, best) -> None:
    stopper = Stopper("val_loss", mode, patience, min_delta)
    stopped = None
    for epoch, value in enumerate(curve, start=1):
        stopper, _, should_stop = stopper.update(value, epoch)
        if should_stop:
            stopped = epoch
            break
    assert (stopped, stopper.best_epoch) == (stop, best)


def test_early_stop_mode_follows_the_metric() -> None:
    def mode(monitor: str) -> str:
        p = nnspec.check_text(ES_SPEC.replace("patience=3", f"patience=3 monitor={monitor}"))
        return p.train.early_stop.mode
    assert (mode("val_loss"), mode("val_accuracy")) == ("min", "max")


ES_SPEC = """
model m {
    input x[2]
    h: dense 32 relu
    out: dense 1 sigmoid
}
loss binary_crossentropy
optimizer sgd lr=1.0
train {
    data builtin("moons", n=80, noise=0.4)
    split val=0.5
    batch 8
    epochs 40
    seed 1
    metrics accuracy
    early_stop patience=3 restore_best
}
"""


def test_restore_best_returns_the_best_epochs_parameters() -> None:
    stopped = fit(nnspec.check_text(ES_SPEC))
    val = [row["val_loss"] for row in stopped.history]
    assert stopped.stopped_early and stopped.best_epoch < stopped.epochs_run
    assert stopped.best_epoch == int(np.argmin(val)) + 1
    assert stopped.epochs_run == stopped.best_epoch + 3  # patience 3: stops on the 3rd epoch without improvement
    # the same run without early stopping, ended at the best epoch: the same parameters, bit for bit
    plain = fit(nnspec.check_text(ES_SPEC.replace("early_stop patience=3 restore_best", "")),
                epochs=stopped.best_epoch)
    assert [row["val_loss"] for row in plain.history] == val[:stopped.best_epoch]
    for a, b in zip(jax.tree_util.tree_leaves(stopped.params), jax.tree_util.tree_leaves(plain.params)):
        assert np.array_equal(np.asarray(a), np.asarray(b))
