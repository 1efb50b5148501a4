"""Data given from Python: `nnspec.train(spec, data=(x, y), val_data=..., test_data=...)`.

The arrays take the place of the spec's data line and are read as an `.npz` archive's
arrays: the same arrays as a file give the same run, to the bit.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nnspec

ROOT = Path(__file__).resolve().parent.parent

SPEC = """
model m {
    input x[2]
    dense 8 relu
    dense 3 softmax
}
loss categorical_crossentropy
optimizer adam lr=0.01
train {
    data DATA
    split val=0.2 test=0.2
    batch 32
    epochs 4
    seed 3
    metrics accuracy
    standardize
}
"""


def _arrays(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).astype(np.float32) * [1.0, 10.0]
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 5)
    return x.astype(np.float32), y


def _spec(data: str = 'builtin("blobs", classes=3)', **replace: str) -> str:
    text = SPEC.replace("DATA", data)
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


def _same_history(a, b) -> None:
    assert [sorted(r) for r in a.history] == [sorted(r) for r in b.history]
    for ra, rb in zip(a.history, b.history):
        assert {k: ra[k] for k in ra if k != "time"} == {k: rb[k] for k in rb if k != "time"}


def test_arrays_train_as_the_same_arrays_in_a_file(tmp_path):
    x, y = _arrays()
    np.savez(tmp_path / "d.npz", x=x, y=y)
    from_file = nnspec.train(nnspec.check_text(_spec('npz("d.npz")'), filename=str(tmp_path / "m.nn")))
    given = nnspec.train(_spec(), data=(x, y))
    _same_history(from_file, given)
    assert len(given.history) == 4


def test_text_labels_are_classes_named_in_sorted_order(tmp_path):
    x, y = _arrays()
    names = np.array(["cat", "dog", "emu"])[y]
    np.savez(tmp_path / "d.npz", x=x, y=names)
    from_file = nnspec.train(nnspec.check_text(_spec('npz("d.npz")'), filename=str(tmp_path / "m.nn")),
                             out=tmp_path / "file")
    given = nnspec.train(_spec(), data=(x, list(names)), out=tmp_path / "given")
    _same_history(from_file, given)
    assert nnspec.load(tmp_path / "given").classes == ("cat", "dog", "emu")


def _frame_cls():
    class Frame:  # the duck type nnspec accepts: `.columns`, and columns by name
        def __init__(self, columns: dict):
            self._c = columns
            self.columns = list(columns)

        def __getitem__(self, name):
            return self._c[name]
    return Frame


def test_a_dataframe_is_read_by_the_columns_the_spec_names(tmp_path):
    x, y = _arrays()
    frame = _frame_cls()({"a": x[:, 0], "junk": np.zeros(len(x)), "b": x[:, 1], "label": y})
    spec = _spec('csv("never_read.csv", target="label", features=["a", "b"])')
    by_columns = nnspec.train(spec, data=frame)
    _same_history(by_columns, nnspec.train(spec, data=(x, y)))


def test_a_pandas_dataframe_without_features_uses_every_other_column():
    pd = pytest.importorskip("pandas")
    x, y = _arrays()
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "label": np.array(["n", "p", "q"])[y]})
    spec = _spec('csv("never_read.csv", target="label")')
    result = nnspec.train(spec, data=frame)
    _same_history(result, nnspec.train(spec, data=(x, np.array(["n", "p", "q"])[y])))


def test_separate_validation_and_test_arrays(tmp_path):
    x, y = _arrays(300)
    spec = _spec(**{"split val=0.2 test=0.2": ""})
    result = nnspec.train(spec, data=(x[:200], y[:200]), val_data=(x[200:250], y[200:250]),
                          test_data=(x[250:], y[250:]), out=tmp_path / "run")
    assert result.history[-1]["val_loss"] > 0
    run = nnspec.load(tmp_path / "run")
    again = run.evaluate(data=(x[:200], y[:200]), val_data=(x[200:250], y[200:250]), test_data=(x[250:], y[250:]))
    # the test arrays' numbers, from the kept weights, computed here by hand
    probs = run.predict(x[250:])
    loss = float(np.mean(-np.log(probs[np.arange(50), y[250:]])))
    assert again["loss"] == pytest.approx(loss, rel=1e-5)
    assert again["accuracy"] == pytest.approx(float(np.mean(probs.argmax(1) == y[250:])))


def test_val_data_and_a_val_fraction_together_are_refused():
    x, y = _arrays()
    with pytest.raises(nnspec.NNSpecError) as info:
        nnspec.train(_spec(), data=(x, y), val_data=(x, y))
    (d,) = info.value.diagnostics
    assert d.code == "E108" and "`val_data=`" in d.message and d.primary_span is not None  # at the `split` line


def test_a_run_of_given_arrays_is_evaluated_and_resumed_only_with_them(tmp_path):
    x, y = _arrays()
    spec = _spec()
    nnspec.train(spec, data=(x, y), out=tmp_path / "run", epochs=2)
    run = nnspec.load(tmp_path / "run")
    with pytest.raises(nnspec.NNSpecError, match="trained on arrays given from Python"):
        run.evaluate()
    with pytest.raises(nnspec.NNSpecError, match="not the ones the run was trained on"):
        run.evaluate(data=(x[::-1].copy(), y[::-1].copy()))
    assert set(run.evaluate(data=(x, y))) == {"loss", "accuracy"}
    # `nnspec eval` cannot give arrays: it says so, located, with the way to do it
    done = subprocess.run([sys.executable, "-m", "nnspec.cli", "eval", "--run", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 1 and "E405" in done.stderr and "evaluate(data=...)" in done.stderr
    assert "Traceback" not in done.stderr
    with pytest.raises(nnspec.NNSpecError, match="cannot resume"):
        nnspec.train(spec, data=(x + 1, y), out=tmp_path / "run", resume=True, epochs=4)
    with pytest.raises(nnspec.NNSpecError, match="cannot resume"):
        nnspec.train(spec, out=tmp_path / "run", resume=True, epochs=4)
    resumed = nnspec.train(spec, data=(x, y), out=tmp_path / "run", resume=True, epochs=4)
    _same_history(resumed, nnspec.train(spec, data=(x, y), epochs=4))


def test_a_run_of_the_specs_data_refuses_given_arrays(tmp_path):
    x, y = _arrays()
    nnspec.train(_spec(), out=tmp_path / "run", epochs=1)
    with pytest.raises(nnspec.NNSpecError, match="trained on the spec's data"):
        nnspec.load(tmp_path / "run").evaluate(data=(x, y))


def test_several_inputs_and_outputs_take_dicts_by_name(tmp_path):
    spec = (ROOT / "specs" / "ticket_router.nn").read_text().replace("epochs 30", "epochs 2")
    program = nnspec.check_text(spec, filename=str(ROOT / "specs" / "ticket_router.nn"))
    with np.load(ROOT / "specs" / "data" / "tickets.npz") as f:
        arrays = {k: f[k] for k in f.files}
    from_file = nnspec.train(program)
    given = nnspec.train(spec, data=({"title": arrays["title"], "body": arrays["body"]},
                                     {"priority": arrays["priority"], "department": arrays["department"]}))
    _same_history(from_file, given)
    with pytest.raises(ValueError, match=r"no array for `department`.*`dept` is not"):
        nnspec.train(spec, data=({"title": arrays["title"], "body": arrays["body"]},
                                 {"priority": arrays["priority"], "dept": arrays["department"]}))
    with pytest.raises(TypeError, match="dict of arrays by input name"):
        nnspec.train(spec, data=(arrays["title"], arrays["priority"]))
    with pytest.raises(TypeError, match="DataFrame, but this model has several"):
        nnspec.train(spec, data=_frame_cls()({"title": arrays["title"]}))


def test_an_autoencoder_takes_x_alone():
    spec = """
    model ae {
        input x[2]
        dense 2 relu
        dense 2
    }
    loss mse
    optimizer adam
    train {
        data builtin("blobs")
        target input
        epochs 2
        seed 0
    }
    """
    x = np.random.default_rng(1).normal(size=(64, 2)).astype(np.float32)
    one = nnspec.train(spec, data=x)
    _same_history(one, nnspec.train(spec, data=(x,)))


@pytest.mark.parametrize("kwargs, error, words", [
    ({"data": ([[1.0, 2.0]] * 10,)}, TypeError, "a pair `(x, y)`"),
    ({"data": "x.csv"}, TypeError, "got `str`"),
    ({"val_data": ([[1.0, 2.0]], [0])}, TypeError, "go with `data=`"),
    ({"data": (np.zeros((10, 3)), np.arange(10) % 3)}, nnspec.NNSpecError, "shape (3,)"),
    ({"data": (np.zeros((10, 2)), np.zeros(9, int))}, nnspec.NNSpecError, "10 examples but `y` has 9"),
    ({"data": (np.full((10, 2), np.nan), np.arange(10) % 3)}, nnspec.NNSpecError, "non-finite value"),
    ({"data": (np.zeros((10, 2)), np.array([object()] * 10))}, TypeError, "Python objects"),
    ({"data": _frame_cls()({"a": np.zeros(10)})}, TypeError, "names no `target=` column"),
])
def test_bad_arrays_say_what_and_where(kwargs, error, words):
    with pytest.raises(error) as info:
        nnspec.train(_spec(), **kwargs)
    assert words in str(info.value) if error is not nnspec.NNSpecError else \
        any(words in d.message for d in info.value.diagnostics)


def test_a_sweep_trains_every_model_on_the_given_arrays(tmp_path):
    x, y = _arrays()
    np.savez(tmp_path / "d.npz", x=x, y=y)
    spec = _spec(**{"optimizer adam lr=0.01": "optimizer adam lr=sweep(0.01, 0.1)"})
    from_file = nnspec.train(nnspec.check_text(spec.replace('builtin("blobs", classes=3)', 'npz("d.npz")'),
                                               filename=str(tmp_path / "m.nn")))
    given = nnspec.train(spec, data=(x, y), out=tmp_path / "sweep")
    assert len(given.members) == 2
    for a, b in zip(from_file.members, given.members):
        _same_history(a, b)
    from nnspec.given import from_python
    assert given.record["data"] == from_python(given.best.program, (x, y)).record()  # what eval compares
