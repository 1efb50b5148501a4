"""The convolution family against a NumPy reference written here with plain loops and
einsum: conv1d, conv2d (stride, dilation, `same` and `valid`), depthwise, separable,
transpose, the pools and upsampling, each lowered and compared to 1e-5 on random inputs.
Then Keras's output sizes for `same`, the initializers' fans, the penalties on every
kernel, and a small CNN that learns the 8×8 digits."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnspec
from nnspec.lower import Model, lower

KEY = jax.random.key(0)
RNG = np.random.default_rng(0)
TOL = dict(rtol=1e-5, atol=1e-5)


def layer_model(in_shape: tuple[int, ...], line: str, *sections: str) -> Model:
    """`model m { input x[in_shape]  l: line }` lowered."""
    text = f"model m {{\n    input x[{', '.join(map(str, in_shape))}]\n    l: {line}\n}}\n" + "".join(s + "\n" for s in sections)
    return lower(nnspec.check_text(text))


def run(in_shape: tuple[int, ...], line: str, x: np.ndarray, **arrays: np.ndarray) -> np.ndarray:
    """The lowered layer on the batch `x`, its arrays replaced by `arrays`."""
    model = layer_model(in_shape, line)
    params = model.init(KEY)
    assert set(arrays) == set(params.get("l", {})), sorted(params.get("l", {}))
    for name, value in arrays.items():
        assert params["l"][name].shape == value.shape, name
    params = {**params, "l": {k: jnp.asarray(v, jnp.float32) for k, v in arrays.items()}}
    return np.asarray(model.apply(params, jnp.asarray(x, jnp.float32)))


def rand(*shape: int) -> np.ndarray:
    return RNG.normal(size=shape)


# ---------------------------------------------------------------------- the reference

def same_pads(size: int, reach: int, stride: int) -> tuple[int, int]:
    """TensorFlow's `same`: ceil(size / stride) outputs, the odd pad after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + reach - size, 0)
    return total // 2, total - total // 2


