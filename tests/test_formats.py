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

from nnspec import data as data_mod
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
    for (x1, ign1), (x2, ign2) in got:
        np.testing.assert_array_equal(x1, [[1, 2], [3, 4]])
        assert ign1 == ("id", "label")
        np.testing.assert_array_equal(x2, [[1, 2], [3, 4]])
