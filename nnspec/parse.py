"""parse(text) -> ir.Spec: Lark LALR over grammar/nnspec.lark, then a builder that walks
the tree in source order, attaching comments and reporting structural mistakes.

Syntax errors are named by matching the parser's state against a table of *example*
bad inputs (SYNTAX_ERRORS); tests/test_parse.py runs that same table.
"""

from __future__ import annotations

import bisect
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterator, cast

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from nnspec import ir
from nnspec.diagnostics import Diagnostic, NNSpecError, error
from nnspec.source import Source, Span
from nnspec.suggest import did_you_mean

GRAMMAR_NAME = "nnspec.lark"


def grammar_text() -> str:
    """The grammar shipped in the wheel, or grammar/ beside the package in a checkout."""
    try:
        return resources.files("nnspec").joinpath(GRAMMAR_NAME).read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        path = Path(__file__).resolve().parent.parent / "grammar" / GRAMMAR_NAME
        return path.read_text(encoding="utf-8")


_OPEN = {"LPAR": "RPAR", "LSQB": "RSQB"}
_CLOSE = {"RPAR", "RSQB"}
# Values are built (and printed, compared, serialised) recursively; a fixed bound turns
# `[[[[...` a thousand deep into a diagnostic instead of a RecursionError.
MAX_NESTING = 100


class _TooDeep(Exception):
    def __init__(self, token: Token) -> None:
        super().__init__(token)
        self.token = token


class _PostLex:
    """Newline handling: one `_NL` between statements, none inside ( ) or [ ],
    one before every `}`, one at the end of the file. Remembers what is left open."""

    # RBRACE too: Lark's contextual lexer would otherwise reject the `}` of `dense 1 }`
    # before this post-lexer could put the `_NL` in front of it.
    always_accept = ("_NL", "RBRACE")

    def __init__(self) -> None:
        self.open: list[Token] = []
        self.mismatch: tuple[Token, Token] | None = None  # (`(` or `[`, the `}` that closed it)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        self.open = []
        self.mismatch = None
        last: Token | None = None
        for tok in stream:
            kind = tok.type
            if kind == "_NL":
                if any(t.type in _OPEN for t in self.open):
                    continue
                if last is None or last.type in ("_NL", "LBRACE"):
                    continue
            elif kind in _OPEN or kind == "LBRACE":
                self.open.append(tok)
                if kind in _OPEN and sum(t.type in _OPEN for t in self.open) > MAX_NESTING:
                    raise _TooDeep(tok)
            elif kind in _CLOSE or kind == "RBRACE":
                if self.open:
                    opened = self.open.pop()
                    if kind == "RBRACE" and opened.type in _OPEN and self.mismatch is None:
                        self.mismatch = (opened, tok)
                if kind == "RBRACE" and last is not None and last.type not in ("_NL", "LBRACE"):
                    # Zero-width at the `}`, so the statement's span does not take the brace in.
                    yield Token("_NL", "", start_pos=tok.start_pos, end_pos=tok.start_pos, line=tok.line,
                                column=tok.column, end_line=tok.line, end_column=tok.column)
            yield tok
            last = tok
        if last is not None and last.type != "_NL":
            yield Token("_NL", "", start_pos=last.end_pos, end_pos=last.end_pos,
                        line=last.end_line, column=last.end_column)


@lru_cache(maxsize=1)
def _lark() -> Lark:
    return Lark(grammar_text(), parser="lalr", propagate_positions=True,
                maybe_placeholders=False, postlex=_PostLex())


