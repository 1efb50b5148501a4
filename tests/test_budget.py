"""`steps N`: a budget in gradient steps (Caffe's `max_iter`), whose last epoch ends part
way: nnspec/trainer.py's `budget` and `epoch_fn(limit=)`, fit.py and sweep_fit.py."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import nnspec
from nnspec.fit import fit
from nnspec.prepare import prepare
from nnspec.sweep_fit import fit_sweep
from nnspec.trainer import Trainer, budget, member, replay

# 200 examples in batches of 32: 7 steps an epoch, the last of 8 examples
SPEC = """model m {
    input x[2]
    h: dense 8 relu
    dropout 0.1
    dense 1 sigmoid
}
loss binary_crossentropy
optimizer momentum lr=inverse_time_decay(initial=0.1, rate=0.01) lr_in_velocity=true
train {
    data builtin("moons", n=200)
    batch 32
    LENGTH
    seed 3
    metrics accuracy
}
"""


def _program(length: str):
    return nnspec.check_text(SPEC.replace("LENGTH", length))


def _leaves(tree):
    return [np.asarray(a) for a in jax.tree_util.tree_leaves(tree)]


def test_the_budget_in_epochs():
    assert budget(17, 200, 32) == (3, 3)
    assert budget(14, 200, 32) == (2, None)  # whole epochs
    assert budget(1, 200, 32) == (1, 1)
    assert budget(5, 200, None) == (5, None)  # `batch all`: a step an epoch
    assert budget(10_000, 60_000, 64) == (11, 620)  # Caffe's LeNet: 938 steps an epoch


def test_training_stops_after_exactly_n_steps():
    program = _program("steps 17")
    trainer = Trainer([program], prepare(program, None))
    assert (trainer.epochs, trainer.last_steps) == (3, 3)
    snap = trainer.run(trainer.fresh(), trainer.epochs)
    assert snap.epoch == 3
    assert int(np.asarray(snap.state.opt_state.count)[0]) == 17  # the optimizer took 17 steps
    # the same as two whole epochs, then the first 3 steps of the third, one at a time
    whole = _program("epochs 2")
    two = Trainer([whole], prepare(whole, None))
    after = two.run(two.fresh(), 2)
    state, _ = replay(two.model, member(after.state, 0), two.x, two.y, two.order(2), member(two.epoch_keys, 0),
                      2, member(two.hparams, 0), 32, 3)
    for a, b in zip(_leaves(member(snap.state, 0)), _leaves(state)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_the_partial_epoch_reports_over_the_examples_it_saw():
    result = fit(_program("steps 9"))  # an epoch of 7 steps, then 2 of the next
    assert [r["epoch"] for r in result.history] == [1, 2]
    assert result.epochs_run == 2
    full = fit(_program("steps 7"))
    assert len(full.history) == 1
    assert result.history[0]["loss"] == pytest.approx(full.history[0]["loss"], rel=1e-6)
    # the second epoch's mean loss is over its 64 examples: a plausible cross-entropy, not 64/200 of one
    assert 0.1 < result.history[1]["loss"] < 1.0
    assert 0.0 <= result.history[1]["accuracy"] <= 1.0


def test_epochs_from_the_command_line_replace_the_budget():
    result = fit(_program("steps 9"), epochs=3)
    assert len(result.history) == 3
    assert result.program.train.steps is None


def test_a_sweep_over_the_budget():
    result = fit_sweep(_program("steps sweep(7, 10)"))
    assert [len(m.history) for m in result.members] == [1, 2]
    for m in result.members:
        alone = fit(m.program)
        for a, b in zip(_leaves(alone.params), _leaves(m.params)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_resumed_budget_ends_where_the_whole_run_does(tmp_path):
    program = _program("steps 16")  # 7 + 7 + 2
    whole = fit(program, out=tmp_path / "whole")
    fit(program, out=tmp_path / "part", stop_after=2)
    resumed = fit(program, out=tmp_path / "part", resume=True)
    assert len(resumed.history) == len(whole.history) == 3
    for a, b in zip(_leaves(whole.params), _leaves(resumed.params)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    again = fit(program, out=tmp_path / "whole", resume=True)
    assert again.already_finished
