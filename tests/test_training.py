"""Training end to end: runs learn, stop, diverge, checkpoint, resume and repeat exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import nnspec
from nnspec.cli import main
from nnspec.diagnostics import NNSpecError

MOONS = """
model moons {
    input x[2]
    dense 16 relu
    dense 16 relu
    dense 1 sigmoid
}
loss binary_crossentropy
optimizer adam lr=0.01
train {
    data builtin("moons", n=400)
    split val=0.25
    batch 32
    epochs 12
    metrics accuracy
    seed 3
}
"""


def leaves(tree) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def test_training_learns_and_records_history():
    result = nnspec.train(MOONS)
    assert len(result.history) == 12
    first, last = result.history[0], result.history[-1]
    assert last["loss"] < first["loss"]
    assert set(last) >= {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "time"}
    assert last["val_accuracy"] > 0.8


def test_same_seed_same_bits_and_other_seed_differs():
    a = nnspec.train(MOONS, epochs=3)
    b = nnspec.train(MOONS, epochs=3)
    c = nnspec.train(MOONS, epochs=3, seed=4)
    for x, y in zip(leaves(a.params), leaves(b.params)):
        assert np.array_equal(x, y)
    assert [r["loss"] for r in a.history] == [r["loss"] for r in b.history]
    assert any(not np.array_equal(x, y) for x, y in zip(leaves(a.params), leaves(c.params)))


def test_resume_in_process_gives_the_uninterrupted_result(tmp_path):
    whole = nnspec.train(MOONS, epochs=6, out=tmp_path / "whole")
    program = nnspec.check_text(MOONS)
    from nnspec.fit import fit
    fit(program, epochs=6, out=tmp_path / "part", stop_after=2)
    meta = json.loads((tmp_path / "part" / "run.json").read_text())
    assert meta["seed"] == 3
    resumed = fit(program, epochs=6, out=tmp_path / "part", resume=True)
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in whole.history]
    for x, y in zip(leaves(whole.params), leaves(resumed.params)):
        assert np.array_equal(x, y)


def test_early_stopping_restores_the_best_epoch():
    spec = MOONS.replace("epochs 12", "epochs 200").replace(
        "seed 3", "seed 3\n    early_stop monitor=val_loss patience=3 restore_best")
    result = nnspec.train(spec)
    assert result.stopped_early
    losses = [r["val_loss"] for r in result.history]
    assert result.best_epoch == int(np.argmin(losses)) + 1
    assert len(losses) == result.best_epoch + 3  # patience 3: the 3rd epoch without improvement stops
    replay = nnspec.train(spec.replace("early_stop", "# early_stop"), epochs=result.best_epoch)
    for x, y in zip(leaves(result.params), leaves(replay.params)):
        assert np.array_equal(x, y)


def test_divergence_is_named_with_epoch_step_and_help(tmp_path):
    spec = MOONS.replace("optimizer adam lr=0.01", "optimizer sgd lr=1e30")
    with pytest.raises(NNSpecError) as info:
        nnspec.train(spec, out=tmp_path / "run")
    d = info.value.diagnostics[0]
    assert d.code == "E404"
    assert "at step 1 of epoch 1" in d.message or "of epoch" in d.message
    assert "learning rate" in (d.help or "")
    text = info.value.render()
    assert "optimizer sgd lr=1e30" in text


def test_batch_larger_than_data_is_reported():
    spec = MOONS.replace("batch 32", "batch 1000")
    with pytest.raises(NNSpecError) as info:
        nnspec.train(spec)
    assert info.value.diagnostics[0].code == "E402"
    assert "batch size 1000 is larger than the training split (300 examples)" in info.value.diagnostics[0].message


def test_csv_data_problem_points_at_file_and_spec(tmp_path, capsys):
    (tmp_path / "d.csv").write_text("a,b,y\n1,2,0\n3,x,1\n")
    spec = tmp_path / "s.nn"
    spec.write_text(MOONS.replace('builtin("moons", n=400)', 'csv("d.csv", target="y")'))
    code = main(["train", str(spec), "--out", str(tmp_path / "run"), "-q"])
    assert code == 1
    err = capsys.readouterr().err
    assert "error[E401]: cannot use the data: cannot read `x` as a number" in err
    assert 'data csv("d.csv", target="y")' in err  # the spec line, with carets under it
    assert "d.csv, line 3, column `b`" in err
    assert "could not train" in err and "Traceback" not in err


def test_text_labels_come_back_as_names_and_standardization_is_stored(tmp_path, capsys):
    rows = ["hours,lectures,result"] + [f"{h},{l},{'pass' if h / 40 + l / 20 > 1 else 'fail'}"
                                       for h in range(0, 40, 3) for l in range(0, 20, 3)]
    (tmp_path / "exam.csv").write_text("\n".join(rows) + "\n")
    spec = tmp_path / "exam.nn"
    spec.write_text(MOONS.replace('builtin("moons", n=400)', 'csv("exam.csv", target="result")')
                    .replace("seed 3", "seed 3\n    standardize").replace("batch 32", "batch 8"))
    run = tmp_path / "run"
    assert main(["train", str(spec), "--out", str(run), "-q"]) == 0
    from nnspec import checkpoint
    meta = checkpoint.read_meta(run / "checkpoint.npz")
    assert meta["classes"] == ["fail", "pass"]
    assert len(meta["standardizer"]["mean"]) == 2
    (tmp_path / "exam.csv").unlink()  # predict needs the run, not the training data
    (tmp_path / "x.csv").write_text("hours,lectures\n40,20\n0,0\n")
    capsys.readouterr()
    assert main(["predict", str(spec), "--run", str(run), "--input", str(tmp_path / "x.csv")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "y,class"
    assert out[1].endswith(",pass") and out[2].endswith(",fail")


def test_cli_train_eval_predict_and_refuse_other_spec(tmp_path, capsys):
    spec = tmp_path / "moons.nn"
    spec.write_text(MOONS.replace("split val=0.25", "split val=0.25 test=0.25"))
    run = tmp_path / "run"
    assert main(["train", str(spec), "--out", str(run), "-q"]) == 0
    for name in ("spec.nn", "ir.json", "history.csv", "history.jsonl", "checkpoint.npz", "run.json"):
        assert (run / name).exists(), name
    assert len((run / "history.csv").read_text().splitlines()) == 13
    capsys.readouterr()
    assert main(["eval", str(spec), "--run", str(run)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("test split (100 examples)")
    assert "accuracy" in out
    inputs = tmp_path / "x.csv"
    inputs.write_text("x1,x2\n0.5,0.2\n-1,1\n")
    assert main(["predict", str(spec), "--run", str(run), "--input", str(inputs),
                 "--output", str(tmp_path / "y.csv")]) == 0
    lines = (tmp_path / "y.csv").read_text().splitlines()
    assert lines[0] == "y,class" and len(lines) == 3
    assert all(line.split(",")[1] in ("0", "1") for line in lines[1:])
    other = tmp_path / "other.nn"
    other.write_text(MOONS.replace("dense 16 relu\n    dense 16 relu", "dense 8 relu"))
    assert main(["eval", str(other), "--run", str(run)]) == 1
    err = capsys.readouterr().err
    assert "error[E405]" in err and "different model" in err and "Traceback" not in err


def test_corrupt_checkpoint_is_refused_with_its_name(tmp_path, capsys):
    spec = tmp_path / "moons.nn"
    spec.write_text(MOONS.replace("epochs 12", "epochs 2"))
    run = tmp_path / "run"
    assert main(["train", str(spec), "--out", str(run), "-q"]) == 0
    ckpt = run / "checkpoint.npz"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    capsys.readouterr()
    assert main(["eval", str(spec), "--run", str(run)]) == 1
    err = capsys.readouterr().err
    assert "corrupt or truncated" in err and str(ckpt) in err and "Traceback" not in err


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    spec = tmp_path / "moons.nn"
    spec.write_text(MOONS.replace("epochs 12", "epochs 300").replace("n=400", "n=1000"))
    env = {**os.environ, "NNSPEC_NO_CACHE": "1"}
    whole = tmp_path / "whole"
    subprocess.run([sys.executable, "-m", "nnspec.cli", "train", str(spec), "--out", str(whole), "-q"],
                   check=True, env=env, capture_output=True)
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "nnspec.cli", "train", str(spec), "--out", str(run), "-q",
                             "--checkpoint-every", "0"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "history.csv").exists():  # the first epoch is saved
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    meta = json.loads(subprocess.run([sys.executable, "-c", (
        "import json,sys; from nnspec import checkpoint; from pathlib import Path;"
        f"print(json.dumps(checkpoint.read_meta(Path({str(run / 'checkpoint.npz')!r}))['epoch']))")],
        check=True, capture_output=True, text=True).stdout)
    assert 0 < meta < 300, "the kill should land part-way"
    subprocess.run([sys.executable, "-m", "nnspec.cli", "train", "--resume", str(run), "-q",
                    "--checkpoint-every", "0"],
                   check=True, env=env, capture_output=True)
    # a kill during a write may leave its temporary file; the next run in the folder removes it
    assert not list(run.glob(".*.tmp")), "no half-written files are left behind"
    from nnspec import checkpoint
    a = np.load(whole / "checkpoint.npz")
    b = np.load(run / "checkpoint.npz")
    keys = [k for k in a.files if k.startswith("final_params/")]
    assert keys
    for k in keys:
        assert np.array_equal(a[k], b[k]), k
    def history(path):
        return [{k: v for k, v in row.items() if k != "time"} for row in checkpoint.read_meta(path)["history"]]
    assert history(whole / "checkpoint.npz") == history(run / "checkpoint.npz")
