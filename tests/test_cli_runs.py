"""`eval` and `predict` find the run `train` wrote (runs/NAME, runs/NAME-2, ...), take a
run folder in the spec's place, and write JSON; `env` shows the caches and the optional
extras; an internal error carries the versions and the command line."""

from __future__ import annotations

import csv
import importlib.metadata
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nnspec
from nnspec import cli as cli_module
from nnspec.cli import main

from cli_helpers import run_cli

ROOT = Path(__file__).resolve().parent.parent

SPEC = """\
model tiny {
    input x[2]
    out: dense 1 sigmoid
}
loss binary_crossentropy
optimizer sgd lr=0.1
train {
    data builtin("pass_class", n=200)
    split val=0.2 test=0.2
    batch 32
    epochs 2
    seed 0
    metrics accuracy
    standardize
}
"""
# another model under the same file name: its run is never taken for tiny.nn's
OTHER = SPEC.replace("    out: dense 1 sigmoid\n", "    h: dense 3 relu\n    out: dense 1 sigmoid\n")
INPUT = "lectures,hours\n3,4\n19,39\n10,20\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A folder with tiny.nn trained twice (runs/tiny, runs/tiny-2) and another model of
    the same name trained into runs/tiny-3, as `nnspec train` numbers them."""
    base = tmp_path_factory.mktemp("runs")
    (base / "tiny.nn").write_text(SPEC)
    (base / "elsewhere").mkdir()
    (base / "elsewhere" / "tiny.nn").write_text(OTHER)
    (base / "x.csv").write_text(INPUT)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(base)
        mp.setenv("NO_COLOR", "1")
        for argv in (["tiny.nn"], ["tiny.nn"], ["elsewhere/tiny.nn"]):
            code, _, err = run_cli("train", *argv, "-q")
            assert code == 0, err
    assert sorted(p.name for p in (base / "runs").iterdir()) == ["tiny", "tiny-2", "tiny-3"]
    return base


@pytest.fixture
def here(trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the trained folder (a test may change its runs), as the current folder."""
    work = tmp_path / "work"
    shutil.copytree(trained, work)
    monkeypatch.chdir(work)
    monkeypatch.setenv("NO_COLOR", "1")
    return work


def _set_info(run: Path, **changes) -> None:
    info = json.loads((run / "run.json").read_text())
    info.update(changes)
    (run / "run.json").write_text(json.dumps(info))


# ------------------------------------------------------------------------------ finding the run

def test_eval_without_run_uses_the_newest_finished_run_of_this_spec(here: Path) -> None:
    code, out, err = run_cli("eval", "tiny.nn")
    assert code == 0, err
    notes = [line for line in err.splitlines() if line.startswith("note: using run")]
    assert len(notes) == 1 and notes[0].startswith("note: using run `runs/tiny-2` (the newest of 2 finished runs"), err
    assert "`runs/tiny-3` is not one: it trained a different model" in notes[0]
    code, explicit, err = run_cli("eval", "tiny.nn", "--run", "runs/tiny-2")
    assert code == 0 and "using run" not in err
    assert out == explicit


def test_newest_is_the_run_that_finished_last_not_the_highest_number(here: Path) -> None:
    _set_info(here / "runs" / "tiny", ended="2999-01-01T00:00:00+00:00")
    code, _, err = run_cli("eval", "tiny.nn", "--format", "json")
    assert code == 0, err
    assert "note: using run `runs/tiny` (the newest of 2" in err


