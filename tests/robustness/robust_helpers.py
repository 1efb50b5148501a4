"""Helpers shared by the robustness tests: run the CLI in-process and check that it
failed cleanly, and the specs the training tests use."""

from __future__ import annotations

import collections
import re
from pathlib import Path

from cli_helpers import run_cli

# What the suite did, printed at the end of the run (docs/reliability.md quotes it).
COUNTS: collections.Counter = collections.Counter()

RENDERED_CODE = re.compile(r"^(?:error|warning)\[([EW]\d{3})\]", re.M)


def cli(*argv: str) -> tuple[int, str, str]:
    """`nnspec ARGV` in-process: (exit code, stdout, stderr). Asserts a clean outcome: no
    exception but argparse's SystemExit, exit code 0, 1 or 2, no traceback on stderr."""
    COUNTS["CLI runs"] += 1
    code, out, stderr = run_cli(*argv)  # asserts that no traceback reached the user
    assert code in (0, 1, 2), (argv, code, stderr[-3000:])
    assert "internal compiler error" not in stderr, stderr[-3000:]
    return code, out, stderr


def fails_cleanly(code: int, stderr: str) -> str:
    """A failure reported in one clear line: `error: ...` (usage), or a rendered diagnostic
    (`error[E...]` with its closing `error: could not ...` line). Returns the first line."""
    assert code != 0
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "a failure must say why"
    first = lines[0]
    if first.startswith("error["):
        assert RENDERED_CODE.search(stderr) and lines[-1].startswith("error: could not "), stderr
    else:
        assert first.startswith("error: "), stderr
        # argparse adds one pointer to --help; nothing else follows a usage error
        assert len(lines) == 1 or (len(lines) == 2 and lines[1].strip().startswith("(see `nnspec")), stderr
    return first


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


MOONS = """\
model moons {
    input x[2]
    h1: dense 16 relu
    drop: dropout 0.2
    h2: dense 16 relu
    out: dense 1 sigmoid
}
loss binary_crossentropy
optimizer adam lr=0.01
train {
    data builtin("moons", n=N)
    split val=0.25
    batch 32
    epochs EPOCHS
    metrics accuracy
    seed 3
}
"""


def moons(n: int = 400, epochs: int = 12) -> str:
    return MOONS.replace("N)", f"{n})").replace("EPOCHS", str(epochs))
