"""Feature columns that are not plain numbers: categories, and missing values.

A spec's `categorical` and `missing` lines (train { }) become a `Columns` (check.py).
The table readers (data.py) then keep each feature cell as read: a number (NaN where
the cell is empty) or, in a categorical column, its text (`""` where empty), and drop
the rows `missing drop` drops. `Encoder.fit` learns, from the training split only, what
fills each column's missing cells (mean, median, mode or a constant) and each
categorical column's vocabulary; `Encoder.transform` turns cells into the float32
features the model reads, a categorical column becoming one 0/1 column per category
(and one more for `unknown=slot`). The encoder is stored with the run (`to_dict`), so
eval, predict and `nnspec.load(...).predict` turn the same raw cells into the same
numbers. Importing this module imports no NumPy (check.py uses the config part).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# A number as a CSV cell may write it (data.py reads features with the same rule).
NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

# What `missing` may do with an empty cell; a number or a string is a constant fill.
STRATEGIES = ("error", "drop", "mean", "median", "mode")
NUMERIC_ONLY = ("mean", "median")
UNKNOWN = ("error", "slot")


@dataclass(frozen=True)
class Fill:
    """What becomes of a missing cell: `how` is one of STRATEGIES, or `constant` with `value`."""
    how: str
    value: float | str | None = None

    def show(self) -> str:
        if self.how != "constant":
            return self.how
        return f'"{self.value}"' if isinstance(self.value, str) else f"{self.value:g}"


@dataclass(frozen=True)
class Columns:
    """A checked `categorical` line and `missing` line.

    `vocab` holds the categories a column's declaration lists (`color=[red, green]`),
    in that order; a categorical column without one learns its vocabulary from the
    training split. `fills` are the per-column `missing` settings; `missing` the rest's."""
    categorical: tuple[str, ...] = ()
    vocab: tuple[tuple[str, tuple[str, ...]], ...] = ()
    unknown: str = "error"
    missing: Fill = Fill("error")
    fills: tuple[tuple[str, Fill], ...] = ()

    def fill_of(self, name: str) -> Fill:
        return dict(self.fills).get(name, self.missing)

    def declared(self, name: str) -> tuple[str, ...] | None:
        return dict(self.vocab).get(name)

    def named(self) -> tuple[tuple[str, str], ...]:
        """Every column the two lines name, with the line that names it."""
        return tuple((c, "categorical") for c in self.categorical) + tuple((c, "missing") for c, _ in self.fills)

    @property
    def trivial(self) -> bool:
        """Whether the lines change nothing: no category, every missing cell refused."""
        return not self.categorical and self.missing.how == "error" and all(f.how == "error" for _, f in self.fills)


def category(cell: str) -> str:
    """A category as the vocabulary holds it: the cell's text, stripped; a number by its
    value, so that `1`, `1.0` and `01` are one category, `1`."""
    text = cell.strip()
    if NUMBER.fullmatch(text):
        v = float(text)
        if math.isfinite(v):
            return str(int(v)) if v.is_integer() and abs(v) < 2 ** 53 else repr(v)
    return text


def sort_key(c: str) -> tuple[int, float, str]:
    """Categories in vocabulary order: numbers by value, then text alphabetically
    (as scikit-learn's OneHotEncoder sorts a column of either)."""
    return (0, float(c), "") if NUMBER.fullmatch(c) else (1, 0.0, c)


def _mode(values: Iterable[Any], key: Any = None) -> Any:
    """The most frequent value; of several, the smallest (scikit-learn's `most_frequent`)."""
    counts: dict[Any, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    most = max(counts.values())
    return min((v for v, c in counts.items() if c == most), key=key)


class EncodeError(Exception):
    """A cell the encoder cannot encode: `index` is its row in the array encoded; data.py
    locates it in the file (`DataError`)."""

    def __init__(self, message: str, *, index: int | None, column: str, help: str | None = None) -> None:
        super().__init__(message)
        self.message, self.index, self.column, self.help = message, index, column, help


@dataclass(frozen=True)
class Column:
    """One feature column's encoding, fitted on the training split.

    `fill` is what a missing cell becomes (None: it is refused; `drop`: training dropped
    such rows, so a prediction refuses them). A `category` column has its `vocab` and
    encodes to `width` 0/1 columns, the last one, with `unknown=slot`, for categories
    not in the vocabulary."""
    name: str
    kind: str  # "number" or "category"
    fill: float | str | None = None
    drop: bool = False
    vocab: tuple[str, ...] = ()
    unknown: str = "error"

    @property
    def width(self) -> int:
        return 1 if self.kind == "number" else len(self.vocab) + (self.unknown == "slot")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "fill": self.fill, "drop": self.drop}
        if self.kind == "category":
            out.update(vocab=list(self.vocab), unknown=self.unknown)
        return out


