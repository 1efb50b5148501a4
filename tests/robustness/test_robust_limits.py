"""6. Resource limits.

A model whose parameters, gradients, optimizer state and one batch of activations would
not fit in memory is
refused by the checker (E310), by `nnspec check` and by `nnspec train` alike, in well
under a second of checking and before any array is allocated or any file written. A
batch larger than the training split is reported (E402), not silently cut.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from robust_helpers import cli, fails_cleanly, write

# 10⁷ inputs × 10⁷ units: 10¹⁴ parameters, about 1.5 PiB with adam's two slots.
HUGE = """\
model huge {
    input x[10000000]
    wide: dense 10000000 relu
    out: dense 1 sigmoid
}
loss binary_crossentropy
optimizer adam lr=0.001
train {
    data csv("d.csv", target="y")
    batch 32
    epochs 1
}
"""

# Prints the exit code and this process's peak memory after `nnspec train`: VmHWM, which
# starts afresh at exec; ru_maxrss would also count the parent it was started from (a
# pytest process holds 1 GB and more by the time this test runs).
PEAK = """\
import re, sys
from nnspec.cli import main
code = main(sys.argv[1:])
peak = re.search(r"^VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read(), re.M)[1]
print("exit", code, "peak_kib", peak, file=sys.stderr)
"""


def test_check_refuses_a_model_that_cannot_fit(tmp_path: Path) -> None:
    spec = write(tmp_path / "huge.nn", HUGE)
    t0 = time.process_time()  # CPU seconds of `check`, run in this process: other load does not stretch them
    code, out, err = cli("check", spec)
    assert time.process_time() - t0 < 5
    first = fails_cleanly(code, err)
    assert code == 1 and first.startswith("error[E310]: the model needs about ") and first.endswith(
        " for its parameters, gradients, optimizer state and a batch of 32 examples"), err
    assert "100,000,020,000,001 parameters" in err and "= note: the memory budget is " in err
    for argv in (("compile", "--emit", "summary", spec), ("compile", "--emit", "jaxpr", spec)):
        code, out, err = cli(*argv)
        assert code == 1 and "error[E310]" in err and out == "", err


def test_train_refuses_it_before_allocating_anything(tmp_path: Path, subprocess_env) -> None:
    spec = write(tmp_path / "huge.nn", HUGE)
    (tmp_path / "d.csv").write_text("a,y\n1,0\n")
    script = write(tmp_path / "peak.py", PEAK)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, str(script), "train", str(spec), "--out", str(tmp_path / "run"), "-q"],
                          env=subprocess_env, capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - t0
    m = re.search(r"exit (\d+) peak_kib (\d+)", done.stderr)
    assert m and m[1] == "1", done.stderr
    assert "error[E310]" in done.stderr and "Traceback" not in done.stderr
    assert int(m[2]) < 1024 * 1024, f"peak memory {int(m[2]) / 1024:.0f} MiB: something was allocated"
    assert not (tmp_path / "run").exists(), "nothing is written for a refused spec"
    assert elapsed < 60  # the interpreter and JAX start; the check itself is instant


def test_a_batch_larger_than_the_data_is_reported(tmp_path: Path) -> None:
    spec = write(tmp_path / "s.nn", """\
model m {
    input x[2]
    dense 1 sigmoid
}
loss binary_crossentropy
optimizer sgd lr=0.1
train {
    data builtin("moons", n=100)
    split val=0.2
    batch 1000
    epochs 1
}
""")
    code, _, err = cli("train", spec, "--out", tmp_path / "run", "-q")
    first = fails_cleanly(code, err)
    assert code == 1 and first == "error[E402]: batch size 1000 is larger than the training split (80 examples)", err
    assert "10 |     batch 1000\n   |     ^^^^^^^^^^ too large" in err
    assert "= help: use a smaller batch, or `batch all` for full-batch gradient descent" in err
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


# ------------------------------------------------------------------- checking is linear
# Inputs that once made the front end quadratic, each checked at size n and 4n in this
# one run (a sweep: 4 times the models and 4 times the layers): a linear checker takes
# about 4 times as long, a quadratic one 16 times. The
# better of two timings at each size keeps a busy machine from deciding the ratio.

def _spaces(n: int) -> str:  # E007's search for a header lacking `{` retried every split of the spaces
    return "model m" + " " * (20 * n) + "{\n    input x[2]\n    dense 1\n}\n}\n"


def _hashes_in_strings(n: int) -> str:  # every `#` was looked up in a list of every string
    return "".join(f'let s{i} = "a # b # c"\n' for i in range(n))


def _let_chain(n: int) -> str:  # each step along `let c1 = c0` ... copied the set of those seen
    return "let c0 = 2\n" + "".join(f"let c{i} = c{i - 1}\n" for i in range(1, n)) + \
        f"model m {{\n    input x[c{n - 1}]\n    dense 1\n}}\n"


def _sweep(n: int) -> str:  # each model was checked in full, and its spec copied: models × size
    layers = "".join(f"    dense 8 relu l2={0.001 * (i + 1)}\n" for i in range(n // 25))
    return (f"model m {{\n    input x[2]\n{layers}    dense 1 sigmoid\n}}\nloss binary_crossentropy\n"
            f"optimizer adam lr=sweep_log(1e-4, 1e-1, n={n // 16})\n")


def _seconds(text: str) -> float:
    """The least CPU time of three checks of `text`: this process's own seconds, which other
    processes on a loaded machine do not stretch as they stretch the wall clock."""
    from nnspec.check import check_source
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        check_source(text, "big.nn", memory_budget=16 * 2**30)
        best = min(best, time.process_time() - start)
    return best


@pytest.mark.slow
@pytest.mark.parametrize("make,n", [(_spaces, 1000), (_hashes_in_strings, 3000), (_let_chain, 6000), (_sweep, 1000)],
                         ids=["spaces_before_a_brace", "hashes_in_strings", "let_chain", "sweep_models"])
def test_checking_time_grows_linearly_with_the_input(make, n: int) -> None:
    small, large = _seconds(make(n)), _seconds(make(4 * n))
    assert large < 10 * max(small, 0.01), (make.__name__, small, large)
