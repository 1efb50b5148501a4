"""Models with several outputs (a `loss { }` block: each output its loss, weight and
metrics) and several inputs (one `.npz` array each): the checks, the weighted loss
against NumPy written here, early stopping on one output's metric, eval, predict, fmt
and the IR."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nnspec
from nnspec import ir
from nnspec.diagnostics import NNSpecError
from nnspec.fit import fit
from nnspec.format import format_source
from nnspec.infer import evaluate, load_trained
from nnspec.prepare import prepare

MODEL = """\
model ticket {
    input title[6]
    input body[4]
    t: dense 8 relu from title
    b: dense 8 relu from body
    j: concat t b
    priority: dense 1 sigmoid
    department: dense 3 softmax from j
}
"""

LOSS = """
loss {
    priority: binary_crossentropy metrics=[accuracy]
    department: categorical_crossentropy weight=0.5 metrics=[accuracy]
}

optimizer adam lr=0.01
"""


def _arrays(n: int = 300, seed: int = 0) -> dict[str, np.ndarray]:
    """Two inputs, and two targets that each depend on both inputs."""
    r = np.random.default_rng(seed)
    title = r.normal(size=(n, 6)).astype(np.float32)
    body = r.normal(size=(n, 4)).astype(np.float32)
    priority = (title[:, 0] + body[:, 1] > 0).astype(np.int64)
    department = np.argmax(np.stack([title[:, 1], body[:, 0], title[:, 2] + body[:, 2]], 1), 1)
    return {"title": title, "body": body, "priority": priority, "department": department}


def _spec(tmp_path: Path, train: str, *, model: str = MODEL, loss: str = LOSS, arrays=None) -> Path:
    np.savez(tmp_path / "t.npz", **(arrays if arrays is not None else _arrays()))
    path = tmp_path / "m.nn"
    path.write_text(model + loss + "\ntrain {\n" + train + "}\n")
    return path


def _program(path: Path):
    return nnspec.check_text(path.read_text(), filename=str(path))


def _errors(text: str) -> list[tuple[str, str]]:
    try:
        nnspec.check_text(text)
    except NNSpecError as exc:
        return [(d.code, d.message) for d in exc.diagnostics if d.is_error]
    return []


TRAIN = '    data npz("t.npz")\n    split val=0.2 test=0.2\n    epochs 3\n'


# --------------------------------------------------------------------------- checks

def test_heads_are_checked_outputs_with_their_shapes_losses_weights_and_metrics(tmp_path):
    program = _program(_spec(tmp_path, TRAIN))
    assert [(h.name, h.shape, h.loss.name, h.weight, tuple(m.key for m in h.metrics)) for h in program.heads] == [
        ("priority", (1,), "binary_crossentropy", 1.0, ("accuracy",)),
        ("department", (3,), "categorical_crossentropy", 0.5, ("accuracy",))]
    assert program.loss is None and program.several_outputs
    assert program.history_keys() == ("loss", "priority_loss", "priority_accuracy",
                                      "department_loss", "department_accuracy")
    from nnspec.summary import summary
    assert "Loss: 1 × binary_crossentropy on `priority` + 0.5 × categorical_crossentropy on `department`" \
        in summary(program)


@pytest.mark.parametrize("loss, code, words", [
    ("loss {\n    priorty: mse\n}\n", "E270", "did you mean `priority`?"),
    ("loss {\n    title: mse\n}\n", "E270", "no layer `title`"),
    ("loss {\n}\n", "E271", "empty"),
    ("loss {\n    mse\n}\n", "E271", "which output"),
    ("loss {\n    priority: mse\n    priority: mae\n}\n", "E271", "two losses"),
    ("loss {\n    priority: msee\n}\n", "E101", "unknown loss"),
    ("loss {\n    priority: mse weight=-1\n}\n", "E104", ""),
    ("loss {\n    priority: mse metrics=[accuracy]\n}\n", "E305", "regression"),
    ("loss {\n    priority: mse metrics=[mae, mae]\n}\n", "E105", "twice"),
    ("loss {\n    department: categorical_crossentropy from_logits=true\n}\n", "E303", ""),
    ("loss {\n    department: categorical_crossentropy metrics=[top_k(3)]\n}\n", "E314", "always 1"),
    ("loss {\n    department: categorical_crossentropy metrics=[f1]\n}\n", "E315", "combined"),
    ("loss {\n    department: categorical_crossentropy class_weight=[1, 2]\n}\n", "E316", "2 class weights"),
    ("loss {\n    department: categorical_crossentropy metrics=[recal]\n}\n", "E101", "unknown metric"),
])
def test_a_bad_loss_block_is_located(loss, code, words):
    errors = _errors(MODEL + loss + "optimizer sgd\n")
    assert [c for c, _ in errors] == [code], errors
    assert words in errors[0][1] or words in str(_located(MODEL + loss + "optimizer sgd\n"))


def _located(text: str) -> str:
    try:
        nnspec.check_text(text)
    except NNSpecError as exc:
        return exc.render(color=False)
    return ""


def test_an_outputs_metrics_take_arguments_and_name_its_history_keys():
    text = MODEL + ("loss {\n    priority: binary_crossentropy metrics=[accuracy, roc_auc]\n"
                    "    department: categorical_crossentropy metrics=[f1(macro), top_k(2)]\n}\noptimizer sgd\n")
    program = nnspec.check_text(text)
    assert program.history_keys() == ("loss", "priority_loss", "priority_accuracy", "priority_roc_auc",
                                      "department_loss", "department_f1_macro", "department_top_2")


def test_each_output_is_checked_against_its_own_loss():
    text = MODEL + "loss {\n    priority: binary_crossentropy\n    department: binary_crossentropy\n}\noptimizer sgd\n"
    render = _located(text)
    assert "E302" in render and "department: dense 3 softmax" in render


def test_metrics_on_the_train_line_with_several_outputs_is_refused(tmp_path):
    text = MODEL + LOSS + "train {\n" + TRAIN + "    metrics accuracy\n}\n"
    errors = _errors(text)
    assert [c for c, _ in errors] == ["E272"]


def test_early_stop_monitors_an_outputs_metric_and_suggests_the_measured_ones():
    text = MODEL + LOSS + "train {\n" + TRAIN + "    early_stop monitor=val_departmnt_accuracy\n}\n"
    render = _located(text)
    assert "E306" in render and "val_department_accuracy" in render


@pytest.mark.parametrize("data, code", [
    ('data builtin("moons")', "E256"),
    ('data csv("t.csv", target="y")', "E256"),
    ('data npz("t.npz", x="title")', "E256"),
    ('data npz("t.npz", y="priority")', "E256"),
])
def test_several_inputs_or_outputs_need_one_array_each(data, code):
    errors = _errors(MODEL + LOSS + "train {\n    " + data + "\n}\n")
    assert [c for c, _ in errors] == [code], errors


def test_standardize_with_several_inputs_is_refused_not_ignored():
    errors = _errors(MODEL + LOSS + "train {\n" + TRAIN + "    standardize\n}\n")
    assert [c for c, _ in errors] == ["E256"] and "standardize" in errors[0][1]


def test_a_branch_trained_as_an_output_is_not_unused():
    program = nnspec.check_text(MODEL + LOSS)
    assert not [w for w in program.warnings if w.code == "W007"]
    one = nnspec.check_text(MODEL + "loss categorical_crossentropy\noptimizer sgd\n")  # `priority` is not the output
    assert [w.code for w in one.warnings] == ["W007"]


# ----------------------------------------------------------------------- text and IR

def test_fmt_and_the_ir_keep_the_loss_block():
    text = MODEL + "\n# per output\nloss {\n    priority: binary_crossentropy weight=2  # more\n" \
                   "    department: categorical_crossentropy metrics=[accuracy]\n}\n\noptimizer sgd\n"
    out = format_source(text)
    assert "loss {\n    priority: binary_crossentropy weight=2  # more\n" in out and "# per output\nloss {" in out
    assert format_source(out) == out
    spec = nnspec.parse(text)
    assert ir.from_json(ir.to_json(spec)) == spec
    assert ir.from_json(ir.to_json(spec)).losses.heads[1].name == "department"


# -------------------------------------------------------------------------- training

def test_the_loss_is_the_weighted_sum_of_the_outputs_losses(tmp_path):
    """The reported loss and each output's, from the trained weights, against NumPy."""
    import jax
    program = _program(_spec(tmp_path, TRAIN))
    result = fit(program, out=tmp_path / "run")
    model, params, _, _ = load_trained(program, tmp_path / "run")
    splits = prepare(program)
    test = splits.test
    got = evaluate(model, params, test, program)
    pred = jax.tree_util.tree_map(np.asarray, model.apply(params, test.x))
    p = np.clip(pred["priority"][:, 0].astype(np.float64), 1e-7, 1 - 1e-7)
    y1 = test.y["priority"][:, 0]
    bce = -(y1 * np.log(p) + (1 - y1) * np.log(1 - p)).mean()
    q = np.clip(pred["department"].astype(np.float64), 1e-7, 1)
    cce = -np.log(q[np.arange(len(q)), test.y["department"]]).mean()
    np.testing.assert_allclose(got["priority_loss"], bce, rtol=1e-4)
    np.testing.assert_allclose(got["department_loss"], cce, rtol=1e-4)
    np.testing.assert_allclose(got["loss"], bce + 0.5 * cce, rtol=1e-4)
    np.testing.assert_allclose(got["department_accuracy"], (q.argmax(1) == test.y["department"]).mean())
    np.testing.assert_allclose(got["priority_accuracy"], ((p > 0.5) == (y1 > 0.5)).mean())
    history = result.history
    assert set(history[0]) >= {"loss", "val_loss", "priority_loss", "val_department_accuracy"}
    for row in history:  # every epoch's total is its outputs' weighted sum
        np.testing.assert_allclose(row["val_loss"], row["val_priority_loss"] + 0.5 * row["val_department_loss"],
                                   rtol=1e-5)


