"""Data file formats (nnspec/formats.py): the bulk CSV reader against the row-by-row one,
compressed CSV/TSV, JSON lines, `.npy`, IDX and Parquet read back as the same data as a
CSV file, and their bad inputs with exact, located messages."""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
from pathlib import Path

import numpy as np
import pytest

from nnspec import formats
from nnspec.data import DataError, load_csv, read_features


def _slow(monkeypatch):
    """Make every CSV read go row by row, as it does when the bulk reader gives up."""
    monkeypatch.setattr(formats, "fast_csv", lambda *a, **k: None)


def _same(a, b):
    assert a.task == b.task and a.classes == b.classes
    assert a.feature_names == b.feature_names and a.target_names == b.target_names
    assert a.x.dtype == b.x.dtype and a.y.dtype == b.y.dtype
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.lines, b.lines)


def _both(tmp_path, monkeypatch, text, **kw):
    """load_csv's result (or DataError text) in bulk and row by row."""
    path = tmp_path / "t.csv"
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    out = []
    for slow in (False, True):
        with monkeypatch.context() as m:
            if slow:
                _slow(m)
            try:
                out.append(load_csv("t.csv", base_dir=tmp_path, **kw))
            except DataError as exc:
                out.append(str(exc) + " | " + str(exc.help))
    return out


CLEAN = [
    ("a,b,label\n1,2,0\n3.5,-4e-3,1\n", dict(target=("label",))),
    ("a,b,label\r\n1,2,0\r\n3,4,1\r\n", dict(target=("label",))),
    ("\ufeffa,b,label\n1, 2,0\n3 ,4,1", dict(target=("label",))),
    ("a,b,label\n1,2,cat\n3,4,dog\n5,6,ant\n", dict(target=("label",))),
    ("a,b,label\n1,2, yes\n3,4,no \n", dict(target=("label",), task="binary")),
    ("a,b,y\n1,2,0.5\n3,4,7\n", dict(target=("y",))),
    ("a,b,y\n1,2,0\n3,4,2\n5,6,1\n", dict(target=("y",), task="multiclass")),
    ("id,a,b,y\nx7,1,2,0\nx8,3,4,1\n", dict(target=("y",), features=("a", "b"))),
    ("a,b,y1,y2\n1,2,0,1\n3,4,1,0\n", dict(target=("y1", "y2"))),
    ("a\tb\tlabel\n1\t2\tno\n3\t4\tyes\n", dict(target=("label",), delimiter="\t")),
    ("a;b;label\n1;2;0\n3;4;1\n", dict(target=("label",), delimiter=";")),
    ("a,b\n1,2\n3,4\n", dict(target=())),
    ("\n\na,b,label\n1,2,0\n3,4,1\n", dict(target=("label",))),
]

BAD = [
    "a,b,label\n1,2,0\n3,nan,1\n",
    "a,b,label\n1,2,0\n3,1e39,1\n",
    "a,b,label\n1,2,0\n3,,1\n",
    "a,b,label\n1,2,0\n3,4\n",
    "a,b,label\n1,2,0\n3,4,1,5\n",
    "a,b,label\n1,2,0\n3,1_000,1\n",
    "a,b,label\n1,2,0\n3,0x10,1\n",
    "a,b,label\n1,2,1\n3,4,yes\n",
    "a,b,label\n1,2,yes\n3,4,\n",
    "a,b,label\n1,2,yes\n3,4,yes\n",
    "a,b,label\n1,2,0\n3,4,0\n",
    "a,b,label\n1,2,0\n\n3,4,1\n5,6,x\n",
    'a,b,label\n1,2,0\n"3",4,1\n5,six,0\n',
    b"a,b,label\n1,2,0\n3,\xff,1\n",
]


@pytest.mark.parametrize("text,kw", CLEAN)
def test_the_bulk_reader_gives_what_the_row_reader_gives(tmp_path, monkeypatch, text, kw):
    real, bulk = formats.fast_csv, []
    monkeypatch.setattr(formats, "fast_csv", lambda *a, **k: bulk.append(real(*a, **k) is not None) or real(*a, **k))
    fast, slow = _both(tmp_path, monkeypatch, text, **kw)
    assert not isinstance(slow, str), slow
    _same(fast, slow)
    assert bulk == [True]  # these clean files are read in bulk, not row by row


