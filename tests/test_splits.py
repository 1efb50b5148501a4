"""Fixed splits: `data SOURCE val=SOURCE test=SOURCE`, separate validation and test files
read as the training data is, checked against it, and recorded in the run record."""

from __future__ import annotations

import numpy as np
import pytest

import nnspec
from nnspec import runs
from nnspec.data import DataError, load
from nnspec.datasets import DataSource
from nnspec.diagnostics import NNSpecError
from nnspec.prepare import prepare

SPEC = """model m {
    input x[2]
    dense %s
}
loss %s
optimizer sgd
train {
    data %s
    batch 2
%s}
"""


def _spec(data, extra="", *, units="1 sigmoid", loss="binary_crossentropy"):
    return SPEC % (units, loss, data, extra)


def _write(path, rows, header="a,b,label"):
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))


TRAIN = [(0.5, 1.0, "yes"), (-1.0, -0.5, "no"), (2.0, 0.5, "yes"), (-0.5, -2.0, "no"), (1.5, 1.5, "yes"),
         (-2.0, 1.0, "no")]


@pytest.fixture
def files(tmp_path):
    _write(tmp_path / "train.csv", TRAIN)
    _write(tmp_path / "val.csv", [(0.25, 0.5, "no"), (1.0, -0.25, "yes")])
    _write(tmp_path / "test.csv", [(3.0, 3.0, "yes"), (2.5, 0.0, "yes"), (1.0, 1.0, "yes")])  # one class only
    return tmp_path


def _diagnostics(text):
    with pytest.raises(NNSpecError) as exc:
        nnspec.check_text(text)
    return [(d.code, d.message) for d in exc.value.diagnostics]


CSV = 'csv("%s", target="label")'


def test_the_separate_files_are_the_validation_and_test_splits(files):
    program = nnspec.check_text(_spec(f'train={CSV % "train.csv"} val={CSV % "val.csv"} test={CSV % "test.csv"}'))
    splits = prepare(program, files)
    assert len(splits.train) == 6  # nothing split off the training data
    np.testing.assert_array_equal(splits.val.x, [[0.25, 0.5], [1.0, -0.25]])
    np.testing.assert_array_equal(splits.val.y[:, 0], [0, 1])
    # a test file of one class is fine, and its `yes` is the training data's class 1, not its own class 0
    assert splits.test.classes == ("no", "yes")
    np.testing.assert_array_equal(splits.test.y[:, 0], [1, 1, 1])
    np.testing.assert_array_equal(splits.train.lines.min(), 2)


def test_a_test_file_with_a_fraction_of_validation_split_off(files):
    program = nnspec.check_text(_spec(f'{CSV % "train.csv"} test={CSV % "test.csv"}', "    split val=0.5\n"))
    splits = prepare(program, files)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (3, 3, 3)


def test_standardize_is_fitted_on_the_training_file_only(files):
    program = nnspec.check_text(_spec(f'{CSV % "train.csv"} val={CSV % "val.csv"}', "    standardize\n"))
    splits = prepare(program, files)
    raw = np.array([r[:2] for r in TRAIN])
    np.testing.assert_allclose(splits.standardizer.mean, raw.mean(0), rtol=1e-6)
    np.testing.assert_allclose(splits.val.x, (np.array([[0.25, 0.5], [1.0, -0.25]]) - raw.mean(0)) / raw.std(0),
                               rtol=1e-5)


def test_a_class_the_training_data_lacks_is_refused_where_it_occurs(files):
    _write(files / "bad.csv", [(0.5, 0.5, "yes"), (1.0, 1.0, "maybe")])
    program = nnspec.check_text(_spec(f'{CSV % "train.csv"} test={CSV % "bad.csv"}'))
    with pytest.raises(NNSpecError) as exc:
        prepare(program, files)
    d = exc.value.diagnostics[0]
    assert (d.code, d.message) == ("E401", "cannot use the test data: class `maybe` does not occur in the training data")
    assert d.notes == ("bad.csv, line 3, column `label`",)
    assert d.help == "the training data's classes are `no`, `yes`"
    assert d.labels[0].span == program.train.test_span


