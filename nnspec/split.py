"""The split: which examples of the data source are for training, validation and test.

A split is `Rows`: the examples of each part as 0-based positions in the data source, in
the order read (for a CSV file, its data rows below the header, blank lines skipped).
Three ways to cut one, each documented exactly in docs/language.md (`split`):

- `random_rows(n, val=, test=, seed=)`: `numpy.random.default_rng(seed).permutation(n)`;
  its first round(n·test) positions are the test part, the next round(n·val) the
  validation part, the rest training (round: half up, `floor(x + 0.5)`);
- `stratified_rows(labels, ...)`: the same permutation, the same cut made within each
  class (round(n_c·test) of class c's rows, taken in permutation order, for test, ...);
- `column_rows(values, ...)`: a CSV column saying `train`, `val` or `test` on each row.

`Rows.record()` is the JSON of `split.json` in a run folder (and of `nnspec split --out`);
eval rebuilds the split and refuses one that differs from it. `write_parts` writes each
part as a file of the source's format. NumPy only; no JAX.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nnspec.data import (
    BINARY,
    MULTICLASS,
    DataError,
    Dataset,
    _excerpt,
    _header,
    _lookup,
    _records,
    _resolve,
)
from nnspec import folders
from nnspec.datasets import DataSource

FORMAT = "nnspec-split"
VERSION = 1
PARTS = ("train", "val", "test")
# what a split column may say, exactly (after the reader strips the spaces around it)
COLUMN_VALUES = PARTS
_NAMES = {"train": "training", "val": "validation", "test": "test"}


class SplitColumnError(DataError):
    """A problem with the split column itself (located at the spec's `split` line)."""


@dataclass(frozen=True, eq=False)
class Rows:
    """The positions (int64, in the part's order) of each part's examples in the source;
    an empty part (no fraction, or a separate file instead) holds none."""
    n: int
    how: str  # "random", "stratified" or "column"
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def part(self, name: str) -> np.ndarray:
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def record(self, *, seed: int, column: str | None = None) -> dict[str, Any]:
        """JSON-able: what `split.json` holds."""
        out: dict[str, Any] = {"format": FORMAT, "version": VERSION, "how": self.how, "seed": seed, "rows": self.n}
        if column is not None:
            out["column"] = column
        return {**out, **{name: [int(i) for i in self.part(name)] for name in PARTS}}

    def differs(self, recorded: Mapping[str, Any]) -> str | None:
        """How these rows differ from a recorded `split.json`, or None if they do not."""
        if recorded.get("format") != FORMAT or not all(isinstance(recorded.get(p), list) for p in PARTS):
            return "its `split.json` is not a split nnspec wrote"
        if recorded.get("rows") != self.n:
            return f"its split is of {recorded.get('rows')} examples, the data now has {self.n}"
        for name in PARTS:
            mine, theirs = self.part(name), recorded[name]
            if len(mine) != len(theirs):
                return f"its {_NAMES[name]} part has {len(theirs)} examples, the one rebuilt now {len(mine)}"
            at = next((i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b), None)
            if at is not None:
                return (f"its {_NAMES[name]} part differs at position {at}: example {theirs[at]} in the run, "
                        f"{int(mine[at])} now")
        return None


def record_of(rows: Rows | None, train: Any) -> dict[str, Any] | None:
    """`rows.record()` with the seed and column of `train` (a checked.TrainProgram)."""
    return None if rows is None else rows.record(seed=train.seed, column=train.split_column)


def recorded_differs(rows: Rows | None, folder: Path) -> str | None:
    """How `rows` differ from the `split.json` in `folder` (a run folder), or None: also
    when the folder has none (runs before split.json was written are not compared)."""
    try:
        text = (folder / "split.json").read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        return f"its `split.json` cannot be read ({getattr(exc, 'strerror', None) or exc})"
    try:
        recorded = json.loads(text)
    except ValueError:
        return "its `split.json` is not JSON"
    if rows is None or not isinstance(recorded, dict):
        return "its `split.json` is not a split nnspec wrote"
    return rows.differs(recorded)


def _rounded(n: int, fraction: float) -> int:
    """round(n · fraction), half up: how many of n examples a fraction holds out."""
    return math.floor(n * fraction + 0.5)


def _check_fractions(val: float, test: float) -> None:
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ValueError(f"bad split fractions val={val}, test={test}")


def random_rows(n: int, *, val: float, test: float, seed: int) -> Rows:
    """Shuffle from `seed`, then cut: test first, then validation, the rest for training."""
    _check_fractions(val, test)
    n_test, n_val = _rounded(n, test), _rounded(n, val)
    for name, fraction, count in (("validation", val, n_val), ("test", test, n_test)):
        if fraction > 0 and count == 0:
            raise DataError(f"dataset too small: {n} examples leave none for the {name} "
                            f"split ({fraction:g} of them)",
                            help="use more data, or a larger fraction")
    if n - n_val - n_test <= 0:
        raise DataError(f"dataset too small: {n} examples leave none for training",
                        help="use more data, or smaller `val`/`test` fractions")
    order = np.random.default_rng(seed).permutation(n).astype(np.int64)
    return Rows(n, "random", order[n_test + n_val:], order[n_test:n_test + n_val], order[:n_test])


def stratified_rows(labels: np.ndarray, *, val: float, test: float, seed: int,
                    names: tuple[str, ...] | None = None) -> Rows:
    """`random_rows`' permutation, cut within each class: of class c's n_c examples, in
    the order the permutation visits them, the first round(n_c·test) are for test, the next
    round(n_c·val) for validation, the rest for training. Each part lists its examples in
    permutation order. `labels`: one class index per example; `names` shows a class."""
    _check_fractions(val, test)
    labels = np.asarray(labels).astype(np.int64)
    n = len(labels)
    order = np.random.default_rng(seed).permutation(n).astype(np.int64)
    part = np.zeros(n, dtype=np.int8)  # 0 train, 1 val, 2 test, by example
    for c in np.unique(labels):
        mine = order[labels[order] == c]  # class c's examples, in permutation order
        n_c = len(mine)
        n_test, n_val = _rounded(n_c, test), _rounded(n_c, val)
        shown = f"`{_excerpt(names[c])}`" if names is not None and c < len(names) else str(int(c))
        for name, fraction, count in (("validation", val, n_val), ("test", test, n_test)):
            if fraction > 0 and count == 0:
                raise DataError(f"class {shown} has {n_c} example(s), too few to put one in the {name} split "
                                f"({fraction:g} of them)",
                                help=f"use more data, a larger `{'val' if name == 'validation' else 'test'}` "
                                     "fraction, or a split without `stratify`")
        if n_c - n_val - n_test <= 0:
            raise DataError(f"class {shown} has {n_c} example(s), too few to keep one for training",
                            help="use more data, smaller `val`/`test` fractions, or a split without `stratify`")
        part[mine[:n_test]] = 2
        part[mine[n_test:n_test + n_val]] = 1
    in_order = part[order]
    return Rows(n, "stratified", order[in_order == 0], order[in_order == 1], order[in_order == 2])


def class_labels(ds: Dataset) -> np.ndarray:
    """One class index per example, for a stratified split: a multiclass dataset's class
    indices, a binary one's 0/1 target. Refuses several 0/1 targets or a class per step."""
    if ds.task == MULTICLASS and ds.y.ndim == 1:
        return np.asarray(ds.y)
    if ds.task == BINARY and ds.y.ndim == 2 and ds.y.shape[1] == 1:
        return np.asarray(ds.y[:, 0]).astype(np.int64)
    what = (f"{ds.y.shape[1]} 0/1 targets" if ds.task == BINARY and ds.y.ndim == 2
            else "a class at every position" if ds.task == MULTICLASS else "targets that are not classes")
    raise DataError(f"a stratified split needs one class per example, but the data has {what} per example",
                    help="split without `stratify`")


def column_rows(values: list[str], lines: list[int], *, path: str, column: str) -> Rows:
    """The parts a split column names: `train`, `val` or `test` on each row, exactly; any
    other value is refused at its line. Each part keeps the file's order."""
    where = {name: [] for name in PARTS}  # type: dict[str, list[int]]
    for i, (value, line) in enumerate(zip(values, lines)):
        if value not in where:
            shown = f"`{_excerpt(value)}` is" if value else "an empty cell is"
            raise SplitColumnError(f"{shown} not a split: the split column says `train`, `val` or `test`",
                                   path=path, row=line, column=column,
                                   help="write `train`, `val` or `test` (in lower case) on every row")
        where[value].append(i)
    if not where["train"]:
        raise SplitColumnError(f"no row is marked `train` in the split column (of {len(values)} rows)",
                               path=path, column=column, help="mark the training rows `train`")
    return Rows(len(values), "column", *(np.asarray(where[p], dtype=np.int64) for p in PARTS))


def read_column(source: DataSource, base_dir: Path, column: str, *, role: str = "split column",
                also: tuple[str, ...] = ()) -> tuple[DataSource, list[str], list[int]]:
    """A CSV source's split column (or another `role`: the weight column): (the source
    reading every other column but the targets and `also` as features, the column's value
    on each data row, each row's first line)."""
    params = dict(source.params)
    path, delimiter = params["path"], params.get("delimiter", ",")
    full = _resolve(path, base_dir, "CSV")
    stream = _records(full, path, delimiter)
    header_row, header = next(stream, (0, None))
    if header is None:
        raise DataError("the file is empty", path=path,
                        help="the first line must name the columns, as in `x1,x2,label`")
    columns = _header(header, path=path, row=header_row)
    try:
        at = _lookup((column,), role, columns, header, path=path, row=header_row, delimiter=delimiter)[0]
    except DataError as exc:
        raise SplitColumnError(exc.message, path=exc.path, row=exc.row, column=exc.column, help=exc.help) from None
    target = params.get("target", ())
    targets = (target,) if isinstance(target, str) else tuple(target)
    features = params.get("features")
    if features is not None:
        given = (features,) if isinstance(features, str) else tuple(features)
        if column in given:
            raise SplitColumnError(f"column `{_excerpt(column)}` is both a feature and the {role}", path=path,
                                   help=f"remove `{_excerpt(column)}` from `features`")
    elif column in targets:
        raise SplitColumnError(f"column `{_excerpt(column)}` is both a target and the {role}", path=path,
                               help=f"name another column as the {role}")
    else:
        params["features"] = tuple(c for c in columns if c != column and c not in targets and c not in also)
        if not params["features"]:
            raise DataError("no feature columns: every other column is a target", path=path, row=header_row,
                            help="add feature columns to the file")
    values, lines = [], []
    for line, row in stream:
        if at >= len(row):  # the reader refuses the short row where it is; read it there
            break
        values.append(row[at].strip())
        lines.append(line)
    return DataSource(source.kind, params), values, lines


def take(ds: Dataset, rows: Rows) -> tuple[Dataset, Dataset | None, Dataset | None]:
    """(train, val, test) of `ds` as `rows` cuts it; an empty part gives None."""
    return (ds.take(rows.train), ds.take(rows.val) if len(rows.val) else None,
            ds.take(rows.test) if len(rows.test) else None)


def split(ds: Dataset, *, val: float, test: float,
          seed: int) -> tuple[Dataset, Dataset | None, Dataset | None]:
    """Shuffle from `seed`, then cut (train, val, test); a zero fraction gives None."""
    return take(ds, random_rows(len(ds), val=val, test=test, seed=seed))


# ------------------------------------------------------------------------- writing the parts

SPLIT_FILES = ("split.json",) + tuple(f"{p}.{ext}" for p in PARTS for ext in ("csv", "npz"))


class SplitFolderError(Exception):
    """A folder `nnspec split --out` cannot write into (a usage error: exit 2)."""


def is_split_folder(path: Path) -> bool:
    try:
        info = json.loads((path / "split.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(info, dict) and info.get("format") == FORMAT


SPLIT = folders.Kind(
    noun="split", files=SPLIT_FILES, holds=is_split_folder, error=SplitFolderError,
    taken="`{path}` already holds a split; pass `--overwrite` to replace it, or choose a new folder",
    described="a folder nnspec split into")


def part_files(source: DataSource, base_dir: Path, rows: Rows, ds: Dataset) -> dict[str, bytes]:
    """Each non-empty part as a file, by name: a CSV source's header and data rows (as
    the CSV reader reads them, rewritten with its delimiter); an `.npz` archive's arrays,
    each cut along its first axis; any other source the examples as read, `x` and `y`."""
    out: dict[str, bytes] = {}
    parts = [name for name in PARTS if len(rows.part(name))]
    if source.kind == "csv":
        params = dict(source.params)
        path, delimiter = params["path"], params.get("delimiter", ",")
        stream = _records(_resolve(path, base_dir, "CSV"), path, delimiter)
        _, header = next(stream)
        records = [row for _, row in stream]
        if len(records) != rows.n:  # the reader read every record as one example
            raise DataError(f"the file has {len(records)} data rows, but {rows.n} examples were read", path=path)
        for name in parts:
            buf = io.StringIO()
            writer = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(records[i] for i in rows.part(name))
            out[f"{name}.csv"] = buf.getvalue().encode("utf-8")
        return out
    if source.kind == "npz":
        path = dict(source.params)["path"]
        with np.load(_resolve(path, base_dir, "NPZ"), allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        short = [key for key, a in arrays.items() if a.ndim == 0 or a.shape[0] != rows.n]
        if short:
            raise DataError(f"array `{short[0]}` does not hold one entry per example ({rows.n})", path=path,
                            help="`nnspec split` cuts every array of the archive along its first axis")
        for name in parts:
            out[f"{name}.npz"] = _npz({key: a[rows.part(name)] for key, a in arrays.items()})
        return out
    for name in parts:
        index = rows.part(name)
        xs = ds.x if isinstance(ds.x, dict) else {"x": ds.x}
        ys = ds.y if isinstance(ds.y, dict) else {"y": ds.y}
        out[f"{name}.npz"] = _npz({**{k: v[index] for k, v in xs.items()}, **{k: v[index] for k, v in ys.items()}})
    return out


def _npz(arrays: Mapping[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def describe(rows: Rows, column: str | None = None) -> str:
    """One line for the screen: how many examples each part holds, and how they were cut
    (`random`, `stratified`, or by the split column, named)."""
    how = f"by column `{column}`" if rows.how == "column" and column else rows.how
    return ", ".join(f"{len(rows.part(p))} for {_NAMES[p]}" for p in PARTS if len(rows.part(p))) \
        + f" (of {rows.n}, {how})"



def write_split(program: Any, out: Path, *, base_dir: Path, overwrite: bool = False) -> tuple[Rows, list[Path]]:
    """`nnspec split SPEC --out DIR`: the spec's split, each part a file of the source's
    format (`part_files`) and the row positions in `split.json`, written into `out` (new
    or empty, or a split folder to `overwrite`), each file atomically; (rows, the files).
    Raises SplitFolderError for the folder, NNSpecError (E401) for the data."""
    from nnspec.files import write_atomic
    from nnspec.prepare import fail, load_source
    folders.claim(out, SPLIT, overwrite=overwrite)  # new or empty, or a split to overwrite
    t = program.train
    ds, rows = load_source(program, base_dir)
    try:
        files = part_files(t.data, base_dir, rows, ds)
    except DataError as exc:
        raise fail("E401", f"cannot split the data: {exc.message}", program, t.data_span, label="this data",
                   help=exc.help) from None
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "split.json"]
    # split.json first: it marks the folder as nnspec's, so a write cut short can be replaced
    write_atomic(out / "split.json", json.dumps(record_of(rows, t)) + "\n")
    for name, data in files.items():
        write_atomic(out / name, data)
        written.append(out / name)
    return rows, written
