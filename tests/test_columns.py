"""`categorical` and `missing` (nnspec/columns.py): one-hot vocabularies and fill values
learnt from the training split only, checked against scikit-learn's OneHotEncoder and
SimpleImputer; stored with the run and reapplied by eval, predict and `nnspec.load`;
unseen categories and refused missing cells located at file:line:column."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

import nnspec
from nnspec.diagnostics import NNSpecError
from nnspec.prepare import prepare

from cli_helpers import run_cli

# age (empty cells), color and city (text, empty cells), income (empty cells), bought
ROWS = [
    (23, "red", "paris", 100, "yes"), ("", "green", "rome", "", "no"), (31, "", "paris", 120, "yes"),
    (45, "blue", "", 90, "no"), (38, "red", "rome", 80, "yes"), (29, "green", "paris", "", "no"),
    (52, "blue", "oslo", 70, "no"), ("", "red", "rome", 110, "yes"), (41, "green", "", 95, "yes"),
    (36, "blue", "paris", 85, "no"), (27, "red", "oslo", "", "yes"), (33, "green", "rome", 105, "no"),
    (48, "", "oslo", 75, "no"), (25, "red", "paris", 115, "yes"), (39, "blue", "rome", 100, "no"),
    (44, "green", "oslo", 65, "yes"),
]
HEADER = "age,color,city,income,bought\n"


def _csv(rows) -> str:
    return HEADER + "".join(",".join(str(c) for c in r) + "\n" for r in rows)


def spec(lines: str, width: int = 11, data: str = 'csv("shop.csv", target="bought")') -> str:
    return (f"model shop {{\n    input x[{width}]\n    dense 1 sigmoid\n}}\nloss binary_crossentropy\n"
            f"optimizer adam lr=0.05\ntrain {{\n    data {data}\n{lines}    batch 4\n    epochs 2\n    seed 3\n}}\n")


def width(lines: str, folder: Path, **kw: str) -> int:
    """The input width the encoding gives (it depends on the categories the split's
    training rows hold), read off the encoder as `prepare` fits it."""
    from nnspec.data import fit_encoder
    from nnspec.prepare import load_source
    from nnspec.split import take
    program = nnspec.check_text(spec(lines, **kw))
    ds, rows = load_source(program, folder)
    return fit_encoder(take(ds, rows)[0], program.train.columns).width


def prepared(lines: str, folder: Path, **kw: str):
    return prepare(nnspec.check_text(spec(lines, width=width(lines, folder, **kw), **kw)), folder)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "shop.csv").write_text(_csv(ROWS))
    return tmp_path


def _cells(rows, lines) -> list[tuple]:
    """The file's rows at `lines` (2 is the first row under the header)."""
    return [ROWS[int(line) - 2] if rows is ROWS else rows[int(line) - 2] for line in lines]


def _sklearn(train_rows, other_rows, unknown: str):
    """scikit-learn's encoding of (age, color, city, income): median for the numbers, the
    most frequent category for color, "none" for city, then one-hot, fitted on train_rows."""
    pytest.importorskip("sklearn")
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    def num(rows, j):
        return np.array([[np.nan if r[j] == "" else float(r[j])] for r in rows])

    def text(rows, j):
        return np.array([[np.nan if r[j] == "" else r[j]] for r in rows], dtype=object)

    parts = []
    for j, imp in ((0, SimpleImputer(strategy="median")), (1, SimpleImputer(strategy="most_frequent")),
                   (2, SimpleImputer(strategy="constant", fill_value="none")), (3, SimpleImputer(strategy="median"))):
        col = num if j in (0, 3) else text
        imp.fit(col(train_rows, j))
        filled = [imp.transform(col(rows, j)) for rows in (train_rows, other_rows)]
        if j in (1, 2):
            enc = OneHotEncoder(handle_unknown="ignore" if unknown == "slot" else "error", sparse_output=False)
            enc.fit(filled[0])
            out = [enc.transform(f) for f in filled]
            if unknown == "slot":  # nnspec's extra column: 1 where scikit-learn's row is all zeros
                out = [np.hstack([o, (o.sum(axis=1) == 0)[:, None]]) for o in out]
            filled = out
        parts.append(filled)
    return [np.hstack([p[k] for p in parts]).astype(np.float32) for k in (0, 1)]