@pytest.mark.parametrize("text", BAD)
def test_bad_files_are_reported_where_the_row_reader_finds_them(tmp_path, monkeypatch, text):
    fast, slow = _both(tmp_path, monkeypatch, text, target=("label",))
    assert isinstance(slow, str), "expected an error"
    assert fast == slow


def test_the_bulk_reader_reads_the_benchmark_file_in_bulk(tmp_path, monkeypatch):
    from benchmarks.csv_read import measure, write_csv
    write_csv(tmp_path / "b.csv", 500)
    calls = []
    real = formats.fast_csv
    monkeypatch.setattr(formats, "fast_csv", lambda *a, **k: calls.append(1) or real(*a, **k))
    ds = load_csv("b.csv", base_dir=tmp_path, target=("label",))
    ref = np.loadtxt(tmp_path / "b.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(ds.x, ref[:, :-1].astype(np.float32))
    np.testing.assert_array_equal(ds.y[:, 0], ref[:, -1])
    assert calls == [1] and ds.task == "binary"
    result = measure(tmp_path, rows=300, rounds=1)  # the benchmark's own plumbing, not its timing
    assert result["agrees"] and set(result["ratio"]) >= {"numpy_loadtxt"}


def test_predict_reads_in_bulk_and_row_by_row_alike(tmp_path, monkeypatch):
    (tmp_path / "p.csv").write_text("id,b,a,label\nr1,2,1,yes\nr2,4,3,no\n")
    (tmp_path / "n.csv").write_text("1,2\n3,4\n")
    got = []
    for slow in (False, True):
        with monkeypatch.context() as m:
            if slow:
                _slow(m)
            got.append((read_features("p.csv", base_dir=tmp_path, names=("a", "b"), width=2),
                        read_features("n.csv", base_dir=tmp_path, names=None, width=2, header=False)))
    for (x1, ign1), (x2, _ign2) in got:
        np.testing.assert_array_equal(x1, [[1, 2], [3, 4]])
        assert ign1 == ("id", "label")
        np.testing.assert_array_equal(x2, [[1, 2], [3, 4]])


# ---------------------------------------------------------------------------------------
# Every format reads back the same data as a CSV file

from nnspec.data import load, load_inputs  # noqa: E402
from nnspec.datasets import DataSource  # noqa: E402

X = np.array([[0.5, -1.25], [2.0, 3.5], [-0.75, 0.0], [1.5, 2.25], [0.125, -3.0], [4.0, 1.0]])
LABELS = ["no", "yes", "no", "yes", "yes", "no"]
CLASS = np.array([0, 1, 0, 2, 1, 2])


def _csv_text(sep=","):
    rows = [sep.join(["a", "b", "label", "k"])]
    rows += [sep.join([repr(float(p)), repr(float(q)), lab, str(k)]) for (p, q), lab, k in zip(X, LABELS, CLASS)]
    return "\n".join(rows) + "\n"


def _reference(tmp_path, target="label", task=None):
    (tmp_path / "ref.csv").write_text(_csv_text())
    return load(DataSource.of("csv", path="ref.csv", target=target, features=["a", "b"]), seed=0,
                base_dir=tmp_path, task=task)


def _same_data(a, b):
    assert a.task == b.task and a.classes == b.classes
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)


@pytest.mark.parametrize("suffix,opener", [(".gz", gzip.open), (".bz2", bz2.open), (".xz", lzma.open)])
@pytest.mark.parametrize("sep,name", [(",", "t.csv"), ("\t", "t.tsv")])
def test_compressed_csv_and_tsv(tmp_path, suffix, opener, sep, name):
    with opener(tmp_path / (name + suffix), "wt") as f:
        f.write(_csv_text(sep))
    ds = load(DataSource.of("csv", path=name + suffix, target="label", features=["a", "b"],
                            delimiter=sep), seed=0, base_dir=tmp_path)
    _same_data(ds, _reference(tmp_path))
    assert ds.lines.tolist() == [2, 3, 4, 5, 6, 7]


def test_a_tsv_file_is_tab_separated_unless_the_spec_says_otherwise():
    from nnspec import check_text
    spec = ('model m {\n    input x[2]\n    dense 1 sigmoid\n}\nloss binary_crossentropy\noptimizer sgd\n'
            'train {\n    data csv("%s", target="label")\n}\n')
    assert check_text(spec % "t.tsv.gz").train.data.params["delimiter"] == "\t"
    assert check_text(spec % "t.csv").train.data.params["delimiter"] == ","
    assert check_text((spec % "t.tsv").replace('target="label"', 'target="label", delimiter=";"')
                      ).train.data.params["delimiter"] == ";"


