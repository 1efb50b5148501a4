"""`rescale`: a fixed y = x·scale / divide + offset inside the model (Keras's Rescaling)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import nnspec
from nnspec.lower import lower


def _model(line: str, shape: str = "4"):
    return lower(nnspec.check_text(f"model m {{\n    input x[{shape}]\n    r: {line}\n}}\n"))


@pytest.mark.parametrize("line, scale, divide, offset", [
    ("rescale divide=255", 1.0, 255.0, 0.0),
    ("rescale divide=127.5 offset=-1", 1.0, 127.5, -1.0),
    ("rescale 0.5 offset=2", 0.5, 1.0, 2.0),
    ("rescale scale=-3 divide=4 offset=0.25", -3.0, 4.0, 0.25),
])
def test_rescale_is_x_times_scale_over_divide_plus_offset(line, scale, divide, offset):
    model = _model(line, "2, 3")
    x = np.random.default_rng(0).uniform(0, 255, size=(5, 2, 3)).astype(np.float32)
    params = model.init(jax.random.PRNGKey(0))
    assert params.get("r", {}) == {}  # nothing to learn
    got = np.asarray(model.apply(params, x, train=False))
    want = x.astype(np.float64) * scale / divide + offset
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


SPEC = """
model m {
    input x[3]
RESCALE    h: dense 8 relu
    out: dense 1 sigmoid
}
loss binary_crossentropy
optimizer adam lr=0.01
train {
    data npz("given_from_python.npz")
    split val=0.25
    epochs 3
    seed 2
}
"""


def test_a_model_with_rescale_trains_on_raw_data_as_one_without_on_scaled_data(tmp_path):
    rng = np.random.default_rng(1)
    raw = rng.uniform(0, 255, size=(200, 3)).astype(np.float32)
    y = (raw.sum(axis=1) > 380).astype(np.int64)
    scaled = raw / np.float32(127.5) - np.float32(1)
    inside = nnspec.train(SPEC.replace("RESCALE", "    rescale divide=127.5 offset=-1\n"), data=(raw, y),
                          out=tmp_path / "inside")
    # (`rescale 1`, which changes nothing, keeps the layers where they are: the same start)
    outside = nnspec.train(SPEC.replace("RESCALE", "    rescale 1\n"), data=(scaled, y))
    for a, b in zip(inside.history, outside.history):
        for key in ("loss", "val_loss"):
            assert a[key] == pytest.approx(b[key], rel=1e-5)
    # the run predicts from raw data: the rescaling travels with the model
    run = nnspec.load(tmp_path / "inside")
    want = 1 / (1 + np.exp(-_forward(inside.params, scaled[:10].astype(np.float64))))
    np.testing.assert_allclose(run.predict(raw[:10]), want, rtol=1e-5, atol=1e-6)


def _forward(params, x):
    """The model without `rescale`, written out: its logit."""
    h = np.maximum(x @ np.asarray(params["h"]["w"]) + np.asarray(params["h"]["b"]), 0)
    return h @ np.asarray(params["out"]["w"]) + np.asarray(params["out"]["b"])


@pytest.mark.parametrize("line, code", [("rescale", "E106"), ("rescale 0", "E104"), ("rescale divide=0", "E104")])
def test_a_rescale_that_cannot_mean_anything_is_refused(line, code):
    with pytest.raises(nnspec.NNSpecError) as info:
        nnspec.check_text(f"model m {{\n    input x[4]\n    {line}\n    dense 1\n}}\n")
    assert [d.code for d in info.value.diagnostics] == [code]
