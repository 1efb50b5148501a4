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
        get = lambda name: getattr(net, f"{name}_l0{torch_suffix}").detach().numpy()
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
