"""Golden UI tests, after rustc's: every `tests/ui/NAME.nn` is run through `nnspec check`
and what it prints on stderr, and its exit code, are compared with `tests/ui/NAME.stderr`.

The expected file's first line is the exit code (`exit: 1`); the rest is stderr, exactly.
To regenerate the expected files after an intended change to a diagnostic, run

    NNSPEC_BLESS=1 pytest tests/test_ui.py

and read the diff (`git diff tests/ui`) before committing it. A new case is a new `.nn`
file; blessing writes its `.stderr`. See tests/ui/README.md.
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

import pytest

from nnspec.cli import main
from nnspec.codes import CODES

ROOT = Path(__file__).resolve().parent.parent
UI = ROOT / "tests" / "ui"
CASES = sorted(p.stem for p in UI.glob("*.nn"))
BLESS = os.environ.get("NNSPEC_BLESS", "") not in ("", "0")

# E310 quotes the machine's memory; the golden files assume this much.
MEMORY_BUDGET = 16 * 2**30

# Codes no input text can produce, and why; each still needs a catalog entry.
UNREACHABLE = {
    "E003": "the post-lexer ends every file with a newline and reports brackets left open "
            "as E002, so the parser never meets the end of the file mid-statement",
}

# E4xx are raised while training (nnspec/fit.py), which `nnspec check` never runs; the
# training tests cover them.
# Reported once training reads the data: the E4xx errors, and W003, which needs the targets.
TRAINING = {code for code in CODES if code.startswith("E4")} | {"W003"}

_HEADER = re.compile(r"^(?:error|warning)\[([EW]\d{3})\]", re.M)


def run_check(rel: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`nnspec check REL` in-process, from the repository root, without colour."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setattr(importlib.import_module("nnspec.check"), "physical_memory", lambda: MEMORY_BUDGET)
    capsys.readouterr()
    code = main(["check", rel])
    return code, capsys.readouterr().err


def expected_path(name: str) -> Path:
    return UI / f"{name}.stderr"


def read_expected(name: str) -> tuple[int, str]:
    text = expected_path(name).read_text(encoding="utf-8")
    first, _, rest = text.partition("\n")
    match = re.fullmatch(r"exit: (\d+)", first)
    assert match, f"{name}.stderr must start with `exit: N`, found {first!r}"
    return int(match.group(1)), rest


@pytest.mark.parametrize("name", CASES)
def test_ui(name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_check(f"tests/ui/{name}.nn", monkeypatch, capsys)
    if BLESS:
        expected_path(name).write_text(f"exit: {code}\n{err}", encoding="utf-8")
    assert expected_path(name).exists(), f"no {name}.stderr: run `NNSPEC_BLESS=1 pytest tests/test_ui.py`"
    want_code, want_err = read_expected(name)
    assert err == want_err
    assert code == want_code
    assert "Traceback" not in err


def test_every_expected_file_has_a_case() -> None:
    orphans = sorted(p.name for p in UI.glob("*.stderr") if p.stem not in CASES)
    assert not orphans, f"expected output without a `.nn` case: {orphans}"


def _codes_in_expected_files() -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for path in sorted(UI.glob("*.stderr")):
        for code in _HEADER.findall(path.read_text(encoding="utf-8")):
            seen.setdefault(code, []).append(path.stem)
    return seen


def test_every_code_has_a_ui_case() -> None:
    seen = _codes_in_expected_files()
    missing = sorted(set(CODES) - set(seen) - set(UNREACHABLE) - TRAINING)
    assert not missing, f"codes with no UI case: {missing}"
    assert set(UNREACHABLE) <= set(CODES)
    assert not set(UNREACHABLE) & set(seen), "a code listed as unreachable has a UI case"


def test_every_code_in_the_ui_cases_is_in_the_catalog() -> None:
    unknown = {code: cases for code, cases in _codes_in_expected_files().items() if code not in CODES}
    assert not unknown, f"codes missing from nnspec/codes.py: {unknown}"


def test_clean_cases_exit_zero_and_error_cases_one() -> None:
    for name in CASES:
        code, err = read_expected(name)
        has_errors = bool(re.search(r"^error\[", err, re.M))
        assert code == (1 if has_errors else 0), name