@pytest.mark.parametrize("compressed", [False, True])
def test_json_lines(tmp_path, compressed):
    import json
    text = "".join(json.dumps({"a": float(p), "b": float(q), "label": lab, "k": int(k)}) + "\n"
                   for (p, q), lab, k in zip(X, LABELS, CLASS))
    name = "t.jsonl.gz" if compressed else "t.jsonl"
    if compressed:
        with gzip.open(tmp_path / name, "wt") as f:
            f.write(text)
    else:
        (tmp_path / name).write_text(text)
    for target, task in (("label", None), ("k", "multiclass")):
        ds = load(DataSource.of("jsonl", path=name, target=target, features=["a", "b"]), seed=0,
                  base_dir=tmp_path, task=task)
        _same_data(ds, _reference(tmp_path, target, task))
        assert ds.feature_names == ("a", "b") and ds.lines.tolist() == [1, 2, 3, 4, 5, 6]


def test_npy_files_are_memory_mapped_and_read_as_an_npz_archive(tmp_path, monkeypatch):
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", CLASS)
    np.savez(tmp_path / "a.npz", x=X, y=CLASS)
    mapped = []
    real = np.memmap
    monkeypatch.setattr(formats.np, "memmap", lambda *a, **k: mapped.append(a[0]) or real(*a, **k))
    ds = load(DataSource.of("npy", x="x.npy", y="y.npy"), seed=0, base_dir=tmp_path, task="multiclass")
    assert [Path(p).name for p in mapped] == ["x.npy", "y.npy"]
    _same_data(ds, load(DataSource.of("npz", path="a.npz"), seed=0, base_dir=tmp_path, task="multiclass"))
    _same_data(ds, _reference(tmp_path, "k", "multiclass"))
    auto = load_inputs(DataSource.of("npy", x="x.npy", y=None), seed=0, base_dir=tmp_path)
    np.testing.assert_array_equal(auto.y, X.astype(np.float32))


def _idx(a: np.ndarray, code: int = 0x08) -> bytes:
    """An IDX file, as its spec says: two zero bytes, the type, the number of dimensions,
    each dimension as a big-endian uint32, then the values big-endian."""
    dtype = formats.IDX_TYPES[code]
    return bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + a.astype(dtype).tobytes()


IMAGES = (np.arange(6 * 4 * 3) * 7 % 256).astype(np.uint8).reshape(6, 4, 3)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_images_and_labels_read_as_the_same_arrays_in_an_npz_archive(tmp_path, gz):
    for name, blob in (("images-idx3-ubyte", _idx(IMAGES)), ("labels-idx1-ubyte", _idx(CLASS.astype(np.uint8)))):
        if gz:
            with gzip.open(tmp_path / (name + ".gz"), "wb") as f:
                f.write(blob)
        else:
            (tmp_path / name).write_bytes(blob)
    np.savez(tmp_path / "a.npz", x=IMAGES[..., None].astype(np.float64), y=CLASS)
    end = ".gz" if gz else ""
    ds = load(DataSource.of("idx", images="images-idx3-ubyte" + end, labels="labels-idx1-ubyte" + end),
              seed=0, base_dir=tmp_path, task="multiclass")
    assert ds.x.shape == (6, 4, 3, 1)
    _same_data(ds, load(DataSource.of("npz", path="a.npz"), seed=0, base_dir=tmp_path, task="multiclass"))
    big_endian = np.arange(6 * 2, dtype=np.float64).reshape(6, 2) - 3.5  # a `double` IDX, 2-D
    (tmp_path / "f.idx").write_bytes(_idx(big_endian, 0x0E))
    ds = load(DataSource.of("idx", images="f.idx", labels="labels-idx1-ubyte" + end), seed=0,
              base_dir=tmp_path, task="multiclass")
    np.testing.assert_array_equal(ds.x, big_endian.astype(np.float32))


