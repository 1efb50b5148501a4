"""Diagnostics for CI: GitHub Actions workflow commands and SARIF 2.1.0.

`github`: one `::error` or `::warning` line per diagnostic, which GitHub Actions shows as an
annotation on the file and line. `sarif`: one SARIF log (the OASIS format that GitHub code
scanning and other tools read) of every file checked, its rules taken from nnspec/codes.py.
Lines and columns are 1-based; an end column is the column just past the span, as SARIF
defines it (and as ruff writes it for GitHub).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote

from nnspec.diagnostics import Diagnostic, sort_diagnostics
from nnspec.source import Source, Span

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"


def _escape_data(text: str) -> str:
    """A workflow command's message, escaped as @actions/core escapes it."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    """A workflow command's property value: also `:` and `,`, which end it."""
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _text(d: Diagnostic) -> str:
    """The message, then its notes and help on lines of their own."""
    return "\n".join([d.message] + [f"note: {n}" for n in d.notes] + ([f"help: {d.help}"] if d.help else []))


def _lines(span: Span, source: Source) -> tuple[int, int, int, int]:
    """(line, column, end line, end column) of `span`, 1-based, the end just past it."""
    line, col = source.line_col(span.start)
    end_line, end_col = source.line_col(max(span.start, span.end))
    return line, col, end_line, end_col


def _region(d: Diagnostic, source: Source | None) -> tuple[int, int, int, int] | None:
    span = d.primary_span
    return None if span is None or source is None else _lines(span, source)


def _sarif_region(line: int, col: int, end_line: int, end_col: int) -> dict[str, int]:
    return {"startLine": line, "startColumn": col, "endLine": end_line, "endColumn": end_col}


def github(diags: Iterable[Diagnostic], source: Source | None, filename: str) -> str:
    """GitHub Actions workflow commands, one line per diagnostic of the file `filename`."""
    lines = []
    for d in sort_diagnostics(diags):
        props = [f"file={_escape_property(source.filename if source else filename)}"]
        region = _region(d, source)
        if region is not None:
            line, col, end_line, end_col = region
            props += [f"line={line}", f"col={col}", f"endLine={end_line}", f"endColumn={end_col}"]
        props.append(f"title={_escape_property(d.code)}")
        lines.append(f"::{d.severity.value} {','.join(props)}::{_escape_data(_text(d))}\n")
    return "".join(lines)


def _uri(filename: str) -> dict[str, str]:
    """An artifactLocation: a relative path as a relative URI under `%SRCROOT%` (the
    folder the command ran in), any other path as a `file:` URI."""
    path = Path(filename)
    if path.is_absolute():
        return {"uri": path.as_uri()}
    return {"uri": quote(path.as_posix()), "uriBaseId": "%SRCROOT%"}


def rules() -> list[dict[str, Any]]:
    """Every diagnostic code as a SARIF reportingDescriptor, in the catalog's order."""
    from nnspec.codes import CODES
    return [{"id": code, "shortDescription": {"text": title},
             "fullDescription": {"text": text.strip()}, "help": {"text": text.strip()},
             "defaultConfiguration": {"level": "warning" if code.startswith("W") else "error"}}
            for code, (title, text) in CODES.items()]


def _homepage() -> str | None:
    """The project's home page, as the installed package's metadata gives it (pyproject.toml)."""
    from importlib import metadata
    try:
        urls = metadata.metadata("nnspec").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return None
    for entry in urls:
        label, _, url = entry.partition(",")
        if label.strip().lower() == "homepage":
            return url.strip()
    return None


class Sarif:
    """A SARIF log being collected: `add` each file's diagnostics, then `text()`."""

    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []
        self._rules = rules()
        self._index = {r["id"]: i for i, r in enumerate(self._rules)}

    def add(self, diags: Iterable[Diagnostic], source: Source | None, filename: str) -> None:
        for d in sort_diagnostics(diags):
            physical: dict[str, Any] = {"artifactLocation": _uri(source.filename if source else filename)}
            region = _region(d, source)
            if region is not None:
                physical["region"] = _sarif_region(*region)
            result: dict[str, Any] = {"ruleId": d.code, "level": d.severity.value,
                                      "message": {"text": _text(d)}, "locations": [{"physicalLocation": physical}]}
            if d.code in self._index:
                result["ruleIndex"] = self._index[d.code]
            secondary = [lab for lab in d.labels if not lab.primary] if source is not None else []
            if secondary:  # `first defined here`: the other places a diagnostic points at
                assert source is not None
                result["relatedLocations"] = [
                    {"id": i, "message": {"text": lab.message},
                     "physicalLocation": {"artifactLocation": physical["artifactLocation"],
                                          "region": _sarif_region(*_lines(lab.span, source))}}
                    for i, lab in enumerate(secondary, 1)]
            self.results.append(result)

    def log(self) -> dict[str, Any]:
        from nnspec import __version__
        driver: dict[str, Any] = {"name": "nnspec", "version": __version__, "semanticVersion": __version__}
        homepage = _homepage()
        if homepage:
            driver["informationUri"] = homepage
        driver["rules"] = self._rules
        return {
            "$schema": SARIF_SCHEMA,
            "version": "2.1.0",
            "runs": [{
                "tool": {"driver": driver},
                "originalUriBaseIds": {"%SRCROOT%": {"uri": Path(os.getcwd()).as_uri() + "/"}},
                # columns count characters (code points), not UTF-16 code units
                "columnKind": "unicodeCodePoints",
                "results": self.results,
            }],
        }

    def text(self) -> str:
        import json
        return json.dumps(self.log(), indent=2, ensure_ascii=False) + "\n"

