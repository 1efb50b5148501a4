"""`train { stream }`: examples read from their `.npy` file a window at a time (nnspec/stream.py).

A streamed run must train on the same batches in the same order as the same spec loaded
whole, so the two end with the same weights and history; and it must never hold more than
a window (or an evaluation chunk) of the file at once. The peak memory of a 4 GiB file is
measured by `python -m benchmarks.stream` (docs/benchmarks.md), not here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nnspec
from nnspec import stream
from nnspec.check import check_source
from nnspec.data import DataError, Standardizer, load_npy, STREAMING

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
    data npy(x="x.npy", y="y.npy")
    split val=0.2 test=0.1
    batch 50
    epochs {epochs}
    seed {seed}
    standardize
    metrics accuracy
{extra}}}
"""


def write_data(folder: Path, n: int = 1234, *, dtype=np.float32) -> np.ndarray:
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(n, 12)) * 3 + 5).astype(dtype)
    y = (x[:, :3].sum(axis=1) > 15).astype(np.int64)
    np.save(folder / "x.npy", x)
    np.save(folder / "y.npy", y)
    return x


def spec(folder: Path, name: str, *, stream_line: str = "", epochs: int = 3, seed: int = 0, extra: str = "") -> Path:
    path = folder / name
    path.write_text(SPEC.format(epochs=epochs, seed=seed, extra=(f"    {stream_line}\n" if stream_line else "") + extra))
    return path


def leaves(tree) -> list[np.ndarray]:
    import jax
    return [np.asarray(v) for v in jax.tree_util.tree_leaves(tree)]


@pytest.mark.parametrize("line", ["stream 250", "stream 150", "stream 850", "stream"])
def test_a_streamed_run_equals_the_same_run_loaded_whole(tmp_path, line) -> None:
    # 864 training examples in batches of 50: 18 steps, the last padded; windows of at
    # most 5 steps are evened out to 5, 5, 4, 4 (at most 17: 9 and 9, not 17 and 1; at
    # most 3: six windows of 3)
    write_data(tmp_path)
    whole = nnspec.train(spec(tmp_path, "whole.nn"), out=tmp_path / "w")
    streamed = nnspec.train(spec(tmp_path, "streamed.nn", stream_line=line), out=tmp_path / "s")
    assert isinstance(streamed.splits.train.x, stream.Rows)
    assert not isinstance(whole.splits.train.x, stream.Rows)
    for a, b in zip(leaves(whole.params), leaves(streamed.params)):
        np.testing.assert_array_equal(a, b)
    assert [{k: v for k, v in r.items() if k != "time"} for r in whole.history] == \
           [{k: v for k, v in r.items() if k != "time"} for r in streamed.history]
    # the kept weights' figures on every split, and the split itself, are the same
    assert json.loads((tmp_path / "w" / "split.json").read_text())["rows"] == \
           json.loads((tmp_path / "s" / "split.json").read_text())["rows"]
    assert whole.kept == streamed.kept


def test_a_sweep_of_seeds_streams_each_models_own_order(tmp_path) -> None:
    write_data(tmp_path)
    whole = nnspec.train(_with_sweep(tmp_path, "w.nn", ""), out=tmp_path / "w")
    streamed = nnspec.train(_with_sweep(tmp_path, "s.nn", "stream 150"), out=tmp_path / "s")
    assert len(whole.members) == len(streamed.members) == 4
    for a, b in zip(whole.members, streamed.members):
        assert a.setting == b.setting
        for x, y in zip(leaves(a.params), leaves(b.params)):
            np.testing.assert_array_equal(x, y)


def _with_sweep(folder: Path, name: str, line: str) -> Path:
    """The spec as a sweep of two rates and two seeds: four models, two shuffles."""
    path = spec(folder, name, stream_line=line)
    path.write_text(path.read_text().replace("seed 0", "seed sweep(0, 1)").replace("lr=0.01", "lr=sweep(0.01, 0.03)"))
    return path


def test_a_streamed_run_resumes_to_the_uninterrupted_result(tmp_path) -> None:
    write_data(tmp_path)
    straight = nnspec.train(spec(tmp_path, "a.nn", stream_line="stream 150", epochs=4), out=tmp_path / "a")
    b = spec(tmp_path, "b.nn", stream_line="stream 150", epochs=4)
    nnspec.train(b, out=tmp_path / "b", epochs=2)  # stopped after two epochs
    resumed = nnspec.train(b, out=tmp_path / "b", resume=True, epochs=4)
    assert len(resumed.history) == 4
    for x, y in zip(leaves(straight.params), leaves(resumed.params)):
        np.testing.assert_array_equal(x, y)


