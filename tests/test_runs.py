"""The run folder tells the truth: eval and resume rebuild what was trained, the screen
reports the kept weights, and no run ever replaces or mixes with another (issue 8)."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nnspec import checkpoint

from cli_helpers import run_cli

IRIS_LIKE = """
model m {
    input x[2]
    dense 8 relu
    dense 3 softmax
}
loss categorical_crossentropy
optimizer adam lr=0.05
train {
    data builtin("blobs", n=120, classes=3, spread=2.5)
    split val=0.25 test=0.25
    batch 16
    epochs 6
    metrics accuracy
    seed 0
}
"""

CSV_SPEC = """
model exam {
    input x[2]
    dense 1 sigmoid
}
loss binary_crossentropy
optimizer adam lr=0.05
train {
    data csv("data/exam.csv", target="result")
    split val=0.25
    batch 8
    epochs 6
    seed 0
    metrics accuracy
}
"""


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch):
    """`run_cli` (`nnspec ARGV...` in-process: (exit code, stdout, stderr)) without colour."""
    monkeypatch.setenv("NO_COLOR", "1")
    return run_cli


def exam_folder(tmp_path: Path) -> Path:
    """A spec reading `data/exam.csv` relative to its own folder."""
    (tmp_path / "proj" / "data").mkdir(parents=True)
    rows = ["h1,h2,result"] + [f"{a},{b},{'pass' if a + b > 6 else 'fail'}" for a in range(8) for b in range(8)]
    (tmp_path / "proj" / "data" / "exam.csv").write_text("\n".join(rows) + "\n")
    spec = tmp_path / "proj" / "exam.nn"
    spec.write_text(CSV_SPEC)
    return spec


def test_eval_after_train_seed_scores_the_runs_own_test_split(cli, tmp_path: Path) -> None:
    """`train --seed 5` then `eval`: the test split is the one the seed-5 run held out,
    so eval's figure equals the kept weights' test metrics that train printed."""
    spec = tmp_path / "m.nn"
    spec.write_text(IRIS_LIKE)
    run = tmp_path / "run"
    code, out, err = cli("train", spec, "--seed", "5", "--out", run, "-q")
    assert code == 0, err
    kept = json.loads((run / "run.json").read_text())["kept"]["metrics"]["test"]
    code, out, err = cli("eval", spec, "--run", run)
    assert code == 0, err
    assert "`--seed 5`" in err
    accuracy = float(next(line.split()[1] for line in out.splitlines() if line.strip().startswith("accuracy")))
    assert accuracy == pytest.approx(kept["accuracy"], abs=1e-4)
    # the spec's own seed would have scored another split
    code, out2, _ = cli("train", spec, "--out", tmp_path / "seed0", "-q")
    other = json.loads((tmp_path / "seed0" / "run.json").read_text())["run"]
    assert other["seed"] == 0 and json.loads((run / "run.json").read_text())["run"]["seed"] == 5


def test_eval_without_a_spec_uses_the_runs_copy(cli, tmp_path: Path) -> None:
    spec = exam_folder(tmp_path)
    run = tmp_path / "run"
    assert cli("train", spec, "--out", run, "-q")[0] == 0
    code, out, err = cli("eval", "--run", run)
    assert code == 0, err
    assert out.startswith("validation split (16 examples)")


def test_eval_without_a_spec_of_a_folder_without_a_run_says_so(cli, tmp_path: Path) -> None:
    code, _, err = cli("eval", "--run", tmp_path / "nothing")
    assert code == 2 and f"error: `{tmp_path / 'nothing'}` holds no trained run (no `checkpoint.npz`)" in err


def test_eval_refuses_a_spec_with_other_data_or_split(cli, tmp_path: Path) -> None:
    spec = tmp_path / "m.nn"
    spec.write_text(IRIS_LIKE)
    run = tmp_path / "run"
    assert cli("train", spec, "--out", run, "-q")[0] == 0
    other = tmp_path / "other.nn"
    other.write_text(IRIS_LIKE.replace("spread=2.5", "spread=1.0"))
    code, _, err = cli("eval", other, "--run", run)
    assert code == 1
    assert f"error[E405]: this spec does not describe the run in `{run}`: the run was trained on other data" in err
    assert "other.nn:" in err and "differs from the run's `data`" in err
    other.write_text(IRIS_LIKE.replace("split val=0.25 test=0.25", "split val=0.2 test=0.3"))
    code, _, err = cli("eval", other, "--run", run)
    assert code == 1 and "the run was split val=0.25 test=0.25, this spec says val=0.2 test=0.3" in err


def test_resume_finds_relative_csv_data_and_notices_a_change(cli, tmp_path: Path, monkeypatch) -> None:
    spec = exam_folder(tmp_path)
    run = tmp_path / "run"
    code, _, err = cli("train", spec, "--out", run, "--epochs", "6", "-q", "--checkpoint-every", "0")
    assert code == 0, err
    # cut the run back to 3 epochs by training a twin that stops after 3 (the interrupted run)
    import nnspec
    from nnspec.fit import fit
    program = nnspec.check(spec.read_text(), filename=str(spec))
    part = tmp_path / "part"
    fit(program, out=part, stop_after=3, overrides={"epochs": 6})
    monkeypatch.chdir(tmp_path / "proj" / "data")  # anywhere: the data is found by its recorded path
    code, out, err = cli("train", "--resume", part, "-q")
    assert code == 0, err
    a, b = np.load(run / "checkpoint.npz"), np.load(part / "checkpoint.npz")
    for k in a.files:
        if k.startswith("final_params/"):
            assert np.array_equal(a[k], b[k])
    # the data changes: resuming again says so, located at the data line
    fit(program, out=tmp_path / "part2", stop_after=2, overrides={"epochs": 6})
    csv = tmp_path / "proj" / "data" / "exam.csv"
    csv.write_text(csv.read_text().replace("7,7,pass", "7,7,fail"))
    code, _, err = cli("train", "--resume", tmp_path / "part2", "-q")
    assert code == 1
    assert f"error[E401]: cannot resume: the run's data file `{csv.resolve()}` has changed since the run was trained" in err


def test_restore_best_summary_reports_the_kept_weights(cli, tmp_path: Path) -> None:
    spec = tmp_path / "m.nn"
    spec.write_text(IRIS_LIKE.replace("epochs 6", "epochs 60\n    early_stop monitor=val_loss patience=3 restore_best")
                    .replace("lr=0.05", "lr=0.3"))
    run = tmp_path / "run"
    code, out, err = cli("train", spec, "--out", run, "-q")
    assert code == 0, err
    info = json.loads((run / "run.json").read_text())
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    best = info["kept"]["epoch"]
    assert info["kept"]["why"] == "best val_loss" and best < len(history)
    # the kept weights are the best epoch's: their val loss is that epoch's, not the last one's
    assert info["kept"]["metrics"]["val"]["loss"] == pytest.approx(history[best - 1]["val_loss"], rel=1e-5)
    assert re.search(rf"kept weights +epoch {best} \(best val_loss\)", out), out
    assert f"last epoch ({len(history)})" in out
    assert "    test " in out  # the spec holds out a test split: its metrics are printed


def test_resume_of_a_finished_early_stopped_run_trains_nothing(cli, tmp_path: Path) -> None:
    spec = tmp_path / "m.nn"
    spec.write_text(IRIS_LIKE.replace("epochs 6", "epochs 60\n    early_stop monitor=val_loss patience=2")
                    .replace("lr=0.05", "lr=0.3"))
    run = tmp_path / "run"
    assert cli("train", spec, "--out", run, "-q", "--checkpoint-every", "0")[0] == 0
    before = (run / "checkpoint.npz").read_bytes()
    epochs = checkpoint.read_meta(run / "checkpoint.npz")["epoch"]
    assert checkpoint.read_meta(run / "checkpoint.npz")["stopped"]["reason"] == "early_stop"
    code, out, err = cli("train", "--resume", run, "-q")
    assert code == 0, err
    assert out.startswith("the run had already finished; nothing was trained")
    assert (run / "checkpoint.npz").read_bytes() == before
    assert checkpoint.read_meta(run / "checkpoint.npz")["epoch"] == epochs


def test_flags_are_remembered_on_resume_and_a_contradiction_is_refused(cli, tmp_path: Path) -> None:
    spec = tmp_path / "m.nn"
    spec.write_text(IRIS_LIKE)
    whole = tmp_path / "whole"
    assert cli("train", spec, "--seed", "5", "--epochs", "8", "--out", whole, "-q")[0] == 0
    import nnspec
    from nnspec.fit import fit
    part = tmp_path / "part"
    fit(nnspec.check(IRIS_LIKE), out=part, stop_after=3, overrides={"seed": 5, "epochs": 8})
    code, _, err = cli("train", "--resume", part, "--seed", "6", "-q")
    assert code == 2 and "was started with `--seed 5`; it cannot be resumed with `--seed 6`" in err
    code, _, err = cli("train", "--resume", part, "--epochs", "2", "-q")
    assert code == 2 and "has already trained 3 epochs; `--epochs 2` cannot end it earlier" in err
    code, _, err = cli("train", "--resume", part, "-q")
    assert code == 0, err
    a, b = np.load(whole / "checkpoint.npz"), np.load(part / "checkpoint.npz")
    assert checkpoint.read_meta(part / "checkpoint.npz")["epoch"] == 8
    for k in a.files:
        if k.startswith("final_params/"):
            assert np.array_equal(a[k], b[k])


def test_a_second_run_never_replaces_the_first(cli, tmp_path: Path, monkeypatch) -> None:
    spec = tmp_path / "m.nn"
    spec.write_text(IRIS_LIKE.replace("epochs 6", "epochs 2"))
    monkeypatch.chdir(tmp_path)
    assert cli("train", spec, "-q")[0] == 0
    first = (tmp_path / "runs" / "m" / "checkpoint.npz").read_bytes()
    code, _, err = cli("train", spec, "-q")
    assert code == 0 and err == ""  # -q: quiet
    assert (tmp_path / "runs" / "m-2" / "checkpoint.npz").exists()
    assert (tmp_path / "runs" / "m" / "checkpoint.npz").read_bytes() == first
    # a spec of the same name elsewhere gets its own folder too
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "m.nn").write_text(IRIS_LIKE.replace("epochs 6", "epochs 2"))
    code, _, err = cli("train", tmp_path / "b" / "m.nn")
    assert code == 0 and "  run folder  runs/m-3 (`runs/m` holds an earlier run)\n" in err
    # an explicit --out that holds a run is refused, unless --overwrite
    code, _, err = cli("train", spec, "--out", "runs/m", "-q")
    assert code == 2 and "already holds a run; continue it with `nnspec train --resume runs/m`" in err
    assert cli("train", spec, "--out", "runs/m", "--overwrite", "-q")[0] == 0


def test_out_never_touches_files_nnspec_did_not_write(cli, tmp_path: Path) -> None:
    spec = tmp_path / "m.nn"
    spec.write_text(IRIS_LIKE.replace("epochs 6", "epochs 2"))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "history.csv").write_text("my own notes\n")
    for flags in ((), ("--overwrite",)):
        code, _, err = cli("train", spec, "--out", mine, "-q", *flags)
        assert code == 2 and "is not empty and is not an nnspec run folder (`history.csv`)" in err
    assert (mine / "history.csv").read_text() == "my own notes\n"
    assert sorted(p.name for p in mine.iterdir()) == ["history.csv"]


def test_run_json_records_versions_command_times_and_kept_metrics(cli, tmp_path: Path) -> None:
    spec = tmp_path / "m.nn"
    spec.write_text(IRIS_LIKE.replace("epochs 6", "epochs 2"))
    run = tmp_path / "run"
    assert cli("train", spec, "--out", run, "-q")[0] == 0
    info = json.loads((run / "run.json").read_text())
    assert info["nnspec"] and info["jax"] and info["command"] == ["nnspec", "train", str(spec), "--out", str(run), "-q"]
    assert info["started"] <= info["ended"] and info["status"] == "finished"
    assert set(info["kept"]["metrics"]) == {"train", "val", "test"}
    assert info["run"]["data"] == {"kind": "builtin", "params": {"name": "blobs", "n": 120, "classes": 3,
                                                                  "spread": 2.5}}


def test_run_files_follow_the_umask(cli, tmp_path: Path) -> None:
    spec = tmp_path / "m.nn"
    spec.write_text(IRIS_LIKE.replace("epochs 6", "epochs 1"))
    old = os.umask(0o022)
    try:
        assert cli("train", spec, "--out", tmp_path / "run", "-q")[0] == 0
    finally:
        os.umask(old)
    for p in (tmp_path / "run").iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p


def test_a_finite_divergence_stops_with_e404(cli, tmp_path: Path) -> None:
    spec = tmp_path / "m.nn"
    spec.write_text(IRIS_LIKE.replace("optimizer adam lr=0.05", "optimizer sgd lr=1e6").replace("epochs 6", "epochs 20"))
    code, _, err = cli("train", spec, "--out", tmp_path / "run", "-q")
    assert code == 1
    assert "error[E404]: training diverged: the mean loss of epoch" in err and "times the initial weights' loss" in err
    spec.write_text(spec.read_text().replace("seed 0", "seed 0\n    divergence off"))
    code, _, err = cli("train", spec, "--out", tmp_path / "off", "-q")
    assert code == 0, err


def test_header_is_printed_before_training(cli, tmp_path: Path) -> None:
    spec = tmp_path / "m.nn"
    spec.write_text(IRIS_LIKE.replace("epochs 6", "epochs 2"))
    code, _, err = cli("train", spec, "--out", tmp_path / "run")
    assert code == 0
    head = err.split("compiling…")[0]
    assert head.startswith(f"training `{spec}`\n  model       `m`: 2 layers, 51 parameters\n")
    assert "60 train, 30 val, 30 test examples" in head and "  epochs      2\n" in head
    assert "device      cpu" in head
    first = next(line for line in err.splitlines() if line.startswith("epoch 1/2"))
    assert "compiled in" in first and "left" not in first  # no ETA from the compiling epoch


@pytest.mark.slow
def test_sigterm_saves_and_exits_143(tmp_path: Path) -> None:
    spec = tmp_path / "m.nn"
    spec.write_text(IRIS_LIKE.replace("epochs 6", "epochs 100000").replace("n=120", "n=2000"))
    run = tmp_path / "run"
    env = {**os.environ, "NNSPEC_NO_CACHE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "nnspec.cli", "train", str(spec), "--out", str(run),
                             "--checkpoint-every", "0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "history.csv").exists():
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert f"terminated: the last finished epoch is saved; continue with `nnspec train --resume {run}`" in err
    meta = checkpoint.read_meta(run / "checkpoint.npz")
    assert meta["epoch"] > 0 and json.loads((run / "run.json").read_text())["status"] == "interrupted"


def test_a_run_that_cannot_write_its_first_checkpoint_leaves_nothing(cli, tmp_path: Path, monkeypatch) -> None:
    """A full disk at the start: the run folder it created is taken back, and the error is one line."""
    import errno
    from nnspec import checkpoint as ckpt_module
    real = ckpt_module.write_bytes_atomic

    def full(path, data, *args, **kw):
        if Path(path).name == "checkpoint.npz":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data, *args, **kw)
    monkeypatch.setattr(ckpt_module, "write_bytes_atomic", full)
    spec = tmp_path / "m.nn"
    spec.write_text(IRIS_LIKE.replace("epochs 6", "epochs 1"))
    code, _, err = cli("train", spec, "--out", tmp_path / "run", "-q")
    assert code == 2 and "No space left on device" in err
    assert not (tmp_path / "run").exists()


def test_a_kill_between_the_stopping_save_and_the_final_save_trains_no_more(cli, tmp_path: Path, monkeypatch) -> None:
    """The audit's 7-of-8 random kills: the checkpoint of the epoch that stopped the run
    already says so, so resuming it ends where the uninterrupted run ended."""
    from nnspec import runs as runs_module
    spec = tmp_path / "m.nn"
    spec.write_text(IRIS_LIKE.replace("epochs 6", "epochs 60\n    early_stop monitor=val_loss patience=2 restore_best")
                    .replace("lr=0.05", "lr=0.3"))
    whole = tmp_path / "whole"
    assert cli("train", spec, "--out", whole, "-q")[0] == 0
    real = runs_module.save_checkpoint

    class Killed(BaseException):  # as SIGKILL: nothing in nnspec handles it
        pass

    def save_then_die(path, *args, final=None, extra=None, **kw):
        real(path, *args, final=final, extra=extra, **kw)
        if final is None and (extra or {}).get("stopped"):
            raise Killed()
    monkeypatch.setattr(runs_module, "save_checkpoint", save_then_die)
    run = tmp_path / "run"
    with pytest.raises(Killed):
        cli("train", spec, "--out", run, "-q")
    monkeypatch.setattr(runs_module, "save_checkpoint", real)
    code, _, err = cli("train", "--resume", run, "-q")
    assert code == 0, err
    a, b = checkpoint.read_meta(whole / "checkpoint.npz"), checkpoint.read_meta(run / "checkpoint.npz")
    untimed = lambda rows: [{k: v for k, v in r.items() if k != "time"} for r in rows]  # noqa: E731
    assert a["epoch"] == b["epoch"] and untimed(a["history"]) == untimed(b["history"])
    za, zb = np.load(whole / "checkpoint.npz"), np.load(run / "checkpoint.npz")
    finals = [k for k in za.files if k.startswith("final_params/")]
    assert finals and all(np.array_equal(za[k], zb[k]) for k in finals)


def test_resume_with_more_epochs_extends_a_finished_run(cli, tmp_path: Path) -> None:
    """`--resume DIR --epochs N` goes on to epoch N, as if the run had been asked for N."""
    spec = tmp_path / "m.nn"
    spec.write_text(IRIS_LIKE)
    whole, run = tmp_path / "whole", tmp_path / "run"
    assert cli("train", spec, "--epochs", "9", "--out", whole, "-q")[0] == 0
    assert cli("train", spec, "--out", run, "-q")[0] == 0
    code, out, err = cli("train", "--resume", run, "--epochs", "9", "-q")
    assert code == 0 and out.startswith("training finished"), err
    za, zb = np.load(whole / "checkpoint.npz"), np.load(run / "checkpoint.npz")
    finals = [k for k in za.files if k.startswith("final_params/")]
    assert finals and all(np.array_equal(za[k], zb[k]) for k in finals)
    assert json.loads((run / "run.json").read_text())["run"]["overrides"] == {"epochs": 9}


def test_a_sweeps_folder_is_a_run_folder(cli, tmp_path: Path) -> None:
    spec = tmp_path / "s.nn"
    spec.write_text(IRIS_LIKE.replace("adam lr=0.05", "adam lr=sweep(0.01, 0.05)").replace("epochs 6", "epochs 2"))
    run = tmp_path / "run"
    assert cli("train", spec, "--out", run, "-q")[0] == 0
    assert json.loads((run / "run.json").read_text())["run"]["data"]["params"]["name"] == "blobs"
    code, _, err = cli("train", spec, "--out", run, "-q")
    assert code == 2 and "already holds a run" in err
    assert cli("train", spec, "--out", run, "-q", "--overwrite")[0] == 0


def test_a_standardizer_of_another_width_is_refused(cli, tmp_path: Path) -> None:
    spec = tmp_path / "m.nn"
    spec.write_text(IRIS_LIKE.replace("epochs 6", "epochs 1").replace("seed 0", "seed 0\n    standardize"))
    run = tmp_path / "run"
    assert cli("train", spec, "--out", run, "-q")[0] == 0
    with np.load(run / "checkpoint.npz") as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays["__meta__"].tobytes())
    meta["standardizer"] = {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
    meta.pop("feature_names", None)
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(run / "checkpoint.npz", **arrays)
    code, _, err = cli("eval", spec, "--run", run)
    assert code == 1 and "standardizes 3 features, but the model's input has 2" in err


def test_a_run_that_eval_wrote_its_confusion_matrix_into_is_still_nnspecs_own(cli, tmp_path):
    """`eval` writes confusion.json/csv into the run folder: `train --overwrite` may replace
    them, and without it the folder is refused as a run, not as someone else's files."""
    spec = tmp_path / "m.nn"
    spec.write_text("model m {\n    input x[2]\n    dense 1 sigmoid\n}\nloss binary_crossentropy\noptimizer sgd\n"
                    'train {\n    data builtin("moons", n=100)\n    split test=0.2\n    epochs 1\n}\n')
    assert cli("train", spec, "--out", tmp_path / "r", "-q")[0] == 0
    assert cli("eval", "--run", tmp_path / "r")[0] == 0
    assert (tmp_path / "r" / "confusion.json").is_file()
    code, _, err = cli("train", spec, "--out", tmp_path / "r", "-q")
    assert code == 2 and "did not write" not in err and "--overwrite" in err
    assert cli("train", spec, "--out", tmp_path / "r", "--overwrite", "-q")[0] == 0
    assert not (tmp_path / "r" / "confusion.json").exists()
