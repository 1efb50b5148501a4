"""Data: built-in datasets, CSV and NPZ files -> arrays, with errors that point into the file.

`load(source, seed=, base_dir=, task=)` turns a checked `DataSource` into a `Dataset`:
`x` float32 (n, *features); `y` float32 (n, k) of 0/1 for binary, int32 (n,) class
indices for multiclass, float32 (n, k) for regression (nnspec/split.py cuts it into
train/val/test); `Standardizer` is fitted on the train split only. Problems in
the data raise `DataError` with the file, line and column. NumPy only; no JAX.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import math
import os
import re
import struct
import zipfile
import zlib
from array import array
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, overload

import numpy as np

from nnspec import formats
from nnspec.columns import NUMBER, Columns, EncodeError, Encoder, category
from nnspec.datasets import (BINARY, DATASETS, MULTICLASS, REGRESSION, TASKS, DataSource,
                              classes_of, data_files, features_of)
from nnspec.show import excerpt as _excerpt
from nnspec.suggest import did_you_mean


class DataError(Exception):
    """Something wrong with the data, located as precisely as the data allows.

    `row` is the 1-based line in the file (the header is line 1); `column` a CSV column
    name. `str()` is one line, `path:row: column `c`: message`; `help` says how to fix it."""

    def __init__(self, message: str, *, path: str | None = None, row: int | None = None,
                 column: str | None = None, help: str | None = None) -> None:
        self.message = message
        self.path = path
        self.row = row
        self.column = column
        self.help = help
        super().__init__(self.__str__())

    def __str__(self) -> str:
        parts = []
        if self.path is not None:
            parts.append(self.path if self.row is None else f"{self.path}:{self.row}")
        if self.column is not None:
            parts.append(f"column `{_excerpt(self.column)}`")
        parts.append(self.message)
        return ": ".join(parts)


# Whether the file being read may hold a single class: a separate validation or test
# file may (a small test set), the training data may not (`load_split` sets it).
_ONE_CLASS_OK: ContextVar[bool] = ContextVar("one_class_ok", default=False)
# `train { stream }`: a `.npy` source's features stay in their file, read a window at a
# time (nnspec/stream.py), instead of being loaded (and refused when larger than memory)
STREAMING: ContextVar[bool] = ContextVar("streaming", default=False)


@dataclass(eq=False)
class Dataset:
    """Examples as arrays; `classes` names the class of each index (None for regression)."""
    x: np.ndarray
    y: np.ndarray
    task: str
    classes: tuple[str, ...] | None = None
    feature_names: tuple[str, ...] | None = None
    target_names: tuple[str, ...] | None = None
    lines: np.ndarray | None = None  # each example's line in its CSV file, for errors found later
    # Read with `categorical`/`missing` (nnspec/columns.py): `x` holds the cells as read,
    # object (n, columns), until `encode` turns them into numbers; `dropped` counts the
    # rows `missing drop` left out; `encoder` is the encoding applied, once it is.
    raw: bool = False
    dropped: int = 0
    encoder: Encoder | None = None
    path: str | None = None  # the file the rows come from, for errors found later
    # `sample_weight`: each example's weight in the loss, read from its column (None: all 1)
    weight: np.ndarray | None = None

    def __len__(self) -> int:
        first = next(iter(self.x.values())) if isinstance(self.x, dict) else self.x
        return int(first.shape[0])

    @property
    def features(self) -> tuple[int, ...]:
        """The shape of one example (of its one input)."""
        assert not isinstance(self.x, dict), "a dataset of several inputs has a shape per input"
        return tuple(self.x.shape[1:])

    def take(self, index: np.ndarray) -> Dataset:
        """The examples at `index`, in that order."""
        return dataclasses.replace(self, x=_rows(self.x, index), y=_rows(self.y, index),
                                   lines=None if self.lines is None else self.lines[index],
                                   weight=None if self.weight is None else self.weight[index])


def _rows(a: Any, index: np.ndarray) -> Any:
    """`a[index]`, for an array or for each array of a dict (several inputs or outputs)."""
    return {k: v[index] for k, v in a.items()} if isinstance(a, dict) else a[index]


def load_named(source: DataSource, *, base_dir: Path, inputs: tuple[str, ...],
               outputs: tuple[tuple[str, str], ...]) -> Dataset:
    """The examples of a model with several inputs or outputs, from an `.npz` archive with
    one array per input and per output, named after them (one input reads `x`, one output
    `y`, or the names `x=`/`y=` give). `outputs`: (name, task) in the order of the
    `loss` block, or one ("", task) for a single output. The archive is read once, and each
    array checked as `load_npz` checks one: `x` and `classes` are dicts when there are several."""
    params = dict(source.params)
    path = params["path"]
    several_in, several_out = len(inputs) > 1, len(outputs) > 1 or outputs[0][0] != ""
    x_keys = inputs if several_in else (params.get("x", "x"),)
    y_keys = tuple(name for name, _ in outputs) if several_out else (params.get("y", "y"),)
    help = "write it with `numpy.savez(path, " + ", ".join(f"{k}=..." for k in x_keys + y_keys) + ")`"
    arrays = _npz_arrays(path, base_dir, tuple((k, "features") for k in x_keys) + tuple((k, "targets") for k in y_keys),
                         help)
    return named_arrays(arrays, inputs=inputs, outputs=outputs, x_keys=x_keys, y_keys=y_keys,
                        paths={k: path for k in x_keys + y_keys})


def named_arrays(arrays: Mapping[str, np.ndarray], *, inputs: tuple[str, ...], outputs: tuple[tuple[str, str], ...],
                 x_keys: tuple[str, ...], y_keys: tuple[str, ...], paths: Mapping[str, str]) -> Dataset:
    """`load_named`'s examples from arrays already read (an archive's, or given from Python):
    `x_keys` and `y_keys` name each input's and output's array in `arrays` and `paths`."""
    several_in, several_out = len(inputs) > 1, len(outputs) > 1 or outputs[0][0] != ""
    ys: dict[str, np.ndarray] = {}
    classes: dict[str, tuple[str, ...] | None] = {}
    first: Dataset | None = None
    for (name, task), key in zip(outputs, y_keys):  # each pair checked as `load_npz` checks its own
        ds = _from_arrays(arrays[x_keys[0]], arrays[key], x_keys[0], key, paths=paths, task=task)
        first = first or ds
        ys[name], classes[name] = ds.y, ds.classes
    assert first is not None
    xs = {x_keys[0]: first.x}
    for key in x_keys[1:]:
        xs[key] = _from_arrays(arrays[key], arrays[y_keys[0]], key, y_keys[0], paths=paths, task=outputs[0][1]).x
    x: Any = {name: xs[key] for name, key in zip(inputs, x_keys)} if several_in else xs[x_keys[0]]
    if several_out:
        return Dataset(x, ys, "several", classes, None, y_keys)  # type: ignore[arg-type]
    return dataclasses.replace(first, x=x)


def load(source: DataSource, *, seed: int, base_dir: Path,
         task: str | None = None, positions: tuple[int, ...] = (), columns: Columns | None = None,
         shape: tuple[int, ...] = ()) -> Dataset:
    """Load or generate the data a checked `data` line names.

    `task` (from the loss) decides how a target is encoded; without it, text targets are
    classes, 0/1 targets binary and other numbers regression. `positions` is where a
    multiclass model gives a class in one example: () once per example, (steps,) at every
    step (its output is (*positions, classes)). `columns` (a table's `categorical` and
    `missing` lines) keeps the feature cells raw, for `encode` (nnspec/columns.py).
    `shape` is the model input's, which a folder of images is resized to."""
    if task is not None and task not in TASKS:
        raise ValueError(f"unknown task `{task}`")
    params = dict(source.params)
    if source.kind == "builtin":
        return _builtin(params, seed=seed, task=task)
    if source.kind == "csv":
        target = params["target"]
        features = params.get("features")
        return load_csv(params["path"], base_dir=base_dir,
                        target=(target,) if isinstance(target, str) else tuple(target),
                        features=(features,) if isinstance(features, str)
                        else None if features is None else tuple(features),
                        delimiter=params.get("delimiter", ","), task=task, columns=columns)
    if source.kind == "npz":
        return load_npz(params["path"], base_dir=base_dir, x=params.get("x", "x"),
                        y=params.get("y", "y"), task=task, positions=positions)
    if source.kind in ("jsonl", "parquet"):
        read = load_jsonl if source.kind == "jsonl" else load_parquet
        target = params["target"]
        features = params.get("features")
        return read(params["path"], base_dir=base_dir,
                    target=(target,) if isinstance(target, str) else tuple(target),
                    features=(features,) if isinstance(features, str)
                    else None if features is None else tuple(features), task=task,
                    **({"columns": columns} if source.kind == "jsonl" else {}))
    if source.kind == "npy":
        return load_npy(params["x"], params["y"], base_dir=base_dir, task=task)
    if source.kind == "idx":
        return load_idx(params["images"], params["labels"], base_dir=base_dir, task=task)
    if source.kind == "images":
        return load_images(params["path"], base_dir=base_dir, shape=shape, task=task)
    raise ValueError(f"unknown data source `{source.kind}`")


def load_images(path: str, *, base_dir: Path, shape: tuple[int, ...], task: str | None) -> Dataset:
    """A folder of images, one sub-folder per class (nnspec/images.py), as the model's input."""
    from nnspec import images
    try:
        x, labels, classes = images.read(path, base_dir=base_dir, shape=tuple(shape), budget=memory_budget())
    except images.FolderError as exc:
        raise DataError(exc.message, path=exc.path, help=exc.help) from None
    if task == REGRESSION:
        raise DataError("a folder of images gives a class per image, but a regression loss needs numbers",
                        path=path, help="use a classification loss, or `target input` to train on the images alone")
    if len(classes) == 1 and not _ONE_CLASS_OK.get():
        raise DataError(f"the folder holds one class folder, `{_excerpt(classes[0])}`; a classifier needs at least two",
                        path=path, help="add a sub-folder of images for each other class")
    names = np.asarray(classes)[labels]
    return _from_arrays(x, names, "images", "classes", paths={"images": path, "classes": path},
                        task=task, noun="folder")


def load_inputs(source: DataSource, *, seed: int, base_dir: Path, shape: tuple[int, ...] = ()) -> Dataset:
    """The examples `source` gives, with the inputs as their targets (`target input`, an
    autoencoder): `y` is a copy of `x` as read, a regression target of the input's shape.
    The source's own targets are not read (a CSV file names none; an `.npz` archive needs
    no `y`; a built-in dataset's labels are dropped)."""
    params = dict(source.params)
    if source.kind == "builtin":
        ds = _builtin(params, seed=seed, task=None)
    elif source.kind == "csv":
        features = params.get("features")
        ds = load_csv(params["path"], base_dir=base_dir, target=(),
                      features=(features,) if isinstance(features, str)
                      else None if features is None else tuple(features),
                      delimiter=params.get("delimiter", ","), task=REGRESSION)
    elif source.kind == "npz":
        key = params.get("x", "x")
        ds = load_npz(params["path"], base_dir=base_dir, x=key, y=key, task=REGRESSION)
    elif source.kind in ("jsonl", "parquet"):
        features = params.get("features")
        ds = (load_jsonl if source.kind == "jsonl" else load_parquet)(
            params["path"], base_dir=base_dir, target=(),
            features=(features,) if isinstance(features, str) else None if features is None else tuple(features),
            task=REGRESSION)
    elif source.kind == "npy":
        ds = load_npy(params["x"], None, base_dir=base_dir)
    elif source.kind == "idx":
        ds = load_idx(params["images"], None, base_dir=base_dir)
    elif source.kind == "images":
        ds = load_images(params["path"], base_dir=base_dir, shape=shape, task=None)
    else:
        raise ValueError(f"unknown data source `{source.kind}`")
    return dataclasses.replace(ds, y=ds.x.copy(), task=REGRESSION, classes=None, target_names=None)