def test_training_never_reads_more_than_a_window_or_an_evaluation_chunk(tmp_path, monkeypatch) -> None:
    write_data(tmp_path, n=3000)
    reads: list[int] = []
    original = stream.Rows.read

    def counted(self, key=None):
        got = original(self, key)
        reads.append(len(got))
        return got

    monkeypatch.setattr(stream.Rows, "read", counted)
    monkeypatch.setattr("nnspec.trainer.EVAL_CHUNK", 256)
    monkeypatch.setattr(stream, "PIECE_BYTES", 48 * 64)  # the checks and statistics: 64 rows of 48 bytes
    nnspec.train(spec(tmp_path, "s.nn", stream_line="stream 150"), out=tmp_path / "s")
    assert reads, "nothing was read from the file"
    # windows of 150, evaluation chunks of 256, check and statistics pieces of 64: never
    # more than one of those at a time, of 3,000 examples (2,100 for training)
    assert max(reads) == 256
    assert 150 in reads and 64 in reads


def test_rows_read_what_numpy_indexing_gives(tmp_path) -> None:
    x = write_data(tmp_path, n=500, dtype=np.float64)
    base = np.load(tmp_path / "x.npy", mmap_mode="r")
    rows = stream.Rows(base).astype(np.float32)
    index = np.random.default_rng(0).permutation(500)[:300]
    view = rows[index]
    assert view.shape == (300, 12) and len(view) == 300 and view.dtype == np.float32
    np.testing.assert_array_equal(view.read(), x[index].astype(np.float32))
    np.testing.assert_array_equal(view[10:20].read(), x[index[10:20]].astype(np.float32))
    np.testing.assert_array_equal(np.asarray(view[np.array([5, 5, 1])]), x[index[[5, 5, 1]]].astype(np.float32))
    assert view[3, 4] == np.float32(x[index[3], 4])
    std = Standardizer.fit(x[index])
    np.testing.assert_allclose(view.scaled(std).read(), std.apply(x[index]), rtol=1e-6)


def test_standardize_statistics_of_streamed_rows_match_the_whole_array(tmp_path, monkeypatch) -> None:
    x = write_data(tmp_path, n=1000)
    monkeypatch.setattr(stream, "PIECE_BYTES", 48 * 37)  # 37 rows a piece: many uneven pieces
    lazy = Standardizer.fit(stream.Rows(np.load(tmp_path / "x.npy", mmap_mode="r")))
    whole = Standardizer.fit(x)
    np.testing.assert_allclose(lazy.mean, whole.mean, rtol=1e-6)
    np.testing.assert_allclose(lazy.std, whole.std, rtol=1e-6)


def test_a_nan_deep_in_a_streamed_file_is_located(tmp_path, monkeypatch) -> None:
    x = write_data(tmp_path, n=1000)
    x[777, 5] = np.nan
    np.save(tmp_path / "x.npy", x)
    monkeypatch.setattr(stream, "PIECE_BYTES", 48 * 100)  # the NaN is in the eighth piece
    token = STREAMING.set(True)
    try:
        with pytest.raises(DataError) as err:
            load_npy("x.npy", "y.npy", base_dir=tmp_path)
    finally:
        STREAMING.reset(token)
    assert "index (777, 5)" in err.value.message and "nan" in err.value.message.lower()


def test_streaming_a_file_larger_than_the_memory_budget_is_allowed(tmp_path, monkeypatch) -> None:
    write_data(tmp_path)
    monkeypatch.setattr("nnspec.data.memory_budget", lambda: 20_000)  # 59 KB of features: too large whole
    with pytest.raises(DataError, match="more than the"):
        load_npy("x.npy", "y.npy", base_dir=tmp_path)
    token = STREAMING.set(True)
    try:
        ds = load_npy("x.npy", "y.npy", base_dir=tmp_path)
    finally:
        STREAMING.reset(token)
    assert isinstance(ds.x, stream.Rows) and len(ds) == 1234


def test_the_window_fix_in_E328s_help_checks_clean(tmp_path) -> None:
    write_data(tmp_path)
    for window, fixes in ((170, ("stream 150", "stream 200")), (120, ("stream 150",))):
        bad = spec(tmp_path, "bad.nn", stream_line=f"stream {window}")
        with pytest.raises(nnspec.NNSpecError) as err:
            nnspec.check_text(bad.read_text())
        (diag,) = err.value.diagnostics
        assert diag.code == "E328" and diag.help == " or ".join(f"`{f}`" for f in fixes) + " holds whole batches"
        for fix in fixes:  # each fix checks clean (two batches would not: E332)
            nnspec.check_text(bad.read_text().replace(f"stream {window}", fix))


# In a fresh process whose XLA pretends to have N CPU devices: train the spec, print its
# weights (a sweep's: each member's) as JSON.
ON_DEVICES = """
import sys, json, numpy as np, jax, nnspec
r = nnspec.train(sys.argv[1], out=sys.argv[2])
def leaves(p): return [np.asarray(v).tolist() for v in jax.tree_util.tree_leaves(p)]
print(json.dumps([leaves(m.params) for m in r.members] if hasattr(r, "members") else leaves(r.params)))
"""


