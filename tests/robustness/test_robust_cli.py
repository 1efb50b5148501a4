"""7. Every command fails cleanly.

For check, compile, fmt, explain, train, eval and predict: a missing file, a directory
where a file belongs, an output that cannot be written, an unknown flag and a few bad
values. Each exits non-zero with one clear `error:` line (or one rendered diagnostic),
never a traceback. Tests run as root, so permission bits stop nothing: an output path
under a regular file (`somefile/y.csv`), a directory as the output, `/dev/full` and a
simulated full disk play the unwritable places.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from robust_helpers import cli, fails_cleanly, moons, write


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> dict[str, Path]:
    """A finished run, its spec, an input CSV, a regular file and a directory."""
    base = tmp_path_factory.mktemp("cli")
    spec = write(base / "moons.nn", moons(n=200, epochs=2).replace("split val=0.25", "split val=0.25 test=0.25"))
    code, _, err = cli("train", spec, "--out", base / "run", "-q")
    assert code == 0, err
    return {"spec": spec, "run": base / "run", "x": write(base / "x.csv", "x1,x2\n0.5,0.2\n-1,1\n"),
            "file": write(base / "somefile", "not a folder\n"), "dir": base, "missing": base / "missing.nn",
            "empty_run": Path(base / "empty_run"), "nospecs": _folder(base / "nospecs", "notes.txt", ".hidden.nn")}


def _folder(path: Path, *names: str) -> Path:
    """A folder holding `names`, none of them a spec that `check` or `fmt` would take."""
    path.mkdir()
    for name in names:
        write(path / name, "model m {\n")
    return path


# (argv with placeholders, the first line of stderr: exact, or a prefix ending in `…`)
CASES = {
    # check
    "check: missing file": (["check", "{missing}"], "error: cannot read `{missing}`: no such file"),
    "check: a folder without specs": (["check", "{nospecs}"], "error: `{nospecs}` holds no `.nn` file (names "
                                                             "starting with `.`, and run folders, are skipped)"),
    "check: unknown flag": (["check", "--frobnicate", "{spec}"], "error: unrecognized arguments: --frobnicate"),
    "check: bad --format": (["check", "--format", "xml", "{spec}"], "error: argument --format: invalid choice: 'xml'…"),
    "check: no file": (["check"], "error: the following arguments are required: FILE"),
    # compile
    "compile: missing file": (["compile", "{missing}"], "error: cannot read `{missing}`: no such file"),
    "compile: a directory": (["compile", "{dir}"], "error: cannot read `{dir}`: it is a directory"),
    "compile: unknown flag": (["compile", "{spec}", "--frobnicate"], "error: unrecognized arguments: --frobnicate"),
    "compile: bad --emit": (["compile", "{spec}", "--emit", "asm"], "error: argument --emit: invalid choice: 'asm'…"),
    # fmt
    "fmt: missing file": (["fmt", "{missing}"], "error: cannot read `{missing}`: no such file"),
    "fmt: a folder without specs": (["fmt", "{nospecs}"], "error: `{nospecs}` holds no `.nn` file…"),
    "fmt: unknown flag": (["fmt", "--frobnicate", "{spec}"], "error: unrecognized arguments: --frobnicate"),
    # explain
    "explain: unknown code": (["explain", "E999"], "error: no diagnostic code `E999`…"),
    "explain: a near miss": (["explain", "e10"], "error: no diagnostic code `e10`…"),
    "explain: unknown flag": (["explain", "E101", "--frobnicate"], "error: unrecognized arguments: --frobnicate"),
    "explain: no code": (["explain"], "error: the following arguments are required: CODE"),
    # train
    "train: missing file": (["train", "{missing}"], "error: cannot read `{missing}`: no such file"),
    "train: a directory": (["train", "{dir}"], "error: cannot read `{dir}`: it is a directory"),
    "train: --out under a file": (["train", "{spec}", "--out", "{file}/run", "-q"],
                                  "error: cannot create the run folder `{file}/run`: `{file}` is a file"),
    "train: --out is a file": (["train", "{spec}", "--out", "{file}", "-q"],
                               "error: cannot use `{file}` as the run folder: it is a file"),
    "train: unknown flag": (["train", "{spec}", "--frobnicate"], "error: unrecognized arguments: --frobnicate"),
    "train: --resume missing": (["train", "--resume", "{missing}"], "error: cannot resume `{missing}`: it holds no checkpoint"),
    "train: --resume a file": (["train", "--resume", "{file}"], "error: cannot resume `{file}`: it holds no checkpoint"),
    "train: nothing to train": (["train"], "error: name a spec to train, or `--resume DIR`"),
    "train: --epochs 0": (["train", "{spec}", "--epochs", "0"], "error: argument --epochs: `0` is out of range: must be ≥ 1"),
    "train: --seed -1": (["train", "{spec}", "--seed", "-1"], "error: argument --seed: `-1` is out of range…"),
    "train: --seed 2**64": (["train", "{spec}", "--seed", str(2**64)], "error: argument --seed: `18446744073709551616` is out of range…"),
    "train: --checkpoint-every nan": (["train", "{spec}", "--checkpoint-every", "nan"],
                                      "error: argument --checkpoint-every: expected a number of seconds ≥ 0, found `nan`"),
    # eval
    "eval: missing spec": (["eval", "{missing}", "--run", "{run}"], "error: cannot read `{missing}`: no such file"),
    "eval: a directory": (["eval", "{dir}", "--run", "{run}"], "error: cannot read `{dir}`: it is a directory"),
    "eval: missing run": (["eval", "{spec}", "--run", "{missing}"], "error[E405]: no checkpoint at `{missing}/checkpoint.npz`"),
    "eval: run is a file": (["eval", "{spec}", "--run", "{file}"], "error[E405]: no checkpoint at `{file}/checkpoint.npz`"),
    "eval: unknown flag": (["eval", "{spec}", "--run", "{run}", "--frobnicate"], "error: unrecognized arguments: --frobnicate"),
    # without `--run`, the newest finished run in `runs/NAME` of the current folder (there is none)
    "eval: no --run": (["eval", "{spec}"], "error: no run of `{spec}` to evaluate…"),
    "eval: nothing to evaluate": (["eval"], "error: name a spec (its newest run in `runs/` is evaluated) or a run folder…"),
    "eval: a folder without a run": (["eval", "{dir}"], "error: `{dir}` holds no trained run (no `checkpoint.npz`)…"),
    # predict
    "predict: missing spec": (["predict", "{missing}", "--run", "{run}", "--input", "{x}"],
                              "error: cannot read `{missing}`: no such file"),
    "predict: a directory": (["predict", "{dir}", "--run", "{run}", "--input", "{x}"],
                             "error: cannot read `{dir}`: it is a directory"),
    "predict: missing run": (["predict", "{spec}", "--run", "{missing}", "--input", "{x}"],
                             "error[E405]: no checkpoint at `{missing}/checkpoint.npz`"),
    "predict: missing input": (["predict", "{spec}", "--run", "{run}", "--input", "{missing}"],
                               "error: cannot read `{missing}`: no such file"),
    "predict: input is a directory": (["predict", "{spec}", "--run", "{run}", "--input", "{dir}"],
                                      "error: cannot read `{dir}`: it is a directory"),
    "predict: --output under a file": (["predict", "{spec}", "--run", "{run}", "--input", "{x}", "--output", "{file}/y.csv"],
                                       "error: cannot write `{file}/y.csv`: Not a directory"),
    "predict: --output is a directory": (["predict", "{spec}", "--run", "{run}", "--input", "{x}", "--output", "{dir}"],
                                         "error: cannot write `{dir}`: it is a directory"),
    "predict: no run": (["predict", "{spec}", "--input", "{x}"],
                        "error: `{spec}` gives no values for the parameters of layer `h1` (and 2 more), and there is no run of it…"),
    "predict: a folder without a run": (["predict", "{dir}", "--input", "{x}"],
                                        "error: `{dir}` holds no trained run (no `checkpoint.npz`)…"),
    "predict: bad --format": (["predict", "{run}", "--input", "{x}", "--format", "xml"],
                              "error: argument --format: invalid choice: 'xml'…"),
    "predict: unknown flag": (["predict", "{spec}", "--run", "{run}", "--input", "{x}", "--frobnicate"],
                              "error: unrecognized arguments: --frobnicate"),
}


def fill(s: str, place: dict[str, Path]) -> str:
    return s.format(**{k: str(v) for k, v in place.items()})


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_fails_with_one_clear_line(name: str, place: dict[str, Path]) -> None:
    argv, want = CASES[name]
    before = sorted(p.name for p in place["dir"].iterdir())
    code, out, err = cli(*(fill(a, place) for a in argv))
    first = fails_cleanly(code, err)
    want = fill(want, place)
    if want.endswith("…"):
        assert first.startswith(want[:-1]), err
    else:
        assert first == want, err
    assert sorted(p.name for p in place["dir"].iterdir()) == before, "a failed command leaves nothing behind"
    assert (place["file"]).read_text() == "not a folder\n"


BAD_INPUTS = {  # read by training's CSV reader, so located and worded as its errors are
    "a word": ("x1,x2\n0.5,oops\n", "{path}:2: column `x2`: cannot read `oops` as a number"),
    "too few values": ("x1,x2\n0.5\n", "{path}:2: expected 2 values, found 1; every row needs one value per header column"),
    "NaN": ("x1,x2\n0.5,nan\n", "{path}:2: column `x2`: `nan` is not a finite number; fill in a real value or remove the row"),
    "infinite": ("x1,x2\n1e999,1\n", "{path}:2: column `x1`: `1e999` is too large for a 32-bit float"),
    "header only": ("x1,x2\n", "{path}: the file has a header but no data rows; add one row per example below the header"),
    "not UTF-8": (b"x1,x2\n\xff,1\n", "{path}:2: the file is not UTF-8 text…"),
    "a huge field": ('x1,x2\n"' + "9" * 200_000 + '",1\n', "{path}:2: cannot read the line as CSV (field larger than field limit…"),
    "1_0, which training refuses": ("x1,x2\n1_0,1\n", "{path}:2: column `x1`: cannot read `1_0` as a number"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_predict_refuses_bad_inputs(name: str, place: dict[str, Path], tmp_path: Path) -> None:
    data, want = BAD_INPUTS[name]
    path = tmp_path / "x.csv"
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    code, out, err = cli("predict", place["spec"], "--run", place["run"], "--input", path)
    first = fails_cleanly(code, err)
    want = "error: " + want.format(path=path)
    assert first.startswith(want[:-1]) if want.endswith("…") else first == want, err
    assert out == ""


def test_fmt_on_a_full_disk_leaves_the_file_as_it_was(tmp_path: Path, monkeypatch) -> None:
    path = write(tmp_path / "f.nn", "model   m {\n  input x[2]\n  dense 1\n}\n")
    before = path.read_bytes()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr("nnspec.cli.os.replace", full)
    code, _, err = cli("fmt", path)
    assert fails_cleanly(code, err) == f"error: cannot write `{path}`: No space left on device"
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_fmt_writes_through_a_symlink(tmp_path: Path) -> None:
    real = write(tmp_path / "real.nn", "model   m {\n  input x[2]\n  dense 1\n}\n")
    link = tmp_path / "link.nn"
    link.symlink_to(real)
    code, _, err = cli("fmt", link)
    assert code == 0, err
    assert link.is_symlink() and real.read_text().startswith("model m {\n")


def test_train_on_a_full_disk_keeps_the_last_checkpoint(place: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    """The disk fills up mid-run: one clear line, and the checkpoint on disk still loads."""
    from nnspec import checkpoint
    real = checkpoint.write_bytes_atomic
    calls = []

    def filling(path, data):
        calls.append(path)
        if len(calls) > 8:  # the run folder's files and the first checkpoints fit
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, data)
    monkeypatch.setattr(checkpoint, "write_bytes_atomic", filling)
    run = tmp_path / "run"
    code, _, err = cli("train", place["spec"], "--out", run, "--epochs", "20", "--checkpoint-every", "0", "-q")
    first = fails_cleanly(code, err)
    assert first.startswith(f"error: cannot write `{run}/") and first.endswith(": No space left on device"), err
    meta = checkpoint.read_meta(run / "checkpoint.npz")
    assert 0 <= meta["epoch"] < 20


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("argv", [["check", "{spec}"], ["compile", "{spec}", "--emit", "ir"], ["explain", "E101"],
                                  ["predict", "{spec}", "--run", "{run}", "--input", "{x}"]],
                         ids=["check", "compile", "explain", "predict"])
def test_stdout_on_a_full_device(argv: list[str], place: dict[str, Path]) -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "nnspec.cli", *(fill(a, place) for a in argv)],
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr == "error: cannot write the output: No space left on device\n", done.stderr


def test_stdout_closed_early_is_not_an_error(place: dict[str, Path]) -> None:
    """`nnspec compile ... | head -c 1`: the reader leaves; nnspec exits 0 quietly."""
    proc = subprocess.Popen([sys.executable, "-m", "nnspec.cli", "compile", str(place["spec"]), "--emit", "ir"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        proc.stdout.read(1)
        proc.stdout.close()
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0 and err == b"", err.decode()


# ------------------------------------------------------------- what a write may replace

def predictions(place: dict[str, Path]) -> str:
    code, out, err = cli("predict", place["spec"], "--run", place["run"], "--input", place["x"])
    assert code == 0 and out.startswith("y,class\n"), err
    return out


def _fifo_works(fifo: Path) -> bool:
    """Whether FIFOs made here connect a writer to a reader (some sandboxed or network
    filesystems make the node but never connect its ends). Never blocks: both ends are
    opened non-blocking, the reader first."""
    try:
        r = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        w = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO when the ends do not meet
        os.write(w, b"x")
        os.close(w)
        return os.read(r, 1) == b"x"
    except OSError:
        return False
    finally:
        os.close(r)


def test_predict_output_writes_through_a_fifo(place: dict[str, Path], tmp_path: Path) -> None:
    """A FIFO (as a device) is written in place; renaming a file over it would replace it.

    The predict runs in a subprocess and the read end is open before it starts, so a
    regression (or a filesystem whose FIFOs never connect) fails within a minute instead of
    blocking the suite on an `open` that waits for the other end for ever."""
    import select
    import stat
    import time
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    if not _fifo_works(fifo):
        pytest.skip(f"FIFOs under {tmp_path} do not connect their two ends")
    r = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # open before the writer: its open cannot block
    proc = subprocess.Popen([sys.executable, "-m", "nnspec.cli", "predict", str(place["spec"]), "--run",
                             str(place["run"]), "--input", str(place["x"]), "--output", str(fifo)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    got = b""
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:  # drain while it writes
            if select.select([r], [], [], 0.1)[0]:
                got += os.read(r, 1 << 16)
        while chunk := os.read(r, 1 << 16):  # what is left once it has exited (EOF, or empty)
            got += chunk
        _, err = proc.communicate(timeout=5)
    except (BlockingIOError, subprocess.TimeoutExpired):
        err = b"(still running or read failed)"
    finally:
        proc.kill()
        os.close(r)
    assert proc.returncode == 0, err.decode()
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO is still a FIFO"
    assert got == predictions(place).encode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo"], "no temporary file beside it"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can replace /dev/null")
def test_predict_output_dev_null_stays_a_device(place: dict[str, Path]) -> None:
    import stat
    try:
        code, _, err = cli("predict", place["spec"], "--run", place["run"], "--input", place["x"],
                           "--output", "/dev/null")
        assert code == 0, err
        assert stat.S_ISCHR(os.lstat("/dev/null").st_mode), "/dev/null was replaced by a regular file"
    finally:
        if not stat.S_ISCHR(os.lstat("/dev/null").st_mode):  # repair what a regression broke
            os.unlink("/dev/null")
            os.mknod("/dev/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
            os.chmod("/dev/null", 0o666)


def test_predict_output_through_a_symlink_keeps_the_link(place: dict[str, Path], tmp_path: Path) -> None:
    real = write(tmp_path / "real.csv", "old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    code, _, err = cli("predict", place["spec"], "--run", place["run"], "--input", place["x"], "--output", link)
    assert code == 0, err
    assert link.is_symlink() and real.read_text() == predictions(place)


def test_files_are_created_with_the_umask_and_keep_their_mode(place: dict[str, Path], tmp_path: Path) -> None:
    """New files get `0o666 & ~umask`, as any program's; an existing file keeps its mode.
    (mkstemp made every run file 0600.)"""
    old = os.umask(0o027)
    try:
        run = tmp_path / "run"
        code, _, err = cli("train", write(tmp_path / "m.nn", moons(n=80, epochs=1)), "--out", run, "-q")
        assert code == 0, err
        modes = {p.name: oct(p.stat().st_mode & 0o777) for p in run.iterdir() if p.is_file()}
        assert "checkpoint.npz" in modes and set(modes.values()) == {"0o640"}, modes
        out = tmp_path / "y.csv"
        code, _, err = cli("predict", place["spec"], "--run", place["run"], "--input", place["x"], "--output", out)
        assert code == 0 and oct(out.stat().st_mode & 0o777) == "0o640", err
        out.chmod(0o604)
        code, _, err = cli("predict", place["spec"], "--run", place["run"], "--input", place["x"], "--output", out)
        assert code == 0 and oct(out.stat().st_mode & 0o777) == "0o604", err
    finally:
        os.umask(old)


def test_python_warnings_are_one_line_without_paths(tmp_path: Path, subprocess_env) -> None:
    """NumPy's RuntimeWarning used to print `/…/nnspec/data.py:984: RuntimeWarning: …` and
    the source line below it."""
    spec = write(tmp_path / "s.nn", """\
model m {
    input x[2]
    out: dense 1 sigmoid
}
loss binary_crossentropy
optimizer sgd lr=0.1
train {
    data csv("d.csv", target="y")
    standardize
    epochs 1
    batch all
}
""")
    write(tmp_path / "d.csv", "a,b,y\n" + "".join(f"{i / 40},{(i * 7 % 40) / 40},{i % 2}\n" for i in range(40)))
    code, _, err = cli("train", spec, "--out", tmp_path / "run", "-q")
    assert code == 0, err
    x = write(tmp_path / "x.csv", "a,b\n3.4e38,-3.4e38\n")  # overflows float32 once standardized
    done = subprocess.run([sys.executable, "-m", "nnspec.cli", "predict", str(spec), "--run", str(tmp_path / "run"),
                           "--input", str(x)], env=subprocess_env, capture_output=True, text=True, timeout=120)
    lines = done.stderr.splitlines()
    assert "warning: overflow encountered in divide" in lines, done.stderr
    assert all(line.startswith(("warning: ", "error")) and ".py:" not in line for line in lines), done.stderr