def test_an_unfinished_run_is_passed_over_and_said_why(here: Path) -> None:
    _set_info(here / "runs" / "tiny-2", status="interrupted")
    code, out, err = run_cli("eval", "tiny.nn", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["run"] == "runs/tiny"
    assert ("`runs/tiny-2` is not one: it did not finish (its status is `interrupted`): "
            "resume it with `nnspec train --resume runs/tiny-2`") in err


def test_no_matching_run_lists_every_folder_and_why(here: Path) -> None:
    (here / "edited").mkdir()
    (here / "edited" / "tiny.nn").write_text(SPEC.replace("epochs 2", "epochs 3"))
    _set_info(here / "runs" / "tiny-2", status="running")
    code, out, err = run_cli("eval", "edited/tiny.nn")
    assert code == 2 and out == ""
    assert err == ("error: no run of `edited/tiny.nn` to evaluate among the 3 folders that `nnspec train` wrote "
                   "for it (none is a finished run of this spec):\n"
                   "  `runs/tiny`: it was trained from another version of this spec (the same model, other "
                   "training settings)\n"
                   "  `runs/tiny-2`: it did not finish (its status is `running`, still training or stopped without "
                   "saving): resume it with `nnspec train --resume runs/tiny-2`\n"
                   "  `runs/tiny-3`: it trained a different model\n"
                   "  train it with `nnspec train edited/tiny.nn`, or name a run folder with `--run DIR`\n")
    # predict says the same, after why the spec alone cannot predict
    code, out, err = run_cli("predict", "edited/tiny.nn", "--input", "x.csv")
    assert code == 2 and out == ""
    assert err.startswith("error: `edited/tiny.nn` gives no values for the parameters of layer `out`, and there is "
                          "no run of it to predict with among the 3 folders")


def test_the_same_spec_reading_other_data_is_not_its_run(here: Path) -> None:
    """Two specs may be the same text and read different files (a relative path): the
    run records the absolute path, so the other folder's spec does not take it."""
    for folder in ("a", "b"):
        (here / folder).mkdir()
        (here / folder / "data.csv").write_text("x1,x2,y\n" + "".join(f"{i % 7},{i % 5},{i % 2}\n" for i in range(80)))
        (here / folder / "csvspec.nn").write_text(SPEC.replace('builtin("pass_class", n=200)', 'csv("data.csv", target="y")'))
    code, _, err = run_cli("train", "a/csvspec.nn", "-q")
    assert code == 0, err
    code, _, err = run_cli("eval", "b/csvspec.nn")
    assert code == 2
    assert f"`runs/csvspec`: the run was trained on `{(here / 'a' / 'data.csv').resolve()}`" in err
    code, _, err = run_cli("eval", "a/csvspec.nn")
    assert code == 0 and "note: using run `runs/csvspec`\n" in err


def test_no_runs_folder_at_all(here: Path) -> None:
    shutil.rmtree(here / "runs")
    code, out, err = run_cli("eval", "tiny.nn")
    assert (code, out) == (2, "")
    assert err == ("error: no run of `tiny.nn` to evaluate: `runs/tiny` (where `nnspec train tiny.nn` writes, from "
                   "this folder) does not exist; train it with `nnspec train tiny.nn`, or name a run folder with "
                   "`--run DIR`\n")


# ------------------------------------------------------------------------------ a run folder as the argument

def test_a_run_folder_in_the_specs_place(here: Path) -> None:
    code, alone, err = run_cli("eval", "runs/tiny")
    assert code == 0, err
    code, old_form, err = run_cli("eval", "--run", "runs/tiny")
    assert code == 0, err
    assert alone == old_form and alone.startswith("test split (40 examples)\n")
    code, alone, err = run_cli("predict", "runs/tiny", "--input", "x.csv")
    assert code == 0, err
    code, with_spec, err = run_cli("predict", "tiny.nn", "--run", "runs/tiny", "--input", "x.csv")
    assert code == 0, err
    assert alone == with_spec and alone.startswith("y,class\n")
    code, _, err = run_cli("eval", "runs/tiny", "--run", "runs/tiny-2")
    assert code == 2 and err.startswith("error: `runs/tiny` is a run folder, not a spec: name the run once")


def test_a_folder_without_a_run(here: Path) -> None:
    (here / "empty").mkdir()
    for argv in (["eval", "empty"], ["predict", "empty", "--input", "x.csv"]):
        code, out, err = run_cli(*argv)
        assert (code, out) == (2, "")
        assert err.startswith("error: `empty` holds no trained run (no `checkpoint.npz`)"), err


def test_a_spec_with_every_weight_written_says_when_a_trained_run_exists(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Written weights are where training starts: predicting with them while a trained
    run of the spec exists is what the spec says, with a note pointing at the run."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.nn").write_text((ROOT / "specs" / "perceptron.nn").read_text() + """
loss binary_crossentropy
optimizer sgd lr=0.5
train {
    data builtin("pass_class", n=40)
    batch all
    epochs 3
}
""")
    (tmp_path / "x.csv").write_text(INPUT)
    code, written, err = run_cli("predict", "p.nn", "--input", "x.csv")
    assert code == 0 and "note:" not in err, err
    assert run_cli("train", "p.nn", "-q")[0] == 0
    code, again, err = run_cli("predict", "p.nn", "--input", "x.csv")
    assert code == 0 and again == written
    assert ("note: predicting with the weights written in `p.nn`; `runs/p` holds a trained run of it: "
            "pass `--run runs/p` to predict with that\n") in err
    code, trained, _ = run_cli("predict", "p.nn", "--run", "runs/p", "--input", "x.csv")
    assert code == 0 and trained != written


# ------------------------------------------------------------------------------ JSON

def test_eval_json_is_one_object_with_numbers(here: Path) -> None:
    code, out, err = run_cli("eval", "runs/tiny", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc) == {"run", "spec", "split", "examples", "metrics", "confusion", "notes"}
    assert (doc["run"], doc["split"], doc["examples"]) == ("runs/tiny", "test", 40)
    assert all(isinstance(v, float) for v in doc["metrics"].values()) and set(doc["metrics"]) == {"loss", "accuracy"}
    matrix = np.array(doc["confusion"]["matrix"])
    assert matrix.sum() == 40 and doc["metrics"]["accuracy"] == pytest.approx(np.trace(matrix) / 40)
    # the same numbers as the Python API's, and the notes on stderr too, never on stdout as text
    assert doc["metrics"] == pytest.approx(nnspec.load("runs/tiny").evaluate(), rel=1e-6)
    assert doc["notes"] and all(f"note: {n}" in err for n in doc["notes"])
    code, human, _ = run_cli("eval", "runs/tiny")
    assert f"accuracy  {doc['metrics']['accuracy']:.4f}" in human


def test_eval_json_writes_a_metric_that_is_not_finite_as_null(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nnspec import predictor
    monkeypatch.setattr(predictor, "evaluate_run", lambda *a, **k: predictor.Evaluation(
        "test", 3, {"loss": float("inf"), "accuracy": float("nan"), "mae": 0.5}))
    code, out, err = run_cli("eval", "runs/tiny", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)  # strict JSON: no NaN or Infinity tokens
    assert "NaN" not in out and "Infinity" not in out
    assert doc["metrics"] == {"loss": None, "accuracy": None, "mae": 0.5}
    assert "`loss` is inf (null in `metrics`)" in doc["notes"] and "`accuracy` is nan (null in `metrics`)" in doc["notes"]


def test_predict_json_rows_match_the_csv(here: Path) -> None:
    code, as_csv, err = run_cli("predict", "runs/tiny", "--input", "x.csv")
    assert code == 0, err
    code, as_json, err = run_cli("predict", "runs/tiny", "--input", "x.csv", "--format", "json")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(as_csv)))
    records = json.loads(as_json)
    assert [list(r) for r in records] == [list(r) for r in rows] == [["y", "class"]] * 3
    assert [r["class"] for r in records] == [r["class"] for r in rows]
    assert all(isinstance(r["y"], float) for r in records)
    assert [r["y"] for r in records] == pytest.approx([float(r["y"]) for r in rows], rel=1e-5)
    # the JSON keeps every bit of the float32 output: the Python API's numbers exactly
    x = np.array([[3, 4], [19, 39], [10, 20]], np.float32)
    assert np.array_equal(np.array([r["y"] for r in records], np.float32),
                          nnspec.load("runs/tiny").predict(x).reshape(-1))


