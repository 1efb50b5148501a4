"""`random_flip`, `random_translation` and `random_contrast`: random in training, the
identity otherwise.

The JAX layers are checked against an independent NumPy implementation written here
(the same draws in, the same images out: every fill mode, both interpolations), the draws
against their distributions (a flip about half the time, shifts spread over the stated
fraction of the size), and the plumbing: eval and predict are exactly the identity, jit
and vmap agree, the fractions are traced (a sweep over them is one program), and a sweep
with an ensemble of seeds trains each member as training it alone would.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnspec
from nnspec.fit import fit
from nnspec.lower import lower
from nnspec.nn import augment
from nnspec.sweep_fit import fit_sweep

KEY = jax.random.key(0)


def model_of(layers: str, shape: str = "5, 6, 2"):
    return lower(nnspec.check_text(f"model m {{\n    input image[{shape}]\n{layers}\n    flatten\n    dense 2\n}}\n"
                                   "loss mse\n"))


def images(n: int, shape: tuple[int, ...] = (5, 6, 2), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)


# ------------------------------------------------------------------ the NumPy reference

_PAD = {"reflect": "symmetric", "wrap": "wrap", "nearest": "edge"}  # NumPy's names for Keras's modes


def np_translate(img: np.ndarray, dy: float, dx: float, fill_mode: str, fill_value: float,
                 interpolation: str) -> np.ndarray:
    """One image (H, W, C) moved by (dy, dx): out[r, c] = img at (r − dy, c − dx), the 2-D
    bilinear sum over the four neighbours (or the nearest pixel), read outside the image
    through NumPy's own padding of the same name, or as fill_value for `constant`."""
    h, w, _ = img.shape
    margin = 2 * max(h, w) + 2
    big = None if fill_mode == "constant" else np.pad(img, ((margin, margin), (margin, margin), (0, 0)),
                                                      mode=_PAD[fill_mode])

    def pixel(r: int, c: int) -> np.ndarray:
        if big is not None:
            return big[r + margin, c + margin]
        return img[r, c] if 0 <= r < h and 0 <= c < w else np.full(img.shape[2], fill_value, np.float64)

    out = np.zeros(img.shape, np.float64)
    for r in range(h):
        for c in range(w):
            sr, sc = r - dy, c - dx
            if interpolation == "nearest":  # halves away from zero
                out[r, c] = pixel(int(math.copysign(math.floor(abs(sr) + 0.5), sr)),
                                  int(math.copysign(math.floor(abs(sc) + 0.5), sc)))
                continue
            r0, c0 = math.floor(sr), math.floor(sc)
            a, b = sr - r0, sc - c0
            out[r, c] = ((1 - a) * (1 - b) * pixel(r0, c0) + (1 - a) * b * pixel(r0, c0 + 1)
                         + a * (1 - b) * pixel(r0 + 1, c0) + a * b * pixel(r0 + 1, c0 + 1))
    return out


def np_flip(img: np.ndarray, horizontal: bool, vertical: bool) -> np.ndarray:
    if horizontal:
        img = img[:, ::-1]
    if vertical:
        img = img[::-1]
    return img


def test_the_reference_itself_on_a_hand_worked_case() -> None:
    img = np.arange(4, dtype=np.float32).reshape(1, 4, 1)  # one row: 0 1 2 3
    row = lambda out: out[0, :, 0].tolist()  # noqa: E731
    assert row(np_translate(img, 0, 1, "reflect", 0, "bilinear")) == [0, 0, 1, 2]
    assert row(np_translate(img, 0, 2, "reflect", 0, "bilinear")) == [1, 0, 0, 1]    # d c b a | a b c d
    assert row(np_translate(img, 0, -2, "wrap", 0, "bilinear")) == [2, 3, 0, 1]
    assert row(np_translate(img, 0, 2, "nearest", 0, "bilinear")) == [0, 0, 0, 1]
    assert row(np_translate(img, 0, 0.5, "constant", -1, "bilinear")) == [-0.5, 0.5, 1.5, 2.5]
    assert row(np_translate(img, 0, 0.5, "constant", -1, "nearest")) == [-1, 1, 2, 3]  # ±0.5 away from 0


