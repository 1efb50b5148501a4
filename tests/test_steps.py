"""`history steps`: every gradient step's training loss, from inside the fused epoch
program, in `steps.csv` and `Result.steps`; resumed runs and sweeps go on without
repeating or losing a step."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

import nnspec
from nnspec.check import check_source
from nnspec.fit import fit
from nnspec.infer import evaluate
from nnspec.prepare import prepare
from nnspec.sweep_fit import fit_sweep
from nnspec.trainer import Trainer

SPEC = """
model m {
    input x[2]
    h: dense 8 relu
    dense 1 sigmoid
}
loss binary_crossentropy
optimizer sgd lr=LR
train {
    data builtin("moons", n=120)
    split val=0.25
    batch BATCH
    epochs EPOCHS
    HISTORY
}
"""
N_TRAIN = 90  # 120 examples, a quarter held out


def spec(batch="32", epochs=3, lr="0.1", history="history steps"):
    return SPEC.replace("BATCH", batch).replace("EPOCHS", str(epochs)).replace("LR", lr).replace("HISTORY", history)


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_each_epochs_steps_average_to_its_loss_weighted_by_batch_size():
    result = nnspec.train(spec(batch="32", epochs=4))
    assert result.steps.shape == (4, 3) and result.steps.dtype == np.float32
    sizes = np.array([32, 32, N_TRAIN - 64])  # the last batch holds the 26 left over
    for row, steps in zip(result.history, result.steps):
        assert float(np.sum(steps * sizes) / N_TRAIN) == pytest.approx(row["loss"], rel=1e-5)
    assert np.all(np.isfinite(result.steps)) and len({float(v) for v in result.steps.ravel()}) == 12


def test_a_full_batch_step_is_the_loss_of_the_weights_before_it():
    # an independent measurement: the 3-epoch run's 3rd (only) step of its last epoch sees
    # the weights that the 2-epoch run ends with, evaluated on the training split
    three = nnspec.train(spec(batch="all", epochs=3))
    two = nnspec.train(spec(batch="all", epochs=2, history=""))
    assert two.steps is None and three.steps.shape == (3, 1)
    measured = evaluate(two.model, two.params, two.splits.train, two.program)["loss"]
    assert float(three.steps[2, 0]) == pytest.approx(measured, rel=1e-5)


@pytest.mark.parametrize("batch, steps", [("1", N_TRAIN), ("16", math.ceil(N_TRAIN / 16)), ("all", 1)])
def test_sgd_mini_batch_and_full_batch_give_n_then_ceil_n_over_b_then_one_step(tmp_path, batch, steps):
    result = nnspec.train(spec(batch=batch, epochs=2), out=tmp_path / "run")
    assert result.steps.shape == (2, steps)
    got = rows(tmp_path / "run" / "steps.csv")
    assert [(int(r["epoch"]), int(r["step"])) for r in got] == [(e, s) for e in (1, 2) for s in range(1, steps + 1)]
    assert np.array_equal(np.array([float(r["loss"]) for r in got], np.float32), result.steps.ravel())


def test_recording_runs_the_same_compiled_epoch_program():
    # the per-step losses were always an output of the fused epoch: keeping them adds no
    # computation, only their transfer (benchmarks/steps.py times it)
    off, on = (nnspec.check_text(spec(history=h)) for h in ("", "history steps"))
    splits = prepare(off)
    a, b = Trainer([off], splits), Trainer([on], splits)
    a.run(a.fresh(), 1)
    b.run(b.fresh(), 1)
    assert not a.record_steps and b.record_steps and a._epoch.fast is b._epoch.fast


def test_without_the_line_nothing_is_recorded(tmp_path):
    for history in ("", "history epochs"):
        out = tmp_path / (history or "none").replace(" ", "_")
        result = nnspec.train(spec(epochs=1, history=history), out=out)
        assert result.steps is None and not (out / "steps.csv").exists() and (out / "history.csv").exists()


def test_the_checker_refuses_another_word():
    program, diags, _ = check_source(spec(history="history batches"), "m.nn")
    assert program is None and [d.code for d in diags] == ["E104"]
    assert diags[0].message == "`batches` is not one of `epochs`, `steps`"


def test_a_resumed_run_goes_on_without_repeating_or_losing_a_step(tmp_path):
    program = nnspec.check_text(spec(batch="32", epochs=5))
    fit(program, out=tmp_path / "whole")
    fit(program, out=tmp_path / "part", stop_after=2)
    assert len(rows(tmp_path / "part" / "steps.csv")) == 2 * 3
    resumed = fit(program, out=tmp_path / "part", resume=True)
    assert (tmp_path / "part" / "steps.csv").read_text() == (tmp_path / "whole" / "steps.csv").read_text()
    assert resumed.steps.shape == (5, 3)
    # interrupted by Ctrl-C after epoch 3 (the save on interrupt keeps its steps)

    def stop(epoch, total, row, seconds):
        if epoch == 3:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        fit(program, out=tmp_path / "ctrl-c", progress=stop, checkpoint_every=1e9)
    assert len(rows(tmp_path / "ctrl-c" / "steps.csv")) == 3 * 3
    fit(program, out=tmp_path / "ctrl-c", resume=True)
    assert (tmp_path / "ctrl-c" / "steps.csv").read_text() == (tmp_path / "whole" / "steps.csv").read_text()
    # a finished run, resumed, trains nothing and still has its steps
    again = fit(program, out=tmp_path / "whole", resume=True)
    assert again.already_finished and np.array_equal(again.steps, resumed.steps)


def test_a_sweep_records_each_models_steps_and_resumes_them(tmp_path):
    text = spec(batch="32", epochs=4, lr="sweep(0.03, 0.3)")
    whole = fit_sweep(nnspec.check_text(text), out=tmp_path / "whole")
    got = rows(tmp_path / "whole" / "steps.csv")
    assert list(got[0]) == ["model", "lr", "epoch", "step", "loss"] and len(got) == 2 * 4 * 3
    for m, member in enumerate(whole.members):
        mine = [r for r in got if int(r["model"]) == m]
        assert {float(r["lr"]) for r in mine} == {member.setting["lr"]}
        assert np.array_equal(np.array([float(r["loss"]) for r in mine], np.float32), member.steps.ravel())
        # each model's steps are those of training it alone
        alone = nnspec.train(spec(batch="32", epochs=4, lr=str(member.setting["lr"])))
        np.testing.assert_allclose(member.steps, alone.steps, rtol=1e-5)
    # one model per stack (chunk=1), interrupted in the second stack: both the finished
    # model's steps and the stack in training's come back from the checkpoint
    seen = []

    def stop(line):
        seen.append(line)
        if len(seen) == 6:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        fit_sweep(nnspec.check_text(text), out=tmp_path / "part", chunk=1, progress=stop, checkpoint_every=0.0)
    fit_sweep(nnspec.check_text(text), out=tmp_path / "part", resume=True)
    fit_sweep(nnspec.check_text(text), out=tmp_path / "alone", chunk=1)
    assert (tmp_path / "part" / "steps.csv").read_text() == (tmp_path / "alone" / "steps.csv").read_text()


def test_the_benchmark_runs(capsys):
    from benchmarks.steps import main
    assert main(["--quick", "--epochs", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[0] for line in lines[2:]] == ["W1, batch 32", "W1, batch 1", "W3, 16-model stack",
                                                          "W1 fit, run folder"]
    assert all(float(line.split()[-1]) > 0 for line in lines[2:])
