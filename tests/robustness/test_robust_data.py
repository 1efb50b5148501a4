"""5. Bad data is refused clearly, through `nnspec train`.

Each bad file gives exit 1, no traceback, one diagnostic that points at the spec's `data`
line (carets under it) and a note with the file, the line and the column where they
apply. A huge file is not read whole to report an error near its start.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

from robust_helpers import cli, fails_cleanly, write

SPEC = """\
model m {
    input x[2]
    dense 8 relu
    dense 3 softmax
}
loss categorical_crossentropy
optimizer adam lr=0.01
train {
    data DATA
    batch 2
    epochs 1
    seed 0
}
"""
CSV_LINE = 'data csv("d.csv", target="y")'
GOOD = "a,b,y\n1,2,0\n3,4,1\n5,6,2\n7,8,0\n"

# name: (file contents, diagnostic's first line, the note's location)
CASES = {
    "ragged row": ("a,b,y\n1,2,0\n3,4\n5,6,2\n",
                   "error[E401]: cannot use the data: expected 3 values, found 2", "d.csv, line 3"),
    "too many values": ("a,b,y\n1,2,0\n3,4,1,9\n",
                        "error[E401]: cannot use the data: expected 3 values, found 4", "d.csv, line 3"),
    "text in a numeric column": ("a,b,y\n1,2,0\n3,four,1\n",
                                 "error[E401]: cannot use the data: cannot read `four` as a number",
                                 "d.csv, line 3, column `b`"),
    "decimal comma": ('a,b,y\n1,2,0\n"3,5",4,1\n', "error[E401]: cannot use the data: cannot read `3,5` as a number",
                      "d.csv, line 3, column `a`"),
    "empty file": ("", "error[E401]: cannot use the data: the file is empty", "d.csv"),
    "blank lines only": ("\n\n  \n", "error[E401]: cannot use the data: the file is empty", "d.csv"),
    "header only": ("a,b,y\n", "error[E401]: cannot use the data: the file has a header but no data rows", "d.csv"),
    "missing target column": ("a,b,c\n1,2,0\n", "error[E401]: cannot use the data: no column named `y`",
                              "d.csv, line 1"),
    "NaN feature": ("a,b,y\n1,2,0\n3,NaN,1\n", "error[E401]: cannot use the data: `NaN` is not a finite number",
                    "d.csv, line 3, column `b`"),
    "inf feature": ("a,b,y\n1,2,0\n3,4,1\n-inf,6,2\n", "error[E401]: cannot use the data: `-inf` is not a finite number",
                    "d.csv, line 4, column `a`"),
    "overflowing feature": ("a,b,y\n1,1e39,0\n", "error[E401]: cannot use the data: `1e39` is too large for a 32-bit float",
                            "d.csv, line 2, column `b`"),
    "missing feature": ("a,b,y\n1,,0\n", "error[E401]: cannot use the data: missing value", "d.csv, line 2, column `b`"),
    "NaN label": ("a,b,y\n1,2,0\n3,4,nan\n", "error[E401]: cannot use the data: `nan` is not a finite number",
                  "d.csv, line 3, column `y`"),
    "fractional label": ("a,b,y\n1,2,0\n3,4,1.5\n",
                         "error[E401]: cannot use the data: expected a class index (0, 1, 2, …), found `1.5`",
                         "d.csv, line 3, column `y`"),
    "label outside the classes": ("a,b,y\n1,2,0\n3,4,1\n\n5,6,5\n7,8,2\n",
                                  "error[E403]: the data has a label 5, but the model has only 3 output units "
                                  "(classes 0..2)", "d.csv, line 5, column `y`: `5` is the first such label"),
    "a fourth text class": ("a,b,y\n1,2,cat\n3,4,dog\n5,6,emu\n7,8,fox\n",
                            "error[E403]: the data has a label 3, but the model has only 3 output units "
                            "(classes 0..2)", "d.csv, line 5, column `y`: `fox` is the first such label"),
    "a long fourth text class": ("a,b,y\n1,2,cat\n3,4,dog\n5,6,emu\n7,8," + "z" * 500 + "\n",
                                 "error[E403]: the data has a label 3, but the model has only 3 output units "
                                 "(classes 0..2)", f"d.csv, line 5, column `y`: `{'z' * 59}…` is the first such label"),
    "more features than the input": ("a,b,c,y\n1,2,3,0\n4,5,6,1\n",
                                     "error[E403]: the data has examples of shape (3,), but the model's input is (2,)",
                                     "d.csv: the header names 3 feature column(s): `a`, `b`, `c`"),
    "not UTF-8": (b"a,b,y\n1,2,0\n3,\xff4,1\n", "error[E401]: cannot use the data: the file is not UTF-8 text",
                  "d.csv, line 3"),
    "unclosed quote": ('a,b,y\n1,2,0\n"3,4,1\n5,6,2\n', "error[E401]: cannot use the data: cannot read the line as CSV",
                       "d.csv, line 3"),
    "duplicate column": ("a,a,y\n1,2,0\n", "error[E401]: cannot use the data: appears twice in the header",
                         "d.csv, line 1, column `a`"),
}


def train(tmp_path: Path, contents: str | bytes, data_line: str = CSV_LINE, name: str = "d.csv"):
    if isinstance(contents, str):
        contents = contents.encode()
    (tmp_path / name).write_bytes(contents)
    spec = write(tmp_path / "s.nn", SPEC.replace("data DATA", data_line))
    return cli("train", spec, "--out", tmp_path / "run", "-q")


def assert_located(err: str, message: str, where: str, data_line: str = CSV_LINE) -> None:
    first = fails_cleanly(1, err)
    assert first.startswith(message), err
    # the spec's data line, with carets under it
    assert re.search(rf"^9 \|     {re.escape(data_line)}\n  \|     \^{{{len(data_line)}}}", err, re.M), err
    assert f"= note: {where}\n" in err, err


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_bad_csv_is_refused_with_file_line_and_column(name: str, tmp_path: Path) -> None:
    contents, message, where = CASES[name]
    code, _, err = train(tmp_path, contents)
    assert code == 1, err
    assert_located(err, message, where)
    assert not (tmp_path / "run" / "checkpoint.npz").exists(), "nothing is trained on bad data"


def test_the_good_file_trains(tmp_path: Path) -> None:
    code, out, err = train(tmp_path, GOOD)
    assert code == 0, err


def test_bad_npz(tmp_path: Path) -> None:
    line = 'data npz("d.npz")'
    for name, x, y, message, where in (
            ("NaN feature", [[1, 2], [np.nan, 4]], [0, 1],
             "error[E401]: cannot use the data: array `x` has a non-finite value `nan` at index (1, 0)", "d.npz"),
            ("label outside the classes", [[1, 2], [3, 4], [5, 6]], [0, 7, 1],
             "error[E403]: the data has a label 7, but the model has only 3 output units (classes 0..2)",
             "d.npz, array `y`, index 1: `7` is the first such label"),
            ("more features", [[1, 2, 3], [3, 4, 5]], [0, 1],
             "error[E403]: the data has examples of shape (3,), but the model's input is (2,)",
             "d.npz: the features have shape (2, 3)")):
        folder = tmp_path / name.replace(" ", "_")
        folder.mkdir()
        np.savez(folder / "d.npz", x=np.asarray(x, np.float32), y=np.asarray(y))
        code, _, err = train(folder, (folder / "d.npz").read_bytes(), line, "d.npz")
        assert code == 1, (name, err)
        assert_located(err, message, where, line)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    spec = write(tmp_path / "s.nn", SPEC.replace("data DATA", CSV_LINE))
    code, _, err = cli("train", spec, "--out", tmp_path / "run", "-q")
    assert_located(err, "error[E401]: cannot use the data: file not found", "d.csv")
    (tmp_path / "d.csv").mkdir()
    code, _, err = cli("train", spec, "--out", tmp_path / "run", "-q")
    assert_located(err, "error[E401]: cannot use the data: is a folder, not a file", "d.csv")


def _bytes_read() -> int | None:
    try:
        return int(re.search(r"^rchar: (\d+)$", Path("/proc/self/io").read_text(), re.M)[1])
    except (OSError, TypeError):
        return None


def test_a_huge_file_is_not_read_to_report_an_error_on_line_3(tmp_path: Path) -> None:
    """A 200 MB CSV (sparse: it costs no disk) with a bad cell on line 3 and, after it,
    bytes that are not even text. The error is line 3's, and at most a few MB are read."""
    path = tmp_path / "d.csv"
    with open(path, "wb") as f:
        f.write(b"a,b,y\n1,2,0\n3,oops,1\n" + b"4,5,1\n" * 1000 + b"\xff\xfe\x00 \"unclosed")
        f.truncate(200 * 2**20)  # the rest is a hole of NUL bytes
    spec = write(tmp_path / "s.nn", SPEC.replace("data DATA", CSV_LINE))
    before, t0 = _bytes_read(), time.process_time()  # CPU seconds: other load does not stretch them
    code, _, err = cli("train", spec, "--out", tmp_path / "run", "-q")  # in this process
    elapsed, after = time.process_time() - t0, _bytes_read()
    assert code == 1
    assert_located(err, "error[E401]: cannot use the data: cannot read `oops` as a number", "d.csv, line 3, column `b`")
    assert os.path.getsize(path) == 200 * 2**20
    if before is not None and after is not None:
        assert after - before < 8 * 2**20, f"read {after - before:,} bytes of a 200 MB file to report line 3"
    assert elapsed < 10