def test_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"a": X[:, 0], "b": X[:, 1], "label": LABELS, "k": CLASS}), tmp_path / "t.parquet")
    for target, task in (("label", None), ("k", "multiclass"), ("label", "binary")):
        ds = load(DataSource.of("parquet", path="t.parquet", target=target, features=["a", "b"]), seed=0,
                  base_dir=tmp_path, task=task)
        _same_data(ds, _reference(tmp_path, target, task))
        assert ds.feature_names == ("a", "b") and ds.target_names == (target,)


def test_pyarrow_is_imported_only_to_read_parquet(tmp_path):
    import subprocess
    import sys
    (tmp_path / "t.csv").write_text(_csv_text())
    code = ("import sys; from pathlib import Path; from nnspec.data import load_csv; "
            f"load_csv('t.csv', base_dir=Path({str(tmp_path)!r}), target=('label',), features=('a', 'b')); "
            "print('pyarrow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == "False", out.stderr


# ---------------------------------------------------------------------------------------
# Bad input: the file, and the line (or row) and column where the format has them

def _error(tmp_path, source, task=None):
    with pytest.raises(DataError) as exc:
        load(source, seed=0, base_dir=tmp_path, task=task)
    return str(exc.value), exc.value.help


def test_a_truncated_gzip_file_is_reported_at_the_line_where_its_data_ends(tmp_path):
    import re
    text = "a,b,label\n" + "".join(f"{i * 0.5},{i},{i % 2}\n" for i in range(2000))
    raw = gzip.compress(text.encode())
    (tmp_path / "t.csv.gz").write_bytes(raw[:len(raw) // 2])
    message, help = _error(tmp_path, DataSource.of("csv", path="t.csv.gz", target="label"))
    m = re.fullmatch(r"t\.csv\.gz:(\d+): the gzip file is truncated: it ends in the middle of its compressed data",
                     message)
    assert m and 2 < int(m.group(1)) < 2001, message
    assert help == "the file was cut short (an interrupted download or copy?): fetch or compress it again"


def test_a_file_that_is_not_what_its_suffix_says(tmp_path):
    (tmp_path / "t.csv.gz").write_text("a,label\n1,0\n")
    (tmp_path / "t.csv.bz2").write_bytes(b"BZh91AY&SY" + b"\0" * 40)
    assert _error(tmp_path, DataSource.of("csv", path="t.csv.gz", target="label")) == (
        "t.csv.gz:1: cannot decompress the file as gzip (Not a gzipped file (b'a,'))",
        "the name ends in `.gz`, so it is read as gzip; if the file is not compressed, name it without `.gz`")
    message, _ = _error(tmp_path, DataSource.of("csv", path="t.csv.bz2", target="label"))
    assert message.startswith("t.csv.bz2:1: cannot decompress the file as bzip2 (")


FIRST = '{"a": 1, "b": 2, "label": "x"}\n'
JSONL_ERRORS = [
    ('{"a": 1, "b": 2, "label": }', "t.jsonl:2: cannot read the line as JSON at character 27 (Expecting value)"),
    ("[1, 2]", "t.jsonl:2: expected a JSON object, found a list"),
    ('{"a": 1, "label": "y"}', "t.jsonl:2: the object has no key `b`"),
    ('{"a": 1, "b": 2, "label": "y", "c": 3}', "t.jsonl:2: the object has a key `c` that line 1's does not"),
    ('{"a": [1], "b": 2, "label": "y"}', "t.jsonl:2: column `a`: expected a number or a string, found a list"),
    ('{"a": null, "b": 2, "label": "y"}', "t.jsonl:2: column `a`: missing value"),
    ('{"a": "hi", "b": 2, "label": "y"}', "t.jsonl:2: column `a`: cannot read `hi` as a number"),
    ('{"a": NaN, "b": 2, "label": "y"}', "t.jsonl:2: column `a`: `nan` is not a finite number"),
]


@pytest.mark.parametrize("line,message", JSONL_ERRORS)
def test_bad_json_lines(tmp_path, line, message):
    (tmp_path / "t.jsonl").write_text(FIRST + line + "\n")
    assert _error(tmp_path, DataSource.of("jsonl", path="t.jsonl", target="label"))[0] == message


def test_json_lines_without_the_named_column_or_any_line(tmp_path):
    (tmp_path / "t.jsonl").write_text(FIRST)
    (tmp_path / "e.jsonl").write_text("\n\n")
    assert _error(tmp_path, DataSource.of("jsonl", path="t.jsonl", target="lable")) == (
        "t.jsonl:1: no column named `lable`", "did you mean `label`?")
    assert _error(tmp_path, DataSource.of("jsonl", path="e.jsonl", target="label"))[0] == "e.jsonl: the file is empty"


def test_bad_npy_files(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((10, 2)))
    np.save(tmp_path / "y.npy", np.zeros(10))
    np.save(tmp_path / "y5.npy", np.zeros(5))
    np.save(tmp_path / "obj.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    blob = (tmp_path / "x.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(blob[:-80])
    (tmp_path / "junk.npy").write_bytes(b"hello world")
    npy = lambda x, y="y.npy": DataSource.of("npy", x=x, y=y)  # noqa: E731
    assert _error(tmp_path, npy("cut.npy")) == (
        "cut.npy: the header declares shape (10, 2) of `float64` (160 bytes), but the file holds 80 bytes after it",
        "the file is truncated or damaged: write it again with `numpy.save`")
    assert _error(tmp_path, npy("junk.npy")) == ("junk.npy: cannot read the file as a NumPy `.npy` array",
                                                 "write it with `numpy.save(path, array)`")
    assert _error(tmp_path, npy("x.npy", "obj.npy"))[0] == "obj.npy: the array holds Python objects, not numbers"
    assert _error(tmp_path, npy("x.npy", "y5.npy"))[0] == "y5.npy: `x.npy` holds 10 examples but `y5.npy` holds 5"


def test_bad_idx_files(tmp_path):
    images, labels = np.zeros((6, 4, 3), np.uint8), (np.arange(6) % 3).astype(np.uint8)
    (tmp_path / "lb").write_bytes(_idx(labels))
    (tmp_path / "lb5").write_bytes(_idx(labels[:5]))
    (tmp_path / "im").write_bytes(_idx(images))
    (tmp_path / "short").write_bytes(_idx(images)[:-5])
    with gzip.open(tmp_path / "short.gz", "wb") as f:
        f.write(_idx(images)[:-5])
    (tmp_path / "zipped").write_bytes(gzip.compress(_idx(images)))
    (tmp_path / "type").write_bytes(bytes([0, 0, 7, 1]) + struct.pack(">I", 6) + bytes(6))
    (tmp_path / "cut").write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">I", 6))
    raw = gzip.compress(_idx(images))
    (tmp_path / "trunc.gz").write_bytes(raw[:-10])
    idx = lambda images, labels="lb": DataSource.of("idx", images=images, labels=labels)  # noqa: E731
    size = "the header declares shape (6, 4, 3) of 1-byte values (72 bytes), but the file holds 67 bytes after the header"
    assert _error(tmp_path, idx("short"))[0] == "short: " + size
    assert _error(tmp_path, idx("short.gz"))[0] == "short.gz: " + size
    assert _error(tmp_path, idx("zipped")) == ("zipped: not an IDX file: the first bytes are not an IDX header",
                                               "the file is gzip-compressed: name it with a `.gz` suffix")
    assert _error(tmp_path, idx("type"))[0] == "type: unknown IDX value type 0x07"
    assert _error(tmp_path, idx("cut"))[0] == "cut: the IDX header is cut short: it declares 3 dimension(s)"
    assert _error(tmp_path, idx("trunc.gz"))[0] == ("trunc.gz: the gzip file is truncated: it ends in the middle "
                                                    "of its compressed data")
    assert _error(tmp_path, idx("im", "lb5"))[0] == "lb5: the labels file holds 5 labels, but the images file 6 images"
    (tmp_path / "none3").write_bytes(_idx(np.zeros((0, 4, 3), np.uint8)))
    (tmp_path / "none1").write_bytes(_idx(np.zeros(0, np.uint8)))
    assert _error(tmp_path, idx("none3", "none1"))[0] == "none3: the arrays hold no examples"
    assert _error(tmp_path, idx("im", "im"))[0] == ("im: the labels file holds an array of shape (6, 4, 3); labels "
                                                    "are one number per example, shape (examples,)")


def test_bad_parquet_files(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"a": ["x", "y"], "b": [1.0, 2.0], "label": [0, 1]}), tmp_path / "text.parquet")
    pq.write_table(pa.table({"a": [1.0, None, 3.0], "b": [1.0, 2.0, 3.0], "label": [0, 1, 0]}),
                   tmp_path / "null.parquet")
    pq.write_table(pa.table({"a": [[1.0], [2.0]], "b": [1.0, 2.0], "label": [0, 1]}), tmp_path / "list.parquet")
    pq.write_table(pa.table({"a": [1.0, 2.0, 3.0], "label": ["x", None, "y"]}), tmp_path / "nolabel.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    pq_ = lambda path, target="label": DataSource.of("parquet", path=path, target=target)  # noqa: E731
    assert _error(tmp_path, pq_("text.parquet")) == (
        "text.parquet: column `a`: holds text; features must be numbers",
        'features must be numbers; to leave `a` out, write `features=["b"]`')
    assert _error(tmp_path, pq_("null.parquet"))[0] == "null.parquet: column `a`: missing value in row 2"
    assert _error(tmp_path, pq_("nolabel.parquet"))[0] == "nolabel.parquet: column `label`: missing value in row 2"
    assert _error(tmp_path, pq_("list.parquet"))[0] == ("list.parquet: column `a`: has type `list<element: double>`; "
                                                        "nnspec reads numbers and text")
    assert _error(tmp_path, pq_("null.parquet", "lable")) == ("null.parquet: no column named `lable`",
                                                              "did you mean `label`?")
    assert _error(tmp_path, pq_("junk.parquet"))[0].startswith("junk.parquet: cannot read the file as Parquet (")


def test_without_pyarrow_parquet_is_refused_with_how_to_install_it(tmp_path, monkeypatch):
    import builtins
    real = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name))
                        if name.startswith("pyarrow") else real(name, *a, **k))
    (tmp_path / "t.parquet").write_bytes(b"PAR1")
    assert _error(tmp_path, DataSource.of("parquet", path="t.parquet", target="label")) == (
        "t.parquet: reading Parquet files needs pyarrow, which is not installed",
        "install it with `pip install 'nnspec[parquet]'`")