def test_predict_output_file_takes_its_format_from_the_suffix(here: Path) -> None:
    code, out, err = run_cli("predict", "runs/tiny", "--input", "x.csv", "--output", "p.json")
    assert (code, out) == (0, ""), err
    assert err.endswith("wrote 3 predictions to `p.json`\n")
    assert len(json.loads((here / "p.json").read_text())) == 3
    code, _, err = run_cli("predict", "runs/tiny", "--input", "x.csv", "--output", "p.json", "--format", "csv")
    assert code == 0, err
    assert (here / "p.json").read_text().startswith("y,class\n")  # asked for: CSV, whatever the name
    assert not [p for p in here.iterdir() if p.name.endswith(".tmp")]


def test_predict_json_of_a_regression_and_class_indices() -> None:
    """Class indices (data without class names) are JSON numbers, labels lists."""
    assert cli_module._json_cell(np.int64(3)) == 3 and cli_module._csv_cell(np.int64(3)) == "3"
    assert cli_module._json_cell(["a b", "c"]) == ["a b", "c"] and cli_module._csv_cell(["a", "c"]) == "a c"
    v = np.float32(0.1)
    assert cli_module._json_cell(v) == 0.1 and np.float32(cli_module._json_cell(v)) == v
    assert cli_module._csv_cell(np.float32(1 / 3)) == "0.333333"


# ------------------------------------------------------------------------------ env

