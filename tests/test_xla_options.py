"""nnspec's XLA compile options (nnspec/xla_options.py): set on the CPU where the installed
jaxlib takes them, left out where it does not, and used by every program that computes a
number a user sees (training, evaluation, prediction), so that those numbers agree."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import nnspec
from nnspec import trainer, xla_options

SPEC = """
model m {
    input x[2]
    dense 8 relu
    dense 1 sigmoid
}
loss binary_crossentropy
optimizer adam lr=0.05
train {
    data builtin("moons", n=200)
    split val=0.25
    batch 32
    epochs 3
    seed 0
}
"""


@pytest.fixture(autouse=True)
def fresh_probe():
    xla_options._known.clear()
    yield
    xla_options._known.clear()


def test_the_cpu_gets_the_options_this_jaxlib_takes():
    assert jax.default_backend() == "cpu"
    got = xla_options.compile_options()
    # this project's jaxlib knows the option: a jaxlib that did not would give {} here
    assert got == xla_options.CPU_OPTIONS
    jax.jit(lambda v: v * 2, compiler_options=got).lower(np.float32(1)).compile()


def test_an_option_the_jaxlib_does_not_take_is_left_out(monkeypatch):
    monkeypatch.setattr(xla_options, "CPU_OPTIONS", {"xla_cpu_experimental_ynn_fusion_type": "NO_SUCH_VALUE"})
    assert xla_options.compile_options() == {}
    monkeypatch.setattr(xla_options, "CPU_OPTIONS", {"xla_no_such_option_at_all": True})
    xla_options._known.clear()
    assert xla_options.compile_options() == {}


def test_the_trainers_programs_compile_with_them():
    compiled = trainer.compiled(lambda v: v + 1)
    assert compiled.base == xla_options.CPU_OPTIONS
    assert float(compiled(np.float32(1))) == 2.0


def test_the_last_validation_is_what_eval_computes(tmp_path):
    # training's last validation and `eval` of the run come from programs built with
    # the same options: the same figure
    result = nnspec.train(nnspec.check_text(SPEC), out=tmp_path / "run")
    figures = nnspec.load(tmp_path / "run").evaluate("val")
    assert figures["loss"] == pytest.approx(result.history[-1]["val_loss"], rel=1e-6)
