"""PyTorch's recurrent layers in nnspec: `simple_rnn` and `lstm` with `recurrent_bias=true`
and `gru` (reset_after=true, the default) have PyTorch's arrays (b_ih and b_hh) and
parameter counts, and, with PyTorch's weights copied in, its outputs to 1e-5, forward and
backward, one way and bidirectional.

PyTorch's arrays map onto nnspec's as: w = weight_ih.T, u = weight_hh.T, b = bias_ih,
b_rec = bias_hh (`_reverse` -> `_back`). LSTM gates are i, f, g, o in both; GRU gates are
r, z, n in PyTorch and z, r, h in nnspec (Keras's), so the first two blocks swap.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnspec
from nnspec.diagnostics import NNSpecError
from nnspec.lower import lower

torch = pytest.importorskip("torch")

STEPS, FEATURES, UNITS, BATCH = 6, 3, 5, 4
TORCH = {"simple_rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


def _gate_order(op: str, a: np.ndarray) -> np.ndarray:
    """PyTorch's gate blocks (first axis) in nnspec's order."""
    if op != "gru":
        return a
    r, z, n = np.split(a, 3, axis=0)
    return np.concatenate([z, r, n], axis=0)


def nnspec_params(op: str, net, bidirectional: bool) -> dict[str, jax.Array]:
    out = {}
    for torch_suffix, suffix in [("", ""), ("_reverse", "_back")][:2 if bidirectional else 1]:
        get = lambda name: getattr(net, f"{name}_l0{torch_suffix}").detach().numpy()  # noqa: E731
        out["w" + suffix] = _gate_order(op, get("weight_ih")).T
        out["u" + suffix] = _gate_order(op, get("weight_hh")).T
        out["b" + suffix] = _gate_order(op, get("bias_ih"))
        out["b_rec" + suffix] = _gate_order(op, get("bias_hh"))
    return {k: jnp.asarray(v, jnp.float32) for k, v in out.items()}


def line(op: str, sequences: bool, bidirectional: bool) -> str:
    words = [op, str(UNITS)]
    if op != "gru":
        words.append("recurrent_bias=true")
    if sequences:
        words.append("sequences=true")
    if bidirectional:
        words.append("bidirectional=true")
    return " ".join(words)


CASES = [(op, seq, bi) for op in TORCH for seq in (False, True) for bi in (False, True)]


@pytest.mark.parametrize("op,sequences,bidirectional", CASES,
                         ids=[f"{op}{'-seq' if s else ''}{'-bi' if b else ''}" for op, s, b in CASES])
def test_matches_pytorch_with_its_weights(op, sequences, bidirectional):
    torch.manual_seed(0)
    net = TORCH[op](FEATURES, UNITS, batch_first=True, bidirectional=bidirectional)
    with torch.no_grad():  # biases well away from 0, so that adding one twice would show
        for name, p in net.named_parameters():
            if "bias" in name:
                p.uniform_(-1.0, 1.0)
    program = nnspec.check_text(f"model m {{\n    input x[{STEPS}, {FEATURES}]\n"
                                f"    l: {line(op, sequences, bidirectional)}\n}}\n")
    assert program.model.n_params == sum(p.numel() for p in net.parameters())
    model = lower(program)
    params = {"l": nnspec_params(op, net, bidirectional)}
    assert jax.tree_util.tree_map(jnp.shape, params) == jax.tree_util.tree_map(jnp.shape, model.init(jax.random.key(0)))

    x = np.random.default_rng(1).normal(size=(BATCH, STEPS, FEATURES)).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    out, state = net(xt)
    h_n = state[0] if op == "lstm" else state
    want = out if sequences else (torch.cat([h_n[0], h_n[1]], dim=-1) if bidirectional else h_n[0])
    got = model.apply(params, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(got), want.detach().numpy(), rtol=1e-5, atol=1e-5)

    # the gradient of one fixed linear read-out, with respect to the input and to the biases
    probe = np.random.default_rng(2).normal(size=want.shape).astype(np.float32)
    (want * torch.tensor(probe)).sum().backward()
    grad_x, grad_p = jax.grad(lambda x, p: jnp.sum(model.apply(p, x) * probe), argnums=(0, 1))(jnp.asarray(x), params)
    np.testing.assert_allclose(np.asarray(grad_x), xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(grad_p["l"]["b_rec"]), _gate_order(op, net.bias_hh_l0.grad.numpy()),
                               rtol=1e-4, atol=1e-5)


def test_the_pytorch_counts_of_the_corpus_models():
    """PyTorch's mnist_rnn LSTM(28, 64) and word_language_model LSTM(200, 200)."""
    for features, units in ((28, 64), (200, 200)):
        program = nnspec.check_text(f"model m {{\n    input x[10, {features}]\n    lstm {units} recurrent_bias=true\n}}\n")
        assert program.model.n_params == sum(p.numel() for p in torch.nn.LSTM(features, units).parameters())


def test_a_recurrent_bias_needs_the_bias():
    text = "model m {\n    input x[6, 3]\n    lstm 5 bias=false recurrent_bias=true\n}\n"
    with pytest.raises(NNSpecError) as exc:
        nnspec.check_text(text)
    (diag,) = exc.value.diagnostics
    assert diag.code == "E232" and diag.message == "`bias` is off, but `recurrent_bias` adds a second bias"
    span = diag.primary_span
    assert text[span.start:span.end] == "recurrent_bias=true"


# --------------------------------------------- dropout inside the layer (Keras's dropout=)

