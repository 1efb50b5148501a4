"""What a spec's `data` line may name: built-in datasets and data sources, as registries.

`data builtin("spirals", n=500)`, `data csv("scores.csv", target="passed")` and
`data npz("arrays.npz", x="x", y="y")` are checked against `SOURCES` (and, for
`builtin`, against `DATASETS`) by check.py, which builds a `DataSource`; data.py loads it.
Each dataset's `attrs` say what it holds without generating it: `task`, `features`
(shape of one example), `classes` and `targets`; `features_of`/`classes_of` resolve
the ones that depend on the dataset's params; `labels_of` says where its class labels
sit in an example (one per example, or one per step). A dataset of token ids has a `vocab`
(`vocab_of`): its examples fit only an `int` input; `input_of` writes the input that
fits. Pure Python: no NumPy, no JAX.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from nnspec.params import ArgError, Bool, Entry, Float, Int, ListOf, P, Registry, Str

BINARY = "binary"
MULTICLASS = "multiclass"
REGRESSION = "regression"
TASKS = (BINARY, MULTICLASS, REGRESSION)


def _n(default: int = 1000) -> Any:
    return P("n", Int(min=4, max=10_000_000), default, "number of examples")


def _noise(default: float, what: str = "each coordinate") -> Any:
    return P("noise", Float(ge=0), default,
             f"standard deviation of the Gaussian noise added to {what}")


def _binary_2d(name: str, params: tuple, doc: str) -> Entry:
    return Entry(name, params, doc,
                 attrs={"task": BINARY, "features": (2,), "classes": 2, "targets": 1})


DATASETS = Registry("dataset", [
    Entry("pass_class", (
        _n(),
        _noise(0.05, "the pass score (0 gives a clean linear boundary)"),
    ), "will I pass this class? lectures attended (0-20) and hours on the final project "
       "(0-40) -> pass or fail",
        attrs={"task": BINARY, "features": (2,), "classes": 2, "targets": 1}),
    _binary_2d("linear", (
        _n(),
        P("margin", Float(gt=0), 0.1, "width of the empty band between the two classes"),
    ), "points in the square [-1, 1]^2 split by a random line; perfectly linearly separable"),
    _binary_2d("spirals", (
        _n(),
        _noise(0.05, "each coordinate (neighbouring arms are 0.5 / turns apart)"),
        P("turns", Float(gt=0, le=10), 1.5, "how many times each arm winds around the centre"),
    ), "two interleaved spirals (the red vs green points); not linearly separable"),
    _binary_2d("circles", (
        _n(),
        _noise(0.05),
        P("factor", Float(gt=0, lt=1), 0.5, "radius of the inner circle; the outer one is 1"),
    ), "a small circle inside a large one; not linearly separable"),
    _binary_2d("moons", (
        _n(),
        _noise(0.1),
    ), "two interlocking half-moons; not linearly separable"),
    _binary_2d("xor", (
        _n(),
        _noise(0.25),
    ), "four Gaussian clusters at (±1, ±1), labelled 1 where the signs differ; not linearly "
       "separable"),
    Entry("regression", (
        _n(),
        _noise(0.1, "the target"),
    ), "one input x in [-3, 3] and the smooth non-linear target sin(2x) + 0.3 x^2 - 1, "
       "plus noise",
        attrs={"task": REGRESSION, "features": (1,), "classes": None, "targets": 1}),
    Entry("blobs", (
        _n(),
        P("classes", Int(min=2, max=1000), 3, "number of blobs, one class each"),
        P("spread", Float(gt=0), 0.6, "standard deviation of each blob"),
    ), "Gaussian blobs in 2-D, one class each, centred around a circle",
        attrs={"task": MULTICLASS, "features": (2,), "classes": lambda p: p["classes"],
               "targets": 1}),
    Entry("digits", (
        P("image", Bool(), False, "give each example as an 8x8x1 image instead of 64 numbers"),
    ), "scikit-learn's 1797 handwritten digits, 8x8 pixels of 0-16 -> 10 classes "
       "(needs scikit-learn)",
        attrs={"task": MULTICLASS, "features": (64,), "classes": 10, "targets": 1,
               "features_fn": lambda p: (8, 8, 1) if p.get("image") else (64,)}),
    Entry("waves", (
        _n(),
        P("steps", Int(min=10, max=10_000), 20, "samples in each wave: the sequence's length"),
        _noise(0.2, "each sample"),
    ), "a sequence per example: a sine wave sampled at `steps` points with a random phase, "
       "making 1-2 cycles (low) or 3-4 cycles (high) -> low or high; for recurrent layers",
        attrs={"task": BINARY, "features": (20, 1), "classes": 2, "targets": 1,
               "features_fn": lambda p: (p["steps"], 1)}),
    Entry("brackets", (
        _n(),
        P("steps", Int(min=4, max=10_000), 20,
          "the longest sequence; each has an even length from steps/2 to steps, padded with 0"),
    ), "token ids: a string of ( and ) (ids 1 and 2, padded with 0) -> is it balanced? Both "
       "classes have as many ( as ), so only their order tells; for recurrent layers",
        attrs={"task": BINARY, "features": (20,), "classes": 2, "targets": 1, "vocab": 3,
               "features_fn": lambda p: (p["steps"],)}),
    Entry("order", (
        _n(),
        P("steps", Int(min=2, max=10_000), 12, "tokens in each sequence"),
        P("vocab", Int(min=4, max=1_000_000), 10,
          "how many token ids there are: 1 and 2 are the two that matter, 3..vocab-1 filler"),
    ), "token ids: random filler with one 1 and one 2 somewhere -> does the 1 come before "
       "the 2? Both classes hold the same tokens, so only their positions tell",
        attrs={"task": BINARY, "features": (12,), "classes": 2, "targets": 1,
               "vocab": lambda p: p["vocab"], "features_fn": lambda p: (p["steps"],)}),
    Entry("running_max", (
        _n(),
        P("steps", Int(min=2, max=10_000), 10, "tokens in each sequence"),
        P("vocab", Int(min=3, max=1_000_000), 8, "how many token ids there are: 1..vocab-1 (none is 0)"),
    ), "token ids -> a class at every step: the largest id so far. A class per step, for "
       "`categorical_crossentropy` on a (steps, vocab) output",
        attrs={"task": MULTICLASS, "features": (10,), "classes": lambda p: p["vocab"], "targets": 1,
               "vocab": lambda p: p["vocab"], "features_fn": lambda p: (p["steps"],),
               "labels_fn": lambda p: (p["steps"],)}),
])


# What each file suffix holds; a compressed file's is the suffix before `.gz`, `.bz2` or `.xz`.
COMPRESSED = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz"}
_FORMATS = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".npz": "npz",
            ".npy": "npy", ".parquet": "parquet", ".pq": "parquet"}
_FORMAT_NAMES = {"csv": "a CSV file", "jsonl": "a JSON lines file", "npz": "a NumPy `.npz` archive",
                 "npy": "a NumPy `.npy` array", "parquet": "a Parquet file", "idx": "an IDX file"}
_UNSUPPORTED = (".zip", ".zst", ".lz4", ".7z", ".z", ".tgz", ".tar", ".lzma", ".br", ".snappy", ".rar")
E_FORMAT = "E113"


def _suffixes(path: str) -> tuple[str, str | None]:
    """(the format suffix, the compression or None) of a file name: `a.csv.gz` -> (`.csv`, gzip)."""
    name = path.replace("\\", "/").rsplit("/", 1)[-1].lower()
    stem, dot, last = name.rpartition(".")
    if dot and "." + last in COMPRESSED:
        inner = stem.rpartition(".")
        return ("." + inner[2] if inner[1] else ""), COMPRESSED["." + last]
    return ("." + last if dot else ""), None


@dataclass(frozen=True)
class DataPath(Str):
    """A data file's path: a string whose suffix must not say it holds another format
    (`csv("t.parquet")`) or a compression nnspec does not undo (`.zst`); unknown suffixes
    are read as the source's own format."""
    source: str = "csv"
    compressed: bool = True  # whether `.gz`, `.bz2` and `.xz` are undone

    def convert(self, v: Any) -> str:
        path = super().convert(v)
        fmt, packed = _suffixes(path)
        name = path.replace("\\", "/").rsplit("/", 1)[-1]
        last = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
        if last in _UNSUPPORTED:
            raise ArgError(E_FORMAT, f"`{last}`-compressed files cannot be read",
                           "decompress it, or compress it with gzip (`.gz`), bzip2 (`.bz2`) or xz (`.xz`)"
                           if self.compressed else f"decompress it: {_FORMAT_NAMES[self.source]} is read uncompressed")
        if packed is not None and not self.compressed:
            raise ArgError(E_FORMAT, f"{_FORMAT_NAMES[self.source]} cannot be read {packed}-compressed",
                           "decompress it first" + (" (a `.npy` file is memory-mapped)" if self.source == "npy" else ""))
        other = _FORMATS.get(fmt)
        if other is not None and other != self.source:
            usage = {"csv": '`csv("PATH", target=...)`', "jsonl": '`jsonl("PATH", target=...)`',
                     "npz": '`npz("PATH")`', "npy": '`npy(x="X.npy", y="Y.npy")`',
                     "parquet": '`parquet("PATH", target=...)`'}[other]
            raise ArgError(E_FORMAT, f"`{fmt}` names {_FORMAT_NAMES[other]}, which `{self.source}` does not read",
                           f"read it with {usage}")
        return path


