"""`nnspec predict`: input columns matched by name with training's CSV reader, a missing
header refused (or `--no-header`), and specs whose every weight is written out predicted
without a run."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import pytest

from cli_helpers import run_cli

ROOT = Path(__file__).resolve().parent.parent

SPEC = """\
model pass {
    input x[2]
    out: dense 1 sigmoid
}
loss binary_crossentropy
optimizer adam lr=0.05
train {
    data csv("train.csv", target="passed")
    split val=0.25
    batch 8
    epochs 3
    seed 1
}
"""

# lectures, hours, passed: the two features differ in scale, so swapping them changes
# every prediction
TRAIN = "lectures,hours,passed\n" + "".join(
    f"{a},{b},{int(a / 20 + b / 40 > 1)}\n" for a, b in
    [(i % 21, (7 * i) % 41) for i in range(40)])


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("predict")
    (base / "spec.nn").write_text(SPEC)
    (base / "train.csv").write_text(TRAIN)
    code, _, err = run_cli("train", base / "spec.nn", "--out", base / "run", "-q")
    assert code == 0, err
    return {"base": base, "spec": base / "spec.nn", "run": base / "run", "train": base / "train.csv"}


def predict(run: dict[str, Path], text: str, *flags: str) -> tuple[int, str, str]:
    path = run["base"] / "input.csv"
    path.write_text(text)
    return run_cli("predict", run["spec"], "--run", run["run"], "--input", path, *flags)


def column(out: str, name: str = "y") -> list[float]:
    return [float(r[name]) for r in csv.DictReader(io.StringIO(out))]


def test_columns_are_matched_by_name_in_any_order(run) -> None:
    code, in_order, err = predict(run, "lectures,hours\n5,30\n18,2\n")
    assert code == 0, err
    code, swapped, err = predict(run, "hours,lectures\n30,5\n2,18\n")
    assert code == 0, err
    assert swapped == in_order
    code, other, _ = predict(run, "lectures,hours\n30,5\n2,18\n")
    assert column(other) != column(in_order), "the test needs features whose order matters"


def test_the_training_file_itself_is_accepted_its_target_ignored(run) -> None:
    code, out, err = run_cli("predict", run["spec"], "--run", run["run"], "--input", run["train"])
    assert code == 0, err
    assert err == f"note: ignoring column `passed` of `{run['train']}` (the training target)\n"
    features = "lectures,hours\n" + "".join(line.rsplit(",", 1)[0] + "\n" for line in TRAIN.splitlines()[1:])
    _, expected, _ = predict(run, features)
    assert out == expected and len(column(out)) == 40


def test_other_extra_columns_are_ignored_with_a_note(run) -> None:
    code, out, err = predict(run, "id,hours,lectures\n7,30,5\n")
    assert code == 0, err
    assert "note: ignoring column `id` of" in err and "(not inputs of the model)" in err
    assert out == predict(run, "lectures,hours\n5,30\n")[1]


def test_a_missing_feature_is_named_with_a_did_you_mean(run) -> None:
    code, out, err = predict(run, "lectures,hour\n5,30\n")
    assert code == 2 and out == ""
    assert err == f"error: {run['base'] / 'input.csv'}:1: no column named `hours`; did you mean `hour`?\n"


def test_a_cell_training_refuses_is_refused(run) -> None:
    code, out, err = predict(run, "lectures,hours\n1_0,30\n")
    assert code == 2 and out == ""
    assert err == f"error: {run['base'] / 'input.csv'}:2: column `lectures`: cannot read `1_0` as a number\n"


def test_the_specs_delimiter_is_used(tmp_path: Path) -> None:
    (tmp_path / "spec.nn").write_text(SPEC.replace('target="passed"', 'target="passed", delimiter=";"'))
    (tmp_path / "train.csv").write_text(TRAIN.replace(",", ";"))
    code, _, err = run_cli("train", tmp_path / "spec.nn", "--out", tmp_path / "run", "-q")
    assert code == 0, err
    (tmp_path / "x.csv").write_text("hours;lectures\n30;5\n")
    code, out, err = run_cli("predict", tmp_path / "spec.nn", "--run", tmp_path / "run", "--input", tmp_path / "x.csv")
    assert code == 0, err
    assert len(column(out)) == 1


def test_a_file_without_a_header_is_refused_not_read_short_of_a_row(run) -> None:
    code, out, err = predict(run, "5,30\n18,2\n")
    assert code == 2 and out == ""
    assert err == (f"error: {run['base'] / 'input.csv'}:1: the first line holds numbers, not column names; "
                   "if the file has no header, pass `--no-header` to read the columns in the order the model takes them\n")


def test_no_header_reads_every_row_by_position(run) -> None:
    code, out, err = predict(run, "5,30\n18,2\n", "--no-header")
    assert code == 0, err
    assert out == predict(run, "lectures,hours\n5,30\n18,2\n")[1]
    code, _, err = predict(run, "lectures,hours\n5,30\n", "--no-header")
    assert code == 2
    assert err == (f"error: {run['base'] / 'input.csv'}:1: the first line holds no numbers, only what look like "
                   "column names; drop `--no-header`: the file has a header\n")
    code, _, err = predict(run, "5,30,1\n", "--no-header")
    assert code == 2
    assert err == (f"error: {run['base'] / 'input.csv'}:1: expected 2 values, found 3; "
                   "without a header, every row holds the model's 2 inputs in order\n")


PERCEPTRON = ROOT / "specs" / "perceptron.nn"


def sigma(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def test_a_spec_with_every_weight_written_out_predicts_without_a_run(tmp_path: Path) -> None:
    # specs/perceptron.nn: y = σ(1 + 3·x1 − 2·x2); it names no columns, so they are
    # read by position under a header of the right width
    (tmp_path / "x.csv").write_text("a,b\n-1,2\n0.5,0\n")
    code, out, err = run_cli("predict", PERCEPTRON, "--input", tmp_path / "x.csv")
    assert code == 0, err
    assert column(out) == pytest.approx([sigma(1 - 3 - 4), sigma(1 + 1.5)], rel=1e-5)
    (tmp_path / "x.csv").write_text("a,b,c\n-1,2,0\n")
    code, _, err = run_cli("predict", PERCEPTRON, "--input", tmp_path / "x.csv")
    assert code == 2
    assert err.startswith(f"error: {tmp_path / 'x.csv'}:1: the header has 3 columns, but the model takes 2 inputs")


def _no_run(spec: Path, why: str) -> str:
    return (f"error: `{spec}` {why}, and there is no run of it to predict with: `runs/{spec.stem}` (where "
            f"`nnspec train {spec}` writes, from this folder) does not exist; train it with `nnspec train {spec}`, "
            f"or name a run folder with `--run DIR`\n")


def test_a_spec_with_weights_to_learn_needs_a_run(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no `runs/` here: nothing to find without `--run`
    code, out, err = run_cli("predict", run["spec"], "--input", run["train"])
    assert code == 2 and out == ""
    assert err == _no_run(run["spec"], "gives no values for the parameters of layer `out`")


def test_a_literal_spec_that_standardizes_needs_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = PERCEPTRON.read_text() + """
loss binary_crossentropy
optimizer sgd lr=0.1
train {
    data builtin("pass_class", n=20)
    batch all
    standardize
}
"""
    (tmp_path / "p.nn").write_text(spec)
    (tmp_path / "x.csv").write_text("lectures,hours\n3,4\n")
    code, _, err = run_cli("predict", tmp_path / "p.nn", "--input", tmp_path / "x.csv")
    assert code == 2
    assert err == _no_run(tmp_path / "p.nn", "standardizes its inputs with statistics measured in training")
    # without `standardize` the data's feature names are the columns to match
    (tmp_path / "p.nn").write_text(spec.replace("    standardize\n", ""))
    (tmp_path / "x.csv").write_text("hours,lectures\n2,-1\n")
    code, out, err = run_cli("predict", tmp_path / "p.nn", "--input", tmp_path / "x.csv")
    assert code == 0, err
    assert column(out) == pytest.approx([sigma(1 - 3 - 4)], rel=1e-5)
    assert [r["class"] for r in csv.DictReader(io.StringIO(out))] == ["fail"]  # the dataset's own names


def test_a_literal_spec_reading_a_csv_matches_its_header_names(tmp_path: Path) -> None:
    spec = SPEC.replace("out: dense 1 sigmoid", "out: dense 1 sigmoid weights=[[3], [-2]] bias=[1]")
    (tmp_path / "spec.nn").write_text(spec)
    (tmp_path / "train.csv").write_text(TRAIN)  # only its header is read
    (tmp_path / "x.csv").write_text("hours,id,lectures\n2,7,-1\n")
    code, out, err = run_cli("predict", tmp_path / "spec.nn", "--input", tmp_path / "x.csv")
    assert code == 0, err
    assert column(out) == pytest.approx([sigma(1 + 3 * -1 - 2 * 2)], rel=1e-5)
    assert "note: ignoring column `id`" in err


def test_a_prediction_that_is_not_finite_is_refused_not_printed(tmp_path: Path) -> None:
    spec = tmp_path / "lin.nn"
    spec.write_text("model lin {\n    input x[2]\n    dense 1 weights=[[10], [10]] bias=[0]\n}\nloss mse\n")
    inputs = tmp_path / "x.csv"
    inputs.write_text("x1,x2\n1,2\n3e38,3e38\n")
    code, out, err = run_cli("predict", spec, "--input", inputs)
    assert code == 2 and out == ""
    assert f"error: the model's output for example 2 of `{inputs}` is not finite" in err


def test_a_read_error_is_reported_as_a_read_error(tmp_path: Path) -> None:
    spec = tmp_path / "s.nn"
    spec.write_text(SPEC.replace('csv("train.csv"', 'csv("/proc/self/mem"'))
    code, _, err = run_cli("train", spec, "--out", tmp_path / "run", "-q")
    assert code == 1 and "cannot read the file (Input/output error)" in err and "cannot write" not in err