@pytest.mark.parametrize("fill_mode", ["reflect", "nearest", "wrap", "constant"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_translation_matches_the_numpy_reference_given_the_same_draws(fill_mode: str, interpolation: str) -> None:
    fill = " fill_value=-2.5" if fill_mode == "constant" else ""
    model = model_of(f"    t: random_translation 0.9 0.6 fill_mode={fill_mode} interpolation={interpolation}{fill}")
    (impl,) = [layer for layer in model.layers if layer.layer.op == "random_translation"]
    x = images(12)
    key = jax.random.key(3)
    got = np.asarray(impl.apply({}, jnp.asarray(x), model.hparams()["t"], key=key, train=True))
    u, v = map(np.asarray, augment.uniform_draws(key, (12,), 2))
    assert u.min() >= -1 and v.max() < 1 and np.abs(u).max() > 0.5
    for i in range(12):
        want = np_translate(x[i], u[i] * 0.9 * 5, v[i] * 0.6 * 6, fill_mode, -2.5, interpolation)
        np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=2e-5, err_msg=f"example {i}")


@pytest.mark.parametrize("fill_mode, scipy_mode", [("nearest", "nearest"), ("reflect", "reflect"),
                                                   ("wrap", "grid-wrap"), ("constant", "grid-constant")])
def test_bilinear_translation_is_scipys_linear_shift(fill_mode: str, scipy_mode: str) -> None:
    """Keras 2's ImageDataGenerator shifted with scipy.ndimage (order=1, `fill_mode`
    `nearest` by default, what corpus row 15 uses); its `shift` is a second reference."""
    ndimage = pytest.importorskip("scipy.ndimage")
    fill = " fill_value=0.75" if fill_mode == "constant" else ""
    model = model_of(f"    t: random_translation 0.5 0.5 fill_mode={fill_mode}{fill}", "7, 9, 3")
    x = images(10, (7, 9, 3), seed=4)
    key = jax.random.key(8)
    got = np.asarray(model.layers[0].apply({}, jnp.asarray(x), model.hparams()["t"], key=key, train=True))
    u, v = map(np.asarray, augment.uniform_draws(key, (10,), 2))
    for i in range(10):
        want = ndimage.shift(x[i].astype(np.float64), (u[i] * 0.5 * 7, v[i] * 0.5 * 9, 0), order=1,
                             mode=scipy_mode, cval=0.75)
        np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=2e-5, err_msg=f"example {i}")


def np_affine(img: np.ndarray, to_input, fill_mode: str, fill_value: float, interpolation: str) -> np.ndarray:
    """One image read through a map from output (row, col) to input (row, col), by the
    same four-neighbour rule as np_translate (its pixel reader, rebuilt here per map)."""
    h, w, _ = img.shape
    margin = 2 * max(h, w) + 2
    big = None if fill_mode == "constant" else np.pad(img, ((margin, margin), (margin, margin), (0, 0)),
                                                      mode=_PAD[fill_mode])

    def pixel(r: int, c: int) -> np.ndarray:
        if big is not None:
            return big[r + margin, c + margin]
        return img[r, c] if 0 <= r < h and 0 <= c < w else np.full(img.shape[2], fill_value, np.float64)

    out = np.zeros(img.shape, np.float64)
    for r in range(h):
        for c in range(w):
            sr, sc = to_input(r, c)
            if interpolation == "nearest":
                out[r, c] = pixel(int(math.copysign(math.floor(abs(sr) + 0.5), sr)),
                                  int(math.copysign(math.floor(abs(sc) + 0.5), sc)))
                continue
            r0, c0 = math.floor(sr), math.floor(sc)
            a, b = sr - r0, sc - c0
            out[r, c] = ((1 - a) * (1 - b) * pixel(r0, c0) + (1 - a) * b * pixel(r0, c0 + 1)
                         + a * (1 - b) * pixel(r0 + 1, c0) + a * b * pixel(r0 + 1, c0 + 1))
    return out