def test_early_stopping_on_an_outputs_metric_keeps_its_best_epoch(tmp_path):
    train = TRAIN.replace("epochs 3", "epochs 12") + \
        "    early_stop monitor=val_department_accuracy patience=2 restore_best\n"
    program = _program(_spec(tmp_path, train))
    assert program.train.early_stop.mode == "max"
    result = fit(program)
    scores = [row["val_department_accuracy"] for row in result.history]
    best = int(np.argmax(scores))  # the first best, as Keras keeps it
    assert result.best_epoch == best + 1
    assert result.kept["metrics"]["val"]["department_accuracy"] == pytest.approx(scores[best], abs=1e-6)


def test_several_inputs_one_output_trains_from_named_arrays(tmp_path):
    loss = "\nloss binary_crossentropy\noptimizer adam lr=0.01\n"
    model = MODEL.replace("    department: dense 3 softmax from j\n", "")
    arrays = _arrays()
    arrays["y"] = arrays.pop("priority")
    del arrays["department"]
    program = _program(_spec(tmp_path, TRAIN.replace("epochs 3", "epochs 20") + "    metrics accuracy\n",
                             model=model, loss=loss, arrays=arrays))
    assert not program.several_outputs and len(program.model.inputs) == 2
    result = fit(program)
    assert result.history[-1]["val_accuracy"] > 0.8  # a linear rule of both inputs: learnt