def _tsv(values: dict[str, Any], given: set[str]) -> None:
    """A `.tsv` file (compressed or not) is tab-separated unless `delimiter` says otherwise."""
    if "delimiter" not in given and _suffixes(values["path"])[0] == ".tsv":
        values["delimiter"] = "\t"


def _table_params(fmt: str) -> tuple:
    return (
        P("path", DataPath(fmt, compressed=fmt != "parquet"), None, "the file, relative to the spec's folder",
          required=True, positional=True),
        P("target", ListOf(Str()), None, "the target column, or a list of them (none with "
          "`target input`)", required=True),
        P("features", ListOf(Str()), None, "the feature columns (default: every other column)"),
    )


SOURCES = Registry("data source", [
    Entry("builtin", (
        P("name", Str(), None, "which built-in dataset", required=True, positional=True),
    ), "a built-in dataset, generated from the spec's seed; the dataset's own params are "
       "passed as keyword arguments, as in `builtin(\"spirals\", n=500, noise=0.1)`",
        attrs={"params_from": DATASETS, "files": ()}),
    Entry("csv", (
        *_table_params("csv"),
        P("delimiter", Str(), ",", "the character between values (a `.tsv` file's default: a tab)"),
    ), "a CSV or TSV file with a header row (gzip, bzip2 or xz-compressed if its name ends in "
       "`.gz`, `.bz2` or `.xz`); numeric features, and a numeric or text target",
        attrs={"unless_target_input": ("target",), "targets": "target", "files": ("path",), "check": _tsv}),
    Entry("jsonl", _table_params("jsonl"),
          "a JSON lines file (compressed as a CSV file may be): one object a line, its keys the "
          "columns; numeric features, and a numeric or text target",
          attrs={"unless_target_input": ("target",), "targets": "target", "files": ("path",)}),
    Entry("npz", (
        P("path", DataPath("npz", compressed=False), None, "the file, relative to the spec's folder",
          required=True, positional=True),
        P("x", Str(), "x", "name of the features array, shaped (examples, ...)"),
        P("y", Str(), "y", "name of the targets array, shaped (examples,) or (examples, k)"),
    ), "a NumPy `.npz` archive (as written by `numpy.savez`) with a features and a "
       "targets array", attrs={"targets": "y", "files": ("path",)}),
    Entry("npy", (
        P("x", DataPath("npy", compressed=False), None, "the features file, an array shaped (examples, ...)",
          required=True),
        P("y", DataPath("npy", compressed=False), None, "the targets file, an array shaped (examples,) or "
          "(examples, k) (none with `target input`)", required=True),
    ), "two NumPy `.npy` files (as written by `numpy.save`), memory-mapped while they are read",
        attrs={"unless_target_input": ("y",), "targets": "y", "files": ("x", "y")}),
    Entry("idx", (
        P("images", DataPath("idx"), None, "the images file, as `train-images-idx3-ubyte.gz`",
          required=True, positional=True),
        P("labels", DataPath("idx"), None, "the labels file, as `train-labels-idx1-ubyte.gz` "
          "(none with `target input`)", required=True),
    ), "IDX files, the format MNIST and Fashion-MNIST ship in (gzipped if the name ends in "
       "`.gz`): images of (rows, cols) pixels, read as (rows, cols, 1), and class labels",
        attrs={"unless_target_input": ("labels",), "targets": "labels", "files": ("images", "labels")}),
    Entry("images", (
        P("path", Str(), None, "the folder, relative to the spec's folder: one sub-folder of images per class",
          required=True, positional=True),
    ), "a folder of images (.png, .jpg, .jpeg, .bmp, .gif) with one sub-folder per class, read as the "
       "input's (height, width, channels), resized if need be (needs Pillow: `pip install 'nnspec[images]'`)",
        attrs={"files": ("path",), "folder": True}),
    Entry("parquet", _table_params("parquet"),
          "a Parquet file (needs pyarrow: `pip install 'nnspec[parquet]'`); numeric features, and "
          "a numeric or text target",
          attrs={"unless_target_input": ("target",), "targets": "target", "files": ("path",)}),
])