# ---------------------------------------------------------------------------------------
# The spec's side: checked without reading anything

SPEC = ('model m {\n    input x[2]\n    dense 1 sigmoid\n}\nloss binary_crossentropy\noptimizer sgd\n'
        'train {\n    data %s\n}\n')


def _diagnostics(source):
    from nnspec import check_text
    from nnspec.diagnostics import NNSpecError
    with pytest.raises(NNSpecError) as exc:
        check_text(SPEC % source)
    return [(d.code, d.message, d.help) for d in exc.value.diagnostics]


@pytest.mark.parametrize("source,expected", [
    ('csv("t.parquet", target="y")',
     ("E113", "`.parquet` names a Parquet file, which `csv` does not read", 'read it with `parquet("PATH", target=...)`')),
    ('csv("t.csv.zst", target="y")',
     ("E113", "`.zst`-compressed files cannot be read",
      "decompress it, or compress it with gzip (`.gz`), bzip2 (`.bz2`) or xz (`.xz`)")),
    ('jsonl("t.csv", target="y")',
     ("E113", "`.csv` names a CSV file, which `jsonl` does not read", 'read it with `csv("PATH", target=...)`')),
    ('parquet("t.parquet.gz", target="y")',
     ("E113", "a Parquet file cannot be read gzip-compressed", "decompress it first")),
    ('npz("t.npy")',
     ("E113", "`.npy` names a NumPy `.npy` array, which `npz` does not read", 'read it with `npy(x="X.npy", y="Y.npy")`')),
    ('idx("train-images.csv", labels="l")',
     ("E113", "`.csv` names a CSV file, which `idx` does not read", 'read it with `csv("PATH", target=...)`')),
    ('idx("train-images-idx3-ubyte.gz")',
     ("E106", "missing `labels` for data source `idx`",
      '`labels`: the labels file, as `train-labels-idx1-ubyte.gz` (none with `target input`); '
      'write `idx("IMAGES", labels="LABELS")`')),
    ('parquett("t.parquet", target="y")',
     ("E101", "unknown data source `parquett`", "did you mean `parquet`?")),
])
def test_the_data_line_is_checked_statically(source, expected):
    assert _diagnostics(source) == [expected]