@dataclass(frozen=True)
class Encoder:
    """Raw feature cells -> the model's float32 features; see the module's docstring."""
    columns: tuple[Column, ...]
    dropped: int = field(default=0, compare=False)  # rows `missing drop` dropped from the training data

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def width(self) -> int:
        return sum(c.width for c in self.columns)

    def onehot(self) -> list[bool]:
        """For each encoded column, whether it is a 0/1 category column (never standardized)."""
        return [c.kind == "category" for c in self.columns for _ in range(c.width)]

    def describe(self) -> str:
        """How the columns expand: "`age` 1, `color` 3 (blue, green, red): 4 columns in all"."""
        parts = []
        for c in self.columns:
            cats = ""
            if c.kind == "category":
                cats = " (" + ", ".join(c.vocab[:6]) + (", …" if len(c.vocab) > 6 else "") + \
                       (", unknown" if c.unknown == "slot" else "") + ")"
            parts.append(f"`{c.name}` {c.width}{cats}")
        return ", ".join(parts) + f": {self.width} columns in all"

    @classmethod
    def fit(cls, x: Any, names: tuple[str, ...], config: Columns, *, dropped: int = 0) -> Encoder:
        """The encoding of raw cells `x` (object (n, columns), the training split's rows)."""
        import numpy as np
        columns = []
        for j, name in enumerate(names):
            fill = config.fill_of(name)
            cells = x[:, j]
            if name in config.categorical:
                text = [c for c in cells if c != ""]
                value: float | str | None = None
                if fill.how == "mode":
                    if not text:
                        raise EncodeError("the column has no values in the training split to take the mode of",
                                          index=None, column=name, help="fill it with a constant instead")
                    value = _mode(text, key=sort_key)
                elif fill.how == "constant":
                    value = category(fill.value if isinstance(fill.value, str) else repr(float(fill.value)))  # type: ignore[arg-type]
                declared = config.declared(name)
                seen = set(text) | ({value} if isinstance(value, str) and len(text) < len(cells) else set())
                vocab = declared if declared is not None else tuple(sorted(seen, key=sort_key))
                columns.append(Column(name, "category", value, fill.how == "drop", tuple(vocab), config.unknown))
                continue
            numbers = np.asarray(cells, dtype=np.float64)
            known = numbers[~np.isnan(numbers)]
            num: float | None = None
            if fill.how in ("mean", "median", "mode"):
                if not known.size:
                    raise EncodeError(f"the column has no values in the training split to take the {fill.how} of",
                                      index=None, column=name, help="fill it with a constant instead")
                num = float(np.mean(known) if fill.how == "mean" else np.median(known) if fill.how == "median"
                            else _mode(known.tolist()))
            elif fill.how == "constant":
                num = float(fill.value)  # type: ignore[arg-type]  # check.py refuses text for a numeric column
            columns.append(Column(name, "number", num, fill.how == "drop"))
        return cls(tuple(columns), dropped)

    def transform(self, x: Any) -> Any:
        """Raw cells (object (n, columns)) -> float32 (n, width); raises EncodeError."""
        import numpy as np
        n = len(x)
        out = np.zeros((n, self.width), dtype=np.float32)
        at = 0
        for j, col in enumerate(self.columns):
            cells = x[:, j]
            if col.kind == "number":
                text = next((i for i, c in enumerate(cells) if isinstance(c, str)), None)
                if text is not None:  # read as a category: the spec's lines are not the run's
                    raise EncodeError(f"cannot read `{cells[text]}` as a number", index=text, column=col.name,
                                      help="the run encodes this column as numbers: read it with the spec it "
                                           "was trained with")
                v = np.asarray(cells, dtype=np.float64)
                missing = np.isnan(v)
                if missing.any():
                    if col.fill is None:
                        raise EncodeError("missing value", index=int(np.argmax(missing)), column=col.name,
                                          help=_refused_help(col))
                    v = np.where(missing, col.fill, v)
                out[:, at] = v
            else:
                rank = {c: i for i, c in enumerate(col.vocab)}
                for i, cell in enumerate(cells):
                    if cell == "":
                        if col.fill is None:
                            raise EncodeError("missing value", index=i, column=col.name, help=_refused_help(col))
                        cell = col.fill
                    k = rank.get(cell)
                    if k is None:
                        if col.unknown != "slot":
                            shown = ", ".join(f"`{c}`" for c in col.vocab[:12]) + (", …" if len(col.vocab) > 12 else "")
                            raise EncodeError(f"unseen category `{cell}`: the column's categories are {shown}",
                                              index=i, column=col.name,
                                              help="`unknown=slot` on the `categorical` line gives a category "
                                                   "the vocabulary lacks a column of its own")
                        k = len(col.vocab)
                    out[i, at + k] = 1.0
            at += col.width
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"columns": [c.to_dict() for c in self.columns], "dropped": self.dropped}

    @classmethod
    def from_dict(cls, data: Any) -> Encoder:
        """An encoder read back from a run; ValueError for one that is not."""
        if not isinstance(data, Mapping) or not isinstance(data.get("columns"), list) or not data["columns"]:
            raise ValueError("`columns` is not a list of column encodings")
        out = []
        for c in data["columns"]:
            ok = (isinstance(c, Mapping) and isinstance(c.get("name"), str) and c.get("kind") in ("number", "category")
                  and isinstance(c.get("drop", False), bool))
            if ok and c["kind"] == "number":
                ok = c.get("fill") is None or (isinstance(c["fill"], (int, float)) and not isinstance(c["fill"], bool)
                                               and math.isfinite(c["fill"]))
            if ok and c["kind"] == "category":
                ok = (isinstance(c.get("vocab"), list) and all(isinstance(v, str) for v in c["vocab"])
                      and c.get("unknown", "error") in UNKNOWN and (c.get("fill") is None or isinstance(c["fill"], str)))
            if not ok:
                raise ValueError(f"column encoding {str(c)[:60]} is not one nnspec writes")
            out.append(Column(c["name"], c["kind"], c.get("fill"), c.get("drop", False),
                              tuple(c.get("vocab", ())), c.get("unknown", "error")))
        dropped = data.get("dropped", 0)
        return cls(tuple(out), dropped if isinstance(dropped, int) and not isinstance(dropped, bool) else 0)