def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def ref_masked(op: str, p: dict, x: np.ndarray, xmask: np.ndarray, rmask: np.ndarray, units: int,
               reset_after: bool = True) -> np.ndarray:
    """Keras 3's cells with dropout (LSTMCell, GRUCell, SimpleRNNCell.call): x_t·xmask in
    place of x_t, and h₋·rmask in place of h₋ wherever h₋ meets the recurrent kernel; the
    last state."""
    h, c = np.zeros(units), np.zeros(units)
    w, u = p["w"], p["u"]
    b, b_rec = p.get("b", 0.0), p.get("b_rec", 0.0)
    for xt in x:
        xt, hm = xt * xmask, h * rmask
        if op == "simple_rnn":
            h = np.tanh(xt @ w + b + hm @ u)
        elif op == "lstm":
            i, f, cc, o = np.split(xt @ w + b + hm @ u, 4)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(cc)
            h = _sigmoid(o) * np.tanh(c)
        else:
            xz, xr, xh = np.split(xt @ w + b, 3)
            if reset_after:
                hz, hr, hh = np.split(hm @ u + b_rec, 3)
                z, r = _sigmoid(xz + hz), _sigmoid(xr + hr)
                cand = np.tanh(xh + r * hh)
            else:
                z = _sigmoid(xz + hm @ u[:, :units])
                r = _sigmoid(xr + hm @ u[:, units:2 * units])
                cand = np.tanh(xh + (r * hm) @ u[:, 2 * units:])
            h = z * h + (1 - z) * cand
    return h


def _all_masks(width: int, keep: float) -> list[np.ndarray]:
    return [np.array(bits) / keep for bits in np.ndindex(*(2,) * width)]


DROP_CASES = [("simple_rnn 3", "simple_rnn", True), ("lstm 3", "lstm", True), ("gru 3", "gru", True),
              ("gru 3 reset_after=false", "gru", False)]


@pytest.mark.parametrize("layer,op,reset_after", DROP_CASES, ids=[c[0] for c in DROP_CASES])
@pytest.mark.parametrize("which", ["drop_prob", "recurrent_drop_prob"])
def test_each_example_has_one_mask_for_every_step(layer, op, reset_after, which):
    """In training, every example's output is Keras's cell run with ONE mask, the same at
    every step, on x (drop_prob) or on h₋ (recurrent_drop_prob): of the 2³ masks of 0 and
    1/(1 − p), exactly one gives the output. At eval there is no dropout."""
    prob, features, steps, units = 0.5, 3, 7, 3
    text = f"model m {{\n    input x[{steps}, {features}]\n    l: {layer} bias_init=normal {which}={prob}\n}}\n"
    model = lower(nnspec.check_text(text))
    params = model.init(jax.random.key(0))
    p = {k: np.asarray(v, np.float64) for k, v in params["l"].items()}
    x = np.random.default_rng(0).normal(size=(24, steps, features)).astype(np.float32)
    got = np.asarray(model.apply(params, jnp.asarray(x), key=jax.random.key(1), train=True))
    ones = np.ones(units if which == "recurrent_drop_prob" else features)
    dropped = []
    for xi, yi in zip(x, got):
        fits = []
        for m in _all_masks(len(ones), 1 - prob):
            xm, rm = (m, np.ones(units)) if which == "drop_prob" else (np.ones(features), m)
            if np.allclose(ref_masked(op, p, xi, xm, rm, units, reset_after), yi, rtol=1e-5, atol=1e-5):
                fits.append(m)
        assert len(fits) == 1, f"{len(fits)} masks fit an example"
        dropped.append(np.mean(fits[0] == 0))
    assert 0.3 < np.mean(dropped) < 0.7  # p = 0.5 of 72 draws
    evaluated = np.asarray(model.apply(params, jnp.asarray(x), train=False))
    want = np.stack([ref_masked(op, p, xi, np.ones(features), np.ones(units), units, reset_after) for xi in x])
    np.testing.assert_allclose(evaluated, want, rtol=1e-5, atol=1e-5)


def test_both_dropouts_and_both_directions_draw_their_own_masks():
    text = "model m {\n    input x[5, 4]\n    l: lstm 6 drop_prob=0.3 recurrent_drop_prob=0.3 bidirectional\n}\n"
    model = lower(nnspec.check_text(text))
    params = model.init(jax.random.key(0))
    x = jnp.ones((2, 5, 4))
    a = np.asarray(model.apply(params, x, key=jax.random.key(1), train=True))
    b = np.asarray(model.apply(params, x, key=jax.random.key(2), train=True))
    assert not np.allclose(a, b)  # another key, other masks
    assert not np.allclose(a[0], a[1])  # each example its own
    assert not np.allclose(a[0, :6], a[0, 6:])  # each direction its own


def test_a_spec_with_recurrent_dropout_trains_and_a_sweep_of_it_is_one_program_per_value():
    """With dropout off (0) a layer draws no masks, with it on it does: the two are different
    programs, so a sweep that varies it trains each value on its own, each as it would alone."""
    from nnspec.fit import fit
    from nnspec.sweep_fit import fit_sweep
    text = """
model waves {
    input wave[20, 1]
    l: lstm 8 drop_prob=0.1 recurrent_drop_prob=sweep(0, 0.3)
    dense 1 sigmoid
}
loss binary_crossentropy
optimizer adam lr=0.02
train {
    data builtin("waves", n=256)
    split val=0.25
    epochs 3
}
"""
    program = nnspec.check_text(text)
    (axis,) = program.sweep.axes
    assert axis.name == "l.recurrent_drop_prob" and not axis.traced
    assert program.sweep.groups() == [[0], [1]]
    result = fit_sweep(program)
    for member in result.members:
        alone = fit(member.program)
        assert [r["loss"] for r in member.history] == pytest.approx([r["loss"] for r in alone.history], rel=1e-5)
        assert member.history[-1]["val_loss"] < member.history[0]["val_loss"] * 1.2
    assert result.members[0].history[0]["loss"] != result.members[1].history[0]["loss"]