def load_split(source: DataSource, *, like: Dataset, seed: int, base_dir: Path, task: str | None,
               inputs: bool = False, columns: Columns | None = None) -> Dataset:
    """A separate validation or test source (`data ... val=csv(...)`), read as `load` (or,
    with `inputs`, `load_inputs`) reads the training data `like`, and checked against it:
    the same feature columns, and its classes numbered as the training data's (a class
    the training data lacks is refused where it first occurs). It may hold one class."""
    token = _ONE_CLASS_OK.set(True)
    try:
        shape = like.features if source.kind == "images" else ()
        ds = (load_inputs(source, seed=seed, base_dir=base_dir, shape=shape) if inputs
              else load(source, seed=seed, base_dir=base_dir, task=task, columns=columns, shape=shape))
    finally:
        _ONE_CLASS_OK.reset(token)
    files = data_files(source)
    return like_training(ds, like, files.get("path") or files.get("x") or files.get("images"))


def like_training(ds: Dataset, like: Dataset, path: str | None) -> Dataset:
    """A separate validation or test set `ds` (read from `path`) checked against the
    training data `like`: the same feature columns, and its classes numbered as the
    training data's (a class the training data lacks is refused where it first occurs)."""
    if like.feature_names and ds.feature_names and tuple(like.feature_names) != tuple(ds.feature_names):
        raise DataError(f"the feature columns are {_listing(ds.feature_names)}, but the training data's are "
                        f"{_listing(like.feature_names)}", path=path,
                        help="give both the same columns in the same order, as with `features=[...]`")
    if ds.task != like.task:
        raise DataError(f"the targets read as {ds.task}, but the training data's as {like.task}", path=path,
                        help="both need the same kind of target")
    numbered = lambda c: c == tuple(str(i) for i in range(len(c)))  # noqa: E731  class indices, not names
    if like.classes is None or ds.classes is None or (numbered(like.classes) and numbered(ds.classes)):
        return ds
    rank = {c: i for i, c in enumerate(like.classes)}
    codes = np.asarray(ds.y if ds.task == MULTICLASS else ds.y[:, 0]).astype(np.int64)
    unseen = np.array([c not in rank for c in ds.classes])
    if unseen[codes].any():
        i = int(np.argmax(unseen[codes]))
        name = ds.classes[codes[i]]
        where = {"row": int(ds.lines[i])} if ds.lines is not None else {}
        at = "" if where else f" (example {i})"
        raise DataError(f"class `{_excerpt(name)}` does not occur in the training data{at}", path=path,
                        column=ds.target_names[0] if ds.target_names and where else None, **where,
                        help=f"the training data's classes are {_listing(like.classes)}")
    recode = np.array([rank[c] for c in ds.classes], dtype=np.int64)[codes]
    y = recode.astype(np.int32) if ds.task == MULTICLASS else recode.reshape(-1, 1).astype(np.float32)
    return dataclasses.replace(ds, y=y, classes=like.classes)


# ---------------------------------------------------------------------------------------
# Built-in datasets: each is `generate(rng, **params) -> (x, labels, info)`. `labels` are
# int class indices for classification and float (n, k) for regression. Classes are
# balanced and the examples shuffled, so every split sees every class.

Generated = tuple[np.ndarray, np.ndarray]


def _balanced(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    return rng.permutation(np.arange(n) % k)


def _pass_class(rng: np.random.Generator, *, n: int, noise: float) -> Generated:
    lectures = rng.integers(0, 21, n).astype(np.float64)
    hours = np.round(rng.uniform(0, 40, n) * 2) / 2
    score = lectures / 20 + hours / 40 + noise * rng.normal(size=n)
    return np.stack([lectures, hours], 1), (score > 1.0).astype(np.int64)


def _linear(rng: np.random.Generator, *, n: int, margin: float) -> Generated:
    angle = rng.uniform(0, 2 * np.pi)
    normal = np.array([np.cos(angle), np.sin(angle)])
    offset = rng.uniform(-0.25, 0.25)
    x = rng.uniform(-1, 1, (n, 2))
    side = x @ normal - offset
    labels = _balanced(rng, n, 2)
    # Move each point to its class's side of the line, at least margin/2 away from it.
    dist = np.abs(side) + margin / 2
    x = x - np.outer(side, normal) + np.outer(np.where(labels == 1, dist, -dist), normal)
    return x, labels


def _spirals(rng: np.random.Generator, *, n: int, noise: float, turns: float) -> Generated:
    labels = _balanced(rng, n, 2)
    t = np.sqrt(rng.uniform(size=n))  # uniform over the disc's area, not along the arm
    angle = t * turns * 2 * np.pi + labels * np.pi
    x = np.stack([t * np.cos(angle), t * np.sin(angle)], 1)
    return x + noise * rng.normal(size=(n, 2)), labels


def _circles(rng: np.random.Generator, *, n: int, noise: float, factor: float) -> Generated:
    labels = _balanced(rng, n, 2)
    angle = rng.uniform(0, 2 * np.pi, n)
    radius = np.where(labels == 1, factor, 1.0)
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1)
    return x + noise * rng.normal(size=(n, 2)), labels


def _moons(rng: np.random.Generator, *, n: int, noise: float) -> Generated:
    labels = _balanced(rng, n, 2)
    t = rng.uniform(0, np.pi, n)
    upper = np.stack([np.cos(t), np.sin(t)], 1)
    lower = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1)
    x = np.where(labels[:, None] == 0, upper, lower)
    return x + noise * rng.normal(size=(n, 2)), labels


def _xor(rng: np.random.Generator, *, n: int, noise: float) -> Generated:
    quadrant = _balanced(rng, n, 4)
    sx = np.where(quadrant % 2 == 0, 1.0, -1.0)
    sy = np.where(quadrant < 2, 1.0, -1.0)
    x = np.stack([sx, sy], 1) + noise * rng.normal(size=(n, 2))
    return x, (sx != sy).astype(np.int64)


def _regression(rng: np.random.Generator, *, n: int, noise: float) -> Generated:
    x = rng.uniform(-3, 3, (n, 1))
    y = np.sin(2 * x) + 0.3 * x ** 2 - 1 + noise * rng.normal(size=(n, 1))
    return x, y


def _blobs(rng: np.random.Generator, *, n: int, classes: int, spread: float) -> Generated:
    # Centres evenly around a circle, wide enough that neighbours stay ~4 apart.
    radius = max(3.0, 0.75 * classes)
    angles = rng.uniform(0, 2 * np.pi) + np.arange(classes) * 2 * np.pi / classes
    centres = radius * np.stack([np.cos(angles), np.sin(angles)], 1)
    labels = _balanced(rng, n, classes)
    return centres[labels] + spread * rng.normal(size=(n, 2)), labels


def _digits(rng: np.random.Generator, *, image: bool) -> Generated:
    table = _digits_table()
    x = table[:, :-1]
    return (x.reshape(-1, 8, 8, 1) if image else x), table[:, -1].astype(np.int64)


def _digits_table() -> np.ndarray:
    """scikit-learn's digits as `load_digits()` reads them (its `digits.csv.gz`: 64 pixels
    then the class, a row per image), read without importing scikit-learn, which takes
    1.4 s of a cold `nnspec train` of the digits; `load_digits()` where the file is not
    where this scikit-learn keeps it."""
    import gzip
    import importlib.util
    found = importlib.util.find_spec("sklearn")
    if found is None:
        raise DataError("the `digits` dataset needs scikit-learn, which is not installed",
                        help="install it with `pip install scikit-learn`")
    for folder in found.submodule_search_locations or ():
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, "rt", encoding="ascii") as f:
                table = np.array([line.split(",") for line in f.read().split()], dtype=np.float64)
            if table.shape == (1797, 65):
                return table
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("the `digits` dataset needs scikit-learn, which is not installed",
                        help="install it with `pip install scikit-learn`") from None
    bunch = load_digits()
    return np.concatenate([np.asarray(bunch.data, np.float64), np.asarray(bunch.target, np.float64)[:, None]], 1)


def _waves(rng: np.random.Generator, *, n: int, steps: int, noise: float) -> Generated:
    labels = _balanced(rng, n, 2)
    cycles = rng.uniform(1, 2, n) + 2 * labels  # low: 1-2 cycles, high: 3-4 (≥ 2.5 samples per cycle)
    phase = rng.uniform(0, 2 * np.pi, n)
    t = np.arange(steps) / steps
    x = np.sin(2 * np.pi * cycles[:, None] * t + phase[:, None])
    return (x + noise * rng.normal(size=(n, steps)))[:, :, None], labels