def test_every_file_source_checks_clean_and_needs_no_targets_with_target_input():
    from nnspec import check_text
    for source in ('csv("t.csv.bz2", target="y")', 'jsonl("t.jsonl.xz", target="y")', 'parquet("t.pq", target="y")',
                   'npy(x="x.npy", y="y.npy")', 'idx("i-idx3-ubyte.gz", labels="l-idx1-ubyte.gz")', 'idx("t10k.idx", labels="l")'):
        assert check_text(SPEC % source).train.data.kind == source.split("(")[0]
    auto = ('model m {\n    input x[4]\n    dense 4\n}\nloss mse\noptimizer sgd\n'
            'train {\n    data %s\n    target input\n}\n')
    for source in ('jsonl("t.jsonl")', 'npy(x="x.npy")', 'idx("i-idx3-ubyte")', 'parquet("t.parquet")'):
        assert check_text(auto % source).train.target == "input"
    from nnspec.diagnostics import NNSpecError
    with pytest.raises(NNSpecError) as exc:
        check_text(auto % 'npy(x="x.npy", y="y.npy")')
    assert [d.code for d in exc.value.diagnostics] == ["E105"]


def test_the_feature_names_of_named_columns_are_read_from_the_header_alone(tmp_path):
    from nnspec.data import feature_names
    (tmp_path / "t.jsonl").write_text('{"a": 1, "b": 2, "label": "x"}\nnot json at all\n')
    assert feature_names(DataSource.of("jsonl", path="t.jsonl", target="label"), base_dir=tmp_path) == ("a", "b")
    assert feature_names(DataSource.of("npy", x="x.npy", y="y.npy"), base_dir=tmp_path) is None
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"k": [1], "a": [1.0], "label": [0]}), tmp_path / "t.parquet")
    assert feature_names(DataSource.of("parquet", path="t.parquet", target="label"), base_dir=tmp_path) == ("k", "a")