def encode_columns(encoder: Encoder, columns: Any) -> Any:
    """Python values -> the model's features, for `nnspec.load(RUN).predict`: `columns`
    is a mapping (or DataFrame) of the run's feature columns by name, or an array of them
    in order, one row an example. None, NaN and `""` are missing. Raises ValueError,
    naming the row and column."""
    import numpy as np
    names = encoder.names
    if isinstance(columns, Mapping) or hasattr(columns, "columns"):
        keys = list(columns.keys())
        absent = [n for n in names if n not in keys]
        if absent:
            raise ValueError(f"no column `{absent[0]}`: the run's feature columns are " + ", ".join(f"`{n}`" for n in names))
        cols = [np.asarray(columns[n], dtype=object).reshape(-1) for n in names]
    else:
        arr = np.asarray(columns, dtype=object)
        if arr.ndim != 2 or arr.shape[1] != len(names):
            raise ValueError(f"`x` has shape {arr.shape}; the run reads (n, {len(names)}) columns, "
                             + ", ".join(f"`{n}`" for n in names) + ", or a mapping of them by name")
        cols = [arr[:, j] for j in range(len(names))]
    n = len(cols[0]) if cols else 0
    x = np.empty((n, len(names)), dtype=object)
    for j, (col, values) in enumerate(zip(encoder.columns, cols)):
        for i, v in enumerate(values):
            empty = v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())
            if col.kind == "category":
                x[i, j] = "" if empty else category(v if isinstance(v, str) else repr(float(v)) if isinstance(v, (int, float, np.number)) and not isinstance(v, bool) else str(v))
                continue
            if empty:
                x[i, j] = math.nan
                continue
            try:
                f = float(v)
            except (TypeError, ValueError):
                raise ValueError(f"row {i}, column `{col.name}`: cannot read {v!r} as a number") from None
            if not math.isfinite(f):
                raise ValueError(f"row {i}, column `{col.name}`: {v!r} is not a finite number")
            x[i, j] = f
    try:
        return encoder.transform(x)
    except EncodeError as exc:
        raise ValueError(f"row {exc.index}, column `{exc.column}`: {exc.message}") from None


def _refused_help(col: Column) -> str:
    if col.drop:
        return "the model was trained with `missing drop`, which drops such rows: fill in the value to predict for it"
    return "fill in the value, or say what fills it with `missing` (docs/language.md)"


def from_meta(meta: Mapping[str, Any]) -> Encoder | None:
    """The encoder a run's metadata holds, None if it has none; ValueError if unusable."""
    data = meta.get("columns")
    return None if data is None else Encoder.from_dict(data)