def test_other_columns_and_bad_rows_in_a_separate_file(files):
    _write(files / "swapped.csv", [(0.5, 0.5, "yes")], header="b,a,label")
    _write(files / "ragged.csv", [(0.5, 0.5, "yes"), (1.0, "no")])
    for name, message in (("swapped.csv", "cannot use the validation data: the feature columns are `b`, `a`, "
                                          "but the training data's are `a`, `b`"),
                          ("ragged.csv", "cannot use the validation data: expected 3 values, found 2")):
        program = nnspec.check_text(_spec(f'{CSV % "train.csv"} val={CSV % name}'))
        with pytest.raises(NNSpecError) as exc:
            prepare(program, files)
        assert (exc.value.diagnostics[0].code, exc.value.diagnostics[0].message) == ("E401", message)


def test_multiclass_indices_and_other_formats(files):
    rows = [(0.5, 1.0, 0), (-1.0, -0.5, 1), (2.0, 0.5, 2), (-0.5, -2.0, 0)]
    _write(files / "k.csv", rows)
    (files / "k.jsonl").write_text('{"a": 1.0, "b": 2.0, "label": 2}\n')
    program = nnspec.check_text(_spec(f'{CSV % "k.csv"} test=jsonl("k.jsonl", target="label")',
                                      units="3 softmax", loss="categorical_crossentropy"))
    splits = prepare(program, files)
    np.testing.assert_array_equal(splits.test.y, [2])
    np.testing.assert_array_equal(splits.test.x, [[1.0, 2.0]])
    with pytest.raises(DataError, match="only one class"):  # the training data itself may not have one class
        load(DataSource.of("jsonl", path="k.jsonl", target="label"), seed=0, base_dir=files, task="multiclass")


def test_the_data_line_is_checked_statically():
    both = _diagnostics(_spec(f'{CSV % "a.csv"} val={CSV % "v.csv"}', "    split val=0.2\n"))
    assert both == [("E108", "the validation data is given twice: as a file and as a fraction to split off")]
    assert _diagnostics(_spec(f'{CSV % "a.csv"} test=builtin("moons")')) == [
        ("E108", "`test` names a built-in dataset; separate test data comes from a file")]
    assert _diagnostics(_spec(f'{CSV % "a.csv"} val=csv("v.parquet", target="label")')) == [
        ("E113", "`.parquet` names a Parquet file, which `csv` does not read")]
    assert _diagnostics(_spec(f'{CSV % "a.csv"} val=csv("v.csv")')) == [("E106", "missing `target` for data source `csv`")]
    assert _diagnostics(_spec(f'{CSV % "a.csv"} vall={CSV % "v.csv"}')) == [("E102", "unknown argument `vall` for `data`")]
    # early stopping on the validation file needs no `split`
    program = nnspec.check_text(_spec(f'{CSV % "a.csv"} val={CSV % "v.csv"}', "    early_stop monitor=val_loss\n"))
    assert program.train.early_stop.monitor == "val_loss" and program.train.val == 0.0


def test_the_run_record_holds_each_file_and_refuses_a_changed_one(files):
    program = nnspec.check_text(_spec(f'{CSV % "train.csv"} val={CSV % "val.csv"} test={CSV % "test.csv"}'))
    rec = runs.data_record(program, files)
    assert rec["path"] == str((files / "train.csv").resolve())
    assert rec["test"]["path"] == str((files / "test.csv").resolve())
    assert rec["val"]["sha256"] == runs.sha256(files / "val.csv")
    assert runs.differences(program, {"data": rec}, files) == []
    assert runs.relocate(program, {"data": rec})[1] is None
    with open(files / "test.csv", "a") as f:
        f.write("0.5,0.5,yes\n")
    assert runs.relocate(program, {"data": rec})[1] == (
        f"the run's test file `{(files / 'test.csv').resolve()}` has changed since the run was trained")
    without = nnspec.check_text(_spec(f'{CSV % "train.csv"} val={CSV % "val.csv"}'))
    assert runs.differences(without, {"data": rec}, files) == [
        ("data", "the run was tested on a separate file, this spec names none")]


def test_a_model_of_several_inputs_is_refused_a_separate_file():
    spec = ('model m {\n    input a[2]\n    input b[2]\n    c: concat a b\n    dense 1 sigmoid\n}\n'
            'loss binary_crossentropy\noptimizer adam\n'
            'train {\n    data npz("two.npz") test=npz("two_test.npz")\n}\n')
    assert _diagnostics(spec) == [("E256", "a separate `test=` file is read for a model of one input and one output; "
                                           "this model has several inputs")]
    nnspec.check_text(spec.replace(' test=npz("two_test.npz")', ""))  # the archive alone checks clean
