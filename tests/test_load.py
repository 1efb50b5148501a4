"""`nnspec.load(RUN)`: the numbers `nnspec predict` and `nnspec eval` print, from Python;
and results that print in a few lines (issue 11)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

import nnspec
from nnspec.runs import RunFolderError
from nnspec.show import format_value

from cli_helpers import run_cli

SPEC = """
model exam {
    input x[2]
    h: dense 4 tanh
    out: dense 1 sigmoid
}
loss binary_crossentropy
optimizer adam lr=0.05
train {
    data csv("data/exam.csv", target="result")
    split val=0.25 test=0.25
    batch 8
    epochs 5
    seed 0
    metrics accuracy
    standardize
}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("load")
    (base / "data").mkdir()
    rows = ["hours,lectures,result"] + [f"{a},{2 * b},{'pass' if a + b > 6 else 'fail'}"
                                        for a in range(8) for b in range(8)]
    (base / "data" / "exam.csv").write_text("\n".join(rows) + "\n")
    (base / "exam.nn").write_text(SPEC)
    code, _, err = run_cli("train", base / "exam.nn", "--out", base / "run", "-q")
    assert code == 0, err
    return base


def test_predict_gives_the_numbers_nnspec_predict_prints(project, tmp_path) -> None:
    x = np.array([[0, 0], [7, 14], [3, 6], [5.5, 1]], np.float32)
    (tmp_path / "in.csv").write_text("lectures,hours\n" + "".join(f"{b},{a}\n" for a, b in x))
    code, out, err = run_cli("predict", project / "run" / "spec.nn", "--run", project / "run",
                             "--input", tmp_path / "in.csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    model = nnspec.load(project / "run")
    y = model.predict(x)
    assert y.shape == (4, 1) and y.dtype == np.float32
    assert [f"{v:.6g}" for v in y[:, 0]] == [r["y"] for r in rows]  # what predict prints, digit for digit
    assert [("pass" if v > 0.5 else "fail") for v in y[:, 0]] == [r["class"] for r in rows]
    assert model.classes == ("fail", "pass") and model.feature_names == ("hours", "lectures")


def test_predict_takes_columns_by_name_in_any_order(project) -> None:
    model = nnspec.load(project / "run")
    x = np.array([[1, 2], [6, 10], [2, 12]], np.float32)
    by_name = model.predict({"lectures": x[:, 1].tolist(), "id": [7, 8, 9], "hours": x[:, 0]})
    np.testing.assert_array_equal(by_name, model.predict(x))

    class Frame:  # what predict reads of a pandas DataFrame: its columns, each by name
        columns = ["lectures", "result", "hours"]
        _data = {"lectures": x[:, 1], "result": np.array(["a", "b", "c"]), "hours": x[:, 0]}

        def keys(self):
            return self.columns

        def __getitem__(self, name):
            return self._data[name]
    np.testing.assert_array_equal(model.predict(Frame()), model.predict(x))


@pytest.mark.parametrize("x,message", [
    ({"hours": [1.0]}, "no column `lectures`: the model's features are `hours`, `lectures`"),
    (np.zeros((3, 3)), "`x` has shape (3, 3); the model takes (n, 2)"),
    (np.zeros(2), "`x` has the shape of one example (2,): give a batch, shape (n, 2)"),
    (np.array([[1.0, np.nan]]), "`x` holds NaN or infinite values"),
])
def test_predict_refuses_what_it_cannot_read(project, x, message) -> None:
    with pytest.raises(ValueError) as exc:
        nnspec.load(project / "run").predict(x)
    assert str(exc.value) == message


def test_evaluate_gives_the_numbers_nnspec_eval_prints(project) -> None:
    code, out, err = run_cli("eval", "--run", project / "run")
    assert code == 0, err
    printed = dict(line.split() for line in out.split("\n\n")[0].splitlines()[1:])  # the confusion matrix follows
    model = nnspec.load(project / "run")
    metrics = model.evaluate()
    assert out.startswith("test split (16 examples)")
    assert {k: format_value(v) for k, v in metrics.items()} == printed
    kept = json.loads((project / "run" / "run.json").read_text())["kept"]["metrics"]
    assert metrics == pytest.approx(kept["test"], abs=1e-6)
    assert model.evaluate("val") == pytest.approx(kept["val"], abs=1e-6)
    with pytest.raises(ValueError, match="no split `dev`"):
        model.evaluate("dev")


def test_eval_names_the_confusion_matrixs_classes_as_the_data_does(project) -> None:
    code, out, err = run_cli("eval", "--run", project / "run")
    assert code == 0, err
    lines = out.splitlines()
    at = lines.index("confusion matrix (rows: true class, columns: predicted class)")
    doc = json.loads((project / "run" / "confusion.json").read_text())
    assert doc["classes"] == ["fail", "pass"]
    assert lines[at + 1].split() == ["fail", "pass"]
    for t, name in enumerate(("fail", "pass")):
        assert lines[at + 2 + t].split() == ["true", name, *map(str, doc["matrix"][t])]


def test_the_run_is_readable_as_plain_data(project) -> None:
    run = project / "run"
    model = nnspec.load(run)
    assert model.spec == (run / "spec.nn").read_text()
    assert model.program.spec.model.name == "exam"
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert model.history == history and len(history) == 5
    assert set(model.params) == {"h", "out"} and model.params["h"]["w"].shape == (2, 4)
    with np.load(run / "checkpoint.npz") as z:
        np.testing.assert_array_equal(np.asarray(model.params["out"]["w"]), z["final_params/out.w"])
    text = repr(model)
    assert text == f"<nnspec.Predictor `exam` (17 parameters) from `{run}`: 5 epochs>"


def test_load_refuses_a_folder_without_a_run(tmp_path) -> None:
    with pytest.raises(RunFolderError, match="no run folder"):
        nnspec.load(tmp_path / "nothing")
    with pytest.raises(RunFolderError, match=r"holds no trained run \(no `checkpoint.npz`\)"):
        nnspec.load(tmp_path)
    (tmp_path / "checkpoint.npz").write_bytes(b"junk")
    with pytest.raises(RunFolderError, match="cannot read the run's spec"):
        nnspec.load(tmp_path)


def test_a_training_result_prints_in_a_few_lines(project, tmp_path) -> None:
    result = nnspec.train(project / "exam.nn", out=tmp_path / "r")
    text = repr(result)
    lines = text.splitlines()
    assert lines[0] == "<nnspec.Result `exam` (17 parameters): 5 epochs, weights of epoch 5 kept (last epoch)"
    assert [line.split()[0] for line in lines[1:]] == ["train", "val", "test", "run"]
    assert lines[-1] == f"  run folder  {tmp_path / 'r'}>"
    test = result.kept["metrics"]["test"]
    assert lines[3] == f"  test   loss {format_value(test['loss'])}  accuracy {format_value(test['accuracy'])}"
    html = result._repr_html_()
    assert html.count("<tr>") == 1 + 5 and "<th>val_loss</th>" in html  # a header and one row an epoch


ENSEMBLE = """
model moons {
    input x[2]
    dense 8 relu
    dense 1 sigmoid
}
loss binary_crossentropy
optimizer adam lr=0.01
train {
    data builtin("moons", n=200, noise=0.3)
    split val=0.2 test=0.2
    batch 32
    epochs 2
    seed sweep(0, 1)
    metrics accuracy
    standardize
}
"""


@pytest.mark.slow  # trains, evaluates and exports: about 30 s on a busy 2-core machine
def test_a_training_result_predicts_as_the_loaded_run_does(project, tmp_path) -> None:
    """`nnspec.train(...).predict` standardizes as training did: the numbers of
    `nnspec.load(RUN).predict`, not those of `model.apply` on the raw input."""
    result = nnspec.train(project / "exam.nn", out=tmp_path / "r")
    x = np.array([[0, 0], [7, 14], [3, 6], [5.5, 1]], np.float32)
    y = result.predict(x)
    np.testing.assert_array_equal(y, nnspec.load(tmp_path / "r").predict(x))
    assert result.standardizer is not None  # the spec standardizes: raw inputs give other numbers
    assert not np.allclose(np.asarray(result.model.apply(result.params, x)), y)  # (the model ends in sigmoid)
    scaled = (x - result.standardizer.mean) / result.standardizer.std
    np.testing.assert_allclose(np.asarray(result.model.apply(result.params, scaled)), y, rtol=1e-6)
    assert result.predictor().classes == ("fail", "pass")
    assert result.predict({"lectures": x[:, 1], "hours": x[:, 0]}).shape == (4, 1)


def test_an_ensemble_predicts_its_members_mean_and_exports_it(tmp_path) -> None:
    import jax.numpy as jnp
    from jax import export
    (tmp_path / "e.nn").write_text(ENSEMBLE)
    code, _, err = run_cli("train", tmp_path / "e.nn", "--out", tmp_path / "run", "-q")
    assert code == 0, err
    model = nnspec.load(tmp_path / "run")
    assert model.params["dense_1"]["w"].shape == (2, 2, 8)  # two members, stacked
    x = np.random.default_rng(0).normal(size=(6, 2)).astype(np.float32)
    scaled = (x - model.standardizer.mean) / model.standardizer.std
    members = [np.asarray(model.model.apply({k: {n: v[i] for n, v in p.items()} for k, p in model.params.items()},
                                            jnp.asarray(scaled))) for i in range(2)]
    np.testing.assert_allclose(model.predict(x), (members[0] + members[1]) / 2, atol=1e-6)
    code, out, err = run_cli("eval", "--run", tmp_path / "run")
    assert code == 0 and "an ensemble of 2 models" in err, err
    metrics_table = out.split("\n\n")[0]  # then the confusion matrix
    assert {k: format_value(v) for k, v in model.evaluate().items()} == dict(
        line.split() for line in metrics_table.splitlines()[1:])
    code, _, err = run_cli("export", tmp_path / "run", "--format", "stablehlo", "-o", tmp_path / "e.stablehlo")
    assert code == 0, err
    fn = export.deserialize(bytearray((tmp_path / "e.stablehlo").read_bytes()))
    np.testing.assert_allclose(np.asarray(fn.call(x)), model.predict(x), rtol=0, atol=1e-6)