def test_the_encoding_is_scikit_learns_fitted_on_the_training_split(folder: Path) -> None:
    splits = prepared("    categorical color city unknown=slot\n"
                      "    missing median color=mode city=\"none\"\n    split val=0.25\n", folder)
    want_train, want_val = _sklearn(_cells(ROWS, splits.train.lines), _cells(ROWS, splits.val.lines), "slot")
    assert splits.train.x.shape == want_train.shape
    np.testing.assert_allclose(splits.train.x, want_train)
    np.testing.assert_allclose(splits.val.x, want_val)
    enc = splits.encoder
    assert [c.name for c in enc.columns] == ["age", "color", "city", "income"]
    assert enc.columns[1].vocab == ("blue", "green", "red")  # sorted, as OneHotEncoder's categories_


def test_validation_rows_do_not_move_the_statistics(folder: Path) -> None:
    lines = "    categorical color city unknown=slot\n    missing mean color=mode city=mode\n    split val=0.25\n"
    program = nnspec.check_text(spec(lines, width=width(lines, folder)))
    first = prepare(program, folder)
    val_lines = {int(v) for v in first.val.lines}
    # the validation rows' numbers made huge and their categories new: nothing fitted changes
    changed = [(10_000, "violet", "lima", 99_999, r[4]) if i + 2 in val_lines else r for i, r in enumerate(ROWS)]
    (folder / "shop.csv").write_text(_csv(changed))
    second = prepare(program, folder)
    assert second.encoder.columns == first.encoder.columns
    train = _cells(ROWS, first.train.lines)
    ages = [float(r[0]) for r in train if r[0] != ""]
    assert first.encoder.columns[0].fill == pytest.approx(np.mean(ages))
    np.testing.assert_array_equal(second.train.x, first.train.x)
    slots = np.cumsum([c.width for c in first.encoder.columns])[1:3] - 1
    assert (second.val.x[:, slots] == 1).all()  # `violet` and `lima` land in the unknown slots


def test_an_unseen_category_is_an_error_at_its_line_and_column(folder: Path) -> None:
    rows = ROWS[:12] + [(30, "violet", "rome", 90, "no")] + ROWS[12:]
    (folder / "shop.csv").write_text(_csv(rows))
    program = nnspec.check_text(spec('    categorical color=[blue, green, red] city\n    missing median color=mode '
                                     'city=mode\n', width=8))
    with pytest.raises(NNSpecError) as exc:
        prepare(program, folder)
    d = exc.value.diagnostics[0]
    assert d.code == "E401" and d.message == ("cannot use the data: unseen category `violet`: the column's "
                                              "categories are `blue`, `green`, `red`")
    assert d.notes == ("shop.csv, line 14, column `color`",)


def test_declared_categories_fix_the_width_and_order(folder: Path) -> None:
    program = nnspec.check_text(spec('    categorical color=[red, green, blue, "purple"]\n    missing median '
                                     'color=mode\n', width=6, data='csv("shop.csv", target="bought", '
                                                                  'features=["age", "color", "income"])'))
    splits = prepare(program, folder)
    assert splits.encoder.columns[1].vocab == ("red", "green", "blue", "purple")
    first = _cells(ROWS, splits.train.lines[:1])[0]
    assert list(splits.train.x[0, 1:5]) == [float(first[1] == c) for c in ("red", "green", "blue", "purple")]


def test_a_missing_cell_that_is_refused_is_located(folder: Path) -> None:
    program = nnspec.check_text(spec("    categorical color city\n    missing city=mode\n", width=9))
    with pytest.raises(NNSpecError) as exc:
        prepare(program, folder)
    d = exc.value.diagnostics[0]
    assert d.message == "cannot use the data: missing value" and d.notes == ("shop.csv, line 3, column `age`",)
    assert "missing age=median" in d.help


