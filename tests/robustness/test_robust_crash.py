"""4. Nothing is lost on a crash.

`nnspec train --checkpoint-every 0` in a subprocess is killed (SIGKILL) at random moments,
several times in a row, resumed each time with `--resume`; once it is interrupted with
Ctrl-C (SIGINT) instead, which must save, exit 130 and say so in one line. After every
interruption every file in the run folder loads; in the end the final parameters and the
history equal an uninterrupted run's exactly, and no temporary file is left.

A truncated, bit-flipped or foreign checkpoint is refused with a message naming the
file, and `--resume` never loads it (nor overwrites it).
"""

from __future__ import annotations

import csv
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nnspec import checkpoint
from nnspec.check import check_source

from robust_helpers import COUNTS, cli, fails_cleanly, moons, write

EPOCHS = 500
SPEC = moons(n=800, epochs=EPOCHS)


# `nnspec ARGS` with Ctrl-C raising KeyboardInterrupt, as in a user's shell, however this
# suite was started: run in the background (`pytest &`), it ignores SIGINT, a child
# inherits that, and Python then installs no handler. (A preexec_fn would do it too, but
# forks the multithreaded JAX process, which JAX warns may deadlock.)
LAUNCH = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
          "from nnspec.cli import main; sys.exit(main())")


def nnspec_cmd(*args) -> list[str]:
    return [sys.executable, "-c", LAUNCH, *map(str, args)]


def templates(spec_text: str) -> dict:
    """The pytrees a checkpoint of this spec must hold, for checkpoint.load."""
    from nnspec.lower import lower
    import jax
    program, diags, _ = check_source(spec_text, "s.nn")
    assert program is not None, diags
    model = lower(program)
    state = jax.eval_shape(model.init_state, jax.random.key(0))
    return {"params": state.params, "opt_state": state.opt_state}


def run_folder_is_whole(run: Path, trees: dict) -> int:
    """Every file of the run folder loads and agrees with the checkpoint; the epoch saved."""
    meta = checkpoint.read_meta(run / "checkpoint.npz")
    loaded, _ = checkpoint.load(run / "checkpoint.npz", trees)
    assert set(loaded) == {"params", "opt_state"}
    epoch = meta["epoch"]
    assert len(meta["history"]) == epoch
    json.loads((run / "run.json").read_text())
    json.loads((run / "ir.json").read_text())
    assert check_source((run / "spec.nn").read_text(), "spec.nn")[0] is not None
    if (run / "history.csv").exists():
        rows = list(csv.DictReader((run / "history.csv").open()))
        lines = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
        # written just after the checkpoint: equal to it, or one epoch behind if the kill
        # landed between the two writes; never ahead, never torn
        for saved in (rows, lines):
            assert epoch - 1 <= len(saved) <= epoch, (len(saved), epoch)
        for i, row in enumerate(lines):
            assert row == meta["history"][i]
        for i, row in enumerate(rows):
            assert {k: float(v) for k, v in row.items()} == {k: float(v) for k, v in meta["history"][i].items()}
    return epoch