# code, message, help, example inputs that end in this error
SYNTAX_ERRORS: dict[tuple[str, str, str | None], list[str]] = {
    ("E006", "missing value after `=`", "write a value after `=`, as in `lr=0.01`"): [
        "optimizer adam lr=\n", "optimizer adam lr= beta1=0.9\n", "let x =\n",
        "x normal(stddev=)\n", "x f(a=,)\n", "model m {\n dense 3 init=\n}\n",
    ],
    ("E007", "stray `}` with no open block", "remove this `}`"): [
        "}\n", "loss mse\n}\n", "model m {\n}\n}\n",
    ],
    ("E008", "expected a name after `let`", "write `let NAME = VALUE`, as in `let hidden = 64`"): [
        "let = 3\n", "let 3 = 3\n", "let\n",
    ],
    ("E009", "expected `=` in `let`", "write `let NAME = VALUE`, as in `let hidden = 64`"): [
        "let x 3\n", "let x\n",
    ],
    ("E010", "blocks cannot be nested", "close the block with `}` before starting another"): [
        "model m {\n train {\n", "model m {\n a b {\n", "train {\n model {\n",
    ],
    ("E011", "expected `,` or `]` in a list", "separate list items with commas, as in `[1, 2]`"): [
        "x [1 2]\n", "x [[1] [2]]\n", "x y[1 2]\n", "x [a b]\n", "let w = [1 2]\n",
    ],
    ("E012", "expected `,` or `)` in arguments", "separate arguments with commas, as in `normal(mean=0, stddev=0.1)`"): [
        "x f(a=1 b=2)\n", "x f(1 2)\n", "data builtin(\"moons\" n=3)\n",
    ],
    ("E013", "a label must be followed by a layer", "write `NAME: LAYER ...`, as in `h1: dense 64 relu`"): [
        "h1:\n", "h1: 3\n", "model m {\n h1:\n}\n", "a: b: c\n",
    ],
    ("E023", "a constant needs `let`", "write `let NAME = VALUE`, as in `let hidden = 64`"): [
        "x = 3\n", "hidden = 64\n", "model m {\n x = 3\n}\n",
    ],
    ("E014", "a statement must start with a name", "statements look like `dense 64 relu` or `loss mse`"): [
        "3\n", "\"x\"\n", "[1]\n", "= 3\n", "model m {\n 3\n}\n", "(\n",
        "model m {\n [1]\n}\n", "model m {\n = 3\n}\n", "model m {\n a\n 3\n}\n",
        "model m {\n a\n [1]\n}\n",
    ],
}


def _syntax_error(exc: UnexpectedInput, src: Source, postlex: _PostLex) -> Diagnostic:
    pos = getattr(exc, "pos_in_stream", None) or 0
    if isinstance(exc, UnexpectedCharacters):
        ch = src.text[pos] if pos < len(src.text) else ""
        if ch == '"':
            return error("E004", "unterminated string", Span(pos, _line_end(src.text, pos)),
                         "this string has no closing `\"`", help='close the string on the same line with `"`')
        shown = repr(ch)[1:-1] if not ch.isprintable() or ch == "`" else ch
        return error("E005", f"unexpected character `{shown}`", Span(pos, pos + 1),
                     "not part of the language", help="remove it; comments start with `#`")
    assert isinstance(exc, UnexpectedToken)
    tok = exc.token
    at_end = tok.type == "$END" or tok.start_pos >= len(src.text.rstrip())
    if tok.type == "$END" or (at_end and postlex.open):
        return _unexpected_end(src, postlex)
    open_blocks = any(t.type == "LBRACE" for t in postlex.open)  # read now: matching re-parses
    unclosed = _never_closed(src, tok, postlex.open[-1] if postlex.open else None)
    if unclosed is not None:
        return unclosed
    # The `_NL` the post-lexer adds at the end of a file has no character to underline.
    span = Span(tok.start_pos, max(tok.end_pos, tok.start_pos + 1)) if tok.type != "_NL" else \
        Span(tok.start_pos, min(tok.start_pos + 1, len(src.text)))
    unterminated = _unterminated_string(src, tok)
    if unterminated is not None:
        return unterminated
    mismatch = postlex.mismatch
    if mismatch is not None and mismatch[1].start_pos == tok.start_pos:  # the `}` or the `_NL` before it
        opened = mismatch[0]
        close = ")" if opened.type == "LPAR" else "]"
        return error("E002", f"unclosed `{opened.value}`", _tok_span(opened),
                     "opened here and never closed", secondary=[(span, f"`}}` found before the `{close}`")],
                     help=f"add `{close}` where it should end")
    label = _match_example(exc)
    if label is not None:
        code, message, help_ = label
        if code == "E023":
            return _constant_without_let(src, tok, open_blocks)
        if code == "E007":
            return _stray_brace(src, span, message, help_)
        return error(code, message, span, "", help=help_)
    expected = sorted(_EXPECTED.get(t, t) for t in exc.accepts or exc.expected if t in _EXPECTED)
    help_ = f"expected {_one_of(expected)}" if expected else None
    return error("E001", f"unexpected {_describe(tok)}", span, "", help=help_)


_Label = tuple[str, str, "str | None"]