# ---------------------------------------------------------------------------------------
# Files that would exhaust memory, refused from what they declare before anything is
# decompressed or split (docs/reliability.md)

NPZ_LINE = 'data npz("d.npz")'


def _npz_member(z, name: str, shape: tuple[int, ...], dtype: str, zeros: int) -> None:
    """A `.npy` entry declaring `shape` and holding `zeros` bytes of zeros after its header."""
    with z.open(name, "w", force_zip64=True) as f:
        np.lib.format.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})
        for _ in range(zeros >> 20):
            f.write(bytes(1 << 20))
        f.write(bytes(zeros & ((1 << 20) - 1)))


def test_a_zip_bomb_npz_is_refused_before_it_is_decompressed(tmp_path: Path, monkeypatch) -> None:
    """48 MiB of zeros compress to 50 KB; on a machine of 64 MiB (so a budget of half
    that) the archive's own declarations refuse it."""
    import importlib
    import zipfile
    monkeypatch.setattr(importlib.import_module("nnspec.check"), "physical_memory", lambda: 64 << 20)
    n = 3 << 20  # (n, 2) float64: 48 MiB
    with zipfile.ZipFile(tmp_path / "d.npz", "w", compression=zipfile.ZIP_DEFLATED) as z:
        _npz_member(z, "x.npy", (n, 2), "<f8", n * 16)
        _npz_member(z, "y.npy", (n,), "|u1", n)
    assert os.path.getsize(tmp_path / "d.npz") < 1 << 20
    code, _, err = train(tmp_path, (tmp_path / "d.npz").read_bytes(), NPZ_LINE, "d.npz")
    assert code == 1, err
    assert_located(err, "error[E401]: cannot use the data: the arrays take 51.0 MiB once decompressed, "
                        "more than the 32.0 MiB allowed (half of this machine's memory)", "d.npz", NPZ_LINE)


