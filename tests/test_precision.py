"""`precision bf16`: the forward and backward pass in bfloat16 from float32 master weights."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import nnspec
from nnspec.check import check_source
from nnspec.fit import fit
from nnspec.lower import emit_step, lower

CNN = """\
model m {
    input image[8, 8, 1]
    conv2d 8 3 relu padding=same
    batch_norm momentum=0.9
    max_pool2d 2
    flatten
    dropout 0.1
    out: dense 10 softmax
}
loss categorical_crossentropy
optimizer adam lr=LR
train {
    data builtin("digits", image=true)
    split val=0.2
    batch 64
    epochs 3
    seed 0
    metrics accuracy
    precision bf16
}
"""


def test_the_step_computes_in_bfloat16_and_the_weights_stay_float32() -> None:
    program = nnspec.check_text(CNN.replace("LR", "0.01"))
    assert program.train.precision == "bf16"
    assert "bf16" in emit_step(program, "jaxpr")
    assert "bf16" not in emit_step(nnspec.check_text(CNN.replace("LR", "0.01").replace("    precision bf16\n", "")),
                                   "jaxpr")
    model = lower(program)
    params = model.init(jax.random.key(0))
    out = model.apply(params, np.zeros((2, 8, 8, 1), np.float32))
    assert out.dtype == np.float32, "the loss reads the output as float32"


@pytest.mark.slow
def test_bf16_trains_as_well_as_float32_and_keeps_float32_state() -> None:
    text = CNN.replace("LR", "0.01")
    half, full = fit(nnspec.check_text(text)), fit(nnspec.check_text(text.replace("    precision bf16\n", "")))
    for layer in half.params.values():
        for name, value in layer.items():
            assert value.dtype == np.float32, name  # master weights and running statistics
    h, f = half.history[-1], full.history[-1]
    assert h["val_accuracy"] > 0.9 and abs(h["val_accuracy"] - f["val_accuracy"]) < 0.03
    assert h["val_loss"] != f["val_loss"], "bfloat16 rounds differently: the runs cannot be identical"
    assert abs(h["val_loss"] - f["val_loss"]) < 0.1 * f["val_loss"] + 0.02


@pytest.mark.slow
def test_a_sweep_in_bf16() -> None:
    from nnspec.sweep_fit import fit_sweep
    result = fit_sweep(nnspec.check_text(CNN.replace("LR", "sweep(0.003, 0.01)").replace("epochs 3", "epochs 1")))
    assert len(result.members) == 2 and all(np.isfinite(m.history[-1]["loss"]) for m in result.members)


def test_an_unknown_precision_is_refused_where_it_is_written() -> None:
    text = CNN.replace("LR", "0.01").replace("precision bf16", "precision float16")
    _, diags, _ = check_source(text)
    errors = [d for d in diags if d.is_error]
    assert len(errors) == 1 and "float16" in text[errors[0].primary_span.start:errors[0].primary_span.end]
    assert "`float32`" in errors[0].message + (errors[0].help or "") and "`bf16`" in errors[0].message + (errors[0].help or "")
