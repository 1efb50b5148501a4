"""The `nnspec` command: check, compile, fmt, explain.

Exit codes: 0 clean (warnings allowed), 1 errors in a spec, 2 usage errors (bad flags,
missing or unreadable files). No traceback reaches the user: an unexpected exception
is reported as an internal error, with the traceback and a request to report it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Sequence

from nnspec import ir
from nnspec.diagnostics import Diagnostic, error, render_all, render_json
from nnspec.source import Source, Span

EXIT_OK, EXIT_SPEC, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 101


class UsageError(Exception):
    """A problem with the command line or the files it names (exit 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"error: {message}\n  (see `{self.prog} --help`)\n")


def _color(stream) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ


def read_text(path: str) -> tuple[str | None, list[Diagnostic], Source | None]:
    """A spec file's text; undecodable bytes become a located diagnostic; unreadable files a UsageError."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"cannot read `{path}`: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"cannot read `{path}`: it is a directory") from None
    except PermissionError:
        raise UsageError(f"cannot read `{path}`: permission denied") from None
    except OSError as exc:
        raise UsageError(f"cannot read `{path}`: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8"), [], None
    except UnicodeDecodeError as exc:
        good = data[:exc.start].decode("utf-8")
        src = Source(data.decode("utf-8", errors="replace"), path)
        d = error("E024", f"this file is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})",
                  Span(len(good), len(good) + 1), "cannot be decoded",
                  help="save the file as UTF-8 text")
        return None, [d], src


def load(path: str, *, memory_budget: int | None = None):
    """(Program or None, diagnostics, Source or None) for a `.nn` file or an IR `.json` file."""
    from nnspec.check import check, check_source
    from nnspec.diagnostics import NNSpecError
    text, diags, src = read_text(path)
    if text is None:
        return None, diags, src
    if path.endswith(".json"):
        try:
            spec = ir.from_json(text)
        except ir.IRFormatError as exc:
            raise UsageError(f"`{path}` is not nnspec IR: {exc}") from None
        try:
            program = check(spec, memory_budget=memory_budget)
        except NNSpecError as exc:
            return None, list(exc.diagnostics), None
        return program, list(program.warnings), None
    return check_source(text, path, memory_budget=memory_budget)


def _report(diags: list[Diagnostic], src: Source | None, fmt: str, *, stream=None) -> None:
    stream = stream or sys.stderr
    if fmt == "json":
        return
    text = render_all(diags, src, color=_color(stream))
    if text:
        stream.write(text)


def cmd_check(args: argparse.Namespace) -> int:
    status = EXIT_OK
    everything = []
    for path in args.files:
        program, diags, src = load(path)
        if any(d.is_error for d in diags):
            status = EXIT_SPEC
        if args.format == "json":
            everything.extend(json.loads(render_json(diags, src)))
        else:
            _report(diags, src, args.format)
            if program is not None and not args.quiet:
                print(f"ok: `{path}` ({program.model.n_params:,} parameters)")
    if args.format == "json":
        print(json.dumps(everything, indent=2))
    return status


def cmd_compile(args: argparse.Namespace) -> int:
    program, diags, src = load(args.file)
    if args.format == "json" and diags:
        print(render_json(diags, src), file=sys.stderr)
    else:
        _report(diags, src, args.format)
    if program is None:
        return EXIT_SPEC
    if args.emit == "ir":
        print(ir.to_json(program.spec))
    elif args.emit == "summary":
        from nnspec.summary import summary
        sys.stdout.write(summary(program))
    return EXIT_OK


def cmd_fmt(args: argparse.Namespace) -> int:
    from nnspec.format import format_source
    from nnspec.parse import parse_collect
    status = EXIT_OK
    for path in args.files:
        text, diags, src = read_text(path)
        if text is None:
            _report(diags, src, "human")
            status = EXIT_SPEC
            continue
        spec, diags, src = parse_collect(text, path)
        if spec is None or any(d.is_error for d in diags):
            _report(diags, src, "human")
            status = EXIT_SPEC
            continue
        formatted = format_source(text, path)
        if formatted == text:
            continue
        if args.check:
            print(f"would reformat `{path}`")
            status = max(status, EXIT_SPEC)
        else:
            write_atomic(Path(path), formatted)
            print(f"formatted `{path}`")
    return status


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename: never half-written."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        mode = 0o644
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise UsageError(f"cannot write `{path}`: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def cmd_explain(args: argparse.Namespace) -> int:
    from nnspec.codes import CODES, explain
    text = explain(args.code)
    if text is None:
        from nnspec.suggest import did_you_mean
        hint = did_you_mean(args.code.upper(), CODES)
        raise UsageError(f"no diagnostic code `{args.code}`" + (f"; {hint}" if hint else ""))
    sys.stdout.write(text)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nnspec", description="A declarative model-spec compiler for neural networks.")
    parser.add_argument("--version", action="version", version=f"nnspec {__import__('nnspec').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("check", help="check specs and report every problem")
    p.add_argument("files", nargs="+", metavar="FILE", help="`.nn` spec files (or IR `.json`)")
    p.add_argument("--format", choices=("human", "json"), default="human", help="diagnostics as text or JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing for clean files")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("compile", help="check a spec and print what it compiles to")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--emit", choices=("ir", "summary"), default="summary",
                   help="`ir`: the IR as JSON; `summary`: a table of layers and parameters")
    p.add_argument("--format", choices=("human", "json"), default="human", help="diagnostics as text or JSON")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("fmt", help="rewrite specs in canonical form")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is not formatted")
    p.set_defaults(func=cmd_fmt)

    p = sub.add_parser("explain", help="explain a diagnostic code, as in `nnspec explain E101`")
    p.add_argument("code", metavar="CODE")
    p.set_defaults(func=cmd_explain)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception:  # the last line of defence: no bare traceback for users
        print("error: internal compiler error: this is a bug in nnspec, not in your spec\n"
              "  please report it with the spec and the text below\n", file=sys.stderr)
        traceback.print_exc()
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
