"""`nnspec train SPEC --data FILE [--val-data FILE] [--test-data FILE]`: the same spec on
other files.

The flags rewrite the spec's text before it is checked: the file that the `data` line
names (or its `val=`/`test=` source) is replaced by the one given, as an absolute path,
and a `val=`/`test=` source the spec lacks is added, read as the training file is (its
`target=`, `features=` and `delimiter=`). So everything that checks a data line checks
these (E113 for a suffix of another format, E108 for `--val-data` with `split val=`), the
run folder's `spec.nn` names the files that were read, and a resume or `nnspec eval` of the
run reads them again. A CSV, JSON lines or Parquet source takes a file of any of the three
formats (`csv` becomes `parquet` for a `.parquet` file); a source of another kind keeps its
kind. A built-in dataset, and sources of two files (`npy`, `idx`), have no one file to
replace: the flags refuse them.
"""

from __future__ import annotations

from pathlib import Path

from nnspec import ir
from nnspec.datasets import _FORMATS, _suffixes
from nnspec.format import quote

# Sources that read one table by column names: a file of one may be read as another.
TABLES = ("csv", "jsonl", "parquet")
ONE_FILE = TABLES + ("npz",)
# What a separate validation or test source copies from the training one.
COPIED = ("target", "features", "delimiter", "x", "y")
FLAGS = {"data": "--data", "val": "--val-data", "test": "--test-data"}


class RetargetError(Exception):
    """A flag that cannot replace a file of this spec (a usage error)."""


def retarget(text: str, filename: str, files: dict[str, str]) -> tuple[str, list[str]]:
    """(the spec's text with `files` in place, a note per replacement). `files` maps
    `data`, `val` and `test` to the paths given on the command line (relative to the
    current folder). A spec that does not parse is returned as it is: the checker says why."""
    from nnspec.parse import parse_collect
    files = {k: v for k, v in files.items() if v is not None}
    if not files:
        return text, []
    spec, diags, _ = parse_collect(text, filename)
    if spec is None or any(d.is_error for d in diags):
        return text, []
    directive = spec.train.get("data") if spec.train is not None else None
    if directive is None or directive.span is None:
        flag = FLAGS[next(iter(files))]
        raise RetargetError(f"`{flag}` replaces the file of the spec's `data` line, but `{filename}` has none")
    # the training source: by position, or as `source=` or `train=` (as check.py reads it)
    main = next((c for c in (_source(spec, directive, k) for k in (None, "source", "train")) if c is not None), None)
    if main is None:
        raise RetargetError("the spec's data line names no training source that the flags can change")
    edits: list[tuple[int, int, str]] = []
    notes = []
    for key in ("data", "val", "test"):
        if key not in files:
            continue
        flag, path = FLAGS[key], str(Path(files[key]).resolve())
        call = main if key == "data" else _source(spec, directive, key)
        if call is None:  # a separate file the spec does not name: read as the training file is
            kind = _kind(main, path, flag, filename)
            copied = "".join(f", {text[a.span.start:a.span.end]}" for a in main.args
                             if a.key in COPIED and a.span is not None)
            end = directive.args[0].span.end  # type: ignore[union-attr]
            edits.append((end, end, f" {key}={kind}({quote(path)}{copied})"))
            notes.append(f"`{flag} {files[key]}` adds it as the {_ROLE[key]} file, read as the training file is")
            continue
        positional = next((a for a in call.args if a.key is None), None)
        if positional is None or not isinstance(positional.value, ir.String) or positional.value.span is None:
            raise RetargetError(_no_file(call, flag, filename))
        kind = _kind(call, path, flag, filename)
        span = positional.value.span
        edits.append((span.start, span.end, quote(path)))
        if kind != call.name and call.name_span is not None:
            edits.append((call.name_span.start, call.name_span.end, kind))
        notes.append(f"`{flag} {files[key]}` replaces `{positional.value.value}`"
                     + (f", read as `{kind}`" if kind != call.name else ""))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text, notes


_ROLE = {"data": "training", "val": "validation", "test": "test"}


def _source(spec: ir.Spec, directive: ir.Directive, key: str | None) -> ir.Call | None:
    """The call of the data line's source `key` (None: the training source), following a
    `let` that binds it."""
    arg = next((a for a in directive.args if a.key == key), None)
    if arg is None:
        return None
    value = arg.value
    if isinstance(value, ir.Ref):
        bound = next((b for b in spec.lets if b.name == value.name), None)
        value = bound.value if bound is not None else value
    if not isinstance(value, ir.Call):
        raise RetargetError("the spec's data line does not name a data source the flags can change")
    return value


def _kind(call: ir.Call, path: str, flag: str, filename: str) -> str:
    if call.name not in ONE_FILE:
        raise RetargetError(_no_file(call, flag, filename))
    fmt = _FORMATS.get(_suffixes(path)[0])
    if call.name in TABLES and fmt in TABLES:
        return fmt
    return call.name


def _no_file(call: ir.Call, flag: str, filename: str) -> str:
    what = ("a built-in dataset" if call.name == "builtin"
            else f"`{call.name}(...)`, which reads two files" if call.name in ("npy", "idx")
            else f"`{call.name}(...)`")
    return (f"`{flag}` replaces the file the spec's data line reads, but `{filename}` reads {what}: "
            f"write the data line for your file in the spec (docs/language.md, `data`)")