def test_env_shows_the_caches_and_the_extras(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import jax
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("NNSPEC_NO_CACHE", raising=False)
    (tmp_path / "cache" / "nnspec" / "xla").mkdir(parents=True)
    (tmp_path / "cache" / "nnspec" / "xla" / "entry").write_bytes(b"x" * 1500)
    code, out, err = run_cli("env")
    assert code == 0, err
    lines = out.splitlines()
    assert f"compile cache  {tmp_path / 'cache' / 'nnspec' / 'xla'} (1 files, 1.5 KB)" in lines
    assert any(line.startswith("datasets       none (nothing is downloaded") for line in lines)
    assert f"stream spools  {tmp_path / 'cache' / 'nnspec' / 'stream'} (empty: `stream` of a Parquet file copies " \
           "its features there)" in lines
    assert f"runs           runs/ (relative to the current folder: {tmp_path / 'runs'}, none yet)" in lines
    code, out, err = run_cli("env", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["versions"]["numpy"] == np.__version__ and doc["versions"]["jax"] == jax.__version__
    assert doc["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert [d["id"] for d in doc["devices"]] == [d.id for d in jax.devices()] and doc["backend"] == jax.default_backend()
    assert doc["caches"]["compile"] == {"path": str(tmp_path / "cache" / "nnspec" / "xla"), "exists": True,
                                        "files": 1, "bytes": 1500, "disabled": None}
    by_name = {e["name"]: e for e in doc["extras"]}
    assert set(by_name) >= {"matplotlib", "pygls", "safetensors", "jax2onnx", "onnxruntime", "pyarrow", "tqdm",
                            "scikit-learn"}
    for name, e in by_name.items():
        try:
            want = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            want = None
        assert e["version"] == (want if e["installed"] else None), name
        assert f"  {name}" in "\n".join(lines)
    monkeypatch.setenv("NNSPEC_NO_CACHE", "1")
    code, out, _ = run_cli("env")
    assert "compile cache  off (NNSPEC_NO_CACHE is set)" in out.splitlines()


def _env() -> dict[str, str]:
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=str(ROOT))
    env.pop("PYTHONSTARTUP", None)
    return env


def test_env_imports_no_optional_extra() -> None:
    code = ("import sys; from nnspec.cli import main; assert main(['env']) == 0; "
            "heavy = [m for m in ('matplotlib', 'sklearn', 'pyarrow', 'onnxruntime', 'jax2onnx', 'pygls', "
            "'safetensors', 'tqdm') if m in sys.modules]; assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=ROOT, env=_env(),
                          timeout=180)
    assert done.returncode == 0, done.stderr


# ------------------------------------------------------------------------------ internal errors

def test_an_internal_error_reports_versions_and_the_command(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    def broken(args):
        raise RuntimeError("boom")
    monkeypatch.setattr(cli_module, "cmd_explain", broken)
    code = main(["explain", "E101"])
    out, err = capsys.readouterr()
    assert code == 101 and out == ""
    assert err.startswith("error: internal compiler error: this is a bug in nnspec, not in your spec\n"
                          "  please report it with the spec and the text below\n")
    versions = next(line for line in err.splitlines() if line.startswith("  versions: "))
    for name in ("nnspec", "python", "jax", "jaxlib", "optax", "numpy"):
        assert f" {name} " in versions + " ", versions
    assert f"numpy {np.__version__}" in versions and f"nnspec {nnspec.__version__}" in versions
    assert "  platform: " in err and "  command: nnspec explain E101\n" in err
    assert err.rstrip().endswith("RuntimeError: boom") and "Traceback (most recent call last)" in err


def test_gathering_the_versions_never_hides_the_error(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import platform

    from nnspec import envinfo

    def broken(args):
        raise ValueError("the real problem")

    def worse(*a, **k):
        raise OSError("cannot tell")
    monkeypatch.setattr(cli_module, "cmd_explain", broken)
    monkeypatch.setattr(envinfo, "versions", worse)
    monkeypatch.setattr(platform, "platform", worse)
    code = main(["explain", "E101"])
    err = capsys.readouterr().err
    assert code == 101
    assert "  versions: unknown (OSError: cannot tell)" in err and "  platform: unknown (OSError: cannot tell)" in err
    assert err.rstrip().endswith("ValueError: the real problem") and "OSError" not in err.split("Traceback")[1]


def test_an_internal_error_before_jax_does_not_import_it(tmp_path: Path) -> None:
    code = ("import sys; import nnspec.cli as c\n"
            "def broken(args): raise RuntimeError('boom')\n"
            "c.cmd_check = broken\n"
            "code = c.main(['check', 'a file.nn'])\n"
            "assert code == 101, code\n"
            "assert 'jax' not in sys.modules and 'optax' not in sys.modules, 'imported'\n")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=tmp_path, env=_env(),
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"jax {importlib.metadata.version('jax')}" in done.stderr
    assert "  command: nnspec check 'a file.nn'\n" in done.stderr
