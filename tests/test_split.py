"""The split (nnspec/split.py): the random and stratified cuts, exactly as docs/language.md
says; a split column; the rows recorded in a run folder and checked by eval; and
`nnspec split SPEC --out DIR`."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nnspec
from nnspec.cli import main
from nnspec.data import DataError, Dataset
from nnspec.diagnostics import NNSpecError
from nnspec.prepare import prepare
from nnspec.split import class_labels, column_rows, random_rows, stratified_rows

ROOT = Path(__file__).resolve().parent.parent

SPEC = """model m {
    input x[2]
    dense %s
}
loss %s
optimizer sgd lr=0.1
train {
    data %s
    batch 4
    epochs 2
%s}
"""


def _spec(data, extra="", *, units="1 sigmoid", loss="binary_crossentropy"):
    return SPEC % (units, loss, data, extra)


def _diagnostics(text):
    with pytest.raises(NNSpecError) as exc:
        nnspec.check_text(text)
    return [(d.code, d.message) for d in exc.value.diagnostics]


def _half_up(x: float) -> int:
    return math.floor(x + 0.5)


# ------------------------------------------------------------------------- the random cut

def test_the_random_cut_is_the_documented_one():
    """The permutation's first round(n·test) positions are the test part, the next
    round(n·val) validation, the rest training, each in permutation order."""
    rows = random_rows(10, val=0.25, test=0.15, seed=3)
    order = np.random.default_rng(3).permutation(10)
    n_test, n_val = _half_up(10 * 0.15), _half_up(10 * 0.25)  # 2 (1.5 rounds up) and 3 (2.5 rounds up)
    assert (n_test, n_val) == (2, 3)
    np.testing.assert_array_equal(rows.test, order[:2])
    np.testing.assert_array_equal(rows.val, order[2:5])
    np.testing.assert_array_equal(rows.train, order[5:])


# ------------------------------------------------------------------------- the stratified cut

def _labels(counts, seed=0):
    y = np.concatenate([np.full(c, k) for k, c in enumerate(counts)])
    return np.random.default_rng(seed + 100).permutation(y)


@pytest.mark.parametrize("counts,val,test", [((50, 30, 20), 0.2, 0.1), ((7, 13), 0.3, 0.3), ((101, 9, 40, 5), 0.15, 0.2),
                                             ((3, 3, 3), 0.34, 0.0)])
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_each_class_is_cut_in_the_fractions_within_one_row(counts, val, test, seed):
    y = _labels(counts, seed)
    rows = stratified_rows(y, val=val, test=test, seed=seed)
    everything = np.concatenate([rows.train, rows.val, rows.test])
    np.testing.assert_array_equal(np.sort(everything), np.arange(len(y)))  # disjoint and complete
    for k, n_c in enumerate(counts):
        for part, fraction in ((rows.val, val), (rows.test, test)):
            got = int((y[part] == k).sum())
            assert abs(got - n_c * fraction) <= 0.5 and got == _half_up(n_c * fraction)
        assert int((y[rows.train] == k).sum()) == n_c - _half_up(n_c * val) - _half_up(n_c * test)


def test_the_stratified_cut_is_the_documented_one():
    """Independently of split.py: walk the permutation, and give each class's first
    round(n_c·test) examples to test, the next round(n_c·val) to validation."""
    y = _labels((12, 7, 5), 4)
    rows = stratified_rows(y, val=0.2, test=0.25, seed=4)
    order = np.random.default_rng(4).permutation(len(y))
    seen = {k: 0 for k in range(3)}
    want = {"train": [], "val": [], "test": []}
    for i in order:
        k = int(y[i])
        n_c = int((y == k).sum())
        n_test, n_val = _half_up(n_c * 0.25), _half_up(n_c * 0.2)
        part = "test" if seen[k] < n_test else "val" if seen[k] < n_test + n_val else "train"
        want[part].append(int(i))
        seen[k] += 1
    assert {p: rows.part(p).tolist() for p in want} == want


def test_the_stratified_cut_agrees_with_scikit_learn_within_one_row_per_class():
    sklearn = pytest.importorskip("sklearn.model_selection")
    y = _labels((120, 45, 35), 2)
    rows = stratified_rows(y, val=0.0, test=0.3, seed=2)
    _, y_test = sklearn.train_test_split(np.arange(len(y)), test_size=0.3, stratify=y, random_state=2)
    for k in range(3):
        assert abs(int((y[rows.test] == k).sum()) - int((y[y_test] == k).sum())) <= 1


def test_the_stratified_cut_is_deterministic_and_follows_the_seed():
    y = _labels((40, 25, 35))
    a, b = stratified_rows(y, val=0.2, test=0.2, seed=5), stratified_rows(y, val=0.2, test=0.2, seed=5)
    c = stratified_rows(y, val=0.2, test=0.2, seed=6)
    assert all(np.array_equal(a.part(p), b.part(p)) for p in ("train", "val", "test"))
    assert not np.array_equal(a.test, c.test)


def test_a_class_too_small_for_a_part_is_named():
    y = np.array([0] * 10 + [1] * 2)
    with pytest.raises(DataError) as exc:
        stratified_rows(y, val=0.2, test=0.2, seed=0, names=("no", "yes"))
    assert exc.value.message == ("class `yes` has 2 example(s), too few to put one in the validation split "
                                 "(0.2 of them)")
    with pytest.raises(DataError) as exc:
        stratified_rows(np.array([0] * 10 + [1] * 2), val=0.3, test=0.3, seed=0)
    assert exc.value.message == "class 1 has 2 example(s), too few to keep one for training"


def test_only_one_class_per_example_is_stratified():
    labels = class_labels(Dataset(np.zeros((4, 2)), np.array([[0.], [1.], [1.], [0.]]), "binary"))
    np.testing.assert_array_equal(labels, [0, 1, 1, 0])
    with pytest.raises(DataError, match="the data has 2 0/1 targets per example"):
        class_labels(Dataset(np.zeros((4, 2)), np.zeros((4, 2)), "binary"))


def test_prepare_stratifies_a_builtin_dataset_and_refuses_a_tiny_class(tmp_path):
    program = nnspec.check_text(_spec('builtin("blobs", n=90)', "    split val=0.2 test=0.1 stratify\n",
                                      units="3 softmax", loss="categorical_crossentropy"))
    splits = prepare(program, tmp_path)
    assert splits.rows.how == "stratified"
    np.testing.assert_array_equal(np.bincount(splits.test.y, minlength=3), [3, 3, 3])
    np.testing.assert_array_equal(np.bincount(splits.val.y, minlength=3), [6, 6, 6])
    (tmp_path / "d.csv").write_text("a,b,label\n" + "".join(f"{i},{i},{'yes' if i < 2 else 'no'}\n" for i in range(10)))
    program = nnspec.check_text(_spec('csv("d.csv", target="label")', "    split test=0.2 stratify\n"))
    with pytest.raises(NNSpecError) as exc:
        prepare(program, tmp_path)
    d = exc.value.diagnostics[0]
    assert (d.code, d.message) == ("E401", "cannot use the data: class `yes` has 2 example(s), too few to put one "
                                           "in the test split (0.2 of them)")


def test_stratify_is_checked_statically():
    assert _diagnostics(_spec('builtin("moons")', "    split val=0.2 stratify\n", units="1", loss="mse")) == [
        ("E325", "a stratified split needs a class per example, but `mse` is a regression loss")]
    assert _diagnostics(_spec('builtin("moons")', "    split stratify\n")) == [
        ("E325", "`stratify` with nothing to split off")]
    program = nnspec.check_text(_spec('builtin("moons")', "    split val=0.2 stratify\n"))
    assert program.train.stratify and program.train.split_column is None


# ------------------------------------------------------------------------- the split column

ROWS = [(0.5, 1.0, "train", "yes"), (-1.0, -0.5, "val", "no"), (2.0, 0.5, "train", "no"), (-0.5, -2.0, "test", "yes"),
        (1.5, 1.5, "train", "yes"), (-2.0, 1.0, "train", "no"), (0.0, 0.0, "val", "yes"), (1.0, 2.0, "test", "no")]


def _write(path, rows, header="a,b,fold,label"):
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))


CSV = 'csv("d.csv", target="label")'


def test_a_split_column_says_each_rows_part_and_is_not_a_feature(tmp_path):
    _write(tmp_path / "d.csv", ROWS)
    program = nnspec.check_text(_spec(CSV, '    split column="fold"\n'))
    splits = prepare(program, tmp_path)
    assert splits.train.feature_names == ("a", "b")
    np.testing.assert_array_equal(splits.rows.train, [0, 2, 4, 5])
    np.testing.assert_array_equal(splits.rows.val, [1, 6])
    np.testing.assert_array_equal(splits.rows.test, [3, 7])
    np.testing.assert_array_equal(splits.test.x, [[-0.5, -2.0], [1.0, 2.0]])


def test_a_bad_value_in_the_split_column_is_refused_at_its_row(tmp_path):
    _write(tmp_path / "d.csv", ROWS[:3] + [(0.5, 0.5, "Test", "no")] + ROWS[4:])
    program = nnspec.check_text(_spec(CSV, '    split column="fold"\n'))
    with pytest.raises(NNSpecError) as exc:
        prepare(program, tmp_path)
    d = exc.value.diagnostics[0]
    assert (d.code, d.message) == ("E401", "cannot use the split column: `Test` is not a split: the split column "
                                           "says `train`, `val` or `test`")
    assert d.notes == ("d.csv, line 5, column `fold`",)
    with pytest.raises(DataError, match="an empty cell is not a split"):
        column_rows(["train", ""], [2, 3], path="d.csv", column="fold")
    # a file that is not there is the data's problem, at the `data` line
    program = nnspec.check_text(_spec('csv("gone.csv", target="label")', '    split column="fold"\n'))
    with pytest.raises(NNSpecError) as exc:
        prepare(program, tmp_path)
    d = exc.value.diagnostics[0]
    assert (d.message, d.labels[0].span) == ("cannot use the data: file not found", program.train.data_span)
    with pytest.raises(DataError, match="no row is marked `train` in the split column"):
        column_rows(["val", "test"], [2, 3], path="d.csv", column="fold")


def test_a_split_column_that_is_missing_a_feature_or_a_target(tmp_path):
    _write(tmp_path / "d.csv", ROWS)
    for data, split, message in (
            (CSV, 'column="folds"', "no column named `folds`"),
            ('csv("d.csv", target="label", features=["a", "fold"])', 'column="fold"',
             "column `fold` is both a feature and the split column"),
            ('csv("d.csv", target="fold")', 'column="fold"', "column `fold` is both a target and the split column")):
        program = nnspec.check_text(_spec(data, f"    split {split}\n"))
        with pytest.raises(NNSpecError) as exc:
            prepare(program, tmp_path)
        d = exc.value.diagnostics[0]
        assert d.message == f"cannot use the split column: {message}"
        assert d.labels[0].span == program.train.split_span


def test_a_split_column_without_val_rows_for_early_stopping(tmp_path):
    _write(tmp_path / "d.csv", [r[:2] + ("train" if r[2] == "val" else r[2], r[3]) for r in ROWS])
    program = nnspec.check_text(_spec(CSV, '    split column="fold"\n    early_stop monitor=val_loss\n'))
    with pytest.raises(NNSpecError) as exc:
        prepare(program, tmp_path)
    d = exc.value.diagnostics[0]
    assert (d.code, d.message) == ("E401", "cannot use the split column: no row of `fold` is `val`, but "
                                           "training watches a validation metric")
    assert d.labels[0].span == program.train.split_span


def test_a_split_column_is_the_whole_split():
    both = _diagnostics(_spec(CSV, '    split column="fold" test=0.2\n'))
    assert both == [("E108", "the split is given twice: by the column `fold` and by `test`")]
    assert _diagnostics(_spec(CSV, '    split column="fold" stratify\n')) == [
        ("E108", "the split is given twice: by the column `fold` and by `stratify`")]
    assert _diagnostics(_spec(f'{CSV} val=csv("v.csv", target="label")', '    split column="fold"\n')) == [
        ("E108", "the validation data is given twice: as a file and by the split column")]
    assert _diagnostics(_spec('npz("d.npz")', '    split column="fold"\n')) == [
        ("E326", "a split column is a column of a CSV file, but the data is read by `npz`")]
    # early stopping may watch the validation rows a column marks
    nnspec.check_text(_spec(CSV, '    split column="fold"\n    early_stop monitor=val_loss\n'))


# ------------------------------------------------------------------------- the run folder and eval

def _data(tmp_path, n=40):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2))
    rows = [(f"{a:.4f}", f"{b:.4f}", "yes" if a + b > 0.3 else "no") for a, b in x]
    _write(tmp_path / "d.csv", rows, header="a,b,label")
    return rows


def test_a_run_records_its_rows_and_eval_rebuilds_the_same(tmp_path, monkeypatch, capsys):
    from nnspec.infer import load_run
    rows = _data(tmp_path)
    (tmp_path / "s.nn").write_text(_spec(CSV, "    split val=0.2 test=0.25 stratify\n    seed 3\n"))
    monkeypatch.chdir(tmp_path)
    assert main(["train", "s.nn", "--out", "run", "-q"]) == 0
    recorded = json.loads((tmp_path / "run" / "split.json").read_text())
    program = nnspec.check_text((tmp_path / "s.nn").read_text())
    want = prepare(program, tmp_path).rows
    assert recorded["how"] == "stratified" and recorded["seed"] == 3 and recorded["rows"] == len(rows)
    assert {p: recorded[p] for p in ("train", "val", "test")} == {p: want.part(p).tolist() for p in ("train", "val", "test")}
    run = load_run(nnspec.check_text((tmp_path / "run" / "spec.nn").read_text()), tmp_path / "run", tmp_path,
                   own_copy=True)
    assert run.splits.rows.test.tolist() == recorded["test"]
    np.testing.assert_allclose(run.splits.test.x, [[float(rows[i][0]), float(rows[i][1])] for i in recorded["test"]])
    assert main(["eval", "--run", "run"]) == 0
    # a split that comes out otherwise is refused, never evaluated on other rows
    recorded["test"][0], recorded["train"][0] = recorded["train"][0], recorded["test"][0]
    (tmp_path / "run" / "split.json").write_text(json.dumps(recorded))
    capsys.readouterr()
    assert main(["eval", "--run", "run"]) == 1
    err = capsys.readouterr().err
    assert "error[E407]: the split rebuilt from the data is not the run's: its training part differs at position 0" in err


def test_resume_refuses_a_split_that_differs_and_eval_a_spec_split_otherwise(tmp_path, monkeypatch, capsys):
    _data(tmp_path)
    (tmp_path / "s.nn").write_text(_spec(CSV, "    split test=0.25 stratify\n"))
    monkeypatch.chdir(tmp_path)
    assert main(["train", "s.nn", "--out", "run", "-q"]) == 0
    assert json.loads((tmp_path / "run" / "run.json").read_text())["run"]["split"] == {
        "val": 0.0, "test": 0.25, "stratify": True}
    (tmp_path / "plain.nn").write_text(_spec(CSV, "    split test=0.25\n"))
    capsys.readouterr()
    assert main(["eval", "plain.nn", "--run", "run"]) == 1
    assert ("this spec does not describe the run in `run`: the run was split by fractions within each class "
            "(`stratify`), this spec splits by fractions of all the examples") in capsys.readouterr().err
    recorded = json.loads((tmp_path / "run" / "split.json").read_text())
    recorded["test"] = recorded["test"][::-1]
    (tmp_path / "run" / "split.json").write_text(json.dumps(recorded))
    assert main(["train", "--resume", "run", "--epochs", "3", "-q"]) == 1
    err = capsys.readouterr().err
    assert "error[E407]: cannot resume: the split rebuilt from the data is not the run's: its test part differs" in err


# ------------------------------------------------------------------------- nnspec split

def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_nnspec_split_writes_each_part_and_its_rows(tmp_path, monkeypatch, capsys):
    rows = _data(tmp_path)
    (tmp_path / "s.nn").write_text(_spec(CSV, "    split val=0.2 test=0.2\n    seed 9\n"))
    monkeypatch.chdir(tmp_path)
    assert main(["split", "s.nn", "--out", "parts"]) == 0
    recorded = json.loads((tmp_path / "parts" / "split.json").read_text())
    want = random_rows(len(rows), val=0.2, test=0.2, seed=9)
    for part in ("train", "val", "test"):
        assert recorded[part] == want.part(part).tolist()
        got = _read_csv(tmp_path / "parts" / f"{part}.csv")
        assert got[0] == ["a", "b", "label"]
        assert [tuple(r) for r in got[1:]] == [rows[i] for i in recorded[part]]
    # the same rows as training reads, under `--seed` too
    assert main(["split", "s.nn", "--out", "other", "--seed", "4"]) == 0
    assert json.loads((tmp_path / "other" / "split.json").read_text())["test"] == \
        random_rows(len(rows), val=0.2, test=0.2, seed=4).test.tolist()
    capsys.readouterr()
    assert main(["split", "s.nn", "--out", "parts"]) == 2
    assert "`parts` already holds a split; pass `--overwrite` to replace it" in capsys.readouterr().err
    assert main(["split", "s.nn", "--out", "parts", "--overwrite"]) == 0
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert main(["split", "s.nn", "--out", "mine", "--overwrite"]) == 2
    assert "is not empty and is not a folder nnspec split into" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_nnspec_split_of_an_archive_cuts_every_array(tmp_path, monkeypatch):
    x, y = np.arange(20, dtype=np.float32).reshape(10, 2), (np.arange(10) % 2).astype(np.float32).reshape(10, 1)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    (tmp_path / "s.nn").write_text(_spec('npz("d.npz")', "    split test=0.3\n"))
    monkeypatch.chdir(tmp_path)
    assert main(["split", "s.nn", "--out", "parts"]) == 0
    test = json.loads((tmp_path / "parts" / "split.json").read_text())["test"]
    with np.load(tmp_path / "parts" / "test.npz") as got:
        np.testing.assert_array_equal(got["x"], x[test])
        np.testing.assert_array_equal(got["y"], y[test])
    assert not (tmp_path / "parts" / "val.npz").exists()  # no validation part: no file


def test_nnspec_split_imports_neither_jax_nor_optax(tmp_path):
    _data(tmp_path)
    (tmp_path / "s.nn").write_text(_spec(CSV, "    split test=0.2 stratify\n"))
    code = ("import sys; from nnspec.cli import main; code = main(['split', 's.nn', '--out', 'parts']); "
            "assert code == 0, code; "
            "assert 'jax' not in sys.modules, 'jax imported'; assert 'optax' not in sys.modules, 'optax imported'")
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "parts" / "test.csv").is_file()