def keras_rotation(angle: float, h: int, w: int):
    """Keras 3's RandomRotation matrix, as it writes it: input x = cos·x − sin·y + x_offset,
    input y = sin·x + cos·y + y_offset (x the column, y the row)."""
    cos, sin = math.cos(angle), math.sin(angle)
    x_offset = ((w - 1) - (cos * (w - 1) - sin * (h - 1))) / 2
    y_offset = ((h - 1) - (sin * (w - 1) + cos * (h - 1))) / 2
    return lambda r, c: (sin * c + cos * r + y_offset, cos * c - sin * r + x_offset)


def keras_zoom(zy: float, zx: float, h: int, w: int):
    """Keras 3's RandomZoom matrix: input x = zx·x + (W − 1)/2·(1 − zx), the same for y."""
    return lambda r, c: (zy * r + (h - 1) / 2 * (1 - zy), zx * c + (w - 1) / 2 * (1 - zx))


def test_a_quarter_turn_is_numpys_rot90() -> None:
    x = images(1, (5, 5, 2))
    got = np.asarray(augment.rotate(jnp.asarray(x), jnp.asarray([np.pi / 2]), fill_mode="constant",
                                    fill_value=0.0, interpolation="bilinear"))
    np.testing.assert_allclose(got[0], np.rot90(x[0]), atol=1e-5)  # counter-clockwise, as Keras's positive angles


