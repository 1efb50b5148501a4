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

# Prints the exit code and this process's peak memory after `nnspec train`.
PEAK = """\
import resource, sys
from nnspec.cli import main
code = main(sys.argv[1:])
print("exit", code, "peak_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def test_check_refuses_a_model_that_cannot_fit(tmp_path: Path) -> None:
    spec = write(tmp_path / "huge.nn", HUGE)
    t0 = time.perf_counter()
    code, out, err = cli("check", spec)
    assert time.perf_counter() - t0 < 5
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