def test_a_missing_array_or_a_label_out_of_range_is_located(tmp_path):
    arrays = _arrays()
    del arrays["body"]
    program = _program(_spec(tmp_path, TRAIN, arrays=arrays))
    with pytest.raises(NNSpecError) as info:
        prepare(program)
    assert "no array named `body`" in info.value.render(color=False)
    arrays = _arrays()
    arrays["department"][5] = 3
    program = _program(_spec(tmp_path, TRAIN, arrays=arrays))
    with pytest.raises(NNSpecError) as info:
        prepare(program)
    text = info.value.render(color=False)
    assert "E403" in text and "array `department` has a label 3" in text and "output `department`" in text


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "nnspec.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_train_eval_and_predict_from_the_command_line(tmp_path):
    spec = _spec(tmp_path, TRAIN)
    r = _cli("train", str(spec), "--out", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert "val_department_accuracy" in json.dumps(record)
    r = _cli("eval", str(spec), "--run", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    shown = dict(line.split() for line in r.stdout.splitlines()[1:])
    assert set(shown) == {"loss", "priority_loss", "priority_accuracy", "department_loss", "department_accuracy"}
    a = _arrays(7, seed=3)
    np.savez(tmp_path / "in.npz", title=a["title"], body=a["body"])
    r = _cli("predict", str(spec), "--run", "run", "--input", "in.npz", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "priority,priority_class,department_0,department_1,department_2,department_class"
    rows = [line.split(",") for line in lines[1:]]
    assert len(rows) == 7
    probs = np.array([[float(v) for v in row[2:5]] for row in rows])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert [int(row[5]) for row in rows] == list(probs.argmax(axis=1))
    assert [int(row[1]) for row in rows] == [int(float(row[0]) > 0.5) for row in rows]
    np.savez(tmp_path / "bad.npz", title=a["title"])
    r = _cli("predict", str(spec), "--run", "run", "--input", "bad.npz", cwd=tmp_path)
    assert r.returncode == 2 and "no array `body`" in r.stderr and "Traceback" not in r.stderr


def test_load_and_export_refuse_several_outputs_or_inputs_and_evaluate_them(tmp_path):
    """`nnspec.load(RUN)` evaluates such a run as eval does; `.predict` and export take
    models of one input and one output, and say so (nnspec predict writes the columns)."""
    from nnspec import export
    program = _program(_spec(tmp_path, TRAIN))
    fit(program, out=tmp_path / "run")
    run = nnspec.load(tmp_path / "run")
    assert set(run.classes) == {"priority", "department"}
    got = run.evaluate()
    assert set(got) == {"loss", "priority_loss", "priority_accuracy", "department_loss",
                                "department_accuracy"}
    with pytest.raises(ValueError, match="2 inputs"):
        run.predict(_arrays(4)["title"])
    with pytest.raises(export.ExportError, match="2 inputs"):
        export.stablehlo(run)
    model = MODEL.replace("    input body[4]\n", "").replace("    b: dense 8 relu from body\n", "") \
        .replace("    j: concat t b\n", "    j: dense 8 relu from t\n")
    arrays = _arrays()
    del arrays["body"]
    arrays["x"] = arrays.pop("title")
    (tmp_path / "one").mkdir()
    one_input = _program(_spec(tmp_path / "one", TRAIN, model=model.replace("from title", "from x")
                               .replace("input title[6]", "input x[6]"), arrays=arrays))
    fit(one_input, out=tmp_path / "one" / "run")
    single = nnspec.load(tmp_path / "one" / "run")
    with pytest.raises(ValueError, match="2 outputs"):
        single.predict(arrays["x"][:3])
    with pytest.raises(export.ExportError, match="2 outputs"):
        export.stablehlo(single)