@pytest.mark.parametrize("fill_mode", ["reflect", "nearest", "wrap", "constant"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_rotation_and_zoom_match_keras_matrices_given_the_same_draws(fill_mode: str, interpolation: str) -> None:
    fill = f"fill_mode={fill_mode} interpolation={interpolation}" + (" fill_value=0.5" if fill_mode == "constant" else "")
    model = model_of(f"    r: random_rotation 0.3 {fill}\n    z: random_zoom 0.4 {fill}\n"
                     f"    w: random_zoom 0.2 0.6 {fill}", "5, 6, 2")
    x = images(8)
    hp = model.hparams()
    rot, keep, own = model.layers[:3]
    key = jax.random.key(13)
    (u,) = map(np.asarray, augment.uniform_draws(key, (8,), 1))
    zu, zv = map(np.asarray, augment.uniform_draws(key, (8,), 2))
    got = {name: np.asarray(impl.apply({}, jnp.asarray(x), hp[name], key=key, train=True))
           for name, impl in (("r", rot), ("z", keep), ("w", own))}
    for i in range(8):
        maps = {"r": keras_rotation(u[i] * 0.3 * 2 * math.pi, 5, 6),
                "z": keras_zoom(1 + zu[i] * 0.4, 1 + zu[i] * 0.4, 5, 6),  # one draw: the aspect ratio kept
                "w": keras_zoom(1 + zu[i] * 0.2, 1 + zv[i] * 0.6, 5, 6)}
        for name, to_input in maps.items():
            want = np_affine(x[i], to_input, fill_mode, 0.5, interpolation)
            np.testing.assert_allclose(got[name][i], want, rtol=1e-5, atol=5e-5, err_msg=f"{name}, example {i}")


@pytest.mark.parametrize("mode", ["horizontal", "vertical", "horizontal_and_vertical"])
def test_flip_matches_the_numpy_reference_given_the_same_draws(mode: str) -> None:
    model = model_of(f"    f: random_flip {mode}")
    x = images(16)
    key = jax.random.key(5)
    got = np.asarray(model.layers[0].apply({}, jnp.asarray(x), {}, key=key, train=True))
    draws = {k: np.asarray(v) for k, v in augment.flip_draws(key, (16,), mode).items()}
    assert set(draws) == {"horizontal", "vertical"} & set(mode.split("_and_"))
    for i in range(16):
        want = np_flip(x[i], bool(draws.get("horizontal", [False] * 16)[i]), bool(draws.get("vertical", [False] * 16)[i]))
        np.testing.assert_array_equal(got[i], want)


@pytest.mark.parametrize("clip", ["", " value_range=[-0.5, 1]"])
def test_contrast_matches_the_numpy_reference_given_the_same_draws(clip: str) -> None:
    model = model_of(f"    c: random_contrast 0.8{clip}")
    x = images(12)
    key = jax.random.key(6)
    got = np.asarray(model.layers[0].apply({}, jnp.asarray(x), model.hparams()["c"], key=key, train=True))
    u = np.asarray(augment.uniform_draws(key, (12,), 1)[0])
    for i in range(12):
        want = np.empty(x[i].shape, np.float64)
        for ch in range(x.shape[-1]):
            plane = x[i, :, :, ch].astype(np.float64)
            want[:, :, ch] = (plane - plane.mean()) * (1 + 0.8 * u[i]) + plane.mean()
        if clip:
            want = np.clip(want, -0.5, 1)
        np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=1e-5, err_msg=f"example {i}")
    if clip:  # normal values times up to 1.8 reach past both ends
        assert (got.min(), got.max()) == (-0.5, 1.0)
    else:
        assert got.min() < -0.5 and got.max() > 1


# --------------------------------------------------------------------- the distributions

def test_a_flip_happens_about_half_the_time_each_direction_on_its_own() -> None:
    n = 4000
    x = images(n, (2, 3, 1))
    model = model_of("    f: random_flip", "2, 3, 1")
    y = np.asarray(model.layers[0].apply({}, jnp.asarray(x), {}, key=jax.random.key(11), train=True))
    outcome = np.full(n, -1)
    for code, (h, v) in enumerate([(False, False), (True, False), (False, True), (True, True)]):
        same = np.all(y == np.stack([np_flip(e, h, v) for e in x]), axis=(1, 2, 3))
        outcome[same] = code
    assert (outcome >= 0).all()  # every output is the image, flipped one way, the other, or both
    freq = np.bincount(outcome, minlength=4) / n  # binomial sd ≈ 0.007: these bounds are ±6 sd
    assert np.all(np.abs(freq - 0.25) < 0.04), freq
    horizontal = model_of("    f: random_flip horizontal", "2, 3, 1")
    y = np.asarray(horizontal.layers[0].apply({}, jnp.asarray(x), {}, key=jax.random.key(12), train=True))
    flipped = np.all(y == x[:, :, ::-1], axis=(1, 2, 3))
    assert np.all(flipped | np.all(y == x, axis=(1, 2, 3)))  # never upside down
    assert abs(flipped.mean() - 0.5) < 0.05


def test_shifts_spread_over_the_stated_fraction_of_the_size() -> None:
    # a single lit pixel in the middle of 11×11, whole-pixel shifts of up to 0.4·11 = 4.4
    n = 4000
    x = np.zeros((n, 11, 11, 1), np.float32)
    x[:, 5, 5] = 1
    model = model_of("    t: random_translation 0.4 0.2 fill_mode=constant interpolation=nearest", "11, 11, 1")
    y = np.asarray(model.layers[0].apply({}, jnp.asarray(x), model.hparams()["t"], key=jax.random.key(2), train=True))
    assert np.all(y.sum(axis=(1, 2, 3)) == 1)  # always one lit pixel, never shifted out
    rows, cols = np.argwhere(y[..., 0])[:, 1] - 5, np.argwhere(y[..., 0])[:, 2] - 5
    # round(U(−4.4, 4.4)): each of −3..3 with probability 1/8.8, ±4 with 0.9/8.8
    freq = np.bincount(rows + 4, minlength=9) / n
    expected = np.array([0.9, 1, 1, 1, 1, 1, 1, 1, 0.9]) / 8.8
    assert freq.shape == (9,) and np.all(np.abs(freq - expected) < 0.035), freq
    # the width's fraction is its own: 0.2·11 = 2.2, so columns move by at most 2
    assert set(np.unique(cols)) == {-2, -1, 0, 1, 2}
    assert abs(rows.mean()) < 0.2 and abs(cols.mean()) < 0.2


def test_contrast_factors_spread_over_one_plus_or_minus_the_factor() -> None:
    n = 4000
    x = images(n, (3, 3, 2))
    model = model_of("    c: random_contrast 0.3", "3, 3, 2")
    y = np.asarray(model.layers[0].apply({}, jnp.asarray(x), model.hparams()["c"], key=jax.random.key(4), train=True))
    centred = lambda a: a - a.mean(axis=(1, 2), keepdims=True)  # noqa: E731
    ratio = np.linalg.norm(centred(y), axis=(1, 2)) / np.linalg.norm(centred(x), axis=(1, 2))  # (n, channels)
    np.testing.assert_allclose(ratio[:, 0], ratio[:, 1], rtol=1e-4)  # one factor for all of an image's channels
    assert 0.7 <= ratio.min() < 0.71 and 1.29 < ratio.max() <= 1.3
    assert abs(ratio[:, 0].mean() - 1) < 0.02 and abs(np.median(ratio[:, 0]) - 1) < 0.03
    # the mean of each channel stays where it was
    np.testing.assert_allclose(y.mean(axis=(1, 2)), x.mean(axis=(1, 2)), atol=1e-5)


# ------------------------------------------------------------------------------ plumbing

AUGMENTED = ("    f: random_flip\n    c: random_contrast 0.5\n    r: random_rotation 0.1\n    z: random_zoom 0.2\n"
             "    t: random_translation 0.2 0.3")


def test_eval_and_predict_are_exactly_the_identity() -> None:
    model = model_of(AUGMENTED)
    x = images(6)
    params = model.init(KEY)
    for kw in ({}, {"key": KEY}, {"key": KEY, "train": False}):
        values = model.trace(params, jnp.asarray(x), **kw)
        np.testing.assert_array_equal(np.asarray(values["t"]), x)
    trained = model.trace(params, jnp.asarray(x), key=KEY, train=True)
    assert not np.allclose(np.asarray(trained["t"]), x)
    with pytest.raises(ValueError, match=r"layer `f` \(random_flip\) needs a `key` in training"):
        model.apply(params, jnp.asarray(x), train=True)


def test_jit_vmap_and_keys() -> None:
    model = model_of(AUGMENTED)
    params = model.init(KEY)
    x = jnp.asarray(images(6))
    run = lambda p, x, k: model.trace(p, x, key=k, train=True)["t"]  # noqa: E731
    np.testing.assert_allclose(np.asarray(jax.jit(run)(params, x, KEY)), np.asarray(run(params, x, KEY)),
                               rtol=1e-5, atol=1e-5)
    # an ensemble's vmapped keys: each key its own draws
    keys = jax.random.split(KEY, 3)
    many = np.asarray(jax.vmap(run, in_axes=(None, None, 0))(params, x, keys))
    assert many.shape == (3, *x.shape)
    assert not np.allclose(many[0], many[1]) and not np.allclose(many[1], many[2])
    np.testing.assert_allclose(many[1], np.asarray(run(params, x, keys[1])), rtol=1e-5, atol=1e-5)
    # one example at a time (vmap over examples and their keys) is the reference on that example's draws
    (impl,) = [layer for layer in model.layers if layer.layer.op == "random_translation"]
    hp = model.hparams()["t"]
    ks = jax.random.split(jax.random.key(9), 6)
    one = jax.vmap(lambda xi, k: impl.apply({}, xi, hp, key=k, train=True))(x, ks)
    for i in range(6):
        u, v = map(float, augment.uniform_draws(ks[i], (), 2))
        np.testing.assert_allclose(np.asarray(one[i]), np_translate(np.asarray(x[i]), u * 0.2 * 5, v * 0.3 * 6,
                                                                    "reflect", 0, "bilinear"), rtol=1e-5, atol=2e-5)


def test_the_strengths_are_traced() -> None:
    model = model_of("    c: random_contrast 0.4\n    t: random_translation 0.2 0.3")
    x = jnp.asarray(images(4))
    params = model.init(KEY)
    traces = []

    def run(hp):
        traces.append(1)
        return model.trace(params, x, key=KEY, train=True, hparams=hp)["t"]
    jrun = jax.jit(run)
    hp = model.hparams()
    base = np.asarray(jrun(hp))
    wider = {k: dict(v) for k, v in hp.items()}
    wider["t"]["height"] = np.float32(0.6)
    still = {k: dict(v) for k, v in hp.items()}
    still["t"]["height"], still["t"]["width"] = np.float32(0), np.float32(0)
    flatter = {k: dict(v) for k, v in still.items()}
    flatter["c"]["factor"] = np.float32(0.9)
    still["c"]["factor"] = np.float32(0)
    assert not np.allclose(np.asarray(jrun(wider)), base)
    np.testing.assert_allclose(np.asarray(jrun(still)), np.asarray(x), atol=1e-6)  # no shift or contrast: the image
    assert not np.allclose(np.asarray(jrun(flatter)), np.asarray(x), atol=1e-3)
    assert len(traces) == 1


SWEEP = """
model digits {
    input image[8, 8, 1]
    random_flip horizontal
    random_translation sweep(0.1, 0.25) 0.1 fill_mode=nearest
    flatten
    dense 10 softmax
}
loss categorical_crossentropy
optimizer adam lr=0.01
train {
    data builtin("digits", image=true)
    split val=0.2
    batch 128
    epochs 2
    seed sweep(0, 1)
    metrics accuracy
}
"""


def test_a_sweep_and_an_ensemble_train_each_member_as_alone() -> None:
    program = nnspec.check_text(SWEEP)
    sweep = program.sweep
    assert all(a.traced for a in sweep.axes) and sweep.groups() == [list(range(4))]
    result = fit_sweep(program)
    assert len(result.members) == 4
    # (0.1, seed 0) and (0.25, seed 0): alone, a seed of 1 would also split the data its own way
    for member in (result.members[0], result.members[2]):
        alone = fit(member.program)
        for a, b in zip(jax.tree_util.tree_leaves(alone.params), jax.tree_util.tree_leaves(member.params)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    finals = [m.history[-1]["loss"] for m in result.members]
    assert len(set(finals)) == 4  # every height and seed trains its own model
    assert all(m.history[-1]["loss"] < m.history[0]["loss"] for m in result.members)


def test_the_exported_model_is_the_model_without_augmentation(tmp_path) -> None:
    """An exported model (StableHLO; tests/test_export.py runs the ONNX case) draws
    nothing: it is the network without the augmentation layers, on the trained weights."""
    from jax import export

    from nnspec.cli import main
    text = SWEEP.replace("sweep(0.1, 0.25)", "0.2").replace("seed sweep(0, 1)", "seed 0")
    (tmp_path / "m.nn").write_text(text)
    assert main(["train", str(tmp_path / "m.nn"), "--out", str(tmp_path / "run"), "-q"]) == 0
    out = tmp_path / "m.stablehlo"
    assert main(["export", str(tmp_path / "run"), "--format", "stablehlo", "-o", str(out)]) == 0
    fn = export.deserialize(bytearray(out.read_bytes()))
    model = nnspec.load(tmp_path / "run")
    x = np.random.default_rng(0).uniform(0, 16, size=(5, 8, 8, 1)).astype(np.float32)
    y = np.asarray(fn.call(x))
    np.testing.assert_allclose(y, model.predict(x), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(fn.call(x)), y)  # the same twice: no draws
    bare = lower(nnspec.check_text(text.replace("    random_flip horizontal\n", "").replace(
        "    random_translation 0.2 0.1 fill_mode=nearest\n", "")))
    assert [impl.layer.op for impl in bare.layers] == ["flatten", "dense"]
    np.testing.assert_allclose(np.asarray(bare.apply(model.params, jnp.asarray(x))), y, rtol=1e-5, atol=1e-6)