def test_text_in_a_numeric_column_says_to_declare_it_categorical(folder: Path) -> None:
    program = nnspec.check_text(spec("    missing median\n", width=4))
    with pytest.raises(NNSpecError) as exc:
        prepare(program, folder)
    d = exc.value.diagnostics[0]
    assert d.message == "cannot use the data: cannot read `red` as a number"
    assert d.notes == ("shop.csv, line 2, column `color`",) and "categorical color" in d.help


def test_drop_leaves_out_the_rows_and_counts_them(folder: Path) -> None:
    splits = prepared("    categorical color city\n    missing drop\n", folder)
    kept = [r for r in ROWS if "" not in r]
    assert len(splits.train) == len(kept) and splits.dropped == len(ROWS) - len(kept) == 8
    assert sorted(int(v) for v in splits.train.lines) == [i + 2 for i, r in enumerate(ROWS) if "" not in r]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("columns")
    (base / "shop.csv").write_text(_csv(ROWS))
    lines = ("    categorical color city unknown=slot\n    missing median color=mode city=\"none\" age=drop\n"
             "    split val=0.25\n    standardize\n")
    (base / "spec.nn").write_text(spec(lines, width=width(lines, base)))
    code, _, err = run_cli("train", base / "spec.nn", "--out", base / "run")
    assert code == 0, err
    return {"base": base, "spec": base / "spec.nn", "run": base / "run", "err": err}  # type: ignore[dict-item]


def test_the_run_stores_the_encoding_and_the_dropped_rows(run) -> None:
    assert "(2 rows with a missing value dropped)" in run["err"]  # type: ignore[operator]
    assert "`color` 4 (blue, green, red, unknown)" in run["err"]  # type: ignore[operator]
    record = json.loads((run["run"] / "run.json").read_text())
    assert record["examples"]["dropped"] == 2
    meta = nnspec.load(run["run"]).meta
    assert [c["name"] for c in meta["columns"]["columns"]] == ["age", "color", "city", "income"]
    assert meta["columns"]["columns"][0]["drop"] and meta["feature_names"] == ["age", "color", "city", "income"]


def test_predict_and_load_encode_the_raw_csv_as_training_did(run) -> None:
    program = nnspec.check_text((run["run"] / "spec.nn").read_text())
    loaded = nnspec.load(run["run"])
    splits = prepare(program, run["base"], standardizer=loaded.standardizer, encoder=loaded.encoder)
    rows = _cells(ROWS, splits.train.lines)
    (run["base"] / "input.csv").write_text(_csv(rows))
    code, out, err = run_cli("predict", run["spec"], "--run", run["run"], "--input", run["base"] / "input.csv")
    assert code == 0, err
    printed = np.array([float(r["y"]) for r in csv.DictReader(io.StringIO(out))])
    direct = loaded.predict({name: [r[j] or None for r in rows] for j, name in enumerate(loaded.feature_names)})
    np.testing.assert_allclose(printed, direct[:, 0], atol=1e-6)
    # the same numbers as the model on the training split's encoded features
    import jax.numpy as jnp

    from nnspec.infer import predict
    model_out = np.asarray(predict(loaded.model, loaded.params, jnp.asarray(splits.train.x)))
    np.testing.assert_allclose(direct[:, 0], 1 / (1 + np.exp(-model_out[:, 0])) if loaded.program.loss.params.get(
        "from_logits") else model_out[:, 0], atol=1e-5)


def test_predict_locates_a_refused_missing_value_and_slots_an_unseen_category(run) -> None:
    (run["base"] / "input.csv").write_text(HEADER + "30,violet,lima,,\n,red,rome,100,\n")
    code, _, err = run_cli("predict", run["spec"], "--run", run["run"], "--input", run["base"] / "input.csv")
    assert code == 2
    assert "input.csv:3: column `age`: missing value" in err and "missing drop" in err
    (run["base"] / "input.csv").write_text(HEADER + "30,violet,lima,,\n")
    code, out, err = run_cli("predict", run["spec"], "--run", run["run"], "--input", run["base"] / "input.csv")
    assert code == 0, err
    loaded = nnspec.load(run["run"])
    np.testing.assert_allclose(float(next(csv.DictReader(io.StringIO(out)))["y"]),
                               loaded.predict({"age": [30], "color": ["violet"], "city": ["lima"], "income": [None]})[0, 0],
                               atol=1e-6)