def trained_on_devices(path: Path, out: Path, devices: int):
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "NNSPEC_NO_CACHE": "1"}
    done = subprocess.run([sys.executable, "-c", ON_DEVICES, str(path), str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_streamed_run_over_two_devices_equals_one_device(tmp_path) -> None:
    write_data(tmp_path)
    one = spec(tmp_path, "one.nn", stream_line="stream 150")
    two = spec(tmp_path, "two.nn", stream_line="stream 150", extra="    devices 2\n")
    got = [trained_on_devices(path, tmp_path / path.stem, 2) for path in (one, two)]
    for a, b in zip(*got):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_a_streamed_divergence_is_diagnosed_as_the_whole_runs_is(tmp_path) -> None:
    # the step-by-step replay that names the layer reads its batches from the file too
    write_data(tmp_path)
    errors = []
    for name, line in (("whole.nn", ""), ("streamed.nn", "stream 150")):
        path = spec(tmp_path, name, stream_line=line, extra="    divergence off\n")
        # a linear output under squared error: a step of 1e30 overflows, whatever the draws
        # (a sigmoid's cross-entropy saturates and may stay finite)
        path.write_text(path.read_text().replace("optimizer adam lr=0.01", "optimizer sgd lr=1e30")
                        .replace("dense 1 sigmoid", "dense 1").replace("loss binary_crossentropy", "loss mse")
                        .replace("    metrics accuracy\n", ""))
        with pytest.raises(nnspec.NNSpecError) as err:
            nnspec.train(path, out=tmp_path / name.removesuffix(".nn"))
        (diag,) = err.value.diagnostics
        errors.append((diag.code, diag.message, [n for n in diag.notes if "checkpoint" not in n]))
    assert errors[0] == errors[1]
    assert errors[0][0] == "E404" and any("layer `dense_" in n for n in errors[0][2])


def test_eval_of_a_streamed_run_reports_what_training_kept(tmp_path, capsys) -> None:
    from nnspec.cli import main
    write_data(tmp_path)
    path = spec(tmp_path, "s.nn", stream_line="stream 150")
    result = nnspec.train(path, out=tmp_path / "run")
    capsys.readouterr()
    assert main(["eval", str(path), "--run", str(tmp_path / "run"), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["split"] == "test"
    assert report["metrics"]["accuracy"] == pytest.approx(result.kept["metrics"]["test"]["accuracy"], rel=1e-6)


def test_a_streamed_sweep_split_over_four_devices_equals_one_device(tmp_path) -> None:
    # four models with two shuffles on a 2 (models) x 2 (data) mesh: each window is read
    # as each device's share of its models' batches
    write_data(tmp_path)
    one = _with_sweep(tmp_path, "one.nn", "stream 156")
    four = _with_sweep(tmp_path, "four.nn", "stream 156")
    for path in (one, four):  # a batch that four devices split
        path.write_text(path.read_text().replace("batch 50", "batch 52"))
    four.write_text(four.read_text().replace("    stream 156\n", "    stream 156\n    devices 4\n"))
    got = [trained_on_devices(path, tmp_path / path.stem, 4) for path in (one, four)]
    assert len(got[0]) == len(got[1]) == 4
    for ma, mb in zip(*got):
        for a, b in zip(ma, mb):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_windows_are_evened_out_so_that_none_is_a_single_step() -> None:
    for steps in range(1, 40):
        for most in range(3, 12):
            bounds = stream.windows(10, steps, 4, most * 10)
            assert bounds[0][0] == 0 and bounds[-1][1] == steps
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))  # contiguous, in order
            lengths = [e - s for s, e in bounds]
            assert max(lengths) <= most and max(lengths) - min(lengths) <= 1
            assert len(bounds) == -(-steps // most)  # as few windows as the bound allows
            assert min(lengths) >= 2 or steps == 1
    # `stream` alone: three batches at least, whatever their size
    assert stream.windows(1000, 10, 1 << 20, None) == [(0, 3), (3, 6), (6, 8), (8, 10)]


@pytest.mark.parametrize("window", [50, 100])
def test_a_window_of_fewer_than_three_batches_is_refused(window) -> None:
    program, diags, _ = check_source(SPEC.format(epochs=1, seed=0, extra=f"    stream {window}\n"), "m.nn")
    assert program is None and [d.code for d in diags] == ["E332"]
    assert diags[0].help == "`stream 150` holds three batches"


def test_the_train_header_says_how_large_a_window_is(tmp_path, capsys) -> None:
    from nnspec.cli import main
    write_data(tmp_path)
    path = spec(tmp_path, "s.nn", stream_line="stream 150", epochs=1)
    assert main(["train", str(path), "--out", str(tmp_path / "run")]) == 0
    # 864 training examples in 18 batches of 50: six windows of 150 examples of 12 float32 features
    assert "stream      6 windows of up to 150 examples (7.0 KiB of features), read from the file" in \
        capsys.readouterr().err
