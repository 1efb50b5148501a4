"""Data: the dataset registry sweep, what each built-in dataset claims, CSV/NPZ errors
(exact text), splitting and standardizing."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from nnspec.data import DataError, Dataset, Standardizer, load, load_csv
from nnspec.split import split
from nnspec.datasets import (BINARY, DATASETS, MULTICLASS, REGRESSION, SOURCES, DataSource,
                             classes_of, features_of, labels_of)

HERE = Path(".")


def builtin(name: str, *, seed: int = 0, task: str | None = None, **params) -> Dataset:
    return load(DataSource.of("builtin", name=name, **params), seed=seed, base_dir=HERE,
                task=task)


def has_sklearn() -> bool:
    return importlib.util.find_spec("sklearn") is not None


# A variant per dataset, besides the defaults, to check the attrs that depend on params.
VARIANTS: dict[str, dict] = {
    "pass_class": {"n": 37, "noise": 0.0},
    "linear": {"n": 41, "margin": 0.5},
    "spirals": {"n": 50, "turns": 3.0},
    "circles": {"n": 33, "factor": 0.2},
    "moons": {"n": 21, "noise": 0.0},
    "xor": {"n": 19},
    "regression": {"n": 12, "noise": 0.0},
    "blobs": {"n": 55, "classes": 7},
    "digits": {"image": True},
    "waves": {"n": 23, "steps": 12, "noise": 0.0},
    "brackets": {"n": 31, "steps": 9},
    "order": {"n": 29, "steps": 5, "vocab": 30},
    "running_max": {"n": 27, "steps": 6, "vocab": 40},
}


def needs(name: str) -> list:
    return [pytest.mark.skipif(not has_sklearn(), reason="needs scikit-learn")] \
        if name == "digits" else []


SWEEP = [pytest.param(e.name, params, id=f"{e.name}-{i}", marks=needs(e.name))
         for e in DATASETS for i, params in enumerate(({}, VARIANTS[e.name]))]


# ---------------------------------------------------------------------------------------
# Registry

def test_every_dataset_has_a_generator_a_variant_and_a_claim():
    from nnspec.data import GENERATORS
    names = {e.name for e in DATASETS}
    assert set(GENERATORS) == names
    assert set(VARIANTS) == names
    assert set(CLAIMS) == names


@pytest.mark.parametrize("entry", list(DATASETS) + list(SOURCES), ids=lambda e: e.name)
def test_entries_are_documented(entry):
    assert entry.doc and "\n" not in entry.doc
    assert all(p.doc for p in entry.params)


@pytest.mark.parametrize("entry", list(DATASETS), ids=lambda e: e.name)
def test_dataset_attrs(entry):
    attrs = entry.attrs
    assert attrs["task"] in (BINARY, MULTICLASS, REGRESSION)
    assert isinstance(attrs["features"], tuple)
    if attrs["task"] == BINARY:
        assert attrs["classes"] == 2
    elif attrs["task"] == REGRESSION:
        assert attrs["classes"] is None and attrs["targets"] >= 1
    else:
        assert classes_of(entry, {}) >= 2


def test_the_front_end_half_imports_no_numpy():
    code = "import sys, nnspec.datasets; print('numpy' in sys.modules, 'jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parent.parent)
    assert out.stdout.split() == ["False", "False"]


def test_data_source_fills_defaults():
    assert DataSource.of("builtin", name="spirals", n=10).params == {
        "name": "spirals", "n": 10, "noise": 0.05, "turns": 1.5}
    assert DataSource.of("csv", path="a.csv", target=("y",)).params == {
        "path": "a.csv", "target": ("y",), "features": None, "delimiter": ","}
    assert DataSource.of("npz", path="a.npz").params == {"path": "a.npz", "x": "x", "y": "y"}


# ---------------------------------------------------------------------------------------
# Built-in datasets: shapes, dtypes, determinism

@pytest.mark.parametrize("name,params", SWEEP)
def test_builtin_shapes_and_dtypes(name, params):
    entry = DATASETS.get(name)
    ds = builtin(name, **params)
    n = {**entry.defaults(), **params}.get("n", len(ds))
    assert ds.x.dtype == np.float32 and ds.x.shape == (n, *features_of(entry, params))
    assert ds.task == entry.attrs["task"] and np.isfinite(ds.x).all()
    if ds.task == BINARY:
        assert ds.y.dtype == np.float32 and ds.y.shape == (n, 1)
        assert set(np.unique(ds.y)) <= {0.0, 1.0} and len(ds.classes) == 2
    elif ds.task == MULTICLASS:
        k = classes_of(entry, params)
        assert ds.y.dtype == np.int32 and ds.y.shape == (n, *labels_of(entry, params)) and len(ds.classes) == k
        assert ds.y.min() >= 0 and ds.y.max() < k
    else:
        assert ds.y.dtype == np.float32 and ds.y.shape == (n, entry.attrs["targets"])
        assert ds.classes is None


@pytest.mark.parametrize("name,params", SWEEP)
def test_builtin_same_seed_same_bits(name, params):
    a, b = builtin(name, seed=3, **params), builtin(name, seed=3, **params)
    assert a.x.tobytes() == b.x.tobytes() and a.y.tobytes() == b.y.tobytes()
    if name != "digits":  # a fixed dataset; only its split depends on the seed
        c = builtin(name, seed=4, **params)
        assert a.x.tobytes() != c.x.tobytes()


def test_classes_are_balanced():
    for name in ("linear", "spirals", "circles", "moons", "xor"):
        assert builtin(name, n=101).y.sum() in (50, 51)
    assert np.bincount(builtin("blobs", n=100, classes=4).y).tolist() == [25] * 4


def test_task_hint_changes_the_encoding():
    ds = builtin("moons", n=10, task=MULTICLASS)
    assert ds.y.dtype == np.int32 and ds.y.shape == (10,) and ds.classes == ("0", "1")
    assert builtin("moons", n=10, task=REGRESSION).y.shape == (10, 1)
    assert builtin("pass_class", n=10).classes == ("fail", "pass")


@pytest.mark.parametrize("name,task,message,help", [
    ("blobs", BINARY, "dataset `blobs` has 3 classes; a binary loss needs 2",
     "use a multiclass loss such as `categorical_crossentropy`"),
    ("regression", MULTICLASS, "dataset `regression` has a numeric target, not classes",
     "use a regression loss such as `mse`"),
])
def test_task_hint_mismatch(name, task, message, help):
    with pytest.raises(DataError) as err:
        builtin(name, task=task)
    assert (str(err.value), err.value.help) == (message, help)


def test_unknown_dataset():
    with pytest.raises(DataError) as err:
        load(DataSource("builtin", {"name": "spiral"}), seed=0, base_dir=HERE)
    assert (str(err.value), err.value.help) == ("unknown dataset `spiral`",
                                                "did you mean `spirals`?")


@pytest.mark.parametrize("how", ["not found", "not importable"])
def test_digits_without_scikit_learn(monkeypatch, how):
    import importlib.util
    real = importlib.util.find_spec
    if how == "not found":
        monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "sklearn" else real(name))
    else:  # found, but without its data file where it is looked for, and not importable
        spec = real("sklearn")
        if spec is None:
            pytest.skip("scikit-learn is not installed")
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name: type(spec)(name, None, is_package=True) if name == "sklearn" else real(name))
        monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(DataError) as err:
        builtin("digits")
    assert str(err.value) == "the `digits` dataset needs scikit-learn, which is not installed"
    assert err.value.help == "install it with `pip install scikit-learn`"


# ---------------------------------------------------------------------------------------
# Built-in datasets: what each one claims, checked with small numpy reference models.

def _standardize(x: np.ndarray) -> np.ndarray:
    return Standardizer.fit(x).apply(x).astype(np.float64)


def logistic_accuracy(ds: Dataset, steps: int = 1500, lr: float = 2.0) -> float:
    """Training accuracy of logistic regression (full-batch gradient descent)."""
    x = np.hstack([_standardize(ds.x), np.ones((len(ds), 1))])
    y = ds.y[:, 0].astype(np.float64)
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-x @ w))
        w -= lr * x.T @ (p - y) / len(y)
    return float(((x @ w > 0) == (y > 0.5)).mean())


def knn_accuracy(ds: Dataset, k: int = 5) -> float:
    """Held-out accuracy of k nearest neighbours, trained on the first half."""
    x, y = _standardize(ds.x.reshape(len(ds), -1)), ds.y.reshape(len(ds), -1)[:, 0]
    half = len(ds) // 2
    d = ((x[half:, None, :] - x[None, :half, :]) ** 2).sum(-1)
    votes = y[:half][np.argsort(d, axis=1)[:, :k]]
    if ds.task == MULTICLASS:
        pred = np.array([np.bincount(v).argmax() for v in votes])
    else:
        pred = votes.mean(1) > 0.5
    return float((pred == y[half:]).mean())


def centroid_accuracy(ds: Dataset) -> float:
    """Held-out accuracy of nearest class mean (a linear classifier)."""
    x, y = ds.x.reshape(len(ds), -1).astype(np.float64), ds.y
    half = len(ds) // 2
    means = np.stack([x[:half][y[:half] == c].mean(0) for c in range(len(ds.classes))])
    pred = ((x[half:, None, :] - means[None]) ** 2).sum(-1).argmin(1)
    return float((pred == y[half:]).mean())


def r2(ds: Dataset, degree: int) -> float:
    """R² of a least-squares polynomial fit in the one input."""
    x, y = ds.x[:, 0].astype(np.float64), ds.y[:, 0].astype(np.float64)
    basis = np.stack([x ** i for i in range(degree + 1)], 1)
    residual = y - basis @ np.linalg.lstsq(basis, y, rcond=None)[0]
    return float(1 - residual.var() / y.var())


def nonlinear(linear_max: float, knn_min: float = 0.95) -> Callable[[Dataset], None]:
    def claim(ds: Dataset) -> None:
        assert logistic_accuracy(ds, steps=300) <= linear_max
        assert knn_accuracy(ds) >= knn_min
    return claim


def claim_pass_class(ds: Dataset) -> None:
    # Nearly linear, with some students on the wrong side of the line: learnable to ≥ 0.9.
    assert 0.9 <= logistic_accuracy(ds) < 1.0


def claim_linear(ds: Dataset) -> None:
    assert logistic_accuracy(ds) == 1.0


def claim_regression(ds: Dataset) -> None:
    assert r2(ds, 1) < 0.2       # a straight line explains little of it
    assert r2(ds, 9) > 0.97      # a smooth curve explains nearly all but the noise


def claim_blobs(ds: Dataset) -> None:
    assert centroid_accuracy(ds) >= 0.97


def claim_digits(ds: Dataset) -> None:
    assert centroid_accuracy(ds) >= 0.85
    assert knn_accuracy(ds) >= 0.9


def claim_waves(ds: Dataset) -> None:
    # The class is the frequency, whatever the phase: the spectrum tells every wave apart,
    # while a line through the raw samples (the phase varies) does little better than chance.
    x = ds.x[:, :, 0].astype(np.float64)
    y = ds.y.reshape(len(ds), -1)[:, 0] > 0.5
    power = np.abs(np.fft.rfft(x - x.mean(1, keepdims=True), axis=1)) ** 2
    assert np.mean((power[:, 3:].sum(1) > power[:, :3].sum(1)) == y) >= 0.98
    flat = Dataset(x, ds.y, ds.task, ds.classes)
    assert logistic_accuracy(flat, steps=300) <= 0.75


def bag_of_tokens(ds: Dataset) -> Dataset:
    """Each example as how often it holds each token id, whatever their order."""
    x = ds.x.astype(np.int64)
    counts = np.stack([(x == t).sum(1) for t in range(int(x.max()) + 1)], 1)
    return Dataset(counts.astype(np.float32), ds.y, ds.task, ds.classes)


def claim_brackets(ds: Dataset) -> None:
    # The running depth tells every string apart; the counts of ( and ) tell nothing.
    steps = np.where(ds.x == 1, 1, np.where(ds.x == 2, -1, 0))
    assert np.array_equal(np.cumsum(steps, 1).min(1) >= 0, ds.y[:, 0] == 1)
    assert logistic_accuracy(bag_of_tokens(ds), steps=300) <= 0.6


def claim_order(ds: Dataset) -> None:
    # Where the 1 and the 2 are tells every example apart; which tokens there are, nothing.
    first = np.argmax(ds.x == 1, 1) < np.argmax(ds.x == 2, 1)
    assert np.array_equal(first, ds.y[:, 0] == 1)
    assert logistic_accuracy(bag_of_tokens(ds), steps=300) <= 0.6


def claim_running_max(ds: Dataset) -> None:
    # A class at every step: the largest id so far, which only the order of the ids tells.
    assert ds.y.shape == ds.x.shape and ds.y.dtype == np.int32
    assert np.array_equal(ds.y, np.maximum.accumulate(ds.x.astype(np.int64), axis=1))
    assert (ds.y[:, 1:] >= ds.y[:, :-1]).all() and (ds.y[:, 0] == ds.x[:, 0]).all()


CLAIMS: dict[str, Callable[[Dataset], None]] = {
    "pass_class": claim_pass_class,
    "linear": claim_linear,
    "spirals": nonlinear(0.75),
    "circles": nonlinear(0.75),
    # The textbook moons: a line gets most points right but never all of them.
    "moons": nonlinear(0.93, knn_min=0.98),
    "xor": nonlinear(0.75),
    "regression": claim_regression,
    "blobs": claim_blobs,
    "digits": claim_digits,
    "waves": claim_waves,
    "brackets": claim_brackets,
    "order": claim_order,
    "running_max": claim_running_max,
}

CLAIM_CASES = [pytest.param(name, seed, params, id=f"{name}-{seed}-{params}",
                            marks=needs(name))
               for name in CLAIMS for seed, params in ((0, {}), (1, {}))
               if not (name == "digits" and seed)] + [
    pytest.param("blobs", 2, {"classes": 10}, id="blobs-10"),
]


@pytest.mark.parametrize("name,seed,params", CLAIM_CASES)
def test_dataset_claims(name, seed, params):
    if name != "digits":
        params = {"n": 600, **params}
    CLAIMS[name](builtin(name, seed=seed, **params))


# ---------------------------------------------------------------------------------------
# CSV

SCORES = "lectures,hours,passed\n" + "".join(
    f"{i % 20},{(i * 7) % 40},{int(i % 20 + (i * 7) % 40 / 2 > 20)}\n" for i in range(30))


def write(tmp_path: Path, text: str | bytes, name: str = "scores.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def csv_source(path: str = "scores.csv", **params) -> DataSource:
    return DataSource.of("csv", path=path, **{"target": ("passed",), **params})


def test_csv_loads(tmp_path):
    write(tmp_path, SCORES)
    ds = load(csv_source(), seed=0, base_dir=tmp_path, task=BINARY)
    assert ds.x.shape == (30, 2) and ds.x.dtype == np.float32
    assert ds.y.shape == (30, 1) and ds.y.dtype == np.float32
    assert ds.feature_names == ("lectures", "hours") and ds.target_names == ("passed",)
    assert ds.x[3].tolist() == [3.0, 21.0] and ds.classes == ("0", "1")


def test_csv_text_target_classes_are_sorted(tmp_path):
    write(tmp_path, "a,b,grade\n1,2,pass\n3,4,fail\n5,6,pass\n")
    ds = load(csv_source(target="grade"), seed=0, base_dir=tmp_path, task=BINARY)
    assert ds.classes == ("fail", "pass") and ds.y[:, 0].tolist() == [1, 0, 1]
    write(tmp_path, "a,kind\n1,setosa\n2,virginica\n3,versicolor\n4,setosa\n")
    ds = load(csv_source(target="kind"), seed=0, base_dir=tmp_path, task=MULTICLASS)
    assert ds.classes == ("setosa", "versicolor", "virginica")
    assert ds.y.tolist() == [0, 2, 1, 0] and ds.y.dtype == np.int32


def test_csv_features_targets_and_format(tmp_path):
    # BOM, CRLF, quoted values, spaces after commas, blank lines, several targets.
    text = '\ufeffa, b, "c", t1, t2\r\n1, 2, "3", 0.5, -1e2\r\n\r\n4,5,6,7,.5\r\n\r\n'
    write(tmp_path, text, "m.csv")
    ds = load(csv_source("m.csv", target=("t2", "t1"), features=("c", "a")), seed=0,
              base_dir=tmp_path, task=REGRESSION)
    assert ds.x.tolist() == [[3, 1], [6, 4]] and ds.y.tolist() == [[-100, 0.5], [0.5, 7]]
    assert ds.feature_names == ("c", "a") and ds.target_names == ("t2", "t1")


@pytest.mark.parametrize("text,task,want_task,y,classes", [
    ("x,y\n1,0\n2,1\n", None, BINARY, [[0], [1]], ("0", "1")),
    ("x,y\n1,0.5\n2,3\n", None, REGRESSION, [[0.5], [3]], None),
    ("x,y\n1,no\n2,yes\n", None, BINARY, [[0], [1]], ("no", "yes")),
    ("x,y\n1,a\n2,b\n3,c\n", None, MULTICLASS, [0, 1, 2], ("a", "b", "c")),
    ("x,y\n1,2\n2,0\n", MULTICLASS, MULTICLASS, [2, 0], ("0", "1", "2")),
    ("x,y\n1,0\n2,1\n", REGRESSION, REGRESSION, [[0], [1]], None),
])
def test_csv_target_encoding(tmp_path, text, task, want_task, y, classes):
    write(tmp_path, text)
    ds = load(csv_source(target="y"), seed=0, base_dir=tmp_path, task=task)
    assert (ds.task, ds.y.tolist(), ds.classes) == (want_task, y, classes)


# (file text, extra csv params, task, the error's one line, its help)
CSV_ERRORS = [
    ("", {}, BINARY, "scores.csv: the file is empty",
     "the first line must name the columns, as in `x1,x2,label`"),
    ("\n\n", {}, BINARY, "scores.csv: the file is empty",
     "the first line must name the columns, as in `x1,x2,label`"),
    ("lectures,hours,passed\n", {}, BINARY, "scores.csv: the file has a header but no data rows",
     "add one row per example below the header"),
    ("lectures,hours,passed\n1,2,1\n3,4\n", {}, BINARY,
     "scores.csv:3: expected 3 values, found 2", "every row needs one value per header column"),
    ("lectures,hours,passed\n1,2,1\n3,4,1,5\n", {}, BINARY,
     "scores.csv:3: expected 3 values, found 4",
     "every row needs one value per header column; a value with a `,` in it must be in "
     "double quotes"),
    ("lectures,hours,passed\n" + "1,2,1\n" * 12 + "3,abc,0\n", {}, BINARY,
     "scores.csv:14: column `hours`: cannot read `abc` as a number",
     'features must be numbers; to leave `hours` out, write `features=["lectures"]`'),
    ("lectures,hours,passed\n1,1_000,1\n", {}, BINARY,
     "scores.csv:2: column `hours`: cannot read `1_000` as a number",
     'features must be numbers; to leave `hours` out, write `features=["lectures"]`'),
    ("lectures,hours,passed\n1,nan,1\n", {}, BINARY,
     "scores.csv:2: column `hours`: `nan` is not a finite number",
     "fill in a real value or remove the row"),
    ("lectures,hours,passed\n1,2,1\n-inf,2,1\n", {}, BINARY,
     "scores.csv:3: column `lectures`: `-inf` is not a finite number",
     "fill in a real value or remove the row"),
    ("lectures,hours,passed\n1,1e39,1\n", {}, BINARY,
     "scores.csv:2: column `hours`: `1e39` is too large for a 32-bit float", None),
    ("lectures,hours,passed\n1, ,1\n", {}, BINARY,
     "scores.csv:2: column `hours`: missing value",
     "fill in the value or remove the row, or say what fills it with `missing`, as in `missing hours=median`"),
    ("lectures;hours;passed\n1;2,5;1\n", {"delimiter": ";"}, BINARY,
     "scores.csv:2: column `hours`: cannot read `2,5` as a number",
     "write decimals with a point, as in `1.5`"),
    ("lectures,hours,pased\n1,2,1\n", {}, BINARY, "scores.csv:1: no column named `passed`",
     "did you mean `pased`?"),
    ("a,b,c\n1,2,1\n", {}, BINARY, "scores.csv:1: no column named `passed`",
     "the columns are `a`, `b`, `c`"),
    ("lectures;hours;passed\n1;2;1\n", {}, BINARY, "scores.csv:1: no column named `passed`",
     'the header looks `;`-separated: add `delimiter=";"`'),
    ("lectures,hours,passed\n1,2,1\n", {"features": ("lecture", "hours")}, BINARY,
     "scores.csv:1: no column named `lecture`", "did you mean `lectures`?"),
    ("hours,hours,passed\n1,2,1\n", {}, BINARY,
     "scores.csv:1: column `hours`: appears twice in the header (columns 1 and 2)",
     "give each column its own name"),
    ("lectures,,passed\n1,2,1\n", {}, BINARY, "scores.csv:1: column 2 of the header has no name",
     "every column needs a name in the first line"),
    ("passed\n1\n", {}, BINARY, "scores.csv:1: no feature columns: every column is a target",
     "add feature columns to the file"),
    ("lectures,hours,passed\n1,2,1\n", {"features": ("hours", "passed")}, BINARY,
     "scores.csv: column `passed` is both a target and a feature",
     "remove `passed` from `features`"),
    ("lectures,hours,passed\n1,2,1\n", {"target": ("passed", "passed")}, REGRESSION,
     "scores.csv: column `passed` is listed twice in `target`", None),
    ("lectures,hours,passed\n1,2,1\n3,4,0\n5,6,2\n", {}, BINARY,
     "scores.csv:4: column `passed`: expected a number in [0, 1] for a binary target, found `2`",
     "for more than two classes use a multiclass loss such as `categorical_crossentropy`"),
    ("lectures,hours,passed\n1,2,1\n3,4,1.25\n", {}, BINARY,
     "scores.csv:3: column `passed`: expected a number in [0, 1] for a binary target, found `1.25`",
     "`binary_crossentropy` reads labels 0 or 1, or probabilities between them; for other numbers use a "
     "regression loss such as `mse`"),
    ("lectures,hours,passed\n1,2,1\n3,4,-3\n", {}, BINARY,
     "scores.csv:3: column `passed`: expected a number in [0, 1] for a binary target, found `-3`",
     "`binary_crossentropy` reads labels 0 or 1, or probabilities between them; for other numbers use a "
     "regression loss such as `mse`"),
    ("lectures,hours,passed\n1,2,1\n5,6,yes\n", {}, BINARY,
     "scores.csv:3: column `passed`: cannot read `yes` as a number",
     "the column's first value, on line 2, is a number, so every value must be one"),
    ("lectures,hours,passed\n1,2,yes\n3,4,no\n5,6,maybe\n", {}, BINARY,
     "scores.csv:4: column `passed`: a third class `maybe` in a binary target (after `yes` and "
     "`no`)", "for more than two classes use a multiclass loss"),
    ("lectures,hours,passed\n1,2,yes\n3,4,yes\n", {}, BINARY,
     "scores.csv:2: column `passed`: only one class, `yes`; a binary target needs two",
     "check that this is the right target column"),
    ("lectures,hours,passed\n1,2,yes\n3,4,\n", {}, BINARY,
     "scores.csv:3: column `passed`: missing value", "fill in the value or remove the row"),
    ("lectures,hours,passed\n1,2,yes\n", {}, REGRESSION,
     "scores.csv:2: column `passed`: cannot read `yes` as a number",
     "a regression loss needs numeric targets"),
    ("lectures,hours,passed\n1,2,1.5\n", {}, MULTICLASS,
     "scores.csv:2: column `passed`: expected a class index (0, 1, 2, …), found `1.5`",
     "for a numeric target use a regression loss"),
    ("lectures,hours,passed\n1,2,1\n", {"target": ("hours", "passed")}, MULTICLASS,
     "scores.csv:1: a multiclass target is one column, found 2 (`hours`, `passed`)",
     "name one column in `target`"),
    (b"lectures,hours,passed\n1,2,1\n3,4,\xff\n", {}, BINARY,
     "scores.csv:3: the file is not UTF-8 text",
     "save it as UTF-8 CSV, or check that it is the right file"),
    ("lectures,hours,passed\n1,2,1\n3,\"4,0\n5,6,1\n", {}, BINARY,
     "scores.csv:3: cannot read the line as CSV (unexpected end of data)",
     'check the quotes: a value that starts with `"` must end with one'),
    ('lectures,hours,passed\n1,"2\n",1\n3,4\n', {}, BINARY,
     "scores.csv:4: expected 3 values, found 2", "every row needs one value per header column"),
    ("lectures,hours,passed\n1,2,1\n", {"delimiter": "::"}, BINARY,
     "scores.csv: the delimiter must be one character, found `::`", None),
    # The first error wins, and nothing after it is read.
    (b"lectures,hours,passed\n1,x,1\n\xff\xfe\n1,2\n", {}, BINARY,
     "scores.csv:2: column `hours`: cannot read `x` as a number",
     'features must be numbers; to leave `hours` out, write `features=["lectures"]`'),
]


@pytest.mark.parametrize("text,params,task,message,help", CSV_ERRORS,
                         ids=[f"{i}-{c[3].split(': ', 1)[-1][:30]}"
                              for i, c in enumerate(CSV_ERRORS)])
def test_csv_errors(tmp_path, text, params, task, message, help):
    write(tmp_path, text)
    with pytest.raises(DataError) as err:
        load(csv_source(**params), seed=0, base_dir=tmp_path, task=task)
    assert (str(err.value), err.value.help) == (message, help)
    assert err.value.path == "scores.csv"


def test_csv_error_fields(tmp_path):
    write(tmp_path, "lectures,hours,passed\n1,abc,1\n")
    with pytest.raises(DataError) as err:
        load(csv_source(), seed=0, base_dir=tmp_path, task=BINARY)
    e = err.value
    assert (e.message, e.path, e.row, e.column) == ("cannot read `abc` as a number",
                                                    "scores.csv", 2, "hours")


def test_csv_hints_work(tmp_path):
    """The fixes the help lines suggest load the file."""
    write(tmp_path, "name,lectures,hours,passed\nann,1,2,1\nbob,3,4,0\n")
    with pytest.raises(DataError) as err:
        load(csv_source(), seed=0, base_dir=tmp_path, task=BINARY)
    assert err.value.help == ('features must be numbers; to leave `name` out, write '
                              '`features=["lectures", "hours"]`')
    ds = load(csv_source(features=("lectures", "hours")), seed=0, base_dir=tmp_path,
              task=BINARY)
    assert ds.x.shape == (2, 2)
    write(tmp_path, "lectures;hours;passed\n1;2;1\n3;4;0\n")
    ds = load(csv_source(delimiter=";"), seed=0, base_dir=tmp_path, task=BINARY)
    assert ds.x.tolist() == [[1, 2], [3, 4]]


@pytest.mark.parametrize("source", ["csv", "npz"])
def test_missing_file_and_folder(tmp_path, source):
    write(tmp_path, "x", f"scores.{source}")
    (tmp_path / "data").mkdir()
    params = {"target": ("y",)} if source == "csv" else {}
    with pytest.raises(DataError) as err:
        load(DataSource.of(source, path=f"score.{source}", **params), seed=0,
             base_dir=tmp_path)
    assert str(err.value) == f"score.{source}: file not found"
    assert err.value.help == (f"did you mean `scores.{source}`? (looked for "
                              f"`{tmp_path / f'score.{source}'}`; paths are relative to the "
                              f"spec's folder)")
    with pytest.raises(DataError) as err:
        load(DataSource.of(source, path="data", **params), seed=0, base_dir=tmp_path)
    assert str(err.value) == "data: is a folder, not a file"
    assert err.value.help == f"name the {source.upper()} file inside it"


def test_csv_absolute_path(tmp_path):
    path = write(tmp_path, SCORES)
    ds = load_csv(str(path), base_dir=Path("/nonexistent"), target=("passed",), task=BINARY)
    assert len(ds) == 30


# ---------------------------------------------------------------------------------------
# NPZ

def npz(tmp_path: Path, name: str = "arrays.npz", **arrays) -> Path:
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def npz_load(tmp_path: Path, task: str | None = None, **params) -> Dataset:
    return load(DataSource.of("npz", path="arrays.npz", **params), seed=0, base_dir=tmp_path,
                task=task)


def test_npz_loads(tmp_path):
    x = np.arange(24, dtype=np.float64).reshape(4, 3, 2)
    npz(tmp_path, features=x, labels=np.array([0, 2, 1, 2]))
    ds = npz_load(tmp_path, MULTICLASS, x="features", y="labels")
    assert ds.x.dtype == np.float32 and ds.x.shape == (4, 3, 2)
    assert ds.y.dtype == np.int32 and ds.y.tolist() == [0, 2, 1, 2]
    assert ds.classes == ("0", "1", "2") and ds.target_names == ("labels",)


@pytest.mark.parametrize("y,task,want_task,want_y,classes", [
    (np.array([0, 1, 1]), None, BINARY, [[0], [1], [1]], ("0", "1")),
    (np.array([True, False, True]), None, BINARY, [[1], [0], [1]], ("0", "1")),
    (np.array([0, 3, 1]), None, MULTICLASS, [0, 3, 1], ("0", "1", "2", "3")),
    (np.array([0.5, 3, 1]), None, REGRESSION, [[0.5], [3], [1]], None),
    (np.array([[1.0, 0], [0, 1], [1, 1]]), BINARY, BINARY, [[1, 0], [0, 1], [1, 1]],
     ("0", "1")),
    (np.array(["cat", "dog", "cat"]), None, BINARY, [[0], [1], [0]], ("cat", "dog")),
    (np.array(["b", "c", "a"]), MULTICLASS, MULTICLASS, [1, 2, 0], ("a", "b", "c")),
    (np.array([2.0, 0.0, 1.0]), MULTICLASS, MULTICLASS, [2, 0, 1], ("0", "1", "2")),
])
def test_npz_target_encoding(tmp_path, y, task, want_task, want_y, classes):
    npz(tmp_path, x=np.zeros((3, 2)), y=y)
    ds = npz_load(tmp_path, task)
    assert (ds.task, ds.y.tolist(), ds.classes) == (want_task, want_y, classes)


def test_npz_errors(tmp_path):
    def error(task=None, **params) -> tuple[str, str | None]:
        with pytest.raises(DataError) as err:
            npz_load(tmp_path, task, **params)
        assert err.value.path == "arrays.npz"
        return str(err.value), err.value.help

    x, y = np.zeros((5, 2)), np.zeros(5)
    npz(tmp_path, features=x, y=y)
    assert error() == ("arrays.npz: no array named `x` (the file has `features`, `y`)",
                       "name the features array with `x=`")
    assert error(x="feature") == (
        "arrays.npz: no array named `feature` (the file has `features`, `y`)",
        "did you mean `features`?")

    npz(tmp_path, x=np.zeros(5), y=y)
    assert error() == ("arrays.npz: array `x` has shape (5,); features need (examples, ...)",
                       "for one feature per example save `x.reshape(-1, 1)`")
    npz(tmp_path, x=x, y=np.zeros((5, 1, 1)))  # numbers of any shape: one per output element
    assert npz_load(tmp_path, None).y.shape == (5, 1, 1)
    assert error("multiclass")[0] == ("arrays.npz: array `y` has shape (5, 1, 1); targets need "
                                      "(examples,) or (examples, k)")
    npz(tmp_path, x=x, y=np.zeros(4))
    assert error() == ("arrays.npz: array `x` has 5 examples but `y` has 4",
                       "both arrays need one entry per example along the first axis")
    npz(tmp_path, x=np.zeros((0, 2)), y=np.zeros(0))
    assert error()[0] == "arrays.npz: the arrays hold no examples"
    npz(tmp_path, x=np.array([["a", "b"]] * 5), y=y)
    assert error()[0] == "arrays.npz: array `x` has dtype `<U1`; features must be numbers"
    npz(tmp_path, x=x, y=np.zeros(5, dtype=complex))
    assert error()[0] == ("arrays.npz: array `y` has dtype `complex128`; targets must be "
                          "numbers or strings")
    bad = x.copy()
    bad[3, 1] = np.nan
    npz(tmp_path, x=bad, y=y)
    assert error() == ("arrays.npz: array `x` has a non-finite value `nan` at index (3, 1)",
                       "replace or drop the examples with missing values")
    npz(tmp_path, x=x, y=np.array([0, 1, 2, 1, 0]))
    assert error(BINARY) == ("arrays.npz: array `y`: expected a number in [0, 1] for a binary target, "
                             "found `2` at index 2",
                             "for more than two classes use a multiclass loss such as `categorical_crossentropy`")
    npz(tmp_path, x=x, y=np.array([0, 1, 1.5, 1, 0]))
    assert error(BINARY)[1].startswith("`binary_crossentropy` reads labels 0 or 1, or probabilities between them")
    npz(tmp_path, x=x, y=np.array([0, 1, 0.5, 1, 0.25]))  # soft targets: probabilities, intensities
    assert npz_load(tmp_path, BINARY).y[:, 0].tolist() == [0, 1, 0.5, 1, 0.25]
    npz(tmp_path, x=x, y=np.array([0, 1, 1.5, 1, 0]))
    assert error(MULTICLASS) == ("arrays.npz: array `y`: expected a class index (0, 1, 2, …), "
                                 "found `1.5` at index 2",
                                 "for a numeric target use a regression loss")
    two_ones = np.eye(5)
    two_ones[2, 0] = 1
    npz(tmp_path, x=x, y=two_ones)
    assert error(MULTICLASS) == ("arrays.npz: array `y`: row 2 is not one-hot, found `[1, 0, 1, 0, 0]`",
                                 "a one-hot row holds a single 1, for its class, and 0 elsewhere; "
                                 "or save class indices (examples,)")
    npz(tmp_path, x=x, y=np.array(["a", "b", "c", "a", "b"]))
    assert error(BINARY)[0] == "arrays.npz: array `y` has 3 classes; a binary target needs 2"
    assert error(REGRESSION)[0] == ("arrays.npz: array `y` holds text; a regression loss "
                                    "needs numbers")


def test_npz_damaged_files(tmp_path):
    def error() -> str:
        with pytest.raises(DataError) as err:
            npz_load(tmp_path)
        return str(err.value)

    good = npz(tmp_path, x=np.ones((50, 2)), y=np.zeros(50)).read_bytes()
    np.save(tmp_path / "single.npy", np.zeros(3))
    for data in (b"hello, not an archive", good[: len(good) // 2],
                 (tmp_path / "single.npy").read_bytes()):
        (tmp_path / "arrays.npz").write_bytes(data)
        assert error() in ("arrays.npz: cannot read the file as a NumPy `.npz` archive",
                           "arrays.npz: the file is a single `.npy` array, not an `.npz` "
                           "archive")
    (tmp_path / "arrays.npz").write_bytes((tmp_path / "single.npy").read_bytes())
    assert error() == "arrays.npz: the file is a single `.npy` array, not an `.npz` archive"
    damaged = bytearray(good)
    damaged[good.index(b"\x93NUMPY") + 200] ^= 0xFF  # inside x's data: a CRC error on read
    (tmp_path / "arrays.npz").write_bytes(bytes(damaged))
    assert error() == "arrays.npz: array `x` is damaged and cannot be read"
    npz(tmp_path, x=np.array([[object()]] * 2, dtype=object), y=np.zeros(2))
    assert error() == "arrays.npz: array `x` holds Python objects, not numbers"


# ---------------------------------------------------------------------------------------
# Splitting and standardizing

def numbered(n: int) -> Dataset:
    return Dataset(np.arange(n, dtype=np.float32).reshape(n, 1),
                   np.arange(n, dtype=np.int32), MULTICLASS, None)


def test_split_sizes_disjoint_and_complete():
    train, val, test = split(numbered(100), val=0.2, test=0.1, seed=0)
    assert (len(train), len(val), len(test)) == (70, 20, 10)
    ids = [set(d.x[:, 0].tolist()) for d in (train, val, test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert set().union(*ids) == set(range(100))
    assert (train.y == train.x[:, 0]).all()  # x and y stay paired


def test_split_is_deterministic():
    a = split(numbered(50), val=0.2, test=0.2, seed=1)
    b = split(numbered(50), val=0.2, test=0.2, seed=1)
    c = split(numbered(50), val=0.2, test=0.2, seed=2)
    assert all((p.x == q.x).all() for p, q in zip(a, b))
    assert not (a[0].x == c[0].x).all()


def test_split_zero_fractions_give_none():
    train, val, test = split(numbered(10), val=0, test=0, seed=0)
    assert len(train) == 10 and val is None and test is None


@pytest.mark.parametrize("n,val,test,message", [
    (4, 0.1, 0.0, "dataset too small: 4 examples leave none for the validation split "
                  "(0.1 of them)"),
    (4, 0.5, 0.1, "dataset too small: 4 examples leave none for the test split (0.1 of them)"),
    (2, 0.5, 0.4, "dataset too small: 2 examples leave none for training"),
])
def test_split_too_small(n, val, test, message):
    with pytest.raises(DataError) as err:
        split(numbered(n), val=val, test=test, seed=0)
    assert str(err.value) == message


def test_standardizer_uses_train_statistics_only():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (200, 3)).astype(np.float32)
    x[:, 2] = 7.0  # a constant feature
    ds = Dataset(x, np.zeros((200, 1), np.float32), REGRESSION)
    train, val, _ = split(ds, val=0.5, test=0, seed=0)
    val.x[:] += 100.0  # shifting val must not move the statistics
    s = Standardizer.fit(train.x)
    z = s.apply(train.x)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z[:, :2].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z[:, :2].std(0), 1, atol=1e-5)
    assert (z[:, 2] == 0).all() and s.std[2] == 1
    assert s.apply_to(val).x[:, :2].mean() > 40 and s.apply_to(None) is None


def test_standardizer_round_trips_through_json():
    s = Standardizer.fit(np.random.default_rng(0).normal(size=(20, 2, 3)))
    t = Standardizer.from_dict(json.loads(json.dumps(s.to_dict())))
    assert t.mean.shape == (2, 3) and t.mean.tobytes() == s.mean.tobytes()
    assert t.std.tobytes() == s.std.tobytes()


def test_npz_one_hot_rows_are_class_labels(tmp_path):
    """`labels=onehot` promises one-hot rows are accepted: they load as the class of
    their 1, and the row width is the class count even if the last class never occurs."""
    y = np.eye(4)[[2, 0, 1, 2, 0]]
    npz(tmp_path, x=np.arange(10.0).reshape(5, 2), y=y)
    ds = npz_load(tmp_path, MULTICLASS)
    assert ds.y.tolist() == [2, 0, 1, 2, 0] and ds.y.dtype == np.int32
    assert ds.classes == ("0", "1", "2", "3")


@pytest.mark.parametrize("contents,task,message", [
    ("a,passed\n1,0\n2,0\n3,0\n", BINARY,
     "scores.csv:2: column `passed`: only one class, `0`; a binary target needs two"),
    ("a,passed\n1,cat\n2,cat\n", MULTICLASS,
     "scores.csv:2: column `passed`: only one class, `cat`; a multiclass target needs at least two"),
    ("a,passed\n1,2\n2,2\n", MULTICLASS,
     "scores.csv:2: column `passed`: only one class, `2`; a multiclass target needs at least two"),
], ids=["all-zero binary", "one text class", "one class index"])
def test_a_csv_target_of_one_class_is_refused(tmp_path, contents, task, message):
    """As a one-class text target always was: training could only learn a constant."""
    write(tmp_path, contents)
    with pytest.raises(DataError) as err:
        load(csv_source(), seed=0, base_dir=tmp_path, task=task)
    assert (str(err.value), err.value.help) == (message, "check that this is the right target column")


@pytest.mark.parametrize("y,task,message", [
    (np.zeros(4), BINARY, "array `y` holds only one class, `0`; a binary target needs two"),
    (np.array(["a"] * 4), MULTICLASS, "array `y` holds only one class, `a`; a multiclass target needs at least two"),
    (np.eye(3)[[1, 1, 1, 1]], MULTICLASS, "array `y` holds only one class, `1`; a multiclass target needs at least two"),
], ids=["all-zero binary", "one text class", "one-hot of one class"])
def test_an_npz_target_of_one_class_is_refused(tmp_path, y, task, message):
    npz(tmp_path, x=np.zeros((4, 2)), y=y)
    with pytest.raises(DataError) as err:
        npz_load(tmp_path, task)
    assert (str(err.value), err.value.help) == (f"arrays.npz: {message}", "check that this is the right targets array")


AUTOENCODER = """\
model ae {
    input x[4]
    h: dense 2 relu
    out: dense 4 sigmoid
}
loss mse
optimizer adam lr=0.01
train {
    data npz("arrays.npz")
    batch 4
    epochs 1
}
"""


def _prepare(tmp_path, spec: str):
    from nnspec.check import check_source
    from nnspec.prepare import prepare
    (tmp_path / "ae.nn").write_text(spec)
    program, diags, _ = check_source(spec, str(tmp_path / "ae.nn"))
    assert program is not None, diags
    return program, prepare(program)


def test_w003_is_silent_when_every_target_fits_the_output(tmp_path):
    """An autoencoder of pixels in [0, 1] under a sigmoid and mse is right."""
    pixels = np.random.default_rng(0).uniform(0, 1, (20, 4))
    pixels[0] = [0, 1, 0, 1]  # the ends of the range are reachable enough
    npz(tmp_path, x=pixels, y=pixels)
    _, splits = _prepare(tmp_path, AUTOENCODER)
    assert splits.warnings == ()


def test_w003_warns_at_the_data_when_a_target_is_out_of_reach(tmp_path):
    from nnspec.diagnostics import render_all
    x = np.random.default_rng(0).uniform(0, 1, (20, 4))
    y = x.copy()
    y[3, 2] = -2.5
    npz(tmp_path, x=x, y=y)
    program, splits = _prepare(tmp_path, AUTOENCODER.replace("batch 4", "batch 4\n    split val=0"))
    [w] = splits.warnings
    assert render_all([w], program.source).splitlines()[:10] == [
        "warning[W003]: the last layer's `sigmoid` keeps predictions in [0, 1], but training targets reach -2.5",
        f" --> {tmp_path / 'ae.nn'}:9:5",
        "  |",
        "4 |     out: dense 4 sigmoid",
        "  |     -------------------- limits the predictions to [0, 1]",
        "...",
        '9 |     data npz("arrays.npz")',
        "  |     ^^^^^^^^^^^^^^^^^^^^^^ these targets",
        "  |",
        "  = help: a regression output is usually linear: remove `sigmoid`",
    ]


def test_the_digits_are_scikit_learns_read_without_importing_it(monkeypatch):
    pytest.importorskip("sklearn")
    import importlib.util
    import subprocess
    import sys
    from sklearn.datasets import load_digits
    from nnspec.data import _digits_table
    bunch = load_digits()
    table = _digits_table()
    np.testing.assert_array_equal(table[:, :-1], bunch.data)
    np.testing.assert_array_equal(table[:, -1].astype(np.int64), bunch.target)
    # in a fresh process, reading them imports no scikit-learn (1.4 s of a cold run)
    code = "import sys; from nnspec.data import _digits_table; _digits_table(); print('sklearn' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
    # where this scikit-learn keeps no such file, its own reader gives the same table
    real = importlib.util.find_spec("sklearn")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: type(real)(real.name, None, is_package=True))
    np.testing.assert_array_equal(_digits_table(), table)