def test_eval_rebuilds_the_same_encoded_splits(run) -> None:
    code, out, err = run_cli("eval", "--run", run["run"])
    assert code == 0, err
    loaded = nnspec.load(run["run"])
    kept = json.loads((run["run"] / "run.json").read_text())["kept"]["metrics"]["val"]["loss"]
    assert loaded.evaluate()["loss"] == pytest.approx(kept, rel=1e-5)
    assert f"loss  {kept:.4f}" in out


def test_eval_refuses_a_spec_whose_column_lines_differ_from_the_run(run) -> None:
    changed = run["base"] / "changed.nn"
    changed.write_text(run["spec"].read_text().replace("categorical color city", "categorical color city age"))
    code, _, err = run_cli("eval", changed, "--run", run["run"])
    assert code == 1 and "E405" in err
    assert "the run read its feature columns with other `categorical` or `missing` lines" in err


def test_json_lines_cells_are_read_as_csv_cells(tmp_path: Path) -> None:
    rows = [{"age": None if r[0] == "" else r[0], "color": r[1] or None, "city": r[2] or None,
             "income": None if r[3] == "" else r[3], "bought": r[4]} for r in ROWS]
    (tmp_path / "shop.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "shop.csv").write_text(_csv(ROWS))
    lines = "    categorical color city\n    missing median color=mode city=mode\n"
    from_csv = prepared(lines, tmp_path)
    from_json = prepared(lines, tmp_path, data='jsonl("shop.jsonl", target="bought")')
    np.testing.assert_array_equal(from_json.train.x, from_csv.train.x)


def test_the_safetensors_export_carries_the_encoding(run) -> None:
    st = pytest.importorskip("safetensors.numpy")
    from nnspec import export
    loaded = nnspec.load(run["run"])
    data, _ = export.safetensors(loaded)
    path = run["base"] / "w.safetensors"
    path.write_bytes(data)
    from safetensors import safe_open
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
    assert json.loads(meta["columns"]) == loaded.meta["columns"] and st is not None


def test_a_split_column_keeps_its_rows_when_drop_leaves_some_out(tmp_path: Path) -> None:
    parts = ["val" if i % 4 == 0 else "train" for i in range(len(ROWS))]
    (tmp_path / "shop.csv").write_text("age,color,city,income,bought,part\n" + "".join(
        ",".join(str(c) for c in (*r, p)) + "\n" for r, p in zip(ROWS, parts)))
    lines = '    categorical color city\n    missing median color=drop city=mode\n    split column="part"\n'
    splits = prepared(lines, tmp_path)
    kept = [(i + 2, p) for i, (r, p) in enumerate(zip(ROWS, parts)) if r[1] != ""]
    assert splits.dropped == len(ROWS) - len(kept) == 2
    assert sorted(int(v) for v in splits.val.lines) == [n for n, p in kept if p == "val"]
    assert sorted(int(v) for v in splits.train.lines) == [n for n, p in kept if p == "train"]


def test_a_stratified_split_encodes_as_a_random_one(folder: Path) -> None:
    splits = prepared("    categorical color city\n    missing median color=mode city=mode\n"
                      "    split val=0.25 stratify\n", folder)
    assert splits.encoder is not None and splits.train.x.dtype == np.float32
    train = _cells(ROWS, splits.train.lines)
    assert [r[4] for r in train].count("yes") == [r[4] for r in train].count("no") == 6  # 8 of each, 2 held out


def test_arrays_given_from_python_are_refused_with_column_lines(folder: Path) -> None:
    program = nnspec.check_text(spec("    missing median\n", width=4), filename=str(folder / "s.nn"))
    with pytest.raises(NNSpecError) as exc:
        nnspec.train(program, data=(np.zeros((8, 4), np.float32), np.zeros((8, 1), np.float32)))
    d = exc.value.diagnostics[0]
    assert d.code == "E401"
    assert d.message == "`missing` encodes the cells of the spec's data file, but the data is the arrays given as `data=`"
