"""Diagnostics as data (severity, code, message, labelled spans, help) and their rendering.

Message style, enforced by tests: lowercase, no trailing period, names in backticks;
a fix goes in `help`, never in the message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Iterable, Sequence

from nnspec.source import Source, Span


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Label:
    span: Span
    message: str = ""
    primary: bool = True


@dataclass(frozen=True)
class Diagnostic:
    severity: Severity
    code: str
    message: str
    labels: tuple[Label, ...] = ()
    help: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    @property
    def primary_span(self) -> Span | None:
        for label in self.labels:
            if label.primary:
                return label.span
        return self.labels[0].span if self.labels else None


def error(code: str, message: str, span: Span | None = None, label: str = "", *,
          help: str | None = None, secondary: Sequence[tuple[Span | None, str]] = (),
          notes: Sequence[str] = ()) -> Diagnostic:
    """An error with a primary label at `span` and optional secondary labels."""
    return _make(Severity.ERROR, code, message, span, label, help, secondary, notes)


def warning(code: str, message: str, span: Span | None = None, label: str = "", *,
            help: str | None = None, secondary: Sequence[tuple[Span | None, str]] = (),
            notes: Sequence[str] = ()) -> Diagnostic:
    """A warning: legal, but probably not what was meant."""
    return _make(Severity.WARNING, code, message, span, label, help, secondary, notes)


def _make(severity, code, message, span, label, help, secondary, notes) -> Diagnostic:
    labels = [] if span is None else [Label(span, label, True)]
    labels += [Label(s, m, False) for s, m in secondary if s is not None]
    return Diagnostic(severity, code, message, tuple(labels), help, tuple(notes))


class NNSpecError(Exception):
    """Raised by the library API; carries every diagnostic of the input, errors first."""

    def __init__(self, diagnostics: Iterable[Diagnostic], source: Source | None = None, *,
                 action: str = "check") -> None:
        self.diagnostics = tuple(sorted(diagnostics, key=_order))
        self.source = source
        self.action = action  # what failed, for the closing line: check, train, ...
        first = next((d for d in self.diagnostics if d.is_error), None)
        summary = f"{first.code}: {first.message}" if first else "no errors"
        more = len([d for d in self.diagnostics if d.is_error]) - 1
        super().__init__(summary + (f" (and {more} more)" if more > 0 else ""))

    def render(self, color: bool = False) -> str:
        return render_all(self.diagnostics, self.source, color=color, action=self.action)


def _order(d: Diagnostic) -> tuple[int, int]:
    span = d.primary_span
    return (0 if d.is_error else 1, span.start if span else -1)


def sort_diagnostics(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Source order, errors and warnings interleaved (as rustc prints them)."""
    return sorted(diags, key=lambda d: (d.primary_span.start if d.primary_span else -1))


# ---------------------------------------------------------------------------- rendering

_COLORS = {"error": "\x1b[1;31m", "warning": "\x1b[1;33m", "blue": "\x1b[1;34m",
           "bold": "\x1b[1m", "reset": "\x1b[0m"}


def render(d: Diagnostic, source: Source | None, *, color: bool = False) -> str:
    """rustc-style text: header, `--> file:line:col`, the source lines, carets, help."""
    def c(name: str, text: str) -> str:
        return f"{_COLORS[name]}{text}{_COLORS['reset']}" if color else text

    sev = d.severity.value
    out = [c(sev, f"{sev}[{d.code}]") + c("bold", f": {d.message}")]
    labels = [lab for lab in d.labels if source is not None]
    if not labels:
        for note in d.notes:
            out.append(f"  = note: {note}")
        if d.help:
            out.append(f"  = help: {d.help}")
        return "\n".join(out)

    assert source is not None
    located = []
    for lab in labels:
        line, col = source.line_col(lab.span.start)
        end_line, end_col = source.line_col(max(lab.span.start, lab.span.end))
        located.append((line, col, end_line, end_col, lab))
    primary = next((x for x in located if x[4].primary), located[0])
    width = len(str(max(x[0] for x in located)))
    pad = " " * width
    out.append(f"{pad}{c('blue', '-->')} {source.filename}:{primary[0]}:{primary[1]}")
    out.append(f"{pad} {c('blue', '|')}")
    by_line: dict[int, list] = {}
    for item in located:
        by_line.setdefault(item[0], []).append(item)
    previous = None
    for line in sorted(by_line):
        if previous is not None and line > previous + 1:
            out.append(c("blue", "..."))
        text = source.line_text(line).expandtabs(1) if line <= source.line_count else ""
        out.append(f"{c('blue', str(line).rjust(width) + ' |')} {text}")
        for (l0, col, l1, col1, lab) in sorted(by_line[line], key=lambda x: x[1]):
            stop = col1 if l1 == l0 else len(text) + 1
            n = max(1, stop - col)
            mark = ("^" if lab.primary else "-") * n
            styled = c(sev if lab.primary else "blue", mark + (f" {lab.message}" if lab.message else ""))
            out.append(f"{pad} {c('blue', '|')} {' ' * (col - 1)}{styled}")
        previous = line
    if d.help or d.notes:
        out.append(f"{pad} {c('blue', '|')}")
    for note in d.notes:
        out.append(f"{pad} {c('blue', '=')} note: {note}")
    if d.help:
        out.append(f"{pad} {c('blue', '=')} help: {d.help}")
    return "\n".join(out)


def render_all(diags: Iterable[Diagnostic], source: Source | None, *, color: bool = False,
               action: str = "check") -> str:
    diags = sort_diagnostics(diags)
    blocks = [render(d, source, color=color) for d in diags]
    errors = sum(d.is_error for d in diags)
    warnings = len(diags) - errors
    tail = []
    if errors:
        what = "spec" if source is None else f"`{source.filename}`"
        tail.append(f"error: could not {action} {what} due to {_plural(errors, 'previous error')}"
                    + (f"; {_plural(warnings, 'warning')} emitted" if warnings else ""))
    elif warnings:
        tail.append(f"warning: {_plural(warnings, 'warning')} emitted")
    return "\n\n".join(blocks + tail) + "\n" if blocks else ""


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def to_json(d: Diagnostic, source: Source | None) -> dict:
    """A diagnostic as plain data for editors and tools."""
    labels = []
    for lab in d.labels:
        entry: dict = {"start": lab.span.start, "end": lab.span.end,
                       "message": lab.message, "primary": lab.primary}
        if source is not None:
            entry["line"], entry["col"] = source.line_col(lab.span.start)
            entry["end_line"], entry["end_col"] = source.line_col(lab.span.end)
        labels.append(entry)
    return {"severity": d.severity.value, "code": d.code, "message": d.message,
            "file": source.filename if source else None, "labels": labels,
            "help": d.help, "notes": list(d.notes)}


def render_json(diags: Iterable[Diagnostic], source: Source | None) -> str:
    return json.dumps([to_json(d, source) for d in sort_diagnostics(diags)], indent=2)