def test_an_npz_declaring_a_trillion_elements_is_refused(tmp_path: Path) -> None:
    import zipfile
    with zipfile.ZipFile(tmp_path / "d.npz", "w") as z:
        _npz_member(z, "x.npy", (10**12, 2), "<f4", 64)
        _npz_member(z, "y.npy", (10**12,), "<i8", 64)
    code, _, err = train(tmp_path, (tmp_path / "d.npz").read_bytes(), NPZ_LINE, "d.npz")
    assert code == 1, err
    assert_located(err, "error[E401]: cannot use the data: array `x` declares shape (1000000000000, 2) "
                        "(7.3 TiB) but the archive holds 192 B for it", "d.npz", NPZ_LINE)


def test_a_header_of_too_many_columns_is_refused_before_it_is_split(tmp_path: Path) -> None:
    header = ",".join(f"c{i}" for i in range(200_000)) + ",y\n"
    code, _, err = train(tmp_path, header + "0," * 200_000 + "1\n")
    assert code == 1, err
    assert_located(err, "error[E401]: cannot use the data: the line holds more than 100,000 values", "d.csv, line 1")


def test_a_line_too_long_is_refused_before_it_is_split(tmp_path: Path) -> None:
    code, _, err = train(tmp_path, "a,b,y\n1,2," + "7" * (5 << 20) + "\n")
    assert code == 1, err
    assert_located(err, "error[E401]: cannot use the data: the line is longer than 4 MiB", "d.csv, line 2")


# ---------------------------------------------------------------------------------------
# Error messages show a short excerpt of a file the user named, never its content, and
# suggest no file names from outside the spec's folder