def wait_for_progress(run: Path, beyond: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until the checkpoint in `run` records an epoch past `beyond`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        try:
            if checkpoint.read_meta(run / "checkpoint.npz")["epoch"] > beyond:
                return
        except checkpoint.CheckpointError:
            pass  # not written yet
        time.sleep(0.02)
    raise AssertionError("no progress")


@pytest.mark.slow
def test_killed_again_and_again_then_resumed_ends_bit_identical(tmp_path: Path, subprocess_env) -> None:
    spec = write(tmp_path / "moons.nn", SPEC)
    trees = templates(SPEC)
    import nnspec
    whole = nnspec.train(SPEC)  # the uninterrupted run, in this process

    run = tmp_path / "run"
    rng = random.Random(20261127)
    epochs_seen = [0]
    leftovers = 0
    interruptions = ["KILL", "KILL", "INT", "KILL", "KILL"]
    for i, how in enumerate(interruptions):
        args = ("train", spec, "--out", run) if i == 0 else ("train", "--resume", run)
        proc = subprocess.Popen(nnspec_cmd(*args, "-q", "--checkpoint-every", "0"), env=subprocess_env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for_progress(run, epochs_seen[-1], proc)
            time.sleep(rng.uniform(0.0, 0.4))  # a random moment: mid-epoch, mid-write, ...
            proc.send_signal(signal.SIGKILL if how == "KILL" else signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if how == "INT":
            assert proc.returncode == 130, err
            assert err.strip() == f"interrupted: the last finished epoch is saved; continue with " \
                                  f"`nnspec train --resume {run}`", err
        else:
            assert proc.returncode == -signal.SIGKILL
            COUNTS["SIGKILLs survived"] += 1
        leftovers += len(list(run.glob(".*.tmp")))  # a kill mid-write leaves one beside the old file
        epoch = run_folder_is_whole(run, trees)
        assert epoch >= epochs_seen[-1] and 0 < epoch < EPOCHS, (epoch, epochs_seen)
        epochs_seen.append(epoch)
    assert len(set(epochs_seen)) == len(epochs_seen), f"each run made progress: {epochs_seen}"

    done = subprocess.run(nnspec_cmd("train", "--resume", run, "-q", "--checkpoint-every", "0"),
                          env=subprocess_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not list(run.glob(".*.tmp")), "temporary files are cleaned up"
    final = np.load(run / "checkpoint.npz")
    keys = sorted(k for k in final.files if k.startswith("final_params/"))
    import jax
    reference = [np.asarray(x) for x in jax.tree_util.tree_leaves(whole.params)]
    assert len(keys) == len(reference) > 0
    for k, ref in zip(keys, reference):
        assert final[k].tobytes() == ref.tobytes(), k
    meta = checkpoint.read_meta(run / "checkpoint.npz")
    strip = lambda rows: [{k: v for k, v in r.items() if k != "time"} for r in rows]  # noqa: E731
    assert strip(meta["history"]) == strip(whole.history)
    assert len((run / "history.csv").read_text().splitlines()) == EPOCHS + 1
    print(f"interrupted at epochs {epochs_seen[1:]}; {leftovers} temporary file(s) left by kills, cleaned on resume")


# ------------------------------------------------------------------- damaged checkpoints

@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """(spec, run folder) of a finished 3-epoch run."""
    base = tmp_path_factory.mktemp("finished")
    spec = write(base / "moons.nn", moons(n=200, epochs=3))
    code, _, err = cli("train", spec, "--out", base / "run", "-q")
    assert code == 0, err
    return spec, base / "run"


def damaged_copy(finished, tmp_path: Path, data: bytes) -> Path:
    _, run = finished
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "checkpoint.npz").write_bytes(data)
    return copy


def refused_on_resume(run: Path, why: str) -> None:
    before = (run / "checkpoint.npz").read_bytes()
    code, _, err = cli("train", "--resume", run, "-q")
    first = fails_cleanly(code, err)
    assert code == 1 and first.startswith("error[E405]: ") and str(run / "checkpoint.npz") in first, err
    assert why in first, err
    assert (run / "checkpoint.npz").read_bytes() == before, "a refused checkpoint is left as it was"


def test_truncated_checkpoints_are_refused(finished, tmp_path: Path) -> None:
    _, run = finished
    data = (run / "checkpoint.npz").read_bytes()
    trees = templates((run / "spec.nn").read_text())
    for end in sorted(set(range(0, len(data), 61)) | {1, len(data) - 22, len(data) - 1}):
        path = tmp_path / f"cut{end}.npz"
        path.write_bytes(data[:end])
        with pytest.raises(checkpoint.CheckpointError) as info:
            checkpoint.load(path, trees)
        assert str(path) in info.value.message
    for end in (0, len(data) // 2, len(data) - 1):
        refused_on_resume(damaged_copy(finished, tmp_path / f"r{end}", data[:end]), "corrupt or truncated")


TINY = """\
model tiny {
    input x[2]
    out: dense 1 sigmoid
}
loss binary_crossentropy
optimizer sgd lr=0.1
train {
    data builtin("moons", n=40)
    epochs 1
}
"""


def test_every_bit_flip_is_refused_or_harmless(finished, tmp_path: Path) -> None:
    """One flipped bit at every byte of a (small) checkpoint: refused with the file's name,
    or, where the byte is not part of the data (a zip timestamp), loaded unchanged. Never
    loaded silently different."""
    code, _, err = cli("train", write(tmp_path / "tiny.nn", TINY), "--out", tmp_path / "tiny", "-q")
    assert code == 0, err
    run = tmp_path / "tiny"
    data = (run / "checkpoint.npz").read_bytes()
    trees = {**templates((run / "spec.nn").read_text())}
    good, good_meta = checkpoint.load(run / "checkpoint.npz", {**trees, "final_params": trees["params"]})
    refused = harmless = 0
    path = tmp_path / "flipped.npz"
    for i in range(len(data)):
        flipped = bytearray(data)
        flipped[i] ^= 1 << (i % 8)
        path.write_bytes(flipped)
        try:
            got, meta = checkpoint.load(path, {**trees, "final_params": trees["params"]})
        except checkpoint.CheckpointError as exc:
            assert str(path) in exc.message
            refused += 1
            continue
        assert meta == good_meta
        import jax
        for name in got:
            for x, y in zip(jax.tree_util.tree_leaves(got[name]), jax.tree_util.tree_leaves(good[name])):
                assert np.asarray(x).tobytes() == np.asarray(y).tobytes(), (i, name)
        harmless += 1
    assert refused > harmless > 0
    COUNTS["checkpoint bit flips refused"] += refused
    COUNTS["checkpoint bit flips harmless"] += harmless
    # and through the CLI, a flip in the middle of the first array's data
    data = (finished[1] / "checkpoint.npz").read_bytes()
    middle = bytearray(data)
    first = checkpoint.read_meta(finished[1] / "checkpoint.npz")["names"]["params"][0]  # arrays by layer path
    middle[data.index(f"params/{first}.npy".encode()) + 200] ^= 0x10
    refused_on_resume(damaged_copy(finished, tmp_path / "mid", bytes(middle)), "corrupt or truncated")


def test_a_foreign_checkpoint_is_refused(finished, tmp_path: Path) -> None:
    spec, run = finished
    other_dir = tmp_path / "other"
    # same layers, another optimizer: the arrays would even fit, so the fingerprint decides
    for name, text in (("other_model", moons(n=200, epochs=3).replace("dense 16 relu", "dense 8 relu")),
                       ("other_optimizer", moons(n=200, epochs=3).replace("adam lr=0.01", "sgd lr=0.1"))):
        other = write(other_dir / f"{name}.nn", text)
        code, _, err = cli("train", other, "--out", other_dir / name, "-q")
        assert code == 0, err
        copy = damaged_copy(finished, tmp_path / name, (other_dir / name / "checkpoint.npz").read_bytes())
        refused_on_resume(copy, "was written by a different spec")
    # eval and predict check the model's fingerprint
    copy = damaged_copy(finished, tmp_path / "eval", (other_dir / "other_model" / "checkpoint.npz").read_bytes())
    code, _, err = cli("eval", spec, "--run", copy)
    assert fails_cleanly(code, err) == f"error[E405]: `{copy / 'checkpoint.npz'}` was written for a different model"


def test_not_a_checkpoint_at_all(finished, tmp_path: Path) -> None:
    import io
    buf = io.BytesIO()
    np.savez(buf, x=np.zeros(3))
    for name, data, why in (("plain npz", buf.getvalue(), "is not an nnspec checkpoint"),
                            ("text", b"hello\n", "corrupt or truncated"),
                            ("empty", b"", "corrupt or truncated")):
        refused_on_resume(damaged_copy(finished, tmp_path / name.replace(" ", "_"), data), why)
    copy = damaged_copy(finished, tmp_path / "dir", b"")
    (copy / "checkpoint.npz").unlink()
    (copy / "checkpoint.npz").mkdir()
    code, _, err = cli("train", "--resume", copy, "-q")
    assert fails_cleanly(code, err) == f"error[E405]: cannot read `{copy / 'checkpoint.npz'}`: Is a directory", err


def test_an_unreadable_checkpoint_is_a_read_error_not_corruption(finished, tmp_path: Path) -> None:
    """Reading fails (EIO, as a failing disk gives): not "corrupt, delete it", which would
    have the user delete a good checkpoint."""
    copy = damaged_copy(finished, tmp_path, b"")
    (copy / "checkpoint.npz").unlink()
    (copy / "checkpoint.npz").symlink_to("/proc/self/mem")  # opens, then every read fails with EIO
    for argv in (("train", "--resume", copy, "-q"), ("eval", finished[0], "--run", copy)):
        code, _, err = cli(*argv)
        assert fails_cleanly(code, err) == \
            f"error[E405]: cannot read `{copy / 'checkpoint.npz'}`: Input/output error", err
        assert "delete" not in err


# ------------------------------------------------------------------ forged checkpoints

def forged(finished, tmp_path: Path, edit=None, *, raw_meta: bytes | None = None) -> Path:
    """A copy of the finished run whose checkpoint is rewritten, CRCs and all (so only the
    validation of what it holds can catch it): `edit(meta, arrays)` changes it in place."""
    _, run = finished
    with np.load(run / "checkpoint.npz") as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(arrays["__meta__"].tobytes())
    if edit is not None:
        edit(meta, arrays)
    data = raw_meta if raw_meta is not None else json.dumps(meta).encode()
    arrays["__meta__"] = np.frombuffer(data, dtype=np.uint8)
    import io
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return damaged_copy(finished, tmp_path, buf.getvalue())


def setter(key, value):
    return lambda meta, arrays: meta.__setitem__(key, value)


def deep(n: int) -> bytes:
    return b'{"format": "nnspec-checkpoint", "version": 1, "trees": {}, "x": ' + b"[" * n + b"]" * n + b"}"


FORGED_META = [
    # (case, edit or raw metadata, what the one line says)
    ("history a string", setter("history", "oops"), "`history` is not a list of per-epoch records"),
    ("history rows of text", setter("history", [{"loss": "low"}] * 3), "`history` is not a list of per-epoch"),
    ("epoch a list", setter("epoch", [3]), "`epoch` is not a count of epochs"),
    ("epoch disagrees", setter("epoch", 7), "`epoch` is 7 but `history` has 3 rows"),
    ("negative tree count", lambda m, a: m["trees"].__setitem__("params", -1), "`trees` is not a table of array counts"),
    ("huge tree count", lambda m, a: m["trees"].__setitem__("params", 10 ** 12), "do not match its table of contents"),
    ("trees a list", setter("trees", [1, 2]), "`trees` is not a table of array counts"),
    ("seed a string", setter("seed", "3"), "`seed` is not an integer"),
    ("rng without a seed", setter("rng", {"epoch_key": [0, 1]}), "`rng` is not a seed and a key"),
    ("rng with a key of text", setter("rng", {"seed": 3, "epoch_key": ["a"]}), "`rng` is not a seed and a key"),
    ("stopper a number", setter("stopper", 5), "`stopper` is not an early-stopping record"),
    ("standardizer lengths", setter("standardizer", {"mean": [0.0, 0.0], "std": [1.0]}), "`standardizer` is not finite"),
    ("standardizer zero std", setter("standardizer", {"mean": [0.0, 0.0], "std": [1.0, 0.0]}), "`standardizer` is not"),
    ("standardizer text", setter("standardizer", {"mean": "a", "std": "b"}), "`standardizer` is not"),
    ("standardizer vs names", lambda m, a: m.update(standardizer={"mean": [0.0] * 3, "std": [1.0] * 3},
                                                    feature_names=["a", "b"]),
     "`standardizer` scales 3 features, `feature_names` names 2"),
    ("classes not strings", setter("classes", [0, 1]), "`classes` is not a list of names"),
    ("feature names a string", setter("feature_names", "ab"), "`feature_names` is not a list of names"),
    ("ensemble negative", setter("ensemble", -1), "`ensemble` is not a count of models"),
    ("ensemble without members", setter("ensemble", 10 ** 9), "`ensemble` does not match its arrays"),
    ("fingerprint a number", setter("spec_fingerprint", 12), "`spec_fingerprint` is not a string"),
    ("stopped a string", setter("stopped", "yes"), "`stopped` is not a record of why training stopped"),
    ("initial loss text", setter("initial_loss", "1.0"), "`initial_loss` is not a number or null"),
    ("run data path a number", lambda m, a: m["run"].__setitem__("data", {"kind": "csv", "path": 5}),
     "`run` is not a run record"),
    ("run seed override text", lambda m, a: m["run"].__setitem__("overrides", {"seed": "5"}), "`run` is not a run record"),
    ("100,000 deep", deep(100_000), "nested more than 32 levels deep"),
    ("100 deep", deep(100), "nested more than 32 levels deep"),
]


@pytest.mark.parametrize("case,edit,why", FORGED_META, ids=[c[0] for c in FORGED_META])
def test_forged_metadata_is_refused_in_one_short_line(finished, tmp_path: Path, case, edit, why) -> None:
    copy = forged(finished, tmp_path, **({"raw_meta": edit} if isinstance(edit, bytes) else {"edit": edit}))
    refused_on_resume(copy, why)
    spec, _ = finished
    for command in (("eval", spec, "--run", copy), ("predict", spec, "--run", copy, "--input", spec)):
        code, out, err = cli(*command)
        first = fails_cleanly(code, err)
        assert first.startswith("error[E405]: ") and why in first and out == "", err
        assert len(first.replace(str(copy), "")) < 150, first  # one short line, the path aside
    COUNTS["forged checkpoints refused"] += 1


def test_non_finite_or_foreign_weights_are_refused(finished, tmp_path: Path) -> None:
    spec, _ = finished
    first = checkpoint.read_meta(finished[1] / "checkpoint.npz")["names"]["final_params"][0]  # by layer path
    for value, name in ((np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")):
        def poison(meta, arrays, value=value):
            for tree in ("params", "final_params"):
                arrays[f"{tree}/{first}"] = arrays[f"{tree}/{first}"].copy()
                arrays[f"{tree}/{first}"].flat[0] = value
        copy = forged(finished, tmp_path / name, poison)
        refused_on_resume(copy, "holds NaN or infinite values")
        code, out, err = cli("eval", spec, "--run", copy)
        assert fails_cleanly(code, err) == \
            f"error[E405]: `{copy / 'checkpoint.npz'}`: array final_params/{first} holds NaN or infinite values", err

    def text(meta, arrays):
        arrays[f"final_params/{first}"] = np.full(arrays[f"final_params/{first}"].shape, "w")
    copy = forged(finished, tmp_path / "text", text)
    code, out, err = cli("eval", spec, "--run", copy)
    assert fails_cleanly(code, err) == \
        f"error[E405]: `{copy / 'checkpoint.npz'}`: array final_params/{first} holds <U1, the spec needs float32", err


def test_a_broken_array_header_is_reported_without_its_bytes(finished, tmp_path: Path) -> None:
    """numpy quotes a header it cannot parse in full: 6 KB of the file's bytes, control
    characters and all, used to become the E405 line."""
    import io
    import struct
    import zipfile
    header = ("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': '" + "\x00\x1b[2Jab" * 500 + "'}").encode()
    header += b" " * (-(10 + len(header) + 1) % 64) + b"\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + bytes(8)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("__meta__.npy", npy)
    copy = damaged_copy(finished, tmp_path, buf.getvalue())
    refused_on_resume(copy, "is corrupt or truncated (ValueError: Cannot parse header: ")
    code, _, err = cli("eval", finished[0], "--run", copy)
    first = fails_cleanly(code, err)
    assert len(first.replace(str(copy), "")) < 150 and first.endswith("…)") and "\x00" not in err and "\x1b" not in err, first