def patches(x: np.ndarray, kernel, stride, dilation, padding: str, fill: float = 0.0):
    """Every window of `x` (batch, *spatial, channels): yields (output index, window of
    shape (batch, *kernel, channels)), with the output's spatial shape first."""
    spatial = x.shape[1:-1]
    reach = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    pads = [same_pads(n, r, s) if padding == "same" else (0, 0) for n, r, s in zip(spatial, reach, stride)]
    xp = np.pad(x, [(0, 0), *pads, (0, 0)], constant_values=fill)
    out = [(n + lo + hi - r) // s + 1 for n, (lo, hi), r, s in zip(spatial, pads, reach, stride)]
    windows = []
    for index in np.ndindex(*out):
        taps = [o * s + np.arange(k) * d for o, s, k, d in zip(index, stride, kernel, dilation)]
        windows.append((index, xp[(slice(None), *np.ix_(*taps), slice(None))] if len(taps) > 1
                        else xp[:, taps[0], :]))
    return tuple(out), windows


def ref_conv(x, w, b=None, stride=None, dilation=None, padding="valid"):
    n = x.ndim - 2
    stride, dilation = stride or (1,) * n, dilation or (1,) * n
    out, windows = patches(x, w.shape[:n], stride, dilation, padding)
    y = np.zeros((x.shape[0], *out, w.shape[-1]))
    letters = "abc"[:n]
    for index, win in windows:
        y[(slice(None), *index)] = np.einsum(f"n{letters}i,{letters}io->no", win, w)
    return y if b is None else y + b


def ref_depthwise(x, w, stride=(1, 1), dilation=(1, 1), padding="valid"):
    """w (kh, kw, cin, m): output channel c·m + j is input channel c under filter j."""
    out, windows = patches(x, w.shape[:2], stride, dilation, padding)
    cin, m = w.shape[2:]
    y = np.zeros((x.shape[0], *out, cin * m))
    for index, win in windows:
        y[(slice(None), *index)] = np.einsum("nabc,abcj->ncj", win, w).reshape(x.shape[0], cin * m)
    return y


def ref_transpose(x, w, b, stride, padding, dilation=(1, 1)):
    """Every input value adds value × kernel onto the output at stride steps; `same`
    then keeps n·stride outputs, from where the forward conv's padding would start."""
    batch, h, wd, _ = x.shape
    kh, kw, _, f = w.shape
    reach = [(kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1]
    full = [(n - 1) * s + r for n, s, r in zip((h, wd), stride, reach)]
    if padding == "same":
        start = [same_pads(n * s, r, s)[0] for n, s, r in zip((h, wd), stride, reach)]
        size = [n * s for n, s in zip((h, wd), stride)]
    else:
        start, size = [0, 0], full
    y = np.zeros((batch, max(full[0], start[0] + size[0]), max(full[1], start[1] + size[1]), f))
    for i in range(h):
        for j in range(wd):
            for a in range(kh):
                for c in range(kw):
                    y[:, i * stride[0] + a * dilation[0], j * stride[1] + c * dilation[1]] += x[:, i, j] @ w[a, c]
    return y[:, start[0]:start[0] + size[0], start[1]:start[1] + size[1]] + b


def ref_pool(x, size, stride, padding, kind):
    fill = -np.inf if kind == "max" else np.nan
    out, windows = patches(x, size, stride, (1,) * len(size), padding, fill=fill)
    y = np.zeros((x.shape[0], *out, x.shape[-1]))
    axes = tuple(range(1, len(size) + 1))
    for index, win in windows:
        y[(slice(None), *index)] = win.max(axis=axes) if kind == "max" else np.nanmean(win, axis=axes)
    return y


# ------------------------------------------------------------------ layers vs reference

@pytest.mark.parametrize("steps,k,stride,dilation,padding", [
    (10, 3, 1, 1, "valid"), (11, 4, 2, 1, "same"), (12, 3, 3, 2, "valid"), (9, 2, 2, 3, "same"), (5, 5, 1, 1, "valid"),
])
def test_conv1d(steps, k, stride, dilation, padding):
    x, w, b = rand(3, steps, 2), rand(k, 2, 4), rand(4)
    got = run((steps, 2), f"conv1d 4 {k} stride={stride} dilation={dilation} padding={padding}", x, w=w, b=b)
    np.testing.assert_allclose(got, ref_conv(x, w, b, (stride,), (dilation,), padding), **TOL)


@pytest.mark.parametrize("shape,kernel,stride,dilation,padding", [
    ((8, 8, 1), (3, 3), (1, 1), (1, 1), "valid"),
    ((7, 9, 2), (2, 3), (2, 1), (1, 1), "same"),
    ((9, 8, 3), (3, 2), (1, 2), (2, 1), "valid"),
    ((10, 7, 2), (3, 3), (3, 2), (2, 2), "same"),
    ((6, 6, 2), (4, 1), (2, 2), (1, 1), "same"),
])
def test_conv2d(shape, kernel, stride, dilation, padding):
    x, w, b = rand(2, *shape), rand(*kernel, shape[-1], 3), rand(3)
    line = f"conv2d 3 {list(kernel)} stride={list(stride)} dilation={list(dilation)} padding={padding}"
    np.testing.assert_allclose(run(shape, line, x, w=w, b=b), ref_conv(x, w, b, stride, dilation, padding), **TOL)


def test_conv2d_activation_and_no_bias():
    x, w = rand(2, 5, 5, 2), rand(3, 3, 2, 4)
    got = run((5, 5, 2), "conv2d 4 3 relu bias=false", x, w=w)
    np.testing.assert_allclose(got, np.maximum(ref_conv(x, w), 0), **TOL)


def test_a_single_example_and_a_batch_agree():
    model = layer_model((6, 6, 2), "conv2d 3 3 tanh stride=2 padding=same")
    params = model.init(KEY)
    x = jnp.asarray(rand(4, 6, 6, 2), jnp.float32)
    batch = np.asarray(model.apply(params, x))
    one_by_one = np.stack([np.asarray(model.apply(params, x[i])) for i in range(4)])
    np.testing.assert_allclose(batch, one_by_one, **TOL)


@pytest.mark.parametrize("m,stride,padding", [(1, 1, "valid"), (2, 2, "same"), (3, 1, "same")])
def test_depthwise_conv2d(m, stride, padding):
    x, w, b = rand(2, 7, 6, 3), rand(3, 2, 3, m), rand(3 * m)
    got = run((7, 6, 3), f"depthwise_conv2d [3, 2] depth_multiplier={m} stride={stride} padding={padding}", x, w=w, b=b)
    np.testing.assert_allclose(got, ref_depthwise(x, w, (stride, stride), (1, 1), padding) + b, **TOL)


def test_separable_conv2d():
    x, dw, pw, b = rand(2, 8, 7, 3), rand(3, 3, 3, 2), rand(1, 1, 6, 4), rand(4)
    got = run((8, 7, 3), "separable_conv2d 4 3 depth_multiplier=2 stride=2 padding=same dilation=1", x,
              w_depthwise=dw, w_pointwise=pw, b=b)
    mid = ref_depthwise(x, dw, (2, 2), (1, 1), "same")
    np.testing.assert_allclose(got, np.einsum("nhwc,cf->nhwf", mid, pw[0, 0]) + b, **TOL)


@pytest.mark.parametrize("shape,kernel,stride,padding,dilation", [
    ((4, 4, 2), (3, 3), (2, 2), "valid", (1, 1)),
    ((3, 5, 1), (2, 3), (2, 3), "same", (1, 1)),
    ((4, 3, 2), (3, 3), (1, 2), "same", (1, 1)),
    ((3, 3, 2), (1, 2), (3, 3), "same", (1, 1)),   # kernel smaller than the stride
    ((3, 4, 1), (2, 2), (2, 1), "valid", (2, 1)),
    ((4, 4, 2), (3, 2), (2, 2), "same", (2, 1)),
])
def test_conv2d_transpose(shape, kernel, stride, padding, dilation):
    x, w, b = rand(2, *shape), rand(*kernel, shape[-1], 3), rand(3)
    line = f"conv2d_transpose 3 {list(kernel)} stride={list(stride)} padding={padding} dilation={list(dilation)}"
    np.testing.assert_allclose(run(shape, line, x, w=w, b=b), ref_transpose(x, w, b, stride, padding, dilation), **TOL)


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_conv2d_transpose_is_the_adjoint_of_conv2d(padding):
    """<conv(x), y> = <x, conv_transpose(y)> for the same kernel, stride and padding,
    the transpose's kernel having its channel axes swapped."""
    conv = layer_model((8, 6, 2), f"conv2d 3 3 stride=2 padding={padding} bias=false")
    (h, w_, _) = conv.program.model.output_shape
    tr = layer_model((h, w_, 3), f"conv2d_transpose 2 3 stride=2 padding={padding} bias=false")
    kernel = jnp.asarray(rand(3, 3, 2, 3), jnp.float32)
    x, y = jnp.asarray(rand(8, 6, 2), jnp.float32), jnp.asarray(rand(h, w_, 3), jnp.float32)
    forward = conv.apply({"l": {"w": kernel}}, x)
    back = tr.apply({"l": {"w": jnp.swapaxes(kernel, 2, 3)}}, y)
    if padding == "valid" and back.shape != x.shape:  # valid drops rows the stride skips
        back = jnp.pad(back, [(0, x.shape[0] - back.shape[0]), (0, x.shape[1] - back.shape[1]), (0, 0)])
    np.testing.assert_allclose(float(jnp.vdot(forward, y)), float(jnp.vdot(x, back)), rtol=1e-4)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("line_args,shape,size,stride,padding", [
    ("", (8, 8, 2), (2, 2), (2, 2), "valid"),
    ("3 stride=2 padding=same", (7, 9, 1), (3, 3), (2, 2), "same"),
    ("[2, 3] stride=[1, 2]", (5, 7, 3), (2, 3), (1, 2), "valid"),
    ("[3, 2] padding=same", (7, 5, 2), (3, 2), (3, 2), "same"),
])
def test_pool2d(kind, line_args, shape, size, stride, padding):
    x = rand(2, *shape)
    got = run(shape, f"{kind}_pool2d {line_args}", x)
    np.testing.assert_allclose(got, ref_pool(x, size, stride, padding, kind), **TOL)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("line_args,steps,size,stride,padding", [
    ("", 10, 2, 2, "valid"), ("3 stride=2 padding=same", 9, 3, 2, "same"), ("4 stride=1", 7, 4, 1, "valid"),
])
def test_pool1d(kind, line_args, steps, size, stride, padding):
    x = rand(3, steps, 2)
    got = run((steps, 2), f"{kind}_pool1d {line_args}", x)
    np.testing.assert_allclose(got, ref_pool(x, (size,), (stride,), padding, kind), **TOL)


def test_upsampling():
    x = rand(2, 3, 4, 2)
    y = run((3, 4, 2), "upsampling2d [2, 3]", x)
    assert y.shape == (2, 6, 12, 2)
    for i, j in np.ndindex(6, 12):
        np.testing.assert_array_equal(y[:, i, j], x[:, i // 2, j // 3].astype(np.float32))
    s = rand(2, 5, 3)
    y1 = run((5, 3), "upsampling1d 3", s)
    assert y1.shape == (2, 15, 3)
    for t in range(15):
        np.testing.assert_array_equal(y1[:, t], s[:, t // 3].astype(np.float32))


@pytest.mark.parametrize("shape", [(6, 3), (4, 5, 2)])
def test_global_pools(shape):
    x = rand(2, *shape)
    axes = tuple(range(1, len(shape)))
    np.testing.assert_allclose(run(shape, "global_avg_pool", x), x.mean(axis=axes), **TOL)
    np.testing.assert_allclose(run(shape, "global_max_pool", x), x.max(axis=axes), **TOL)


def test_max_pool_gradient_flows_to_the_largest_value():
    model = layer_model((4, 4, 1), "max_pool2d")
    x = jnp.arange(16.0).reshape(4, 4, 1)
    g = np.asarray(jax.grad(lambda x: model.apply({}, x).sum())(x))[..., 0]
    want = np.zeros((4, 4))
    want[1::2, 1::2] = 1  # the bottom-right of each 2×2 block is its largest
    np.testing.assert_array_equal(g, want)


@pytest.mark.parametrize("line,shape", [
    ("conv2d 3 [3, 2] stride=[2, 1] dilation=[1, 2] padding=same", (7, 8, 2)),
    ("conv1d 4 3 stride=2 padding=valid", (11, 3)),
    ("max_pool2d 2", (7, 6, 2)),
    ("avg_pool1d 3", (10, 2)),
])
def test_the_cpu_lowerings_match_the_xla_primitives(monkeypatch, line, shape):
    """On the CPU a convolution is patches @ kernel and a tiling pool a reshape (nnspec/nn/conv.py:
    inside the epoch's scan XLA:CPU runs the primitives' gradients as plain loops); with
    the patch limit at 0 and no tiling, the same layer runs `conv_general_dilated` and
    `reduce_window`. Outputs and gradients agree."""
    import nnspec.nn.conv as conv
    model = layer_model(shape, line)
    params = model.init(KEY)
    x = jnp.asarray(rand(3, *shape), jnp.float32)

    def value_and_grads():
        f = lambda p, x: jnp.sum(jnp.sin(model.apply(p, x)))  # noqa: E731
        return jax.value_and_grad(f, argnums=(0, 1))(params, x)

    fast = value_and_grads()
    monkeypatch.setattr(conv, "PATCHES_MAX_BYTES", 0)
    monkeypatch.setattr(conv._Pool, "_tiles", lambda self, x: None)
    plain = value_and_grads()
    for a, b in zip(jax.tree_util.tree_leaves(fast), jax.tree_util.tree_leaves(plain)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), **TOL)


# ----------------------------------------------------------------------- output sizes

@pytest.mark.parametrize("n", [1, 5, 8, 9, 13])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_same_padding_gives_kerass_sizes(n, stride):
    """`same`: ceil(n / stride) for convolutions and pools, whatever the kernel; n·stride
    for the transpose. `valid`: floor((n − reach) / stride) + 1."""
    want = -(-n // stride)
    for line in (f"conv2d 2 3 stride={stride} padding=same", f"conv2d 2 [4, 1] stride={stride} dilation=2 padding=same",
                 f"max_pool2d 3 stride={stride} padding=same", f"avg_pool2d 2 stride={stride} padding=same",
                 f"depthwise_conv2d 5 stride={stride} padding=same"):
        out = layer_model((n, n, 1), line).program.model.output_shape
        assert out[:2] == (want, want), line
    out = layer_model((n, n, 1), f"conv2d_transpose 2 3 stride={stride} padding=same").program.model.output_shape
    assert out[:2] == (n * stride, n * stride)
    out = layer_model((n + 4, 2), f"conv1d 2 5 stride={stride}").program.model.output_shape
    assert out == ((n + 4 - 5) // stride + 1, 2)


# ------------------------------------------------------------------ weights and penalties

def test_kernel_initializers_use_receptive_field_fans():
    """fan_in = kh·kw·cin and fan_out = kh·kw·filters, as Keras and JAX count them."""
    kh, kw, cin, cout = 5, 4, 8, 32
    for init, var in (("he_normal", 2 / (kh * kw * cin)), ("glorot_uniform", 2 / (kh * kw * (cin + cout)))):
        model = layer_model((12, 12, cin), f"conv2d {cout} [{kh}, {kw}] init={init}")
        w = np.asarray(model.init(KEY)["l"]["w"])
        assert w.shape == (kh, kw, cin, cout) and w.dtype == np.float32
        assert abs(w.var() / var - 1) < 0.08, (init, w.var(), var)
    bound = math.sqrt(6 / (kh * kw * (cin + cout)))
    assert np.abs(w).max() <= bound


def test_l2_penalizes_every_kernel_not_the_bias():
    model = layer_model((6, 6, 2), "separable_conv2d 3 3 l2=0.5 bias_init=ones")
    params = model.init(KEY)
    layer = params["l"]
    want = 0.5 * (np.sum(np.square(layer["w_depthwise"])) + np.sum(np.square(layer["w_pointwise"])))
    assert set(layer) == {"w_depthwise", "w_pointwise", "b"}
    np.testing.assert_allclose(float(model.penalty(params)), want, rtol=1e-5)
    conv = layer_model((6, 6, 2), "conv2d 3 3 l1=0.25 bias_init=ones")
    cp = conv.init(KEY)
    np.testing.assert_allclose(float(conv.penalty(cp)), 0.25 * np.abs(np.asarray(cp["l"]["w"])).sum(), rtol=1e-5)


# --------------------------------------------------------------------------- training

CNN = """
model cnn {
    input image[8, 8, 1]
    conv2d 8 3 relu padding=same
    max_pool2d
    conv2d 8 3 relu
    flatten
    dense 10 softmax
}

loss categorical_crossentropy
optimizer adam lr=0.01

train {
    data builtin("digits", image=true)
    split val=0.2
    batch 128
    epochs 4
    seed 0
    metrics accuracy
    standardize
}
"""


@pytest.mark.slow
def test_a_small_cnn_learns_the_digits():
    pytest.importorskip("sklearn")
    from nnspec.fit import fit
    result = fit(nnspec.check_text(CNN))
    losses = [row["loss"] for row in result.history]
    assert losses[-1] < losses[0] * 0.5, losses
    assert result.history[-1]["val_accuracy"] > 0.8, result.history[-1]