def _outside(tmp_path: Path, contents: bytes) -> Path:
    """A spec folder, and beside it a file that is not the spec's to show."""
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "passwd").write_bytes(contents)
    (tmp_path / "spec").mkdir()
    return tmp_path / "spec"


@pytest.mark.parametrize("contents", [
    b"root:x:0:0:the administrator of this machine, whose line must not be shown:/root:/bin/bash\n"
    b"daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n",
    b"\x00".join(b"SECRET_%d=%s" % (i, b"v" * 40) for i in range(100)),  # /proc/self/environ
], ids=["passwd", "environ"])
def test_errors_echo_only_a_short_excerpt_of_a_file(tmp_path: Path, contents: bytes) -> None:
    folder = _outside(tmp_path, contents)
    line = 'data csv("../secret/passwd", target="y")'
    code, _, err = train(folder, b"", line, "unused.csv")
    assert code == 1, err
    assert_located(err, "error[E401]: cannot use the data: no column named `y`", "../secret/passwd, line 1", line)
    shown = re.search(r"the columns are `([^`]*)`", err)[1]
    assert len(shown) <= 30 and shown.endswith("…"), err
    assert "daemon" not in err and "SECRET_1" not in err


def test_a_long_cell_is_shown_as_an_excerpt(tmp_path: Path) -> None:
    code, _, err = train(tmp_path, "a,b,y\n1,2,0\n3," + "x" * 5000 + ",1\n")
    assert code == 1, err
    assert_located(err, f"error[E401]: cannot use the data: cannot read `{'x' * 59}…` as a number",
                   "d.csv, line 3, column `b`")


def test_no_file_names_are_suggested_from_outside_the_specs_folder(tmp_path: Path) -> None:
    folder = _outside(tmp_path, b"a,b,y\n")
    line = 'data csv("../secret/passwx", target="y")'
    code, _, err = train(folder, b"", line, "unused.csv")
    assert code == 1, err
    assert "passwd" not in err, err
    assert "= help: looked for `" in err
    # inside the spec's folder, a near miss is still suggested
    line = 'data csv("unuzed.csv", target="y")'
    code, _, err = train(folder, b"a,b,y\n", line, "unused.csv")
    assert "= help: did you mean `unused.csv`?" in err, err


def test_one_hot_labels_train_under_labels_onehot(tmp_path: Path) -> None:
    spec = SPEC.replace("loss categorical_crossentropy", "loss categorical_crossentropy labels=onehot")
    x = np.arange(16, dtype=np.float32).reshape(8, 2)
    np.savez(tmp_path / "d.npz", x=x, y=np.eye(3)[[0, 1, 2, 0, 1, 2, 0, 1]])
    write(tmp_path / "s.nn", spec.replace("data DATA", NPZ_LINE))
    code, _, err = cli("train", tmp_path / "s.nn", "--out", tmp_path / "run", "-q")
    assert code == 0, err
    # four one-hot columns for a model of three classes
    np.savez(tmp_path / "d.npz", x=x, y=np.eye(4)[[0, 1, 2, 0, 1, 2, 0, 1]])
    code, _, err = cli("train", tmp_path / "s.nn", "--out", tmp_path / "run2", "-q")
    assert code == 1
    assert fails_cleanly(code, err) == "error[E403]: the data has 4 classes, but the model has only 3 output units"


def test_a_target_of_one_class_is_refused(tmp_path: Path) -> None:
    """All-zero binary labels, as a single text class always was: a model could only
    learn to answer that class."""
    spec = SPEC.replace("dense 3 softmax", "dense 1 sigmoid").replace("categorical_crossentropy", "binary_crossentropy")
    (tmp_path / "d.csv").write_text("a,b,y\n1,2,0\n3,4,0\n5,6,0\n")
    write(tmp_path / "s.nn", spec.replace("data DATA", CSV_LINE))
    code, _, err = cli("train", tmp_path / "s.nn", "--out", tmp_path / "run", "-q")
    assert code == 1
    assert_located(err, "error[E401]: cannot use the data: only one class, `0`; a binary target needs two",
                   "d.csv, line 2, column `y`")


# Runs `nnspec ARGV` and prints its exit code and the child's own peak memory (VmHWM
# starts afresh at exec, where ru_maxrss would count a large parent's).
PEAK = """\
import re, sys
from nnspec.cli import main
code = main(sys.argv[1:])
peak = re.search(r"^VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read(), re.M)[1]
print("exit", code, "peak_kib", peak, file=sys.stderr)
"""


