"""2. Divergence is caught and named.

A run whose loss becomes NaN or infinite stops in that epoch (E404) and says where: the
epoch and step, the last finite loss, which layer's values went non-finite first (with
its line), and a help whose two suggestions are both tested here. The checkpoint of the
last good epoch is kept: it is older than the diverged epoch, it loads, and a run can
be finished from it.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from robust_helpers import cli, fails_cleanly, moons, write

from nnspec import checkpoint

# sgd whose learning rate climbs (warm-up) from 0 to 2: fine for ~15 epochs, then the
# loss grows by orders of magnitude each epoch until it overflows in epoch 25.
# `divergence off`: the explosion before the overflow would otherwise stop it first
# (test_runs.py tests that); here the NaN itself is under test.
RAMP = """\
model ramp {
    input x[1]
    h: dense 8 relu
    out: dense 1
}
loss mse
optimizer sgd lr=2 warmup=300
train {
    data builtin("regression", n=200)
    batch 20
    epochs 40
    seed 0
    divergence off
}
"""

DIVERGED = re.compile(r"^error\[E404\]: training diverged: the loss became (NaN|infinite) "
                      r"at step (\d+) of epoch (\d+)$", re.M)


def test_divergence_names_epoch_step_last_loss_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    spec = write(tmp_path / "ramp.nn", RAMP)
    run = tmp_path / "run"
    code, _, err = cli("train", spec, "--out", run, "--checkpoint-every", "0", "-q")
    assert code == 1
    fails_cleanly(code, err.split("warning: 1 warning emitted\n")[-1])  # W001 (a large lr) comes first
    m = DIVERGED.search(err)
    assert m, err
    step, epoch = int(m[2]), int(m[3])
    assert epoch > 1
    last = re.search(r"= note: last finite loss: (\S+) at step (\d+) of epoch (\d+)", err)
    assert last and int(last[2]) == step - 1 and int(last[3]) == epoch and math.isfinite(float(last[1])), err
    assert "optimizer sgd lr=2 warmup=300\n  |               ^^^^ this learning rate may be too large" in err
    assert "= help: try a learning rate 10 times smaller, or add `clip_norm=1.0` to the optimizer" in err
    # The layer: here every value was finite and the mean squared error overflowed, so
    # the last layer's line is shown with its largest output.
    assert "= note: every layer's values were finite, but the loss overflowed" in err
    assert "4 |     out: dense 1\n  |     ------------ its outputs grew too large for the loss" in err
    assert f"= note: the checkpoint of epoch {epoch - 1} is kept in `{run / 'checkpoint.npz'}`" in err

    meta = checkpoint.read_meta(run / "checkpoint.npz")
    assert meta["epoch"] == epoch - 1 < epoch
    assert len(meta["history"]) == epoch - 1 and all(math.isfinite(r["loss"]) for r in meta["history"])
    assert "final_params" not in meta["trees"]
    history_csv = (run / "history.csv").read_text().splitlines()
    assert len(history_csv) == epoch  # the header and one row per good epoch
    # It loads: finishing the run at the last good epoch uses it, and eval reads the result.
    code, out, err = cli("train", "--resume", run, "--epochs", epoch - 1, "-q")
    assert code == 0, err
    assert re.search(rf"epochs run +{epoch - 1}\n", out), out
    code, out, err = cli("eval", spec, "--run", run)
    assert code == 0 and "training split (200 examples)" in out, err
    loss = float(re.search(r"loss\s+(\S+)", out)[1])
    assert math.isfinite(loss)


def test_a_huge_learning_rate_stops_in_the_first_epoch_and_names_the_layer(tmp_path: Path) -> None:
    spec = write(tmp_path / "moons.nn", moons(epochs=50).replace("optimizer adam lr=0.01", "optimizer sgd lr=1e30"))
    run = tmp_path / "run"
    code, _, err = cli("train", spec, "--out", run, "-q")
    assert code == 1
    m = DIVERGED.search(err)
    assert m and m[3] == "1", err  # at once: the first epoch, not the fiftieth
    named = re.search(r"= note: the first non-finite values were the (weights|output) of layer `(\w+)`", err)
    assert named and named[2] in ("h1", "drop", "h2", "out"), err
    line = moons().splitlines().index(next(l for l in moons().splitlines() if l.strip().startswith(named[2] + ":")))
    assert re.search(rf"^{line + 1} \|     {named[2]}: .*\n\s*\| +-+ its {named[1]} went non-finite first$", err, re.M), err
    assert "no epoch finished: the checkpoint in" in err and "holds the initial weights" in err
    meta = checkpoint.read_meta(run / "checkpoint.npz")
    assert meta["epoch"] == 0 and meta["history"] == []


def test_the_help_works_either_way(tmp_path: Path) -> None:
    """Both suggestions of the help, applied to the diverging spec, train to the end."""
    for name, text in (("smaller", RAMP.replace("lr=2 ", "lr=0.2 ")),
                       ("clipped", RAMP.replace("warmup=300", "warmup=300 clip_norm=1.0"))):
        spec = write(tmp_path / f"{name}.nn", text)
        code, out, err = cli("train", spec, "--out", tmp_path / name, "-q")
        assert code == 0, (name, err)
        assert re.search(r"epochs run +40\n", out) and "E404" not in err


def test_the_replay_that_names_the_layer_follows_the_epoch_program() -> None:
    """Naming the layer replays the diverged epoch step by step; those steps must be the
    compiled epoch's steps (same batches, same dropout keys), or it would name the wrong
    layer. A mini-batch epoch with padding and dropout, and a full-batch one."""
    import jax
    import numpy as np

    import nnspec
    from nnspec.data import load
    from nnspec.trainer import epoch_program, keys_for, replay, shuffle
    from nnspec.lower import lower

    for batch, n in (("24", 100), ("all", 100)):
        program = nnspec.check_text(moons(n=n).replace("batch 32", f"batch {batch}").replace("split val=0.25", ""))
        model, t = lower(program), program.train
        init_key, base = keys_for(t.seed)
        state = jax.jit(model.init_state)(init_key)
        ds = load(t.data, seed=t.seed, base_dir=Path("."), task=program.loss.task)
        x, y, hp = jax.numpy.asarray(ds.x), jax.numpy.asarray(ds.y), model.hparams()
        order = shuffle(t.seed, 2, n) if t.batch is not None else np.arange(n, dtype=np.int32)
        fused, _, _ = epoch_program(model, n, t.batch)(state, x, y, order, base, np.int32(2), hp)
        steps = -(-n // (t.batch or n))
        stepped, _ = replay(model, state, x, y, order, base, 2, hp, t.batch, steps)
        for a, b in zip(jax.tree_util.tree_leaves(fused.params), jax.tree_util.tree_leaves(stepped.params)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
