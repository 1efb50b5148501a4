"""Attention, normalization and reshaping layers against NumPy references written here
(loops over heads and steps, not the einsums of nnspec/nn/attention.py), dropout on and
off, the causal mask, parameter counts in the summary, and a tiny transformer that learns."""

from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnspec
from nnspec.lower import lower
from nnspec.summary import summary

KEY = jax.random.key(0)
SPECS = Path(__file__).resolve().parent.parent / "specs"
TOL = dict(rtol=1e-5, atol=1e-5)


def lowered(body: str, *sections: str):
    return lower(nnspec.check_text("model m {\n" + body + "\n}\n" + "".join(s + "\n" for s in sections)))


def random_params(model, seed: int = 0) -> dict:
    """The model's parameters with every array redrawn at random, so that biases, offsets
    and scales are not their zeros and ones."""
    rng = np.random.default_rng(seed)
    params = model.init(KEY)
    return {layer: {name: jnp.asarray(rng.normal(scale=0.5, size=a.shape).astype(np.float32)) for name, a in ps.items()}
            for layer, ps in params.items()}


def np_params(params: dict, layer: str = "l") -> dict[str, np.ndarray]:
    return {k: np.asarray(v, np.float64) for k, v in params[layer].items()}


def data(*shape: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def run(model, params, x, **kw) -> np.ndarray:
    return np.asarray(model.apply(params, jnp.asarray(x), **kw), np.float64)


# ----------------------------------------------------------------- NumPy references

def np_layer_norm(x, scale, offset, eps):
    out = np.empty_like(x, dtype=np.float64)
    for idx in np.ndindex(x.shape[:-1]):
        row = x[idx].astype(np.float64)
        mu = row.sum() / row.size
        var = ((row - mu) ** 2).sum() / row.size
        out[idx] = (row - mu) / math.sqrt(var + eps)
    if scale is not None:
        out = out * scale
    if offset is not None:
        out = out + offset
    return out


def np_softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def np_attention(x, p, causal):
    """x (batch, steps, features); one head and one query step at a time."""
    batch, steps, _ = x.shape
    heads, key_dim = p["w_q"].shape[1:]
    out = np.zeros(x.shape)
    for b in range(batch):
        for h in range(heads):
            def proj(part):
                y = x[b].astype(np.float64) @ p[f"w_{part}"][:, h, :]
                return y + p[f"b_{part}"][h] if f"b_{part}" in p else y
            q, k, v = proj("q"), proj("k"), proj("v")
            for t in range(steps):
                seen = t + 1 if causal else steps
                w = np_softmax(np.array([q[t] @ k[s] for s in range(seen)]) / math.sqrt(key_dim))
                o = sum(w[s] * v[s] for s in range(seen))
                out[b, t] += o @ p["w_o"][h]
        if "b_o" in p:
            out[b] += p["b_o"]
    return out


def np_encoder(x, p, *, norm_first, act, eps):
    ln1 = lambda y: np_layer_norm(y, p["ln1_scale"], p["ln1_offset"], eps)  # noqa: E731
    ln2 = lambda y: np_layer_norm(y, p["ln2_scale"], p["ln2_offset"], eps)  # noqa: E731
    ff = lambda y: act(y @ p["w_ff1"] + p["b_ff1"]) @ p["w_ff2"] + p["b_ff2"]  # noqa: E731
    x = x.astype(np.float64)
    if norm_first:
        x = x + np_attention(ln1(x), p, False)
        return x + ff(ln2(x))
    x = ln1(x + np_attention(x, p, False))
    return ln2(x + ff(x))


# ------------------------------------------------------------------------ layer_norm

@pytest.mark.parametrize("line,scale,offset", [("layer_norm", True, True), ("layer_norm scale=false offset=false", False, False),
                                               ("layer_norm epsilon=0.5 offset=false", True, False)])
def test_layer_norm_matches_numpy(line: str, scale: bool, offset: bool) -> None:
    model = lowered(f"input x[3, 5]\nl: {line}")
    params = random_params(model)
    assert set(params.get("l", {})) == {n for n, on in (("scale", scale), ("offset", offset)) if on}
    p = np_params(params) if params else {}
    eps = model.program.model.layers[0].params["epsilon"]
    x = data(4, 3, 5) * 3 + 2
    want = np_layer_norm(x, p.get("scale"), p.get("offset"), eps)
    np.testing.assert_allclose(run(model, params, x), want, **TOL)
    assert eps == (0.5 if "epsilon" in line else 1e-3)  # Keras LayerNormalization's default


# ---------------------------------------------------------------------- self_attention

@pytest.mark.parametrize("line,causal", [("self_attention heads=2", False), ("self_attention heads=3 key_dim=4 causal=true", True),
                                         ("self_attention heads=1 bias=false causal=true", True)])
def test_self_attention_matches_numpy_on_both_paths(line: str, causal: bool) -> None:
    model = lowered(f"input x[5, 6]\nl: {line}")
    params = random_params(model)
    p = np_params(params)
    assert ("b_q" in p) == ("bias=false" not in line)
    x = data(2, 5, 6)
    want = np_attention(x, p, causal)
    # not training: jax.nn.dot_product_attention; training (drop_prob 0): the explicit softmax
    np.testing.assert_allclose(run(model, params, x), want, **TOL)
    np.testing.assert_allclose(run(model, params, x, key=KEY, train=True), want, **TOL)
    np.testing.assert_allclose(run(model, params, x[0]), want[0], **TOL)  # one example, no batch axis


def test_default_key_dim_splits_the_features_and_the_output_keeps_them() -> None:
    layer = lowered("input x[5, 6]\nl: self_attention heads=3").program.model.layers[0]
    assert layer.param_shapes["w_q"] == (6, 3, 2) and layer.param_shapes["w_o"] == (3, 2, 6)
    assert layer.out_shape == (5, 6)


@pytest.mark.parametrize("causal", [True, False])
def test_causal_attention_does_not_look_ahead(causal: bool) -> None:
    model = lowered(f"input x[5, 4]\nl: self_attention heads=2 causal={'true' if causal else 'false'}")
    params = random_params(model)
    x = data(5, 4)
    later = x.copy()
    later[3:] += 1.0  # change the last two steps only
    a, b = run(model, params, x), run(model, params, later)
    assert np.allclose(a[:3], b[:3], **TOL) == causal
    assert not np.allclose(a[3:], b[3:])


def test_attention_dropout_only_in_training() -> None:
    model = lowered("input x[5, 4]\nl: self_attention heads=2 drop_prob=0.5")
    params = random_params(model)
    x = data(3, 5, 4)
    want = np_attention(x, np_params(params), False)
    np.testing.assert_allclose(run(model, params, x), want, **TOL)  # off when predicting
    one = run(model, params, x, key=jax.random.key(1), train=True)
    again = run(model, params, x, key=jax.random.key(1), train=True)
    other = run(model, params, x, key=jax.random.key(2), train=True)
    np.testing.assert_array_equal(one, again)
    assert not np.allclose(one, want) and not np.allclose(one, other)
    with pytest.raises(ValueError, match="needs a `key`"):
        model.layers[0].apply(params["l"], jnp.asarray(x), model.hparams()["l"], key=None, train=True)


def test_attention_dropout_drops_weights_at_the_traced_rate() -> None:
    """With drop_prob p, about a fraction p of the attention weights are zeroed: with
    v = identity-like values, each output is the kept weights scaled by 1/(1-p)."""
    model = lowered("input x[4, 4]\nl: self_attention heads=1 key_dim=4 drop_prob=0.25 bias=false")
    params = model.init(KEY)
    eye = jnp.eye(4, dtype=jnp.float32)[:, None, :]
    params = {"l": {**params["l"], "w_q": jnp.zeros((4, 1, 4)), "w_k": jnp.zeros((4, 1, 4)),
                    "w_v": eye, "w_o": jnp.transpose(eye, (1, 2, 0))}}
    x = jnp.broadcast_to(jnp.eye(4, dtype=jnp.float32), (500, 4, 4))
    hp = model.hparams()
    for p in (0.25, 0.6):  # a new rate, same program
        hp = {**hp, "l": {"drop_prob": np.float32(p)}}
        out = np.asarray(model.apply(params, x, key=KEY, train=True, hparams=hp))
        # equal logits: every weight is 1/4, kept ones become 1/4/(1-p)
        kept = np.isclose(out, 0.25 / (1 - p), rtol=1e-4)
        assert np.all(kept | np.isclose(out, 0.0))
        assert abs(1 - kept.mean() - p) < 0.02


# ----------------------------------------------------------------- transformer_encoder

@pytest.mark.parametrize("norm_first,act,name", [(False, lambda y: np.maximum(y, 0), "relu"), (True, np.tanh, "tanh")])
def test_transformer_encoder_matches_numpy(norm_first: bool, act, name: str) -> None:
    model = lowered(f"input x[4, 6]\nl: transformer_encoder heads=2 ff=10 activation={name} "
                    f"norm_first={'true' if norm_first else 'false'}")
    params = random_params(model)
    x = data(3, 4, 6)
    want = np_encoder(x, np_params(params), norm_first=norm_first, act=act, eps=1e-5)
    np.testing.assert_allclose(run(model, params, x), want, **TOL)
    np.testing.assert_allclose(run(model, params, x, key=KEY, train=True), want, **TOL)


def test_transformer_encoder_dropout_only_in_training() -> None:
    model = lowered("input x[4, 6]\nl: transformer_encoder heads=2 ff=8 drop_prob=0.3")
    params = random_params(model)
    x = data(2, 4, 6)
    want = np_encoder(x, np_params(params), norm_first=False, act=lambda y: np.maximum(y, 0), eps=1e-5)
    np.testing.assert_allclose(run(model, params, x), want, **TOL)
    assert not np.allclose(run(model, params, x, key=KEY, train=True), want)


def test_parameter_counts_reach_the_summary() -> None:
    program = nnspec.check_text("model m {\n input x[8, 12]\n enc: transformer_encoder heads=3 key_dim=5 ff=20\n"
                                " pos: position_embedding\n ln: layer_norm\n att: self_attention heads=2 bias=false\n}\n")
    f, h, k, ff = 12, 3, 5, 20
    encoder = 3 * (f * h * k + h * k) + (h * k * f + f) + 2 * 2 * f + (f * ff + ff) + (ff * f + f)
    counts = {layer.name: layer.n_params for layer in program.model.layers}
    assert counts == {"enc": encoder, "pos": 8 * 12, "ln": 2 * 12, "att": 4 * 12 * 2 * 6}
    text = summary(program)
    for name, n in counts.items():
        line = next(row for row in text.splitlines() if row.startswith(f"{name} ("))
        assert line.rsplit(")", 1)[1].split()[0] == f"{n:,}"  # after the shape: Params, then FLOPs
    assert f"Total params: {sum(counts.values()):,}" in text


def test_weights_and_biases_are_named_for_penalties() -> None:
    """Weight arrays start with `w`, biases with `b`; layer-norm arrays are scales and
    offsets (not penalized in Keras by default)."""
    layer = lowered("input x[4, 6]\nl: transformer_encoder heads=2 ff=8").program.model.layers[0]
    weights = {n for n in layer.param_shapes if n.startswith("w")}
    assert weights == {"w_q", "w_k", "w_v", "w_o", "w_ff1", "w_ff2"}
    assert {n for n in layer.param_shapes if n.startswith("b")} == {"b_q", "b_k", "b_v", "b_o", "b_ff1", "b_ff2"}
    assert set(layer.param_shapes) - weights - {n for n in layer.param_shapes if n.startswith("b")} == {
        "ln1_scale", "ln1_offset", "ln2_scale", "ln2_offset"}


def test_regularize_penalizes_the_weights_only() -> None:
    """`regularize l2=...` reaches every `w...` array of a block and the position table, but
    no bias and no layer-norm scale or offset (the rule lives in lower.py's `role`)."""
    model = lowered("input x[4, 6]\npos: position_embedding\nl: transformer_encoder heads=2 ff=8\nln: layer_norm\nflatten\nout: dense 1",
                    "loss mse", "optimizer sgd", "regularize l2=0.1")
    params = random_params(model)
    want = 0.1 * sum(float(np.sum(np.asarray(a, np.float64) ** 2))
                     for ps in params.values() for name, a in ps.items() if name.startswith("w"))
    assert {n for ps in params.values() for n in ps if n.startswith("w")} == {
        "w", "w_q", "w_k", "w_v", "w_o", "w_ff1", "w_ff2"}
    np.testing.assert_allclose(float(model.penalty(params)), want, rtol=1e-5)


# ------------------------------------------------------------------ position_embedding

def test_learned_position_embedding_adds_its_table() -> None:
    model = lowered("input x[3, 4]\nl: position_embedding steps=5")
    params = random_params(model)
    table = np_params(params)["w"]
    assert table.shape == (5, 4)
    x = data(2, 3, 4)
    np.testing.assert_allclose(run(model, params, x), x + table[:3], **TOL)


def test_sinusoidal_position_embedding_is_fixed() -> None:
    model = lowered("input x[6, 5]\nl: position_embedding sinusoidal")
    assert model.init(KEY) == {} and model.program.model.n_params == 0
    want = np.zeros((6, 5))
    for t in range(6):
        for i in range(5):
            angle = t / 10000 ** (2 * (i // 2) / 5)
            want[t, i] = math.sin(angle) if i % 2 == 0 else math.cos(angle)
    x = data(2, 6, 5)
    np.testing.assert_allclose(run(model, {}, x), x + want, **TOL)


# --------------------------------------------------------------------------- reshaping

def test_reshape_and_permute_match_numpy() -> None:
    model = lowered("input x[24]\nr: reshape [2, -1, 3]\np: permute [3, 1, 2]")
    assert [layer.out_shape for layer in model.program.model.layers] == [(2, 4, 3), (3, 2, 4)]
    x = data(5, 24)
    np.testing.assert_array_equal(run(model, {}, x), np.transpose(x.reshape(5, 2, 4, 3), (0, 3, 1, 2)))
    np.testing.assert_array_equal(run(model, {}, x[0]), np.transpose(x[0].reshape(2, 4, 3), (2, 0, 1)))


def test_dense_per_step_applies_the_same_weights_to_every_step() -> None:
    model = lowered("input x[4, 3]\nl: dense 2 tanh per_step")
    layer = model.program.model.layers[0]
    assert (layer.out_shape, dict(layer.param_shapes)) == ((4, 2), {"w": (3, 2), "b": (2,)})
    params = random_params(model)
    p = np_params(params)
    x = data(2, 4, 3)
    want = np.stack([[np.tanh(x[b, t] @ p["w"] + p["b"]) for t in range(4)] for b in range(2)])
    np.testing.assert_allclose(run(model, params, x), want, **TOL)


# ------------------------------------------------------------------------- it learns

def test_digits_transformer_learns() -> None:
    """specs/digits_transformer.nn's model, trained for a few hundred examples' worth of
    steps (the full run is tests/test_spec_training.py's): held-out loss falls."""
    from nnspec.data import load
    path = SPECS / "digits_transformer.nn"
    program = nnspec.check_text(path.read_text(), filename=str(path))
    model = lower(program)
    ds = load(program.train.data, seed=0, base_dir=SPECS, task=program.loss.task)
    x = (ds.x - ds.x[:1200].mean(0)) / (ds.x[:1200].std(0) + 1e-6)
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(ds.y)
    held_x, held_y = x[1200:1500], y[1200:1500]
    step = jax.jit(lambda state, xb, yb, key: model.step(state, xb, yb, key=key)[0])
    held = jax.jit(lambda params: (model.loss(params, held_x, held_y),
                                   jnp.mean(jnp.argmax(model.apply(params, held_x), -1) == held_y)))
    state = model.init_state(KEY)
    before, _ = held(state.params)
    for i, key in enumerate(jax.random.split(jax.random.key(1), 60)):
        lo = (i % 18) * 64
        state = step(state, x[lo:lo + 64], y[lo:lo + 64], key)
    after, accuracy = held(state.params)
    assert float(after) < float(before) / 3, (float(before), float(after))
    assert float(accuracy) >= 0.8
