"""`nnspec check --data`: the data read, split and checked as `train` would, without JAX."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SPEC = """model m {
    input x[2]
    dense 1 sigmoid
}
loss binary_crossentropy
optimizer sgd LR
train {
    data csv("DATA", target="label")
    split test=0.25
    epochs 1
}
"""


def _run(*argv, cwd: Path) -> subprocess.CompletedProcess:
    code = ("import sys\nfrom nnspec.cli import main\nstatus = main(sys.argv[1:])\n"
            "assert 'jax' not in sys.modules and 'optax' not in sys.modules, 'check --data started JAX'\n"
            "sys.exit(status)")
    return subprocess.run([sys.executable, "-c", code, *argv], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    rows = ["u,w,label"] + [f"{i % 7},{i % 5},{i % 2}" for i in range(80)]
    (tmp_path / "good.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "bad.csv").write_text("u,w,label\n1,2,0\n3,x,1\n4,5,0\n")
    (tmp_path / "good.nn").write_text(SPEC.replace("DATA", "good.csv").replace("LR", ""))
    (tmp_path / "bad.nn").write_text(SPEC.replace("DATA", "bad.csv").replace("LR", ""))
    (tmp_path / "sweep.nn").write_text(SPEC.replace("DATA", "good.csv").replace("LR", "lr=sweep(0.1, 0.01)"))
    return tmp_path


def test_clean_data_is_reported_with_its_splits(folder):
    done = _run("check", "--data", "good.nn", "sweep.nn", cwd=folder)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "ok: `good.nn` (3 parameters; data: 60 train, 20 test examples)",
        "ok: `sweep.nn` (3 parameters, a sweep of 2 models; data: 60 train, 20 test examples)"]


def test_a_data_problem_is_located_as_train_would_locate_it(folder):
    done = _run("check", "--data", "good.nn", "bad.nn", cwd=folder)
    assert done.returncode == 1
    assert "ok: `good.nn`" in done.stdout and "bad.nn" not in done.stdout
    assert "error[E401]: cannot use the data: cannot read `x` as a number" in done.stderr
    assert "bad.csv, line 3, column `w`" in done.stderr and "Traceback" not in done.stderr
    # without --data the checker reads only the file's name: the spec is clean
    assert _run("check", "bad.nn", cwd=folder).returncode == 0


def test_json_output_carries_the_data_diagnostics(folder):
    done = _run("check", "--data", "--format", "json", "bad.nn", cwd=folder)
    assert done.returncode == 1
    (d,) = json.loads(done.stdout)
    assert d["code"] == "E401" and d["severity"] == "error"


def test_a_missing_file_is_a_data_error_not_a_crash(folder):
    (folder / "gone.nn").write_text(SPEC.replace("DATA", "gone.csv").replace("LR", ""))
    done = _run("check", "--data", "gone.nn", cwd=folder)
    assert done.returncode == 1 and "file not found" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("fill, words", [
    ("mean", "the column has no values in the training split to take the mean of"),
    ("mode", "the column has no values in the training split to take the mode of"),
    ("drop", "`missing drop` drops every row (6): each has a missing value"),
])
def test_a_column_that_is_all_missing_is_refused_for_each_fill(folder, fill, words):
    (folder / "empty.csv").write_text("u,w,label\n" + "".join(f"{i},,{i % 2}\n" for i in range(6)))
    (folder / "empty.nn").write_text(SPEC.replace("DATA", "empty.csv").replace("LR", "")
                                     .replace("    split test=0.25\n", f"    missing {fill}\n    batch 2\n"))
    done = _run("check", "--data", "empty.nn", cwd=folder)
    assert done.returncode == 1 and words in done.stderr and "Traceback" not in done.stderr
