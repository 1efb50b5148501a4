"""`train { stream }` of a Parquet file: its feature columns are read a bounded piece of
rows at a time into a float32 spool in the cache folder (nnspec/stream.py `spool`), which
the training then maps as it maps a `.npy` file.

A streamed run must end with the weights and history of the same spec loaded whole; the
spool must be written once and reused while the file is unchanged; no piece read from the
file may be larger than stream.PIECE_BYTES allows; and what the whole read refuses is
refused streamed too, with the same located message.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import nnspec
from nnspec import stream

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

SPEC = """\
model m {{
    input x[12]
    dense 16 relu
    dropout 0.2
    dense 1 sigmoid
}}
loss binary_crossentropy
optimizer adam lr=0.01
train {{
    data {data}
    split {split}
    batch 50
    epochs 3
    seed 0
    standardize
    metrics accuracy
{extra}}}
"""

FEATURES = [f"f{i}" for i in range(11)] + ["count"]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    """Each test's spools in a folder of its own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "nnspec" / "stream"


def write_table(path: Path, n: int = 1234, *, seed: int = 1, row_group: int = 300) -> np.ndarray:
    """Eleven float columns, an integer one (`count`) and text labels; the features as the
    whole read gives them (float64)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 12)) * 3 + 5
    x[:, 11] = rng.integers(0, 50, size=n)
    labels = np.where(x[:, :3].sum(axis=1) > 15, "yes", "no")
    cols = {name: x[:, i] for i, name in enumerate(FEATURES[:11])}
    cols["count"] = x[:, 11].astype(np.int64)
    cols["label"] = labels
    pq.write_table(pa.table(cols), path, row_group_size=row_group)
    return x


def spec(folder: Path, name: str, *, stream_line: str = "", data: str = 'parquet("t.parquet", target="label")',
         split: str = "val=0.2 test=0.1", extra: str = "") -> Path:
    path = folder / name
    path.write_text(SPEC.format(data=data, split=split,
                                extra=(f"    {stream_line}\n" if stream_line else "") + extra))
    return path


def leaves(tree) -> list[np.ndarray]:
    import jax
    return [np.asarray(v) for v in jax.tree_util.tree_leaves(tree)]


def same_run(whole, streamed) -> None:
    for a, b in zip(leaves(whole.params), leaves(streamed.params), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(whole.history, streamed.history, strict=True):
        assert {k: v for k, v in a.items() if k != "time"} == {k: v for k, v in b.items() if k != "time"}
    assert whole.kept == streamed.kept


def spools(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.npy")) if folder.is_dir() else []


def counting_batches(monkeypatch) -> list[int]:
    """The rows of each record batch read from a Parquet file, from now on."""
    sizes: list[int] = []
    original = pq.ParquetFile.iter_batches

    def counted(self, *args, **kwargs):
        for batch in original(self, *args, **kwargs):
            sizes.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", counted)
    return sizes


@pytest.mark.parametrize("line", ["stream 250", "stream"])
def test_a_streamed_parquet_run_equals_the_same_run_loaded_whole(tmp_path, cache, line) -> None:
    write_table(tmp_path / "t.parquet")
    whole = nnspec.train(spec(tmp_path, "whole.nn"), out=tmp_path / "w")
    streamed = nnspec.train(spec(tmp_path, "streamed.nn", stream_line=line), out=tmp_path / "s")
    assert isinstance(streamed.splits.train.x, stream.Rows)
    assert not isinstance(whole.splits.train.x, stream.Rows)
    assert streamed.splits.train.feature_names == whole.splits.train.feature_names == tuple(FEATURES)
    assert streamed.splits.train.classes == whole.splits.train.classes == ("no", "yes")
    same_run(whole, streamed)
    assert len(spools(cache)) == 1


def test_separate_parquet_validation_and_test_files_stream_too(tmp_path, cache) -> None:
    write_table(tmp_path / "t.parquet")
    write_table(tmp_path / "v.parquet", n=300, seed=2)
    write_table(tmp_path / "e.parquet", n=200, seed=3)
    data = 'parquet("t.parquet", target="label") val=parquet("v.parquet", target="label") ' \
           'test=parquet("e.parquet", target="label")'
    whole = nnspec.train(spec(tmp_path, "whole.nn", data=data, split="val=0 test=0"), out=tmp_path / "w")
    # 25 steps of 50 in windows of 5
    streamed = nnspec.train(spec(tmp_path, "streamed.nn", data=data, split="val=0 test=0", stream_line="stream 250"),
                            out=tmp_path / "s")
    assert all(isinstance(d.x, stream.Rows) for d in (streamed.splits.train, streamed.splits.val, streamed.splits.test))
    same_run(whole, streamed)
    assert len(spools(cache)) == 3  # one per file


def test_the_spool_is_reused_until_the_file_changes(tmp_path, cache, monkeypatch) -> None:
    write_table(tmp_path / "t.parquet")
    path = spec(tmp_path, "s.nn", stream_line="stream 150")
    first = nnspec.train(path, out=tmp_path / "a")
    (written,) = spools(cache)
    stamp = written.stat()
    sizes = counting_batches(monkeypatch)
    again = nnspec.train(path, out=tmp_path / "b")
    assert sizes == [], "the features were read from the Parquet file again"
    assert spools(cache) == [written]
    assert (written.stat().st_ino, written.stat().st_mtime_ns) == (stamp.st_ino, stamp.st_mtime_ns)
    same_run(first, again)
    # a new file at the same path: a new spool of its features, the old one removed
    x = write_table(tmp_path / "t.parquet", seed=7)
    os.utime(tmp_path / "t.parquet", ns=(stamp.st_mtime_ns + 10**9, stamp.st_mtime_ns + 10**9))
    changed = nnspec.train(path, out=tmp_path / "c")
    assert sum(sizes) == len(x)
    (rewritten,) = spools(cache)
    assert rewritten != written and not written.exists()
    np.testing.assert_array_equal(np.load(rewritten), x.astype(np.float32))
    whole = nnspec.train(spec(tmp_path, "w.nn"), out=tmp_path / "w")
    same_run(whole, changed)


def test_a_damaged_spool_is_written_again(tmp_path, cache) -> None:
    x = write_table(tmp_path / "t.parquet")
    path = spec(tmp_path, "s.nn", stream_line="stream 150")
    nnspec.train(path, out=tmp_path / "a")
    (written,) = spools(cache)
    written.write_bytes(written.read_bytes()[:1000])  # cut short
    nnspec.train(path, out=tmp_path / "b")
    np.testing.assert_array_equal(np.load(written), x.astype(np.float32))


def test_the_file_is_read_in_pieces_that_piece_bytes_bounds(tmp_path, cache, monkeypatch) -> None:
    x = write_table(tmp_path / "t.parquet", n=3000, row_group=1000)
    monkeypatch.setattr(stream, "PIECE_BYTES", 8 * 12 * 64)  # 64 rows of twelve 8-byte values
    sizes = counting_batches(monkeypatch)
    reads: list[int] = []
    original = stream.Rows.read

    def counted(self, key=None):
        got = original(self, key)
        reads.append(len(got))
        return got

    monkeypatch.setattr(stream.Rows, "read", counted)
    monkeypatch.setattr("nnspec.trainer.EVAL_CHUNK", 256)
    result = nnspec.train(spec(tmp_path, "s.nn", stream_line="stream 150"), out=tmp_path / "s")
    assert sum(sizes) == 3000, "the features were not read from the file in pieces"
    assert max(sizes) == 64 and len(sizes) > 3000 // 64
    (written,) = spools(cache)
    np.testing.assert_array_equal(np.load(written), x.astype(np.float32))
    # and training read the spool as it reads a `.npy` file: a window or a chunk at a time
    assert reads and max(reads) <= 256 and 150 in reads
    assert isinstance(result.splits.train.x, stream.Rows)


@pytest.mark.parametrize("where", ["missing", "huge", "inf"])
def test_a_bad_value_deep_in_the_file_is_refused_as_the_whole_read_refuses_it(tmp_path, cache, monkeypatch,
                                                                               where) -> None:
    x = write_table(tmp_path / "t.parquet", n=1000)
    table = pq.read_table(tmp_path / "t.parquet")
    column = np.asarray(table.column("f5")).copy()
    value = {"missing": None, "huge": 1e300, "inf": np.inf}[where]
    cells = column.tolist()
    cells[777] = value
    table = table.set_column(table.schema.get_field_index("f5"), "f5", pa.array(cells, pa.float64()))
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=300)
    monkeypatch.setattr(stream, "PIECE_BYTES", 8 * 12 * 100)  # the bad value is in the eighth piece
    errors = []
    for name, line in (("whole.nn", ""), ("streamed.nn", "stream 150")):
        with pytest.raises(nnspec.NNSpecError) as err:
            nnspec.train(spec(tmp_path, name, stream_line=line), out=tmp_path / name.removesuffix(".nn"))
        (diag,) = err.value.diagnostics
        errors.append((diag.code, diag.message, diag.notes, diag.help))
    assert errors[0] == errors[1]
    assert errors[0][0] == "E401"
    assert ("row 778" in errors[0][1]) if where == "missing" else ("(777, 5)" in errors[0][1])
    assert spools(cache) == [], "a spool of refused data was kept"
    assert x.shape == (1000, 12)


def test_a_text_feature_is_refused_streamed_as_loaded_whole(tmp_path, cache, capsys) -> None:
    # a column of class names as a feature needs its vocabulary (the whole file): the
    # Parquet reader refuses it, streamed or not, at its column, before reading a row
    from nnspec.cli import main
    write_table(tmp_path / "t.parquet")
    table = pq.read_table(tmp_path / "t.parquet")
    words = pa.array(np.where(np.arange(table.num_rows) % 2, "a", "b")).dictionary_encode()
    pq.write_table(table.append_column("colour", words), tmp_path / "t.parquet")
    outputs = []
    for name, line in (("whole.nn", ""), ("streamed.nn", "stream 150")):
        path = spec(tmp_path, name, stream_line=line)
        path.write_text(path.read_text().replace("input x[12]", "input x[13]"))
        capsys.readouterr()
        assert main(["train", str(path), "--out", str(tmp_path / name.removesuffix(".nn"))]) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err
        outputs.append(err[err.index("error["):].replace(name, "SPEC"))
    assert outputs[0] == outputs[1]
    assert "error[E401]" in outputs[0] and "holds text; features must be numbers" in outputs[0]
    assert "colour" in outputs[0]
    assert spools(cache) == []


def test_what_cannot_stream_next_to_parquet_is_E327(tmp_path) -> None:
    write_table(tmp_path / "t.parquet")
    ok = spec(tmp_path, "ok.nn", stream_line="stream")
    nnspec.check_text(ok.read_text())  # a Parquet source streams
    mixed = spec(tmp_path, "mixed.nn", stream_line="stream",
                 data='parquet("t.parquet", target="label") val=csv("v.csv", target="label")', split="val=0 test=0.1")
    with pytest.raises(nnspec.NNSpecError) as err:
        nnspec.check_text(mixed.read_text())
    (diag,) = err.value.diagnostics
    assert diag.code == "E327" and diag.message == "`stream` reads `npy` or `parquet` files, not `csv` data"
    assert "to_parquet" in (diag.help or "")
    auto = spec(tmp_path, "auto.nn", stream_line="stream", extra="    target input\n", data='parquet("t.parquet")')
    auto.write_text(auto.read_text().replace("dense 1 sigmoid", "dense 12").replace("binary_crossentropy", "mse")
                    .replace("    metrics accuracy\n", ""))
    with pytest.raises(nnspec.NNSpecError) as err:
        nnspec.check_text(auto.read_text())
    (diag,) = err.value.diagnostics
    assert diag.code == "E327" and "autoencoder" in diag.message and "Parquet" in (diag.help or "")


def test_an_unwritable_cache_folder_is_a_located_error(tmp_path, monkeypatch, capsys) -> None:
    from nnspec.cli import main
    write_table(tmp_path / "t.parquet")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    path = spec(tmp_path, "s.nn", stream_line="stream 150")
    capsys.readouterr()
    assert main(["train", str(path), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error[E401]" in err and "cannot write the stream spool" in err


def test_a_streamed_parquet_run_resumes_and_evaluates_as_it_trained(tmp_path, cache, capsys) -> None:
    import json

    from nnspec.cli import main
    write_table(tmp_path / "t.parquet")
    straight = nnspec.train(spec(tmp_path, "a.nn", stream_line="stream 250"), out=tmp_path / "a")
    b = spec(tmp_path, "b.nn", stream_line="stream 250")
    nnspec.train(b, out=tmp_path / "b", epochs=1)  # stopped after one epoch
    resumed = nnspec.train(b, out=tmp_path / "b", resume=True, epochs=3)
    assert len(resumed.history) == 3
    for x, y in zip(leaves(straight.params), leaves(resumed.params), strict=True):
        np.testing.assert_array_equal(x, y)
    capsys.readouterr()
    assert main(["eval", str(b), "--run", str(tmp_path / "b"), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["metrics"]["accuracy"] == pytest.approx(resumed.kept["metrics"]["test"]["accuracy"], rel=1e-6)
    assert len(spools(cache)) == 1  # one copy for all of it


def test_several_target_columns_stream_as_they_load_whole(tmp_path, cache) -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(900, 12))
    cols = {name: x[:, i] for i, name in enumerate(FEATURES)}
    cols["count"] = rng.integers(0, 9, size=900)  # integers among the features
    cols["u"], cols["v"] = x[:, :3].sum(axis=1), x[:, 3] - x[:, 4]
    pq.write_table(pa.table(cols), tmp_path / "r.parquet", row_group_size=128)
    results = []
    for name, line in (("whole.nn", ""), ("streamed.nn", "stream 250")):  # 13 steps: windows of 5, 4, 4
        path = spec(tmp_path, name, stream_line=line, data='parquet("r.parquet", target=["u", "v"])')
        path.write_text(path.read_text().replace("dense 1 sigmoid", "dense 2").replace("binary_crossentropy", "mse")
                        .replace("    metrics accuracy\n", ""))
        results.append(nnspec.train(path, out=tmp_path / name.removesuffix(".nn")))
    assert isinstance(results[1].splits.train.x, stream.Rows)
    assert results[1].splits.train.target_names == ("u", "v")
    same_run(*results)


def test_the_spool_is_named_by_the_columns_in_their_order(tmp_path) -> None:
    write_table(tmp_path / "t.parquet")
    here = stream.spool_path(tmp_path / "t.parquet", ["f0", "f1"])
    assert here == stream.spool_path(tmp_path / "t.parquet", ["f0", "f1"])
    assert here != stream.spool_path(tmp_path / "t.parquet", ["f1", "f0"])
    assert here != stream.spool_path(tmp_path / "t.parquet", ["f0"])
    assert here.parent == tmp_path / "cache" / "nnspec" / "stream"


def test_a_file_that_changes_while_it_is_copied_leaves_no_spool(tmp_path, cache, monkeypatch) -> None:
    from nnspec import formats
    write_table(tmp_path / "t.parquet")
    original = formats.parquet_pieces

    def touching(full, columns, rows):
        for i, piece in enumerate(original(full, columns, rows)):
            if i == 1:  # another program writes the file meanwhile
                st = os.stat(full)
                os.utime(full, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
            yield piece

    monkeypatch.setattr(formats, "parquet_pieces", touching)
    monkeypatch.setattr(stream, "PIECE_BYTES", 8 * 12 * 100)
    with pytest.raises(nnspec.NNSpecError) as err:
        nnspec.train(spec(tmp_path, "s.nn", stream_line="stream 150"), out=tmp_path / "s")
    (diag,) = err.value.diagnostics
    assert diag.code == "E401" and "the file changed while its features were read" in diag.message
    assert spools(cache) == [] and not list(cache.glob(".*.tmp"))