@lru_cache(maxsize=1)
def _examples() -> dict[tuple, set[_Label]]:
    """SYNTAX_ERRORS' labels by where their examples fail: the parser's state and the
    tokens it would accept there, with the unexpected token's type (and the state without).

    Lark's own `match_examples` compares the depth of the parser's stack too, so an
    example written at the top level would not name the same mistake inside a block;
    and since LALR errors before reducing, the state alone also depends on the shape
    of the previous statement. The set of acceptable tokens does not."""
    table: dict[tuple, set[_Label]] = {}
    for label, examples in SYNTAX_ERRORS.items():
        for text in examples:
            try:
                _lark().parse(text)
            except UnexpectedToken as exc:
                for key in _keys(exc):
                    table.setdefault(key, set()).add(label)
            except (UnexpectedInput, _TooDeep):  # pragma: no cover - the table is tested
                pass
    return table


def _keys(exc: UnexpectedToken) -> list[tuple]:
    state = exc.state.position if exc.state is not None else None
    accepts = frozenset(exc.accepts or exc.expected)
    kind = exc.token.type
    return [("state", state, kind), ("state", state), ("accepts", accepts, kind)]


def _match_example(exc: UnexpectedToken) -> _Label | None:
    """The label of the most specific match that names one mistake only."""
    table = _examples()
    for key in _keys(exc):
        labels = table.get(key, set())
        if len(labels) == 1:
            return next(iter(labels))
    return None


def _constant_without_let(src: Source, tok: Token, in_block: bool) -> Diagnostic:
    """E023, underlining `NAME =`; the help rewrites the line, where `let` is allowed."""
    at = _tok_span(tok)
    line_start = src.text.rfind("\n", 0, at.start) + 1
    start = line_start + len(src.text[line_start:]) - len(src.text[line_start:].lstrip(" \t"))
    if in_block:
        help_ = "constants are defined with `let` at the top level, before the block that uses them"
    else:
        help_ = f"write `let {src.text[start:_line_end(src.text, at.start)].strip()}`"
    return error("E023", "a constant needs `let`", Span(start, at.end), "", help=help_)


_STRING_OR_COMMENT = re.compile(r'"([^"\\\n]|\\.)*"?|#[^\n]*')


def _unterminated_string(src: Source, tok: Token) -> Diagnostic | None:
    """E004 when the line of an unexpected token has a string with no closing quote.

    The lexer reads `csv("a.csv, target="y")` as the string `"a.csv, target="`, then the
    name `y`, so the parser fails on `y` before the lexer reaches the lone `"`."""
    at = _tok_span(tok).start
    line_start = src.text.rfind("\n", 0, at) + 1
    line_end = _line_end(src.text, line_start)
    before: re.Match | None = None
    for m in _STRING_OR_COMMENT.finditer(src.text, line_start, line_end):
        if m.group(0).startswith("#"):
            return None
        if len(m.group(0)) == 1 or not m.group(0).endswith('"'):
            if m.start() < at:
                return None
            secondary = [(Span(before.start(), before.end()), "read as one string")] if before is not None else []
            return error("E004", "unterminated string", Span(m.start(), m.start() + 1),
                         "this `\"` has no partner on the line", secondary=secondary,
                         help='the quotes on this line do not pair up: a `"` is missing')
        if m.end() <= at and not src.text[m.end():at].strip():
            before = m
    return None


def _never_closed(src: Source, tok: Token, opened: Token | None) -> Diagnostic | None:
    """E002 for a `(` or `[` left open on an earlier line and never closed: newlines do not
    end a statement inside brackets, so the parser only fails at a later line's tokens."""
    if opened is None or opened.type not in _OPEN or opened.line == tok.line:
        return None
    close = ")" if opened.type == "LPAR" else "]"
    rest = _STRING_OR_COMMENT.sub("", src.text[tok.start_pos:])
    if rest.count(close) > rest.count(str(opened.value)):
        return None  # closed further on: some other mistake in between
    at = _tok_span(tok)
    return error("E002", f"unclosed `{opened.value}`", _tok_span(opened),
                 "opened here and never closed", secondary=[(Span(at.start, max(at.end, at.start + 1)),
                                                             f"expected `{close}` before this")],
                 help=f"add `{close}` where it should end")