def _brackets(rng: np.random.Generator, *, n: int, steps: int) -> Generated:
    labels = _balanced(rng, n, 2)
    pairs = rng.integers((steps + 3) // 4, steps // 2 + 1, n)  # even lengths from steps/2 to steps
    walk = _bracket_walks(rng, pairs, steps)
    # Balanced: reflect each stretch below zero, which keeps the counts; the walk becomes |walk|.
    walk = np.where(labels[:, None] == 1, np.abs(walk), walk)
    while True:  # unbalanced: draw again the few that came out balanced
        redo = np.flatnonzero((labels == 0) & (walk.min(1) >= 0))
        if not redo.size:
            break
        walk[redo] = _bracket_walks(rng, pairs[redo], steps)
    step = np.diff(walk, axis=1, prepend=0)  # +1 is (, -1 is ), 0 is padding
    return np.where(step > 0, 1, np.where(step < 0, 2, 0)), labels


def _bracket_walks(rng: np.random.Generator, pairs: np.ndarray, steps: int) -> np.ndarray:
    """Running depth of `pairs` ( and as many ), in a random order, padded to `steps`."""
    position = np.arange(steps)
    keys = np.where(position < 2 * pairs[:, None], rng.random((len(pairs), steps)), np.inf)
    order = np.argsort(keys, axis=1)  # a random order of the first 2·pairs positions
    sign = np.where(order < pairs[:, None], 1, np.where(order < 2 * pairs[:, None], -1, 0))
    return np.cumsum(sign, axis=1)


def _order(rng: np.random.Generator, *, n: int, steps: int, vocab: int) -> Generated:
    labels = _balanced(rng, n, 2)
    x = rng.integers(3, vocab, (n, steps))
    where = np.sort(np.argsort(rng.random((n, steps)), axis=1)[:, :2], axis=1)
    rows = np.arange(n)
    x[rows, where[:, 0]] = np.where(labels == 1, 1, 2)
    x[rows, where[:, 1]] = np.where(labels == 1, 2, 1)
    return x, labels


def _running_max(rng: np.random.Generator, *, n: int, steps: int, vocab: int) -> Generated:
    x = rng.integers(1, vocab, (n, steps))
    return x, np.maximum.accumulate(x, axis=1)  # a class per step: the largest id so far


GENERATORS: Mapping[str, Callable[..., Generated]] = {
    "pass_class": _pass_class,
    "linear": _linear,
    "spirals": _spirals,
    "circles": _circles,
    "moons": _moons,
    "xor": _xor,
    "regression": _regression,
    "blobs": _blobs,
    "digits": _digits,
    "waves": _waves,
    "brackets": _brackets,
    "order": _order,
    "running_max": _running_max,
}

_NAMES: Mapping[str, tuple[tuple[str, ...] | None, tuple[str, ...], tuple[str, ...] | None]] = {
    # dataset: (feature names, target names, class names)
    "pass_class": (("lectures", "hours"), ("passed",), ("fail", "pass")),
    "regression": (("x",), ("y",), None),
    "waves": (None, ("high",), ("low", "high")),
    "brackets": (None, ("balanced",), ("unbalanced", "balanced")),
    "order": (None, ("first",), ("2 first", "1 first")),
}


def _builtin(params: dict[str, Any], *, seed: int, task: str | None) -> Dataset:
    name = params.pop("name")
    entry = DATASETS.get(name)
    if entry is None:
        raise DataError(f"unknown dataset `{name}`",
                        help=did_you_mean(name, DATASETS.names(),
                                          fallback="the datasets are " + _listing(DATASETS.names())))
    params = {**entry.defaults(), **params}
    x, labels = GENERATORS[entry.name](np.random.default_rng(seed), **params)
    own = entry.attrs["task"]
    feature_names, target_names, class_names = _builtin_names(entry.name, x.shape[1:])
    x = x.astype(np.float32)
    if own == REGRESSION:
        if task in (BINARY, MULTICLASS):
            raise DataError(f"dataset `{entry.name}` has a numeric target, not classes",
                            help="use a regression loss such as `mse`")
        return Dataset(x, labels.astype(np.float32), REGRESSION, None, feature_names,
                       target_names)
    k = classes_of(entry, params)
    assert k is not None  # not a regression dataset: it has classes
    names = class_names or tuple(str(i) for i in range(k))
    want = task or own
    if want != MULTICLASS and k != 2:
        raise DataError(f"dataset `{entry.name}` has {k} classes; a {want} loss needs 2",
                        help="use a multiclass loss such as `categorical_crossentropy`")
    if want == REGRESSION:  # a 0/1 target fitted as a number, as with a perceptron and mse
        return Dataset(x, _encode_classes(labels, BINARY), REGRESSION, None, feature_names,
                       target_names)
    return Dataset(x, _encode_classes(labels, want), want, names, feature_names, target_names)


def _builtin_names(name: str, features: tuple[int, ...]
                   ) -> tuple[tuple[str, ...] | None, tuple[str, ...], tuple[str, ...] | None]:
    """(feature names, target names, class names) of a built-in dataset; up to 16 flat
    features without names of their own are `x1`, `x2`, ..."""
    feature_names, target_names, class_names = _NAMES.get(name, (None, ("y",), None))
    if feature_names is None and len(features) == 1 and features[0] <= 16:
        feature_names = tuple(f"x{i + 1}" for i in range(features[0]))
    return feature_names, target_names, class_names


def _encode_classes(labels: np.ndarray, task: str) -> np.ndarray:
    """Class indices (n,) -> the `y` layout of `task`."""
    if task == MULTICLASS:
        return labels.astype(np.int32)
    return labels.reshape(len(labels), -1).astype(np.float32)


# ---------------------------------------------------------------------------------------
# Files.

def _resolve(path: str, base_dir: Path, kind: str) -> Path:
    full = Path(path) if os.path.isabs(path) else Path(base_dir) / path
    if full.is_dir():
        raise DataError("is a folder, not a file", path=path,
                        help=f"name the {kind} file inside it")
    if not full.is_file():
        siblings: list[str] = []
        # Only from inside the spec's folder: a did-you-mean must not reveal which files
        # exist elsewhere on the machine.
        if full.parent.is_dir() and _inside(full.parent, base_dir):
            siblings = sorted(p.name for p in full.parent.iterdir() if p.is_file())
        hint = did_you_mean(full.name, siblings)
        where = f"looked for `{full}`; paths are relative to the spec's folder"
        raise DataError("file not found", path=path,
                        help=f"{hint} ({where})" if hint else where)
    return full


def _inside(folder: Path, base_dir: Path) -> bool:
    try:
        folder.resolve().relative_to(Path(base_dir).resolve())
    except (ValueError, OSError):
        return False
    return True


_NUMBER = NUMBER
_NONFINITE = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity",
              "-infinity"}
_F32_MAX = float(np.finfo(np.float32).max)


class _CellError(Exception):
    def __init__(self, message: str, help: str | None = None) -> None:
        self.message = message
        self.help = help


def _number(cell: str) -> float:
    """A strictly parsed finite number (no `1_000`, no `0x10`, no non-ASCII digits)."""
    text = cell.strip()
    if not text:
        raise _CellError("missing value", "fill in the value or remove the row")
    if text.lower() in _NONFINITE:
        raise _CellError(f"`{_excerpt(text)}` is not a finite number",
                         "fill in a real value or remove the row")
    if not _NUMBER.fullmatch(text):
        help = None
        if re.fullmatch(r"[+-]?[0-9]+,[0-9]+", text):
            help = "write decimals with a point, as in `1.5`"
        raise _CellError(f"cannot read `{_excerpt(text)}` as a number", help)
    value = float(text)
    if not abs(value) <= _F32_MAX:
        raise _CellError(f"`{_excerpt(text)}` is too large for a 32-bit float")
    return value


# Caps on what one line may hold, checked on the raw line before the CSV reader splits
# it: a header of 10 million columns would otherwise become 10 million strings (2 GB).
MAX_LINE_BYTES = 4 << 20
MAX_COLUMNS = 100_000


def _lines(path: Path, display: str, delimiter: str) -> Iterator[str]:
    """The file's lines, decoded one at a time so a bad byte is reported at its line."""
    try:
        f = formats.open_binary(path)
    except OSError as exc:
        raise DataError(f"cannot read the file ({exc.strerror or exc})", path=display) from None
    with f:
        number = 0
        while True:
            try:
                raw = f.readline(MAX_LINE_BYTES + 1)
            except formats.READ_ERRORS as exc:  # a read error (or damaged compressed data), reported as one
                raise DataError(formats.read_error(exc, path), path=display, row=number + 1,
                                help=formats.read_help(exc, path)) from None
            if not raw:
                return
            number += 1
            if len(raw) > MAX_LINE_BYTES:
                raise DataError(f"the line is longer than {MAX_LINE_BYTES >> 20} MiB",
                                path=display, row=number,
                                help="check that this is a CSV file with one example a line")
            if raw.count(delimiter.encode("utf-8")) >= MAX_COLUMNS:
                raise DataError(f"the line holds more than {MAX_COLUMNS:,} values",
                                path=display, row=number,
                                help=f"nnspec reads at most {MAX_COLUMNS:,} columns; save wide "
                                     f"data as an `.npz` archive instead")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError("the file is not UTF-8 text", path=display, row=number,
                                help="save it as UTF-8 CSV, or check that it is the right "
                                     "file") from None
            yield line.lstrip("\ufeff") if number == 1 else line


