"""docs/reliability.md names only tests that exist: each guarantee points at its proof."""

from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOC = HERE.parent.parent / "docs" / "reliability.md"


def test_every_test_the_doc_names_exists() -> None:
    text = DOC.read_text()
    sources = {p.name: p.read_text() for p in [*HERE.glob("test_*.py"), HERE.parent / "test_training.py"]}
    files = set(re.findall(r"\b(test_\w+)\.py\b", text))
    functions = set(re.findall(r"\b(test_\w+)\b(?!\.py)", text)) - files
    assert files and functions
    assert {f + ".py" for f in files} <= set(sources), files
    defined = {name for src in sources.values() for name in re.findall(r"^def (test_\w+)", src, re.M)}
    assert functions <= defined, sorted(functions - defined)
    guarantees = re.findall(r"^## (\d)\. ", text, re.M)
    assert guarantees == ["1", "2", "3", "4", "5", "6", "7"]