def _stray_brace(src: Source, span: Span, message: str, help_: str | None) -> Diagnostic:
    """E007; if a `model` or `train` line above has no `{`, the brace is probably missing there."""
    header = None
    # greedy, with the trailing blanks stripped after: a lazy `*?` before `[ \t]*` tried
    # every split of a long run of spaces (seconds for `model m` + 40,000 spaces + `{`)
    for m in re.finditer(r"^[ \t]*((?:model|train)\b[^{}\n#]*)(#.*)?$", src.text[:span.start], re.M):
        header = m
    if header is None:
        return error("E007", message, span, "", help=help_)
    text = header.group(1).rstrip(" \t")
    start = header.start(1)
    line, _ = src.line_col(start)
    return error("E007", message, span, "", secondary=[(Span(start, start + len(text)), "this block has no `{`")],
                 help=f"add `{{` at the end of line {line}: `{text} {{`")


def _unexpected_end(src: Source, postlex: _PostLex) -> Diagnostic:
    end = len(src.text)
    if postlex.open:
        tok = postlex.open[-1]
        close = {"LBRACE": "}", "LPAR": ")", "LSQB": "]"}[tok.type]
        return error("E002", f"unclosed `{tok.value}`", _tok_span(tok),
                     "opened here and never closed", help=f"add `{close}` where it should end")
    return error("E003", "unexpected end of file", Span(end, end), "", help="the last statement is incomplete")


def _line_end(text: str, pos: int) -> int:
    nl = text.find("\n", pos)
    return len(text) if nl < 0 else nl


def _tok_span(tok: Token) -> Span:
    """A lexed token's span: lark types the positions Optional, for a Token built by hand."""
    assert tok.start_pos is not None and tok.end_pos is not None
    return Span(tok.start_pos, tok.end_pos)


_EXPECTED = {"NAME": "a name", "NUMBER": "a number", "STRING": "a string", "_NL": "a new line",
             "LBRACE": "`{`", "RBRACE": "`}`", "LSQB": "`[`", "RSQB": "`]`", "LPAR": "`(`",
             "RPAR": "`)`", "EQUAL": "`=`", "COMMA": "`,`", "COLON": "`:`", "TRUE": "`true`",
             "FALSE": "`false`"}


def _describe(tok: Token) -> str:
    if tok.type == "_NL":
        return "end of line"
    if tok.type in ("NAME", "NUMBER", "STRING"):
        return f"{_EXPECTED[tok.type].split(' ', 1)[1]} `{tok.value}`"
    return f"`{tok.value}`"


def _one_of(items: list[str]) -> str:
    items = list(dict.fromkeys(items))
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


# ------------------------------------------------------------------------------ building

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
TOP_LEVEL = ("model", "train", "loss", "optimizer", "regularize", "block")
_BLOCKS = ("model", "train", "block")
# `loss` is a statement (`loss mse`) or, for a model with several outputs, a block
_EITHER = ("loss",)


class _Comments:
    """Hands out the comments in source order: leading ones before a span, and the
    trailing one on the span's last line."""

    def __init__(self, src: Source, tokens: list[Token]) -> None:
        self.src = src
        self.items = sorted(tokens, key=lambda t: _tok_span(t).start)
        self.i = 0

    def before(self, offset: int) -> tuple[str, ...]:
        out = []
        while self.i < len(self.items) and _tok_span(self.items[self.i]).start < offset:
            out.append(self._text(self.items[self.i]))
            self.i += 1
        return tuple(out)

    def trailing(self, end: int) -> str | None:
        if self.i < len(self.items):
            tok = self.items[self.i]
            line_end = _line_end(self.src.text, end)
            start = _tok_span(tok).start
            if end <= start < line_end + 1 and "\n" not in self.src.text[end:start]:
                self.i += 1
                return self._text(tok)
        return None

    def rest(self) -> tuple[str, ...]:
        return self.before(len(self.src.text) + 1)

    @staticmethod
    def _text(tok: Token) -> str:
        return str(tok.value)[1:].rstrip()


