"""docs/data.md's examples run: its `python` and `console` blocks, in order, in a temp
folder holding a copy of specs/ with the data files specs/data/make_examples.py writes;
a block just below `<!-- file: NAME -->` (an `nn` spec, a `csv` table) is first written
there as NAME. tests/test_docs.py checks the guide's `nn` fences as it checks
docs/language.md's.

A console block is `$ nnspec ...` lines, each followed by what it prints (stderr, then
stdout): a line `…` stands for any number of lines, and `…` within a line for any text.
`$ echo $?` is followed by the previous command's exit status. The python blocks share one
namespace, as a notebook's cells do."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "data.md"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_data_specs import copy_specs, make_examples  # noqa: E402
from test_docs import fences  # noqa: E402

from cli_helpers import run_cli  # noqa: E402

_FILE = re.compile(r"<!-- file: (\S+) -->\n+```")


def _files(doc: str) -> dict[int, str]:
    """The line of each fence that a `<!-- file: NAME -->` comment names, and NAME."""
    out = {}
    for m in _FILE.finditer(doc):
        out[doc[: m.end()].count("\n") + 1] = m.group(1)
    return out


def matches(expected: list[str], got: list[str]) -> bool:
    """`got` is what `expected` shows: a line `…` is any lines, `…` in a line any text."""
    pattern = "".join("(?:.*\n)*" if line == "…" else ".*".join(map(re.escape, line.split("…"))) + "\n"
                      for line in expected)
    return re.fullmatch(pattern, "".join(line + "\n" for line in got)) is not None


def test_matches() -> None:
    assert matches(["a", "…", "d"], ["a", "b", "c", "d"]) and matches(["a", "…"], ["a"])
    assert matches(["x … z"], ["x yy z"]) and not matches(["x … z"], ["x y"])
    assert not matches(["a"], ["a", "b"])


def run_console(text: str, where: str) -> None:
    lines = text.rstrip("\n").split("\n")
    assert lines[0].startswith("$ "), f"{where}: a console block starts with a `$ ` command"
    status, i = None, 0
    while i < len(lines):
        command, i = lines[i][2:], i + 1
        expected = []
        while i < len(lines) and not lines[i].startswith("$ "):
            expected.append(lines[i])
            i += 1
        if command == "echo $?":
            assert [str(status)] == expected, f"{where}: exit status {status}, the guide says {expected}"
            continue
        argv = shlex.split(command)
        assert argv[0] == "nnspec", f"{where}: only `nnspec` commands run, found {command!r}"
        status, out, err = run_cli(*argv[1:])
        got = err + out
        assert matches(expected, got.splitlines()), f"{where}: `{command}` printed\n{got}"


def test_every_example_in_docs_data_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for needed in ("pyarrow", "PIL", "sklearn", "pandas"):
        pytest.importorskip(needed)
    make_examples().write_all(copy_specs(tmp_path) / "data")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # a streamed Parquet file's spool
    doc = DOC.read_text(encoding="utf-8")
    files = _files(doc)
    ran = 0
    namespace: dict[str, object] = {"__name__": "__doc_example__"}  # one namespace, as a notebook's
    for block in fences(doc):
        where = f"docs/data.md:{block.line}"
        if block.line in files:
            (tmp_path / files[block.line]).write_text(block.text, encoding="utf-8")
        if block.info == "python":
            exec(compile(block.text, where, "exec"), namespace)
        elif block.info == "console":
            run_console(block.text, where)
        else:
            continue
        ran += 1
    assert ran >= 10
