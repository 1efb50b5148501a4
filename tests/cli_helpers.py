"""`nnspec ARGV` run in-process, as the tests that drive the command line use it."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

from nnspec.cli import main


def run_cli(*argv: object, cwd: Path | str | None = None) -> tuple[int, str, str]:
    """`nnspec ARGV` in-process (each argument through `str`), in the folder `cwd` if given:
    (exit code, stdout, stderr). argparse's own exits (a bad command line, `--help`) are
    SystemExit, read as the code a shell would see. Asserts that no traceback reached the user."""
    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)  # (contextlib.chdir is Python 3.11+)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in argv])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    finally:
        os.chdir(here)
    assert "Traceback" not in out.getvalue() + err.getvalue(), err.getvalue()
    return code, out.getvalue(), err.getvalue()