def test_a_header_of_ten_million_columns_costs_no_memory(tmp_path: Path, subprocess_env) -> None:
    """Split into names, such a header took 2 GB; refused from the raw line, it takes none."""
    import subprocess
    import sys
    with open(tmp_path / "d.csv", "w") as f:
        for start in range(0, 10_000_000, 1_000_000):
            f.write(",".join(f"c{i}" for i in range(start, start + 1_000_000)) + ",")
        f.write("y\n1,0\n")
    spec = write(tmp_path / "s.nn", SPEC.replace("data DATA", CSV_LINE))
    script = write(tmp_path / "peak.py", PEAK)
    done = subprocess.run([sys.executable, str(script), "train", str(spec), "--out", str(tmp_path / "run"), "-q"],
                          env=subprocess_env, capture_output=True, text=True, timeout=300)
    m = re.search(r"exit (\d+) peak_kib (\d+)", done.stderr)
    assert m and m[1] == "1", done.stderr
    assert "the line is longer than 4 MiB" in done.stderr and "Traceback" not in done.stderr
    assert int(m[2]) < 1024 * 1024, f"peak memory {int(m[2]) / 1024:.0f} MiB"


def test_a_csv_of_more_rows_than_fit_in_memory_is_refused_as_it_is_read(tmp_path: Path, monkeypatch) -> None:
    """A CSV declares no size: the rows read so far are counted against the budget."""
    import importlib
    monkeypatch.setattr(importlib.import_module("nnspec.check"), "physical_memory", lambda: 1 << 20)
    # a row of 2 features and a target costs 12·2 + 20 + 8 = 52 bytes: 512 KiB hold 10,082
    code, _, err = train(tmp_path, "a,b,y\n" + "1,2,0\n3,4,1\n" * 6000)
    assert code == 1, err
    assert_located(err, "error[E401]: cannot use the data: the file has more than 10,082 rows, more than fit in the "
                        "512.0 KiB allowed (half of this machine's memory)", "d.csv, line 10084")


def test_any_bytes_as_a_csv_give_data_or_a_data_error(tmp_path_factory) -> None:
    """Training's and predict's reader on arbitrary bytes built from CSV's own pieces:
    arrays, or a located `DataError`, never another exception."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from nnspec.data import DataError, load_csv, read_features
    folder = tmp_path_factory.mktemp("fuzz-csv")
    pieces = st.sampled_from(["a", "b", "y", ",", ";", "\n", "\r\n", '"', " ", "1", "0", "-2.5", "1e39",
                              "nan", "1_0", "\ufeff", "\x00", "\xff", "é", "cat"])
    text = st.one_of(st.lists(pieces, max_size=40).map("".join).map(str.encode), st.binary(max_size=60))

    @settings(max_examples=300, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(text, st.sampled_from([None, ("a", "b")]), st.booleans())
    def check(data: bytes, names, header: bool) -> None:
        (folder / "d.csv").write_bytes(data)
        for read in (lambda: load_csv("d.csv", base_dir=folder, target=("y",)),
                     lambda: read_features("d.csv", base_dir=folder, names=names, width=2, header=header)):
            try:
                read()
            except DataError as exc:
                assert str(exc) and "\n" not in str(exc)
    check()


def test_damaged_npz_archives_give_a_data_error(tmp_path: Path) -> None:
    """Bytes of good archives (stored and deflated; 0/1, one-hot and text targets)
    changed at random: a zlib stream that does not inflate, or a zip version field no
    reader knows, crashed the loader."""
    import io
    import random

    from nnspec.data import DataError, load_npz
    goods = []
    for save in (np.savez, np.savez_compressed):
        for y in (np.arange(20) % 2, np.eye(3)[np.arange(20) % 3], np.array(["a", "b"] * 10)):
            buf = io.BytesIO()
            save(buf, x=np.linspace(0, 1, 40).reshape(20, 2), y=y)
            goods.append(buf.getvalue())
    rng = random.Random(0)
    for _ in range(400):
        data = bytearray(rng.choice(goods))
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        (tmp_path / "d.npz").write_bytes(bytes(data[:rng.randrange(len(data))] if rng.random() < 0.1 else data))
        for task in (None, "binary", "multiclass", "regression"):
            try:
                load_npz("d.npz", base_dir=tmp_path, task=task)
            except DataError as exc:
                assert str(exc).startswith("d.npz: ")