class _Builder:
    def __init__(self, src: Source, comments: _Comments) -> None:
        self.src = src
        self.comments = comments
        self.diags: list[Diagnostic] = []
        self._comment_at_end = {t.end_pos: t.start_pos for t in comments.items}

    # spans -----------------------------------------------------------------
    def span(self, node: Tree | Token) -> Span:
        if isinstance(node, Token):
            return _tok_span(node)
        start, end = node.meta.start_pos, node.meta.end_pos
        # A statement's span runs to its `_NL`, past any same-line comment: back off both.
        while True:
            while end > start and self.src.text[end - 1] in " \t\r\n":
                end -= 1
            comment_start = self._comment_at_end.get(end)
            if comment_start is None or comment_start < start:
                return Span(start, end)
            end = comment_start

    # values ----------------------------------------------------------------
    def value(self, t: Tree) -> ir.Value:
        kind = t.data
        sp = self.span(t)
        if kind == "number":
            text = str(t.children[0])
            if not _NUMBER.fullmatch(text):
                self.diags.append(error("E015", f"invalid number `{text}`", sp, "not a number",
                                        help="numbers look like `3`, `-2`, `0.5` or `1e-3`"))
                return ir.Number(0, text, sp)
            is_int = not any(c in text for c in ".eE")
            try:
                return ir.Number(int(text) if is_int else float(text), text, sp)
            except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits)
                self.diags.append(error("E015", "number has too many digits", sp, f"{len(text)} characters long",
                                        help="write a large number with an exponent, as in `1e30`"))
                return ir.Number(0, text, sp)
        if kind == "string":
            return ir.String(_unescape(str(t.children[0])), sp)
        if kind in ("true", "false"):
            return ir.Bool(kind == "true", sp)
        if kind == "ref":
            return ir.Ref(str(t.children[0]), sp)
        if kind == "shaped":
            name, *dims = t.children
            return ir.Shaped(str(name), tuple(self.value(d) for d in dims), sp)
        if kind == "list":
            return ir.List(tuple(self.value(v) for v in t.children), sp)
        if kind == "call":
            name, *args = t.children
            return ir.Call(str(name), self.args(args), sp, self.span(name))
        raise AssertionError(f"unhandled value {kind}")  # pragma: no cover

    def args(self, children: list) -> tuple[ir.Arg, ...]:
        out = []
        for c in children:
            if isinstance(c, Tree) and c.data == "keyword":
                key, val = c.children
                out.append(ir.Arg(str(key), self.value(val), self.span(c), self.span(key)))
            else:
                v = self.value(c)
                out.append(ir.Arg(None, v, v.span))
        return tuple(out)

    # statements ------------------------------------------------------------
    def statement(self, t: Tree) -> tuple[Token | None, Token, tuple[ir.Arg, ...], Span]:
        children = list(t.children)
        label = None
        if isinstance(children[0], Tree) and children[0].data == "label":
            label = cast(Token, children.pop(0).children[0])
        head = cast(Token, children.pop(0))  # the grammar: a statement starts with a NAME
        return label, head, self.args(children), self.span(t)

    def directive(self, t: Tree) -> ir.Directive:
        label, head, args, sp = self.statement(t)
        if label is not None:
            self.diags.append(error("E016", f"only layers can be named, not `{head}`", self.span(label),
                                    "remove this label", help=f"write `{head} ...` without `{label}:`"))
        return ir.Directive(str(head), args, sp, self.span(head), self.comments.before(sp.end),
                            self.comments.trailing(sp.end))

    def build(self, tree: Tree) -> ir.Spec:
        lets: list[ir.Let] = []
        blocks: list[ir.Block] = []
        sections: dict[str, object] = {}
        first_span: dict[str, Span] = {}
        for item in tree.children:
            sp = self.span(item)
            if item.data == "let":
                name, val = item.children
                lead = self.comments.before(sp.end)
                lets.append(ir.Let(str(name), self.value(val), sp, self.span(name), lead,
                                   self.comments.trailing(sp.end)))
                continue
            if item.data == "block" and str(item.children[0]) == BLOCK:
                definition = self.definition(item)
                if definition is not None:
                    blocks.append(definition)
                continue
            if item.data == "block":
                keyword_tok = item.children[0]
                node: object = self.block(item)
            else:
                keyword_tok = item.children[1 if isinstance(item.children[0], Tree) else 0]
                keyword = str(keyword_tok)
                if keyword in _BLOCKS:
                    header = self.src.text[sp.start:sp.end] if keyword != "train" else keyword
                    if keyword == BLOCK:
                        if not re.fullmatch(r"block[ \t]+[A-Za-z_][A-Za-z0-9_]*(\([^\n{}]*\))?", header):
                            header = "block NAME(PARAMETERS)"
                    elif not re.fullmatch(r"model([ \t]+[A-Za-z_][A-Za-z0-9_]*)?", header):
                        header = keyword
                    needs = "its layers in `{ }`" if keyword == BLOCK else "a block"
                    self.diags.append(error(
                        "E017", f"`{keyword}` needs {needs}", self.span(keyword_tok), "",
                        help=f"write `{header} {{` on this line and close it with `}}`"))
                    self.comments.before(sp.end)
                    continue
                node = self.directive(item)
            keyword = str(keyword_tok)
            if keyword not in TOP_LEVEL:
                self.diags.append(error(
                    "E018", f"unknown section `{keyword}`", self.span(keyword_tok), "not a section",
                    help=did_you_mean(keyword, TOP_LEVEL + ("let",),
                                      fallback="a spec has `model { }`, `loss`, `optimizer`, `regularize`, `train { }` and `let` statements")))
                continue
            if keyword in _BLOCKS and item.data != "block":
                continue
            if keyword not in _BLOCKS + _EITHER and item.data == "block":
                self.diags.append(error("E019", f"`{keyword}` is a statement, not a block",
                                        self.span(keyword_tok), "",
                                        help=f"write it on one line, as in `{_EXAMPLE[keyword]}`"))
                continue
            if keyword in sections:
                self.diags.append(error("E020", f"duplicate `{keyword}` section", self.span(keyword_tok),
                                        "given again here", secondary=[(first_span[keyword], "first given here")],
                                        help="a spec has one of each section; remove one"))
                continue
            sections[keyword] = node
            first_span[keyword] = self.span(keyword_tok)
        loss = sections.get("loss")
        losses = loss if isinstance(loss, ir.Losses) else None
        return ir.Spec(tuple(lets), sections.get("model"), None if losses else loss,  # type: ignore[arg-type]
                       sections.get("optimizer"), sections.get("regularize"),  # type: ignore[arg-type]
                       sections.get("train"), ir.VERSION, self.comments.rest(),  # type: ignore[arg-type]
                       Span(0, len(self.src.text)), tuple(blocks), losses)

    def block(self, t: Tree) -> ir.Model | ir.Train | None:
        keyword, *rest = t.children
        if rest and isinstance(rest[0], Tree) and rest[0].data == "signature":
            sig = rest.pop(0)
            self.diags.append(error("E262", f"only a `{BLOCK}` takes parameters, not `{keyword}`", self.span(sig), "",
                                    help=f"write `{keyword} {sig.children[0]} {{`, or define "
                                         f"`{BLOCK} {sig.children[0]}(...) {{` and use it in the model"))
            rest.insert(0, sig.children[0])
        name = cast(Token, rest.pop(0)) if rest and isinstance(rest[0], Token) else None
        sp = self.span(t)
        lead = self.comments.before(sp.start)
        assert isinstance(keyword, Token)  # the grammar: a block starts with its keyword
        header_end = self.src.text.find("{", keyword.end_pos) + 1
        trailing = self.comments.trailing(header_end)
        if str(keyword) == "train":
            if name is not None:
                self.diags.append(error("E021", "a `train` block has no name", self.span(name), "",
                                        help="write `train {`"))
            stmts = tuple(self.directive(s) for s in rest)
            return ir.Train(stmts, sp, lead, trailing, self.comments.before(sp.end))
        if str(keyword) == "model":
            return self.model(name, rest, sp, lead, trailing)
        if str(keyword) == "loss":
            if name is not None:
                self.diags.append(error("E021", "a `loss` block has no name", self.span(name), "",
                                        help="write `loss {`, then one line per output: `NAME: LOSS ...`"))
            heads = []
            for s in rest:
                label, head, args, ssp = self.statement(s)
                comments, trail = self.comments.before(ssp.end), self.comments.trailing(ssp.end)
                heads.append(ir.Node(str(label) if label is not None else "", str(head), (), args,
                                     label is not None, ssp, self.span(head), comments, trail))
            return ir.Losses(tuple(heads), sp, self.span(keyword), lead, trailing,  # type: ignore[return-value]
                             self.comments.before(sp.end))
        self.comments.before(sp.end)
        return None

    def definition(self, t: Tree) -> ir.Block | None:
        """`block NAME(PARAMS) { LAYERS }`: what it reads is `input` (BLOCK_INPUT)."""
        keyword, *rest = t.children
        sp = self.span(t)
        lead = self.comments.before(sp.start)
        assert isinstance(keyword, Token)  # the grammar: `block` first
        header_end = self.src.text.find("{", keyword.end_pos) + 1
        trailing = self.comments.trailing(header_end)
        params: tuple[ir.Arg, ...] = ()
        if rest and isinstance(rest[0], Tree) and rest[0].data == "signature":
            name, *args = rest.pop(0).children
            params = self.args(args)
        elif rest and isinstance(rest[0], Token):
            name = rest.pop(0)
        else:
            self.diags.append(error("E262", f"a `{BLOCK}` needs a name", self.span(keyword), "",
                                    help=f"write `{BLOCK} NAME(PARAMETERS) {{`, as in `{BLOCK} res_unit(filters) {{`"))
            self.comments.before(sp.end)
            return None
        inputs, nodes = self.layers(rest, BLOCK_INPUT)
        for inp in inputs:
            self.diags.append(error("E262", f"a `{BLOCK}` has no `input`", inp.span, "",
                                    help=f"a block reads the node its use reads, by the name `{BLOCK_INPUT}`: "
                                         "remove this line"))
        return ir.Block(str(name), params, tuple(nodes), sp, self.span(name), lead, trailing,
                        self.comments.before(sp.end))

    def model(self, name: Token | None, stmts: list[Tree], sp: Span, lead, trailing) -> ir.Model:
        inputs, nodes = self.layers(stmts, None)
        return ir.Model(str(name) if name is not None else None, tuple(inputs), tuple(nodes), sp,
                        lead, trailing, self.comments.before(sp.end))

    def layers(self, stmts: list[Tree], previous: str | None) -> tuple[list[ir.Input], list[ir.Node]]:
        """A model's (or a block's) inputs and layers; `previous` is what the first reads."""
        in_block = previous == BLOCK_INPUT
        inputs: list[ir.Input] = []
        nodes: list[ir.Node] = []
        counts: dict[str, int] = {}
        # Automatic names (`dense_1`) skip every name written in the block, so a label
        # further down can never be taken by an unlabelled layer.
        written = {_written_name(s) for s in stmts} - {None}
        for s in stmts:
            label, head, args, ssp = self.statement(s)
            comments = self.comments.before(ssp.end)
            trail = self.comments.trailing(ssp.end)
            op = str(head)
            if op == "input":
                shaped = args[0].value if args and args[0].key is None else None
                if not isinstance(shaped, ir.Shaped) or label is not None:
                    self.diags.append(error("E022", "malformed `input`", ssp, "",
                                            help="write `input NAME[SHAPE]`, as in `input x[2]` or `input image[8, 8]`"))
                    continue
                # what follows the shape (`int vocab=1000`) is the input's type, for the checker
                inputs.append(ir.Input(shaped.name, shaped.dims, ssp, comments, trail, args[1:]))
                if not in_block:  # in a block, an error (reported) that changes nothing else
                    previous = shaped.name
                continue
            node_name = str(label) if label is not None else ""
            while not node_name or (label is None and node_name in written):
                counts[op] = counts.get(op, 0) + 1
                node_name = f"{op}_{counts[op]}"
            ins, in_spans, args = self.edges(op, args, previous)
            nodes.append(ir.Node(node_name, op, ins, args, label is not None, ssp, self.span(head),
                                 comments, trail, in_spans))
            previous = node_name
        return inputs, nodes


    def edges(self, op: str, args: tuple[ir.Arg, ...], previous: str | None
              ) -> tuple[tuple[str, ...], tuple[Span, ...], tuple[ir.Arg, ...]]:
        """What a layer line reads, its names' spans and the arguments left: a merge's
        positional names (`add h1 h2`), the name after `from` (`dense 8 from h1`), or
        else the line above (also after a malformed `from`, reported here)."""
        if is_merge(op):
            names = [a for a in args if a.key is None and isinstance(a.value, ir.Ref)]
            for a in names:
                if a.value.name == FROM:  # type: ignore[union-attr]
                    self.diags.append(error("E253", f"`{op}` names its inputs; it does not take `{FROM}`", a.span,
                                            "", help=f"list every input after `{op}`, as in `{op} h1 h2`"))
            names = [a for a in names if a.value.name != FROM]  # type: ignore[union-attr]
            rest = tuple(a for a in args if not any(a is n for n in names) and not _is_from(a))
            return (tuple(a.value.name for a in names), tuple(a.span for a in names), rest)  # type: ignore[union-attr,misc]
        at = [i for i, a in enumerate(args) if _is_from(a)]
        if not at:
            return ((previous,) if previous is not None else (), (), args)
        i = at[0]
        target = args[i + 1] if i + 1 < len(args) else None
        if len(at) > 1 or target is None or target.key is not None or not isinstance(target.value, ir.Ref):
            where = args[at[1]].span if len(at) > 1 else args[i].span
            message = (f"`{FROM}` given twice" if len(at) > 1 else f"expected a name after `{FROM}`")
            self.diags.append(error("E253", message, where, "",
                                    help=f"a layer reads one node: write `{FROM} NAME` once, as in `{op} ... {FROM} h1`; "
                                         "to combine nodes, use a merge such as `add h1 h2`"))
            return ((previous,) if previous is not None else (), (), tuple(a for a in args if not _is_from(a)))
        rest = args[:i] + args[i + 2:]
        return ((target.value.name,), (target.span,), rest)  # type: ignore[return-value]