def data_files(source: DataSource) -> dict[str, str]:
    """The files a source reads, by param: `{"path": "t.csv"}`, `{"x": ..., "y": ...}`;
    empty for a built-in dataset (and for `target input`'s absent targets file)."""
    entry = SOURCES.get(source.kind)
    names = entry.attrs.get("files", ()) if entry is not None else ()
    return {n: source.params[n] for n in names if source.params.get(n) is not None}


@dataclass(frozen=True)
class DataSource:
    """A checked `data` line: the source's kind and every param, defaults filled in.

    For `builtin`, `params` holds `name` and the dataset's own params."""
    kind: str
    params: Mapping[str, Any]

    @classmethod
    def of(cls, kind: str, **params: Any) -> DataSource:
        """A source from Python, defaults filled in (no type checks: that is check.py's job)."""
        entry = SOURCES.get(kind)
        if entry is None:
            raise ValueError(f"unknown data source `{kind}`")
        full = {**entry.defaults(), **params}
        if kind == "builtin":
            dataset = DATASETS.get(str(full.get("name")))
            if dataset is None:
                raise ValueError(f"unknown dataset `{full.get('name')}`")
            full = {**dataset.defaults(), **full}
        missing = [p.name for p in entry.params if p.required and p.name not in full]
        if missing:
            raise ValueError(f"data source `{kind}` needs `{missing[0]}`")
        return cls(kind, full)


