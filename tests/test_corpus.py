"""docs/corpus.md stays true: thirty real models written in nnspec.

Every ```nn block checks clean (no errors, no warnings) and is in `nnspec fmt` form; a
block whose first line is `# N parameters` has exactly that many (and of them `T`
trainable, where it says `(T trainable)`); the summary table has
one row per model section, each row's verdict is the one its section gives, and the
count under the table ("**N of M exact**", then the approximate and not-expressible
counts) is the count of the rows, so none of it can drift. Checking only: no training.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from nnspec.check import check_source
from nnspec.diagnostics import render_all
from nnspec.format import format_source

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # pytest's default import mode puts it there; others may not
    sys.path.insert(0, str(HERE))
from test_docs import Block, fences  # noqa: E402  (the doc test's fenced-block reader)

CORPUS = HERE.parent / "docs" / "corpus.md"
TEXT = CORPUS.read_text(encoding="utf-8")
BLOCKS = fences(TEXT)
NN = [b for b in BLOCKS if b.info == "nn"]
VERDICTS = ("exact", "approximate", "not expressible")


def _rows() -> list[tuple[int, str]]:
    """(number, verdict) of each row of the summary table, in order."""
    body = TEXT.split("## Summary", 1)[1].split("\n\n**", 1)[0]
    rows = []
    for line in body.splitlines():
        m = re.match(r"\|\s*(\d+)\s*\|", line)
        if m:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows.append((int(m.group(1)), cells[3]))
    return rows


def _sections() -> dict[int, str]:
    """Each model's section under `## The models`, by its number."""
    body = TEXT.split("## The models", 1)[1]
    parts = re.split(r"^### (\d+)\. ", body, flags=re.M)
    return {int(n): text for n, text in zip(parts[1::2], parts[2::2])}


def _stated_count(block: Block) -> int | None:
    m = re.fullmatch(r"#\s*([\d,]+) parameters(?: \(([\d,]+) trainable\))?\s*", block.text.split("\n", 1)[0])
    return int(m.group(1).replace(",", "")) if m else None


def _stated_trainable(block: Block) -> int | None:
    """`# N parameters (T trainable)`: a model with frozen layers states both."""
    m = re.fullmatch(r"#\s*[\d,]+ parameters \(([\d,]+) trainable\)\s*", block.text.split("\n", 1)[0])
    return int(m.group(1).replace(",", "")) if m else None


def test_the_corpus_has_thirty_models_and_only_checked_fences() -> None:
    assert [n for n, _ in _rows()] == list(range(1, 31))
    assert sorted(_sections()) == list(range(1, 31))
    assert NN and all(b.info == "nn" for b in BLOCKS), "only ```nn blocks are checked here"


@pytest.mark.parametrize("block", NN, ids=[b.id for b in NN])
def test_every_block_checks_clean_with_its_stated_count(block: Block) -> None:
    program, diags, src = check_source(block.text, "corpus.nn")
    assert program is not None and not diags, f"{block.id}:\n{render_all(diags, src)}"
    assert format_source(block.text) == block.text, f"{block.id} is not in `nnspec fmt` form"
    stated = _stated_count(block)
    if stated is not None:
        assert program.model.n_params == stated, (
            f"{block.id} says {stated:,} parameters, nnspec counts {program.model.n_params:,}")
    trainable = _stated_trainable(block)
    if trainable is not None:
        assert program.model.n_trainable == trainable, (
            f"{block.id} says {trainable:,} trainable, nnspec counts {program.model.n_trainable:,}")


def test_each_row_has_the_verdict_of_its_section() -> None:
    sections = _sections()
    for number, verdict in _rows():
        assert verdict in VERDICTS, f"row {number}: unknown verdict {verdict!r}"
        m = re.search(r"- \*\*Verdict\*\*: \*\*([a-z ]+)\*\*", sections[number])
        assert m, f"section {number} gives no verdict"
        assert m.group(1) == verdict, f"row {number} says {verdict!r}, its section {m.group(1)!r}"


def test_every_exact_model_has_a_block_with_its_count() -> None:
    sections = _sections()
    for number, verdict in _rows():
        if verdict == "exact":
            counts = [_stated_count(b) for b in fences(sections[number]) if b.info == "nn"]
            assert any(c is not None for c in counts), (
                f"model {number} is exact but no block states its parameter count")


def test_the_stated_totals_are_the_table_s() -> None:
    m = re.search(r"\*\*(\d+) of (\d+) exact\*\*; (\d+) approximate, (\d+) not expressible",
                  TEXT)
    assert m, "the count line under the summary table is missing"
    exact, total, approximate, not_expressible = map(int, m.groups())
    tally = Counter(verdict for _, verdict in _rows())
    assert total == sum(tally.values())
    assert (exact, approximate, not_expressible) == (
        tally["exact"], tally["approximate"], tally["not expressible"])