# `dense 8 from h1`: the word that names the node a layer reads
FROM = "from"
# `block res_unit(filters) { ... }` defines a block; inside it, `input` names what a use reads
BLOCK = "block"
BLOCK_INPUT = "input"


def _is_from(a: ir.Arg) -> bool:
    return a.key is None and isinstance(a.value, ir.Ref) and a.value.name == FROM


def is_merge(op: str) -> bool:
    """Whether `op` is a merge, which names its inputs by position (`add h1 h2`)."""
    from nnspec.layers import LAYERS  # the rule side: pure Python, no JAX
    entry = LAYERS.get(op)
    return bool(entry is not None and entry.attrs.get("merge"))


_EXAMPLE = {"loss": "loss mse", "optimizer": "optimizer adam lr=1e-3", "regularize": "regularize l2=1e-4"}


def _written_name(stmt: Tree) -> str | None:
    """The name a model statement writes out: its label, or an input's name."""
    first = stmt.children[0]
    if isinstance(first, Tree) and first.data == "label":
        return str(first.children[0])
    if str(first) == "input" and len(stmt.children) > 1:
        value = stmt.children[1]
        if isinstance(value, Tree) and value.data == "shaped":
            return str(value.children[0])
    return None


def _unescape(literal: str) -> str:
    body = literal[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


def parse_collect(text: str, filename: str = "<string>") -> tuple[ir.Spec | None, list[Diagnostic], Source]:
    """Parse, returning the IR (None after a syntax error) and every diagnostic found."""
    src = Source(text, filename)
    lark = _lark()
    postlex = cast(_PostLex, lark.options.postlex)  # the one _lark() built
    try:
        tree = lark.parse(text)
    except UnexpectedInput as exc:
        return None, [_syntax_error(exc, src, postlex)], src
    except _TooDeep as exc:
        tok = exc.token
        return None, [error("E025", "brackets nested too deeply", _tok_span(tok),
                            f"more than {MAX_NESTING} levels deep",
                            help=f"nest lists and calls at most {MAX_NESTING} levels deep")], src
    # Comments come from a lexer pass of their own: Lark drops %ignore'd tokens.
    comment_tokens = [Token("COMMENT", m.group(0), start_pos=m.start(), end_pos=m.end())
                      for m in _comment_matches(text, tree)]
    builder = _Builder(src, _Comments(src, comment_tokens))
    spec = builder.build(tree)
    return spec, builder.diags, src


def _comment_matches(text: str, tree: Tree) -> Iterator[re.Match]:
    """`#` comments, skipping any `#` inside a string literal."""
    strings = sorted((t.start_pos, t.end_pos) for t in tree.scan_values(lambda v: isinstance(v, Token) and v.type == "STRING"))
    starts = [a for a, _ in strings]
    pos = 0
    while (m := _COMMENT.search(text, pos)) is not None:
        # the string that starts last before the `#` is the only one that can hold it
        i = bisect.bisect_right(starts, m.start()) - 1
        inside = strings[i][1] if i >= 0 and m.start() < strings[i][1] else None
        if inside is None:
            yield m
        # A `#` in a string is no comment, but a real one may follow on its line.
        pos = m.end() if inside is None else inside


_COMMENT = re.compile(r"#[^\n]*")


def parse(text: str, filename: str = "<string>") -> ir.Spec:
    """Parse nnspec source text into IR; raises NNSpecError with every diagnostic."""
    spec, diags, src = parse_collect(text, filename)
    if spec is None or any(d.is_error for d in diags):
        raise NNSpecError(diags, src)
    return spec