def features_of(entry: Entry, params: Mapping[str, Any]) -> tuple[int, ...]:
    """The shape of one example of `entry` with `params` (defaults filled in)."""
    fn: Callable[[Mapping[str, Any]], tuple[int, ...]] | None = entry.attrs.get("features_fn")
    return tuple(fn({**entry.defaults(), **params})) if fn else tuple(entry.attrs["features"])


def classes_of(entry: Entry, params: Mapping[str, Any]) -> int | None:
    """The number of classes of `entry` with `params`; None for regression."""
    classes = entry.attrs["classes"]
    return classes({**entry.defaults(), **params}) if callable(classes) else classes


def labels_of(entry: Entry, params: Mapping[str, Any]) -> tuple[int, ...]:
    """The positions of `entry`'s class labels in one example: () for one class per
    example, (steps,) for a class at every step."""
    fn: Callable[[Mapping[str, Any]], tuple[int, ...]] | None = entry.attrs.get("labels_fn")
    return tuple(fn({**entry.defaults(), **params})) if fn else ()


def vocab_of(entry: Entry, params: Mapping[str, Any]) -> int | None:
    """How many token ids the examples of `entry` hold (ids 0..vocab-1); None for numbers."""
    vocab = entry.attrs.get("vocab")
    return vocab({**entry.defaults(), **params}) if callable(vocab) else vocab


def input_of(entry: Entry, params: Mapping[str, Any], name: str = "x") -> str:
    """The input declaration that fits the examples of `entry`: `x[20, 1]`, or
    `tokens[12] int vocab=10` for token ids."""
    shape = f"{name}[{', '.join(map(str, features_of(entry, params)))}]"
    vocab = vocab_of(entry, params)
    return shape if vocab is None else f"{shape} int vocab={vocab}"