def _records(full: Path, path: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(first line, values) of each CSV record that is not a blank line."""
    if len(delimiter) != 1:
        raise DataError(f"the delimiter must be one character, found `{_excerpt(delimiter)}`",
                        path=path)
    reader = csv.reader(_lines(full, path, delimiter), delimiter=delimiter,
                        skipinitialspace=True, strict=True)
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataError(f"cannot read the line as CSV ({exc})", path=path, row=start,
                            help="check the quotes: a value that starts with `\"` must "
                                 "end with one") from None
        if len(row) > 1 or (row and row[0].strip()):
            yield start, row


def _first_record(stream: Iterator[tuple[int, list[str]]], path: str) -> tuple[int, list[str]]:
    header_row, header = next(stream, (0, None))
    if header is None:
        raise DataError("the file is empty", path=path,
                        help="the first line must name the columns, as in `x1,x2,label`")
    return header_row, header


def load_csv(path: str, *, base_dir: Path, target: tuple[str, ...],
             features: tuple[str, ...] | None = None, delimiter: str = ",",
             task: str | None = None, columns: Columns | None = None) -> Dataset:
    """A CSV file with a header row: numeric feature columns and one or more targets.

    Read in bulk where the file is clean; otherwise row by row, stopping at the first
    problem, raising `DataError` located at it. A name ending in `.gz`, `.bz2` or `.xz`
    is decompressed."""
    full = _resolve(path, base_dir, "CSV")
    stream = _records(full, path, delimiter)
    header_row, header = _first_record(stream, path)
    return _table(path, header_row, header, stream, target=target, features=features, task=task,
                  delimiter=delimiter, encoding=columns, bulk=lambda **kw: _fast_table(full, delimiter=delimiter,
                                                                      skip=header_row, path=path, **kw))


def _table(path: str, header_row: int, header: list[str], stream: Iterator[tuple[int, list[str]]], *,
           target: tuple[str, ...], features: tuple[str, ...] | None, task: str | None, delimiter: str,
           bulk: Callable[..., Any] | None = None, encoding: Columns | None = None) -> Dataset:
    """A table of text cells (a CSV file's, a JSON lines file's) -> a `Dataset`: the
    columns named in `header`, then each row of `stream`, checked row by row (unless
    `bulk` reads the whole table at once, or gives up with None)."""
    columns = _header(header, path=path, row=header_row)

    def lookup(names: tuple[str, ...], what: str) -> list[int]:
        return _lookup(names, what, columns, header, path=path, row=header_row,
                       delimiter=delimiter)

    target_idx = lookup(target, "target")
    if features is None:
        feature_idx = [i for i in range(len(columns)) if i not in target_idx]
        if not feature_idx:
            raise DataError("no feature columns: every column is a target", path=path,
                            row=header_row, help="add feature columns to the file")
    else:
        feature_idx = lookup(features, "features")
        both = [columns[i] for i in feature_idx if i in target_idx]
        if both:
            raise DataError(f"column `{both[0]}` is both a target and a feature", path=path,
                            help=f"remove `{both[0]}` from `features`")
    feature_names = tuple(columns[i] for i in feature_idx)
    target_names = tuple(columns[i] for i in target_idx)
    if task == MULTICLASS and len(target_idx) > 1:
        raise DataError(f"a multiclass target is one column, found {len(target_idx)} "
                        f"({_listing(target_names)})", path=path,
                        row=header_row,
                        help="name one column in `target`")

    if encoding is not None and not encoding.trivial:
        return _raw_table(path, header_row, stream, encoding, columns, feature_idx=feature_idx,
                          target_idx=target_idx, target_names=target_names, task=task, delimiter=delimiter)
    fast = None if bulk is None else bulk(width=len(columns), feature_idx=feature_idx, target_idx=target_idx,
                                          target_names=target_names, task=task)
    if fast is not None:
        x, y, task_, classes, lines_ = fast
        return Dataset(x, y, task_, classes, feature_names, target_names, lines_)
    values = array("d")
    lines = array("q")
    targets = _Targets(target_names, task, path)
    width = len(columns)
    # a row costs 8 bytes a value as read, 4 as float32, and its line number
    most = _max_rows(12 * len(feature_idx) + 20 * len(target_idx) + 8)
    n = 0
    for line, row in stream:
        if n == most:
            raise _too_many_rows(most, path, line)
        _check_width(row, width, path=path, line=line, delimiter=delimiter)
        _append_numbers(values, row, feature_idx, feature_names, path=path, line=line)
        if target_idx:
            targets.add([row[i] for i in target_idx], line)
        lines.append(line)
        n += 1
    if n == 0:
        raise DataError("the file has a header but no data rows", path=path,
                        help="add one row per example below the header")
    x = np.frombuffer(values, dtype=np.float64).reshape(n, len(feature_idx)).astype(np.float32)
    y, task_, classes = targets.finish() if target_idx else (x.copy(), REGRESSION, None)
    return Dataset(x, y, task_, classes, feature_names, target_names,
                   np.frombuffer(lines, dtype=np.int64))


def _raw_table(path: str, header_row: int, stream: Iterator[tuple[int, list[str]]], encoding: Columns,
               columns: list[str], *, feature_idx: list[int], target_idx: list[int],
               target_names: tuple[str, ...], task: str | None, delimiter: str) -> Dataset:
    """`_table` for a table with `categorical` or `missing` columns: each feature cell kept
    as read (`Dataset.raw`), a row `missing drop` drops counted and left out."""
    feature_names = tuple(columns[i] for i in feature_idx)
    for name, named_by in encoding.named():
        if name not in columns:
            raise DataError(f"no column named `{_excerpt(name)}` (named by `{named_by}`)", path=path, row=header_row,
                            help=_missing_column_help(name, columns, columns, delimiter))
        if name not in feature_names:
            raise DataError(f"column `{_excerpt(name)}` (named by `{named_by}`) is not a feature", path=path,
                            row=header_row, help=f"add it to `features`, or remove it from `{named_by}`")
    reader = _RawCells(feature_names, encoding)
    rows: list[list[Any]] = []
    lines = array("q")
    targets = _Targets(target_names, task, path)
    width = len(columns)
    most = _max_rows(60 * len(feature_idx) + 20 * len(target_idx) + 8)
    dropped = 0
    for line, row in stream:
        if len(rows) == most:
            raise _too_many_rows(most, path, line)
        _check_width(row, width, path=path, line=line, delimiter=delimiter)
        cells = reader.row([row[i] for i in feature_idx], path=path, line=line)
        if cells is None:
            dropped += 1
            continue
        if target_idx:
            targets.add([row[i] for i in target_idx], line)
        rows.append(cells)
        lines.append(line)
    if not rows:
        raise DataError("the file has a header but no data rows" if not dropped else
                        f"`missing drop` drops every row ({dropped}): each has a missing value", path=path,
                        help="add one row per example below the header" if not dropped else
                        "fill the missing values with `missing mean` (or `median`, `mode`, a constant)")
    x = np.empty((len(rows), len(feature_idx)), dtype=object)
    x[:] = rows
    y, task_, classes = targets.finish() if target_idx else (None, REGRESSION, None)
    # y is None only without targets (`target input`), which the checker refuses with `categorical`/`missing`
    return Dataset(x, y, task_, classes, feature_names, target_names, np.frombuffer(lines, dtype=np.int64),  # type: ignore[arg-type]
                   raw=True, dropped=dropped, path=path)


class _RawCells:
    """One row's feature cells as `Dataset.raw` keeps them: a float (NaN for an empty
    cell) in a numeric column, the category (`""` for an empty cell) in a categorical one.
    An empty cell that `missing` refuses is an error where it is; `row` gives None for a
    row `missing drop` drops. `fill_of` maps a column to its Fill (training) or to what
    a fitted column allows (prediction: `missing_ok`)."""

    def __init__(self, names: tuple[str, ...], encoding: Columns | None = None,
                 encoder: Encoder | None = None) -> None:
        self.names = names
        if encoder is not None:
            self.category = [c.kind == "category" for c in encoder.columns]
            self.how = ["fill" if c.fill is not None else "predict_drop" if c.drop else "error" for c in encoder.columns]
        else:
            assert encoding is not None
            self.category = [n in encoding.categorical for n in names]
            self.how = [encoding.fill_of(n).how for n in names]

    def row(self, cells: list[str], *, path: str, line: int) -> list[Any] | None:
        out: list[Any] = []
        drop = False
        for cell, name, cat, how in zip(cells, self.names, self.category, self.how):
            text = cell.strip()
            if not text:
                if how == "drop":
                    drop = True
                elif how in ("error", "predict_drop"):
                    raise DataError("missing value", path=path, row=line, column=name,
                                    help="the model was trained with `missing drop`, which drops such rows: fill in "
                                         "the value to predict for it" if how == "predict_drop" else
                                         "fill in the value or remove the row, or say what fills it with `missing`, "
                                         f"as in `missing {name}=median`")
                out.append("" if cat else math.nan)
                continue
            if cat:
                out.append(category(text))
                continue
            try:
                out.append(_number(text))
            except _CellError as exc:
                help = exc.help
                if exc.message.startswith("cannot read"):
                    help = f"features must be numbers; if `{name}` holds categories, write `categorical {name}`"
                raise DataError(exc.message, path=path, row=line, column=name, help=help) from None
        return None if drop else out


@overload
def encode(ds: Dataset, encoder: Encoder) -> Dataset: ...
@overload
def encode(ds: None, encoder: Encoder) -> None: ...
def encode(ds: Dataset | None, encoder: Encoder) -> Dataset | None:
    """`ds` (raw cells) with `encoder`'s float32 features; a cell it cannot encode is a
    DataError at the file's line and column."""
    if ds is None:
        return None
    if tuple(ds.feature_names or encoder.names) != encoder.names:
        raise DataError(f"the feature columns are {_listing(ds.feature_names)}, but the encoding's are "
                        f"{_listing(encoder.names)}", path=ds.path,
                        help="read the data with the spec the run was trained with")
    try:
        x = encoder.transform(ds.x)
    except EncodeError as exc:
        row = int(ds.lines[exc.index]) if exc.index is not None and ds.lines is not None else None
        raise DataError(exc.message, path=ds.path, row=row, column=exc.column, help=exc.help) from None
    return dataclasses.replace(ds, x=x, raw=False, encoder=encoder)


def fit_encoder(train: Dataset, encoding: Columns) -> Encoder:
    """The encoding of the training split's raw cells (statistics of its rows only)."""
    try:
        return Encoder.fit(train.x, tuple(train.feature_names or ()), encoding, dropped=train.dropped)
    except EncodeError as exc:
        raise DataError(exc.message, path=train.path, column=exc.column, help=exc.help) from None


def read_raw(path: str, *, base_dir: Path, encoder: Encoder, delimiter: str = ",") -> tuple[np.ndarray, tuple[str, ...]]:
    """Rows to predict on for a run with an encoder: `(x, ignored)`, `x` its float32
    features, the header matched by the run's feature names (`read_features` with raw
    cells): an unseen category or a refused missing value is located in the file."""
    full = _resolve(path, base_dir, "CSV")
    stream = _records(full, path, delimiter)
    first_line, first = _first_record(stream, path)
    header_cols = _header(first, path=path, row=first_line)
    index = _lookup(encoder.names, "the model's features", header_cols, first, path=path, row=first_line,
                    delimiter=delimiter)
    ignored = tuple(c for i, c in enumerate(header_cols) if i not in set(index))
    reader = _RawCells(encoder.names, encoder=encoder)
    rows: list[list[Any]] = []
    lines = array("q")
    most = _max_rows(60 * len(index) + 8)
    for line, row in stream:
        if len(rows) == most:
            raise _too_many_rows(most, path, line)
        _check_width(row, len(header_cols), path=path, line=line, delimiter=delimiter)
        cells = reader.row([row[i] for i in index], path=path, line=line)
        assert cells is not None  # only training drops rows
        rows.append(cells)
        lines.append(line)
    if not rows:
        raise DataError("the file has a header but no data rows", path=path,
                        help="add one row per example below the header")
    x = np.empty((len(rows), len(index)), dtype=object)
    x[:] = rows
    ds = Dataset(x, np.zeros((len(rows), 0), np.float32), REGRESSION, lines=np.frombuffer(lines, dtype=np.int64),
                 raw=True, path=path)
    out = encode(ds, encoder)
    assert out is not None
    return out.x, ignored