@pytest.mark.parametrize("text,text_column,lines", [
    ("h\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n9,10,0\n", None, [2, 3, 4, 5, 6]),
    ("h\n1,2,cat\n3,4,dog\n5,6,1\n7,8,cat\n9,10,ant\n", 2, [2, 3, 4, 5, 6]),  # `1` is a class: the first block decides
    ("h\n1,2,0\n3,4,1\n\n\n5,6,0\n7,8,1\n9,10,0\n", None, [2, 3, 6, 7, 8]),  # blank lines shift the line numbers
])
@pytest.mark.parametrize("block", [1, 5, 9, 1 << 20])
def test_the_bulk_reader_gives_the_same_table_in_blocks_of_any_size(text, text_column, lines, block):
    import io
    got = formats.fast_csv(io.BytesIO(text.encode()), delimiter=",", skip=1, width=3, text_column=text_column,
                           block=block)
    if got is None:  # blank lines inside a block, not at its end: left to the row-by-row reader
        assert "\n\n" in text and block > 1
        return
    values, got_lines, labels = got
    np.testing.assert_array_equal(values[:, :2], [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]])
    np.testing.assert_array_equal(got_lines, lines)
    if text_column is None:
        np.testing.assert_array_equal(values[:, 2], [0, 1, 0, 1, 0])
    else:
        assert [labels[int(c)] for c in values[:, 2]] == ["cat", "dog", "1", "cat", "ant"]


def test_a_bad_cell_early_in_a_large_file_is_found_without_reading_the_rest(tmp_path, monkeypatch):
    text = "a,b,label\n1,2,0\n3,oops,1\n" + "4,5,1\n" * 2_000_000  # 12 MB after line 3
    (tmp_path / "t.csv").write_text(text)
    read = []
    real = formats.fast_csv
    monkeypatch.setattr(formats, "fast_csv", lambda f, **k: (real(f, **k), read.append(f.tell()))[0])
    with pytest.raises(DataError, match=r"^t\.csv:3: column `b`: cannot read `oops` as a number$"):
        load_csv("t.csv", base_dir=tmp_path, target=("label",))
    assert read and read[0] < 5 << 20  # one block, not the whole file


def test_a_source_bound_by_let_is_checked_as_one_written_out():
    from nnspec import check_text
    from nnspec.diagnostics import NNSpecError
    spec = ('let src = npy(x="x.npy", y="y.npy")\nmodel m {\n    input x[2]\n    dense 2\n}\nloss mse\n'
            'optimizer sgd\ntrain {\n    data src\n%s}\n')
    assert check_text(spec % "").train.data.params["y"] == "y.npy"
    with pytest.raises(NNSpecError) as exc:
        check_text(spec % "    target input\n")
    assert [(d.code, d.message) for d in exc.value.diagnostics] == [("E105", "the targets are given twice")]