def _fast_table(full: Path, *, delimiter: str, skip: int, width: int, feature_idx: list[int],
                target_idx: list[int], target_names: tuple[str, ...], task: str | None, path: str,
                ) -> tuple[np.ndarray, np.ndarray, str, tuple[str, ...] | None, np.ndarray] | None:
    """`(x, y, task, classes, lines)` of a clean file read in bulk (formats.fast_csv), as
    the row-by-row reader would give them; None wherever it might not, so that the
    row-by-row reader reads the file and reports its first problem where it is."""
    used = set(feature_idx) | set(target_idx)
    text_column = target_idx[0] if len(target_idx) == 1 and task != REGRESSION else None
    # the text, the float64 table and the float32 copies all within the memory budget
    got = formats.read_bulk(full, lambda f: formats.fast_csv(
        f, delimiter=delimiter, skip=skip, width=width, text_column=text_column,
        ignore=tuple(i for i in range(width) if i not in used), limit=memory_budget() // 8))
    if got is None:
        return None
    values, lines, labels = got
    numeric = feature_idx + (target_idx if labels is None else [])
    if not (np.abs(values[:, numeric]) <= _F32_MAX).all():  # NaN, ±inf and too large: say where, row by row
        return None
    if len(values) > _max_rows(12 * len(feature_idx) + 20 * len(target_idx) + 8):
        return None
    x = values[:, feature_idx].astype(np.float32)
    if not target_idx:
        return x, x.copy(), REGRESSION, None, lines
    if labels is None:
        y = values[:, target_idx]
        if task == BINARY and not np.isin(y, (0.0, 1.0)).all():
            return None
        if task == MULTICLASS and not ((y >= 0) & (y == np.floor(y))).all():
            return None
        targets = _Targets(target_names, task, path)
        targets.numeric, targets.first_line = True, int(lines[0])
        targets.numbers.frombytes(np.ascontiguousarray(y).tobytes())
        y_, task_, classes = targets.finish()
        return x, y_, task_, classes, lines
    classes = tuple(sorted(labels))
    if (len(classes) < 2 and not _ONE_CLASS_OK.get()) or (task == BINARY and len(classes) > 2):
        return None
    rank = {c: i for i, c in enumerate(classes)}
    recode = np.array([rank[c] for c in labels], dtype=np.int64)
    task_ = task or (BINARY if len(classes) == 2 else MULTICLASS)
    return x, _encode_classes(recode[values[:, target_idx[0]].astype(np.int64)], task_), task_, classes, lines


def read_features(path: str, *, base_dir: Path, names: tuple[str, ...] | None, width: int,
                  delimiter: str = ",", header: bool = True) -> tuple[np.ndarray, tuple[str, ...]]:
    """Feature rows to predict on, with the training reader's rules: `(x, ignored)`.

    `x` is float32 (n, width). With `names` (the training data's feature columns), the
    header is matched by name, in any order; columns that are not features (the training
    file's targets, an id) are `ignored`. Without names, columns are taken by position
    and the header must be `width` wide. A first line of numbers where names are expected
    is refused, never read as a header; with `header=False` every line is an example."""
    full = _resolve(path, base_dir, "CSV")
    stream = _records(full, path, delimiter)
    first_line, first = _first_record(stream, path)
    ignored: tuple[str, ...] = ()
    if not header:
        if not any(_NUMBER.fullmatch(c.strip()) for c in first):
            raise DataError("the first line holds no numbers, only what look like column names",
                            path=path, row=first_line,
                            help="drop `--no-header`: the file has a header")
        columns = list(names) if names is not None else [f"#{i + 1}" for i in range(width)]
        rows: Iterator[tuple[int, list[str]]] = itertools.chain([(first_line, first)], stream)
        index = list(range(width))
        row_width = width
    else:
        cells = [c.strip() for c in first]
        if (names is None or not set(names) <= set(cells)) and cells and all(
                _NUMBER.fullmatch(c) or c.lower() in _NONFINITE for c in cells):
            raise DataError("the first line holds numbers, not column names", path=path,
                            row=first_line, help="if the file has no header, pass `--no-header` "
                            "to read the columns in the order the model takes them")
        header_cols = _header(first, path=path, row=first_line)
        if names is None:
            if len(header_cols) != width:
                raise DataError(f"the header has {len(header_cols)} columns, but the model "
                                f"takes {width} inputs", path=path, row=first_line,
                                help="the training data named no columns, so the columns "
                                     "are read by position: give one per input")
            columns, index = header_cols, list(range(width))
        else:
            index = _lookup(names, "the model's features", header_cols, first, path=path,
                            row=first_line, delimiter=delimiter)
            columns = list(names)
            used = set(index)
            ignored = tuple(c for i, c in enumerate(header_cols) if i not in used)
        rows, row_width = stream, len(header_cols)
    most = _max_rows(12 * width)
    got = formats.read_bulk(full, lambda f: formats.fast_csv(
        f, delimiter=delimiter, skip=first_line if header else first_line - 1, width=row_width,
        ignore=tuple(i for i in range(row_width) if i not in set(index)), limit=memory_budget() // 8))
    if got is not None and len(got[0]) <= most and (np.abs(got[0][:, index]) <= _F32_MAX).all():
        return got[0][:, index].astype(np.float32), ignored
    values = array("d")
    n = 0
    for line, row in rows:
        if n == most:
            raise _too_many_rows(most, path, line)
        _check_width(row, row_width, path=path, line=line, delimiter=delimiter, header=header)
        _append_numbers(values, row, index, tuple(columns), path=path, line=line,
                        training=False)
        n += 1
    if n == 0:
        raise DataError("the file has a header but no data rows", path=path,
                        help="add one row per example below the header")
    x = np.frombuffer(values, dtype=np.float64).reshape(n, width).astype(np.float32)
    return x, ignored


def class_names(source: DataSource) -> tuple[str, ...] | None:
    """The class names a built-in dataset gives its labels (as `load` names them); None
    for a regression dataset and for files, whose classes only a full read can tell."""
    entry = DATASETS.get(str(source.params.get("name"))) if source.kind == "builtin" else None
    if entry is None or entry.attrs["task"] == REGRESSION:
        return None
    names = _builtin_names(entry.name, features_of(entry, source.params))[2]
    return names or tuple(str(i) for i in range(classes_of(entry, source.params) or 0))


def feature_names(source: DataSource, *, base_dir: Path) -> tuple[str, ...] | None:
    """The names of the features `source` gives, as `load` would name them, reading at
    most a file's header (a CSV file's first line, a JSON lines file's first object, a
    Parquet file's schema); None for data without names (NPZ, `.npy`, IDX)."""
    params = dict(source.params)
    if source.kind == "builtin":
        entry = DATASETS.get(params["name"])
        if entry is None:
            return None
        return _builtin_names(entry.name, features_of(entry, params))[0]
    if source.kind not in ("csv", "jsonl", "parquet"):
        return None
    if params.get("features") is not None:
        features = params["features"]
        return (features,) if isinstance(features, str) else tuple(features)
    target = params.get("target") or ()  # none: `target input`, every column a feature
    target = (target,) if isinstance(target, str) else tuple(target)
    path, delimiter = params["path"], params.get("delimiter", ",")
    row: int | None  # the header's line (a Parquet file has none)
    if source.kind == "csv":
        stream = _records(_resolve(path, base_dir, "CSV"), path, delimiter)
        row, header = _first_record(stream, path)
        columns = _header(header, path=path, row=row)
    else:  # a JSON lines file's first object's keys; a Parquet file's schema
        try:
            if source.kind == "jsonl":
                row, first = next(formats.jsonl_rows(_lines(_resolve(path, base_dir, "JSON lines"), path, "\n")),
                                  (None, None))
                header = list(first or ())
            else:
                row, header = None, formats.read_parquet(_resolve(path, base_dir, "Parquet"), [])[0]
        except formats.FormatError as exc:
            raise _located(exc, path) from None
        columns, delimiter = header, "\n"
    _lookup(target, "target", columns, header, path=path, row=row, delimiter=delimiter)
    return tuple(c for c in columns if c not in target)


def _max_rows(row_bytes: int) -> int:
    """How many CSV rows of `row_bytes` each the memory budget holds."""
    return max(1, memory_budget() // row_bytes)


def _too_many_rows(most: int, path: str, line: int) -> DataError:
    from nnspec.check import show_bytes
    return DataError(f"the file has more than {most:,} rows, more than fit in the "
                     f"{show_bytes(memory_budget())} allowed (half of this machine's memory)",
                     path=path, row=line, help="use fewer examples, or a machine with more memory")


def _lookup(names: tuple[str, ...], what: str, columns: list[str], header: list[str], *,
            path: str, row: int | None, delimiter: str) -> list[int]:
    """The positions of `names` in the header, refusing a name listed twice or missing."""
    index = {name: i for i, name in enumerate(columns)}
    seen: set[str] = set()
    out = []
    for name in names:
        if name in seen:
            raise DataError(f"column `{_excerpt(name)}` is listed twice in `{what}`", path=path)
        seen.add(name)
        if name not in index:
            raise DataError(f"no column named `{_excerpt(name)}`", path=path, row=row,
                            help=_missing_column_help(name, columns, header, delimiter))
        out.append(index[name])
    return out


def _check_width(row: list[str], width: int, *, path: str, line: int, delimiter: str,
                 header: bool = True) -> None:
    if len(row) != width:
        raise DataError(f"expected {width} values, found {len(row)}", path=path, row=line,
                        help=_ragged_help(row, width, delimiter) if header else
                        f"without a header, every row holds the model's {width} inputs in order")


def _append_numbers(values: array, row: list[str], index: list[int], names: tuple[str, ...], *,
                    path: str, line: int, training: bool = True) -> None:
    """Append the feature cells `index` of one row, refusing the first that is no number
    (in training data, with how to leave a text column out)."""
    for i, name in zip(index, names):
        try:
            values.append(_number(row[i]))
        except _CellError as exc:
            help = exc.help
            if help is None and training and exc.message.startswith("cannot read"):
                help = _text_feature_help(name, names)
            elif training and exc.message == "missing value":  # as the `missing` reader says it
                help = f"{help}, or say what fills it with `missing`, as in `missing {name}=median`"
            raise DataError(exc.message, path=path, row=line, column=name,
                            help=help) from None


def _header(header: list[str], *, path: str, row: int) -> list[str]:
    columns = [name.strip() for name in header]
    first: dict[str, int] = {}
    for i, name in enumerate(columns):
        if not name:
            raise DataError(f"column {i + 1} of the header has no name", path=path, row=row,
                            help="every column needs a name in the first line")
        if name in first:
            raise DataError(f"appears twice in the header (columns {first[name] + 1} and "
                            f"{i + 1})", path=path, row=row, column=name,
                            help="give each column its own name")
        first[name] = i
    return columns


def _missing_column_help(name: str, columns: list[str], header: list[str],
                         delimiter: str) -> str:
    if len(columns) == 1:
        for other in (";", "\t", ",", "|"):
            if other != delimiter and other in header[0]:
                shown = "\\t" if other == "\t" else other
                return f"the header looks `{shown}`-separated: add `delimiter=\"{shown}\"`"
    return did_you_mean(name, columns, fallback="the columns are " + _listing(columns))


def _ragged_help(row: list[str], width: int, delimiter: str) -> str:
    if len(row) > width and delimiter == ",":
        return ("every row needs one value per header column; a value with a `,` in it "
                "must be in double quotes")
    return "every row needs one value per header column"


def _text_feature_help(name: str, feature_names: tuple[str, ...]) -> str | None:
    rest = [f for f in feature_names if f != name]
    if not rest:
        return None
    listed = ", ".join(f'"{f}"' for f in rest)
    return f"features must be numbers; to leave `{name}` out, write `features=[{listed}]`"


class _Targets:
    """Reads target cells row by row and encodes them for the task.

    A column whose first value is a number is numeric: every value must then be a
    number. Otherwise its values are class names, sorted for the class indices."""

    def __init__(self, names: tuple[str, ...], task: str | None, path: str) -> None:
        self.names = names
        self.task = task
        self.path = path
        self.numbers = array("d")
        self.text: list[str] = []
        self.first_row: dict[str, int] = {}
        self.numeric: bool | None = None
        self.first_line = 0

    def error(self, message: str, line: int, column: str | None = None,
              help: str | None = None) -> DataError:
        return DataError(message, path=self.path, row=line,
                         column=column or self.names[0], help=help)

    def add(self, cells: list[str], line: int) -> None:
        if self.numeric is None:
            self.first_line = line
            self.numeric = self.task == REGRESSION or len(cells) > 1 or all(
                _NUMBER.fullmatch(c.strip()) or c.strip().lower() in _NONFINITE for c in cells)
        if self.numeric:
            for cell, name in zip(cells, self.names):
                try:
                    v = _number(cell)
                except _CellError as exc:
                    help = exc.help
                    if self.task == REGRESSION and exc.message.startswith("cannot read"):
                        help = "a regression loss needs numeric targets"
                    elif len(self.names) > 1 and exc.message.startswith("cannot read"):
                        help = "only a single target column can hold class names"
                    elif exc.message.startswith("cannot read"):
                        help = (f"the column's first value, on line {self.first_line}, is a "
                                f"number, so every value must be one")
                    raise self.error(exc.message, line, name, help) from None
                if self.task == BINARY and not 0.0 <= v <= 1.0:
                    raise self.error(f"expected a number in [0, 1] for a binary target, found "
                                     f"`{_excerpt(cell.strip())}`", line, name, _binary_help(v))
                if self.task == MULTICLASS and not (v >= 0 and v == int(v)):
                    raise self.error(f"expected a class index (0, 1, 2, …), found "
                                     f"`{_excerpt(cell.strip())}`", line, name,
                                     "for a numeric target use a regression loss")
                self.numbers.append(v)
            return
        label = cells[0].strip()
        if not label:
            raise self.error("missing value", line, help="fill in the value or remove the row")
        if label not in self.first_row:
            if self.task == BINARY and len(self.first_row) == 2:
                seen = " and ".join(f"`{_excerpt(c)}`" for c in self.first_row)
                raise self.error(f"a third class `{_excerpt(label)}` in a binary target (after {seen})",
                                 line, help="for more than two classes use a multiclass loss")
            self.first_row[label] = line
        self.text.append(label)

    def one_class(self, only: str, task: str, line: int, column: str) -> DataError:
        # Training would only learn to answer `only`: as likely a wrong column as data.
        return DataError(f"only one class, `{_excerpt(only)}`; a {task} "
                         f"target needs {'two' if task == BINARY else 'at least two'}",
                         path=self.path, row=line, column=column,
                         help="check that this is the right target column")

    def finish(self) -> tuple[np.ndarray, str, tuple[str, ...] | None]:
        k = len(self.names)
        if self.numeric:
            y = np.frombuffer(self.numbers, dtype=np.float64).reshape(-1, k)
            task = self.task
            if task is None:
                task = BINARY if np.isin(y, (0.0, 1.0)).all() else REGRESSION
            if task in (BINARY, MULTICLASS):
                for j, name in enumerate(self.names):
                    # one class: labels that are all alike (soft targets may well be)
                    if (y[:, j] == y[0, j]).all() and (task == MULTICLASS or y[0, j] in (0.0, 1.0)) \
                            and not _ONE_CLASS_OK.get():
                        raise self.one_class(_scalar(y[0, j]), task, self.first_line, name)
            if task == MULTICLASS:
                count = int(y.max()) + 1
                return y[:, 0].astype(np.int32), task, tuple(str(i) for i in range(count))
            classes: tuple[str, ...] | None = ("0", "1") if task == BINARY else None
            return y.astype(np.float32), task, classes
        classes = tuple(sorted(self.first_row))
        task = self.task or (BINARY if len(classes) == 2 else MULTICLASS)
        if len(classes) == 1 and not _ONE_CLASS_OK.get():
            only = classes[0]
            raise self.one_class(only, task, self.first_row[only], self.names[0])
        code = {c: i for i, c in enumerate(classes)}
        labels = np.fromiter((code[t] for t in self.text), dtype=np.int64, count=len(self.text))
        return _encode_classes(labels, task), task, classes


# What reading a damaged or foreign archive raises, from zipfile, zlib and NumPy's format.
_NPZ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError,
               RuntimeError, struct.error)


def load_npz(path: str, *, base_dir: Path, x: str = "x", y: str = "y",
             task: str | None = None, positions: tuple[int, ...] = ()) -> Dataset:
    """A NumPy `.npz` archive with a features array `x` (n, ...) and a targets array `y`;
    for a class at each of `positions` (a multiclass output of shape (*positions, k)),
    `y` is (n, *positions) class indices or (n, *positions, k) one-hot."""
    help = f"write it with `numpy.savez(path, {x}=features, {y}=targets)`"
    arrays = _npz_arrays(path, base_dir, ((x, "features"), (y, "targets")), help)
    return _from_arrays(arrays[x], arrays[y], x, y, paths={x: path, y: path}, task=task, positions=positions)


def _npz_arrays(path: str, base_dir: Path, wanted: tuple[tuple[str, str], ...], help: str) -> dict[str, np.ndarray]:
    """The arrays `wanted` ((name, `features` or `targets`), ...) of an `.npz` archive,
    each read once, refusing a missing, oversized, pickled or damaged one."""
    full = _resolve(path, base_dir, "NPZ")
    try:
        archive = np.load(full, allow_pickle=False)
    except _NPZ_ERRORS:
        raise DataError("cannot read the file as a NumPy `.npz` archive", path=path,
                        help=help) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError("the file is a single `.npy` array, not an `.npz` archive", path=path,
                        help=help)
    names = tuple(dict.fromkeys(key for key, _ in wanted))
    with archive:
        keys = tuple(archive.files)
        arrays = {}
        for key, what in wanted:
            if key not in keys:
                present = _listing(keys) if keys else "no arrays"
                raise DataError(f"no array named `{key}` (the file has {present})", path=path,
                                help=did_you_mean(key, keys, fallback=f"name the {what} "
                                                  f"array with `{'x' if what == 'features' else 'y'}=`"))
        _check_declared_sizes(archive, names, path=path, help=help)
        for key in names:
            try:
                arrays[key] = archive[key]
            except _NPZ_ERRORS as exc:
                if "allow_pickle" in str(exc):
                    raise DataError(f"array `{key}` holds Python objects, not numbers",
                                    path=path, help="convert it with `numpy.asarray(a, "
                                    "dtype=float)` before saving") from None
                raise DataError(f"array `{key}` is damaged and cannot be read", path=path,
                                help=help) from None
    return arrays


def _from_arrays(xa: np.ndarray, ya: np.ndarray, x: str, y: str, *, paths: Mapping[str, str],
                 task: str | None, noun: str = "array", positions: tuple[int, ...] = ()) -> Dataset:
    """Features `xa` (n, ...) and targets `ya` (n,) or (n, k), named `x` and `y` in
    messages and read from `paths[x]` and `paths[y]` -> a `Dataset` encoded for `task`
    (an `.npz` archive's arrays, two `.npy` files, IDX images and labels); `positions`:
    a class at each of them (`_positioned_classes`)."""
    if xa.ndim < 2:
        raise DataError(f"{noun} `{x}` has shape {_shape(xa)}; features need (examples, ...)",
                        path=paths[x], help=f"for one feature per example save "
                                        f"`{x}.reshape(-1, 1)`")
    if task == MULTICLASS and positions:
        return _positioned_classes(xa, ya, x, y, positions, paths[y])
    if ya.ndim < 1 or (ya.ndim > 2 and (task == MULTICLASS or ya.dtype.kind in "US")):
        raise DataError(f"{noun} `{y}` has shape {_shape(ya)}; targets need (examples,) or "
                        f"(examples, k)", path=paths[y], help="only numbers and 0/1 targets may have "
                        "more axes, one value per output element")
    if xa.shape[0] != ya.shape[0]:
        raise DataError(f"{noun} `{x}` has {xa.shape[0]} examples but `{y}` has "
                        f"{ya.shape[0]}", path=paths[x],
                        help="both arrays need one entry per example along the first axis")
    if xa.shape[0] == 0:
        raise DataError("the arrays hold no examples", path=paths[x])
    if not _numeric(xa):
        raise DataError(f"{noun} `{x}` has dtype `{xa.dtype}`; features must be numbers",
                        path=paths[x])
    _finite(xa, x, paths[x], noun)
    feature_names = None
    if ya.dtype.kind in "US":
        if ya.ndim == 2 and ya.shape[1] != 1:
            raise DataError(f"{noun} `{y}` holds text in {ya.shape[1]} columns; class names "
                            f"need one column", path=paths[y])
        names = ya.reshape(-1).astype(str)
        classes, labels = np.unique(names, return_inverse=True)
        task_ = task or (BINARY if len(classes) == 2 else MULTICLASS)
        if task_ == REGRESSION:
            raise DataError(f"{noun} `{y}` holds text; a regression loss needs numbers",
                            path=paths[y])
        if len(classes) == 1 and not _ONE_CLASS_OK.get():
            raise _one_class(y, str(classes[0]), task_, paths[y], noun)
        if task_ == BINARY and len(classes) > 2:
            raise DataError(f"{noun} `{y}` has {len(classes)} classes; a binary target needs 2",
                            path=paths[y], help="for more than two classes use a multiclass loss")
        return Dataset(xa.astype(np.float32), _encode_classes(labels, task_), task_,
                       tuple(str(c) for c in classes), feature_names, (y,))
    if not _numeric(ya):
        raise DataError(f"{noun} `{y}` has dtype `{ya.dtype}`; targets must be numbers or "
                        f"strings", path=paths[y])
    _finite(ya, y, paths[y], noun)
    if task is not None:
        task_ = task
    else:  # integers are classes, other numbers a regression target
        one_column = ya.ndim == 1 or ya.shape[1] == 1
        if ya.dtype.kind not in "biu":
            task_ = REGRESSION
        elif np.isin(ya, (0, 1)).all():
            task_ = BINARY
        else:
            task_ = MULTICLASS if one_column else REGRESSION
    yf = ya.astype(np.float64).reshape(len(ya), -1)
    shaped = yf.reshape(ya.shape) if ya.ndim > 2 else yf  # (examples, ...) as the output is
    if task_ == BINARY:
        # 0/1 labels, or soft targets in [0, 1] (probabilities, pixel intensities): the
        # cross-entropy of two Bernoulli distributions is defined for both
        bad: np.ndarray = np.argwhere((ya < 0) | (ya > 1))
        if len(bad):
            where = tuple(int(i) for i in bad[0])
            raise DataError(f"{noun} `{y}`: expected a number in [0, 1] for a binary target, found "
                            f"`{_scalar(ya[where])}` at index {_index(where)}", path=paths[y],
                            help=_binary_help(float(ya[where])))
        hard = np.isin(ya, (0, 1)).all()
        for j in range(yf.shape[1] if ya.ndim <= 2 and hard else 0):  # a pixel may well be always 0
            if (yf[:, j] == yf[0, j]).all() and not _ONE_CLASS_OK.get():
                raise _one_class(y if yf.shape[1] == 1 else f"{y}[:, {j}]", _scalar(yf[0, j]),
                                 BINARY, paths[y], noun)
        return Dataset(xa.astype(np.float32), shaped.astype(np.float32), BINARY, ("0", "1"),
                       feature_names, _target_names(y, yf.shape[1] if ya.ndim <= 2 else 1))
    if task_ == MULTICLASS:
        if ya.ndim == 2 and ya.shape[1] != 1:  # one-hot rows: the width is the class count
            onehot = np.isin(ya, (0, 1)).all(axis=1) & (yf.sum(axis=1) == 1)
            bad = np.flatnonzero(~onehot)
            if len(bad):
                row = ", ".join(_scalar(v) for v in ya[bad[0]][:8]) + (", …" if ya.shape[1] > 8 else "")
                raise DataError(f"{noun} `{y}`: row {bad[0]} is not one-hot, found `[{row}]`",
                                path=paths[y], help="a one-hot row holds a single 1, for its class, "
                                                "and 0 elsewhere; or save class indices (examples,)")
            flat, count = yf.argmax(axis=1).astype(np.float64), ya.shape[1]
        else:
            flat = yf[:, 0]
            bad = np.flatnonzero((flat < 0) | (flat != np.floor(flat)))
            if len(bad):
                raise DataError(f"{noun} `{y}`: expected a class index (0, 1, 2, …), found "
                                f"`{_scalar(ya.reshape(-1)[bad[0]])}` at index {bad[0]}",
                                path=paths[y], help="for a numeric target use a regression loss")
            count = int(flat.max()) + 1
        if (flat == flat[0]).all() and not _ONE_CLASS_OK.get():
            raise _one_class(y, _scalar(flat[0]), MULTICLASS, paths[y], noun)
        return Dataset(xa.astype(np.float32), flat.astype(np.int32), MULTICLASS,
                       tuple(str(i) for i in range(count)), feature_names, (y,))
    return Dataset(xa.astype(np.float32), shaped.astype(np.float32), REGRESSION, None,
                   feature_names, _target_names(y, yf.shape[1] if ya.ndim <= 2 else 1))


def load_jsonl(path: str, *, base_dir: Path, target: tuple[str, ...],
               features: tuple[str, ...] | None = None, task: str | None = None,
               columns: Columns | None = None) -> Dataset:
    """A JSON lines file: one object a line, its keys the columns, read as a CSV file's
    rows are (`null` is a missing value); every line needs the first line's keys."""
    columns_ = columns
    full = _resolve(path, base_dir, "JSON lines")
    objects = formats.jsonl_rows(_lines(full, path, "\n"))
    try:
        first_line, first = next(objects, (0, None))
    except formats.FormatError as exc:
        raise _located(exc, path) from None
    if first is None:
        raise DataError("the file is empty", path=path,
                        help="each line holds one JSON object, as in `{\"x1\": 0.5, \"label\": \"yes\"}`")
    keys = list(first)  # (`columns` is the parameter, the cells' encoding)

    def rows() -> Iterator[tuple[int, list[str]]]:
        line, obj = first_line, first
        stream = itertools.chain([(first_line, first)], objects)
        try:
            for line, obj in stream:
                if obj.keys() != first.keys():
                    missing = [k for k in keys if k not in obj]
                    if missing:
                        raise DataError(f"the object has no key `{_excerpt(missing[0])}`", path=path, row=line,
                                        help=f"every line needs the keys of line {first_line}'s object; "
                                             "write `null` for a missing value")
                    extra = next(k for k in obj if k not in first)
                    raise DataError(f"the object has a key `{_excerpt(extra)}` that line {first_line}'s does not",
                                    path=path, row=line, help="every line needs the same keys")
                yield line, [formats.json_cell(obj[k], row=line, column=k) for k in keys]
        except formats.FormatError as exc:
            raise _located(exc, path) from None
    return _table(path, first_line, keys, rows(), target=target, features=features, task=task,
                  delimiter="\n", encoding=columns_)


def load_npy(x: str, y: str | None, *, base_dir: Path, task: str | None = None) -> Dataset:
    """Features and targets from two NumPy `.npy` files (memory-mapped while they are
    checked), `x` shaped (examples, ...), `y` (examples,) or (examples, k); without `y`
    the targets are a copy of the features (for `target input`)."""
    lazy = STREAMING.get() and y is not None
    xa: Any = _read_npy(x, base_dir, whole=not lazy)
    ya = xa if y is None else _read_npy(y, base_dir)
    if lazy:
        from nnspec.stream import Rows
        xa = Rows(xa)
    if xa.ndim and ya.ndim and len(xa) != len(ya):
        raise DataError(f"`{_excerpt(x)}` holds {len(xa):,} examples but `{_excerpt(y)}` holds {len(ya):,}",
                        path=y, help="both files need one entry per example along the first axis")
    return _from_arrays(xa, ya, "x", "y", paths={"x": x, "y": y or x}, task=REGRESSION if y is None else task)


def _read_npy(path: str, base_dir: Path, *, whole: bool = True) -> np.ndarray:
    """The array of a `.npy` file, memory-mapped; `whole`: it will be loaded, so it must fit."""
    full = _resolve(path, base_dir, "`.npy`")
    try:
        a = formats.read_npy(full)
    except formats.FormatError as exc:
        raise _located(exc, path) from None
    from nnspec.check import show_bytes
    if whole and a.nbytes > memory_budget():
        raise DataError(f"the array takes {show_bytes(a.nbytes)}, more than the {show_bytes(memory_budget())} "
                        f"allowed (half of this machine's memory)", path=path,
                        help="use fewer examples, or a machine with more memory")
    return a


def load_idx(images: str, labels: str | None, *, base_dir: Path, task: str | None = None) -> Dataset:
    """IDX files, as MNIST and Fashion-MNIST ship (gzipped or not): `images` (examples,
    rows, cols) of pixels, given to the model as (rows, cols, 1), and `labels` (examples,)
    of class indices; without `labels` the targets are the images (for `target input`)."""
    xa = _read_idx(images, base_dir, "images")
    if xa.ndim == 3:  # grey images: one channel, as convolutions read them
        xa = xa.reshape(*xa.shape, 1)
    if labels is None:
        return _from_arrays(xa, xa, "images", "images", paths={"images": images}, task=REGRESSION)
    ya = _read_idx(labels, base_dir, "labels")
    if ya.ndim != 1:
        raise DataError(f"the labels file holds an array of shape {_shape(ya)}; labels are one number "
                        f"per example, shape (examples,)", path=labels,
                        help="check that `labels` names the labels file (`...-labels-idx1-ubyte`)")
    if len(ya) != len(xa):
        raise DataError(f"the labels file holds {len(ya):,} labels, but the images file {len(xa):,} images",
                        path=labels, help="use the labels that belong to these images "
                                          "(`train-labels` with `train-images`, `t10k-labels` with `t10k-images`)")
    return _from_arrays(xa, ya, "images", "labels", paths={"images": images, "labels": labels}, task=task)


def _read_idx(path: str, base_dir: Path, what: str) -> np.ndarray:
    full = _resolve(path, base_dir, "IDX")
    try:
        return formats.read_idx(full, memory_budget())
    except formats.FormatError as exc:
        raise _located(exc, path) from None


def load_parquet(path: str, *, base_dir: Path, target: tuple[str, ...],
                 features: tuple[str, ...] | None = None, task: str | None = None) -> Dataset:
    """A Parquet file (needs pyarrow): numeric feature columns and one or more targets,
    numbers or text, as in a CSV file; rows are counted from 1."""
    full = _resolve(path, base_dir, "Parquet")
    try:
        names, _ = formats.read_parquet(full, [])
    except formats.FormatError as exc:
        raise _located(exc, path) from None
    header = list(names)
    target_idx = _lookup(target, "target", header, header, path=path, row=None, delimiter="\n")
    if features is None:
        feature_idx = [i for i in range(len(header)) if i not in target_idx]
        if not feature_idx:
            raise DataError("no feature columns: every column is a target", path=path,
                            help="add feature columns to the file")
    else:
        feature_idx = _lookup(features, "features", header, header, path=path, row=None, delimiter="\n")
        both = [header[i] for i in feature_idx if i in target_idx]
        if both:
            raise DataError(f"column `{both[0]}` is both a target and a feature", path=path,
                            help=f"remove `{both[0]}` from `features`")
    feature_names = tuple(header[i] for i in feature_idx)
    target_names = tuple(header[i] for i in target_idx)
    if STREAMING.get() and target_names:  # the features spooled to a `.npy` file, never held whole
        return _streamed_parquet(full, path, feature_names, target_names, task)
    try:
        _, cols = formats.read_parquet(full, list(feature_names + target_names))
    except formats.FormatError as exc:
        raise _located(exc, path) from None
    for name in feature_names:
        if cols[name].dtype == object:
            raise DataError("holds text; features must be numbers", path=path, column=name,
                            help=_text_feature_help(name, feature_names))
    for name in feature_names + target_names:
        missing = _missing_rows(cols[name])
        if len(missing):
            raise _missing_value(int(missing[0]), name, path)
    n = len(cols[feature_names[0]])
    xa = np.column_stack([cols[f] for f in feature_names]) if n else np.zeros((0, len(feature_names)))
    if not target_names:
        ds = _from_arrays(xa, xa, "features", "features", paths={"features": path}, task=REGRESSION,
                          noun="column")
        return dataclasses.replace(ds, feature_names=feature_names, target_names=())
    return _parquet_dataset(xa, cols, feature_names, target_names, task, path)


def _missing_rows(col: np.ndarray) -> np.ndarray:
    """The indices of a Parquet column's missing values (null, or NaN)."""
    # numpy's stubs take no None, which np.equal compares an object column's values with
    return np.flatnonzero(np.equal(col, None) if col.dtype == object else np.isnan(col))  # type: ignore[call-overload]


def _missing_value(index: int, name: str, path: str) -> DataError:
    return DataError(f"missing value in row {index + 1}", path=path, column=name,
                     help="fill in the value or remove the row")


def _check_parquet_targets(cols: Mapping[str, np.ndarray], target_names: tuple[str, ...], task: str | None,
                           path: str) -> None:
    if len(target_names) > 1 and any(cols[t].dtype == object for t in target_names):
        raise DataError("only a single target column can hold class names", path=path,
                        column=next(t for t in target_names if cols[t].dtype == object))
    if task == MULTICLASS and len(target_names) > 1:
        raise DataError(f"a multiclass target is one column, found {len(target_names)} "
                        f"({_listing(target_names)})", path=path, help="name one column in `target`")


def _parquet_dataset(xa: Any, cols: Mapping[str, np.ndarray], feature_names: tuple[str, ...],
                     target_names: tuple[str, ...], task: str | None, path: str) -> Dataset:
    """The examples of a Parquet file's features `xa` (an array, or the spool's `Rows`) and
    its target columns `cols`, checked and encoded as any table's."""
    _check_parquet_targets(cols, target_names, task, path)
    ys = [cols[t] for t in target_names]
    if ys[0].dtype == object:
        ya = np.asarray(ys[0], dtype=str)
    else:
        ya = np.column_stack(ys) if len(ys) > 1 else ys[0]
    key = target_names[0] if len(target_names) == 1 else "target"
    ds = _from_arrays(xa, ya, "features", key, paths={"features": path, key: path}, task=task, noun="column")
    return dataclasses.replace(ds, feature_names=feature_names, target_names=target_names)


def _streamed_parquet(full: Path, path: str, feature_names: tuple[str, ...], target_names: tuple[str, ...],
                      task: str | None) -> Dataset:
    """`load_parquet` under `stream`: the feature columns read a bounded piece of rows at a
    time into a float32 spool (stream.spool, reused while the file is unchanged) that the
    training maps as it maps a `.npy` file; the targets, a column or a few, read whole.
    What the whole read refuses is refused here, with the same message, in the same order:
    a column of another type, a text feature, a missing value (the first column's, in
    order), then the targets' problems, then a value no float32 holds."""
    from nnspec import stream
    features = list(feature_names)
    try:
        rows, kinds = formats.parquet_kinds(full, features + list(target_names))
    except formats.FormatError as exc:
        raise _located(exc, path) from None
    for name in feature_names:
        if kinds[name] == "text":
            raise DataError("holds text; features must be numbers", path=path, column=name,
                            help=_text_feature_help(name, feature_names))
    missing: dict[str, int] = {}  # each feature column's first missing value
    bad: list[DataError] = []  # the first value no float32 holds, in the order of the rows

    def fill(out: np.ndarray) -> bool:
        start = 0
        # int64 or float64 values, as the whole read holds them, a piece at a time
        for piece in formats.parquet_pieces(full, features, max(1, stream.PIECE_BYTES // (8 * len(features)))):
            k = len(piece[features[0]])
            if start + k > rows:
                raise DataError(f"the file's metadata counts {rows:,} rows, but it holds more", path=path,
                                help="the file is damaged: write it again")
            for name in features:
                if name not in missing:
                    at = _missing_rows(piece[name])
                    if len(at):
                        missing[name] = start + int(at[0])
            part = np.column_stack([piece[f] for f in features])
            if not missing and not bad:
                problem = _non_finite(part, start, "features", path, "column")
                if problem is not None:
                    bad.append(problem)
            if not missing and not bad:
                out[start:start + k] = part  # float32, as the whole read's `astype` makes it
                stream.release(out)
            start += k
            if features[0] in missing:  # no later column's missing value is reported first
                return False
        if start != rows:
            raise DataError(f"the file's metadata counts {rows:,} rows, but {start:,} were read", path=path,
                            help="the file is damaged: write it again")
        return not missing and not bad

    try:
        spooled = stream.spool(full, features, (rows, len(features)), fill) if rows else \
            np.zeros((0, len(features)), np.float32)
    except formats.FormatError as exc:
        raise _located(exc, path) from None
    except stream.SpoolError as exc:
        raise DataError(exc.message, path=path, help=exc.help) from None
    for name in feature_names:
        if name in missing:
            raise _missing_value(missing[name], name, path)
    try:
        _, cols = formats.read_parquet(full, list(target_names))
    except formats.FormatError as exc:
        raise _located(exc, path) from None
    for name in target_names:
        at = _missing_rows(cols[name])
        if len(at):
            raise _missing_value(int(at[0]), name, path)
    if bad:
        _check_parquet_targets(cols, target_names, task, path)
        raise bad[0]
    assert spooled is not None
    return _parquet_dataset(stream.Rows(spooled) if rows else spooled, cols, feature_names, target_names, task, path)


def _located(exc: formats.FormatError, path: str) -> DataError:
    return DataError(exc.message, path=path, row=exc.row, column=exc.column, help=exc.help)


def _positioned_classes(xa: np.ndarray, ya: np.ndarray, x: str, y: str, positions: tuple[int, ...],
                        path: str) -> Dataset:
    """Class targets at every position of an example (a class per step): `y` holds
    (n, *positions) class indices or (n, *positions, k) one-hot rows; int32 indices out."""
    where = ", ".join(map(str, positions))
    shape_help = (f"save class indices of shape (examples, {where}), or one-hot rows of shape "
                  f"(examples, {where}, classes)")
    if ya.ndim < 1 or xa.ndim < 2 or xa.shape[0] != ya.shape[0]:
        raise DataError(f"arrays `{x}` and `{y}` have shapes {_shape(xa)} and {_shape(ya)}; both need "
                        f"(examples, ...) with one entry per example", path=path)
    if not _numeric(xa) or not _numeric(ya):
        raise DataError(f"arrays `{x}` and `{y}` must hold numbers", path=path)
    _finite(xa, x, path)
    _finite(ya, y, path)
    per = tuple(ya.shape[1:])
    if per == positions:
        bad = np.argwhere((ya < 0) | (ya != np.floor(ya)))
        if len(bad):
            at = tuple(int(i) for i in bad[0])
            raise DataError(f"array `{y}`: expected a class index (0, 1, 2, …), found `{_scalar(ya[at])}` at "
                            f"index {_index(at)}", path=path, help="for numeric targets use a regression loss")
        labels = ya.astype(np.int64)
        count = int(labels.max()) + 1 if labels.size else 0
    elif per[:-1] == positions and len(per) == len(positions) + 1:
        onehot = np.isin(ya, (0, 1)).all(axis=-1) & (ya.sum(axis=-1) == 1)
        bad = np.argwhere(~onehot)
        if len(bad):
            at = tuple(int(i) for i in bad[0])
            raise DataError(f"array `{y}`: the row at index {_index(at)} is not one-hot", path=path,
                            help="a one-hot row holds a single 1, for its class, and 0 elsewhere")
        labels, count = ya.argmax(axis=-1), per[-1]
    else:
        raise DataError(f"array `{y}` has shape {_shape(ya)}, but the model gives a class at each of "
                        f"({where}) positions of an example", path=path, help=shape_help)
    if xa.shape[0] == 0:
        raise DataError("the arrays hold no examples", path=path)
    if (labels == labels.reshape(-1)[0]).all():
        raise _one_class(y, _scalar(labels.reshape(-1)[0]), MULTICLASS, path)
    return Dataset(xa.astype(np.float32), labels.astype(np.int32), MULTICLASS,
                   tuple(str(i) for i in range(count)), None, (y,))


def _binary_help(v: float) -> str:
    """What to do about a binary target outside [0, 1]: a class number wants a multiclass
    loss, any other number a regression one."""
    if v == int(v) and v > 1:
        return "for more than two classes use a multiclass loss such as `categorical_crossentropy`"
    return ("`binary_crossentropy` reads labels 0 or 1, or probabilities between them; for other "
            "numbers use a regression loss such as `mse`")


def _one_class(key: str, only: str, task: str, path: str, noun: str = "array") -> DataError:
    return DataError(f"{noun} `{key}` holds only one class, `{_excerpt(only)}`; a {task} target "
                     f"needs {'two' if task == BINARY else 'at least two'}", path=path,
                     help="check that this is the right targets array")


def memory_budget() -> int:
    """The most bytes a data file's arrays may take once loaded: half of this machine's
    memory (8 GiB where the OS does not say), leaving the rest for training."""
    import importlib  # the module, not the `nnspec.check` function the package exports
    return (importlib.import_module("nnspec.check").physical_memory() or 16 << 30) // 2


def _check_declared_sizes(archive: Any, keys: tuple[str, ...], *, path: str, help: str) -> None:
    """Refuse arrays too large for memory from what the archive declares (each `.npy`
    header's shape and dtype, each zip entry's uncompressed size) before decompressing
    anything: a zip bomb of 1.6 MB can hold gigabytes of zeros."""
    from nnspec.check import show_bytes
    total = 0
    for key in dict.fromkeys(keys):
        member = key + ".npy" if key + ".npy" in archive.zip.namelist() else key
        info = archive.zip.getinfo(member)
        try:
            with archive.zip.open(info) as f:
                version = np.lib.format.read_magic(f)
                read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                        else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read(f)
        except _NPZ_ERRORS:
            raise DataError(f"array `{key}` is damaged and cannot be read", path=path,
                            help=help) from None
        if dtype.hasobject:
            raise DataError(f"array `{key}` holds Python objects, not numbers", path=path,
                            help="convert it with `numpy.asarray(a, dtype=float)` before saving")
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > info.file_size:
            raise DataError(f"array `{key}` declares shape {_shape_of(shape)} ({show_bytes(nbytes)}) "
                            f"but the archive holds {show_bytes(info.file_size)} for it",
                            path=path, help="the file is damaged or was not written by NumPy: "
                                            "write it again with `numpy.savez`")
        total += max(nbytes, info.file_size)
    budget = memory_budget()
    if total > budget:
        raise DataError(f"the arrays take {show_bytes(total)} once decompressed, more than "
                        f"the {show_bytes(budget)} allowed (half of this machine's memory)",
                        path=path, help="use fewer examples, or a machine with more memory")


def _shape_of(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _numeric(a: np.ndarray) -> bool:
    return a.dtype.kind in "biuf"


def _finite(a: Any, key: str, path: str, noun: str = "array") -> None:
    """Refuse the first NaN, infinity or value beyond float32 of `a`, read a piece of rows
    at a time (a memory-mapped file is never held whole: nnspec/stream.py)."""
    if a.dtype.kind != "f":
        return
    from nnspec.stream import release, rows_per_piece
    step = rows_per_piece(a) if a.ndim else 1
    for start in range(0, max(len(a), 1) if a.ndim else 1, step):
        part = np.asarray(a[start:start + step] if a.ndim else a)
        problem = _non_finite(part, start if a.ndim else None, key, path, noun)
        if problem is not None:
            raise problem
        release(a)


def _non_finite(part: np.ndarray, start: int | None, key: str, path: str, noun: str) -> DataError | None:
    """What `_finite` says of the rows `part` (the first of them row `start`; None: `part`
    is a scalar), or None if every value is finite and fits in a float32."""
    if part.dtype.kind != "f":
        return None
    bad = np.argwhere(~np.isfinite(part))
    if len(bad):
        where = (int(bad[0][0]) + start, *(int(i) for i in bad[0][1:])) if start is not None else ()
        return DataError(f"{noun} `{key}` has a non-finite value `{_scalar(part[tuple(bad[0])])}` at index "
                         f"{_index(where)}", path=path,
                         help="replace or drop the examples with missing values")
    big = np.argwhere(np.abs(part) > _F32_MAX)
    if len(big):
        where = (int(big[0][0]) + start, *(int(i) for i in big[0][1:])) if start is not None else ()
        return DataError(f"{noun} `{key}` has `{_scalar(part[tuple(big[0])])}` at index {_index(where)}, "
                         f"too large for a 32-bit float", path=path)
    return None


def _listing(names: Any, limit: int = 12) -> str:
    """`a`, `b`, `c`: each name cut to a short excerpt, at most `limit` of them (names
    may come from a file the user named, which must not be echoed whole)."""
    names = list(names)
    shown = ", ".join(f"`{_excerpt(n, 30)}`" for n in names[:limit])
    return shown + (f", … ({len(names)} in all)" if len(names) > limit else "")


def _target_names(key: str, k: int) -> tuple[str, ...]:
    return (key,) if k == 1 else tuple(f"{key}[{i}]" for i in range(k))


def _scalar(v: Any) -> str:
    v = v.item() if hasattr(v, "item") else v
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _index(where: tuple[int, ...]) -> str:
    return str(where[0]) if len(where) == 1 else "(" + ", ".join(map(str, where)) + ")"


def _shape(a: np.ndarray) -> str:
    return _shape_of(a.shape)


# ---------------------------------------------------------------------------------------
# Standardizing (the split is nnspec/split.py).

@dataclass(frozen=True, eq=False)
class Standardizer:
    """Per-feature `(x - mean) / std`, fitted on the train split; a constant feature keeps
    std 1 so it maps to 0 instead of dividing by zero."""
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardizer:
        from nnspec.stream import Rows, rows_per_piece
        if isinstance(x, Rows):  # a piece at a time, combined exactly (Chan et al.'s pairwise rule)
            n, mean, m2 = 0, 0.0, 0.0
            for _, part in x.pieces(rows_per_piece(x)):
                p64 = part.astype(np.float64)
                k, pm = len(p64), p64.mean(axis=0)
                delta = pm - mean
                mean = mean + delta * (k / (n + k))
                m2 = m2 + ((p64 - pm) ** 2).sum(axis=0) + delta ** 2 * (n * k / (n + k))
                n += k
            mean64, std = np.asarray(mean), np.sqrt(np.asarray(m2) / max(n, 1))
        else:
            x64 = np.asarray(x, dtype=np.float64)
            mean64, std = x64.mean(axis=0), x64.std(axis=0)
        return cls(mean64.astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32))

    def apply(self, x: Any) -> Any:
        from nnspec.stream import Rows
        if isinstance(x, Rows):  # applied to each window as it is read
            return x.scaled(self)
        return ((np.asarray(x, dtype=np.float32) - self.mean) / self.std).astype(np.float32)

    def apply_to(self, ds: Dataset | None) -> Dataset | None:
        """`ds` with standardized features (None stays None)."""
        return None if ds is None else dataclasses.replace(ds, x=self.apply(ds.x))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: nested lists of floats, stored with checkpoints."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Standardizer:
        return cls(np.asarray(data["mean"], dtype=np.float32),
                   np.asarray(data["std"], dtype=np.float32))
