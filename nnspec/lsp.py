"""`nnspec lsp`: a language server for `.nn` files over stdio (pygls, the optional `lsp` extra).

What an editor gets, all from the compiler's own pieces so nothing can drift from `nnspec`:
- diagnostics as you type: `check_source`, the checker `nnspec check` runs, on every
  open and change; spans become LSP ranges in the client's position encoding (UTF-16
  code units unless it negotiates another); secondary labels become related information;
- completion of statement heads, layer, activation, initializer, loss, optimizer,
  schedule, metric and train-setting names, and `key=` arguments, from the registries;
- hover: a name's registry row (its description and arguments), and for a position under a
  diagnostic the text of `nnspec explain CODE`;
- formatting with `nnspec fmt` (a file that does not parse gets no edits);
- go to definition of a `let` constant, a named node or input, a block and its parameters.

The analysis is plain functions of (text, offset) that return lsprotocol types; `serve`
wires them to pygls. Context comes from a small scanner of the text before the cursor, so
completion works on a file that does not parse yet.
"""

from __future__ import annotations

import bisect
import logging
import os
import re
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from lsprotocol import types as lsp

from nnspec import ir
from nnspec.blocks import REPEAT, _REPEAT
from nnspec.check import INPUT, REGULARIZE, SYMBOLS, TRAIN, check_source
from nnspec.codes import CODES, explain
from nnspec.datasets import DATASETS, SOURCES
from nnspec.diagnostics import Diagnostic, Severity
from nnspec.layers import ACTIVATIONS, INITIALIZERS, LAYERS
from nnspec.losses import LOSSES, METRICS
from nnspec.optim import OPTIMIZERS, SCHEDULES
from nnspec.params import Bool, Choice, Entry, ListOf, Param, Registry, Symbol, Union
from nnspec.parse import BLOCK, BLOCK_INPUT, FROM, TOP_LEVEL

log = logging.getLogger("nnspec.lsp")

SOURCE = "nnspec"  # the `source` of every diagnostic, as editors show it

# What each top-level word is, for hover and completion (the sections of docs/language.md).
SECTIONS: dict[str, str] = {
    "let": "a constant: `let NAME = VALUE`, usable wherever a value may stand",
    "block": "a reusable group of layers: `block NAME(PARAMS) { LAYERS }`, used in a model like a layer",
    "model": "the network: `model NAME { input x[N] ... layers ... }`",
    "loss": "what training minimizes: `loss NAME ...`",
    "optimizer": "how the weights are updated: `optimizer NAME lr=...`",
    "regularize": "weight penalties for the whole model: `regularize l2=...`",
    "train": "where the examples come from and how to train: `train { data ... batch ... epochs ... }`",
}
assert set(TOP_LEVEL) | {"let"} == set(SECTIONS), "a new section needs a line here"

# Registries searched when the context does not say which one a name is from.
REGISTRIES: tuple[Registry, ...] = (LAYERS, LOSSES, OPTIMIZERS, ACTIVATIONS, INITIALIZERS, SCHEDULES,
                                    METRICS, TRAIN, SOURCES, DATASETS)

_CALLABLE = (SCHEDULES, INITIALIZERS, ACTIVATIONS, SOURCES)  # may be written `name(...)`
_CODE = re.compile(r"[EW]\d{3}")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# ------------------------------------------------------------------------ positions

class Lines:
    """Character offsets (nnspec's `Span`) to LSP positions and back.

    LSP counts lines split at `\\n`, `\\r\\n` or `\\r`, and characters in the negotiated
    encoding's code units: UTF-16 by default, where a character beyond U+FFFF counts 2."""

    def __init__(self, text: str, encoding: str = "utf-16") -> None:
        self.text = text
        self.encoding = str(encoding)
        self.starts = [0] + [m.end() for m in re.finditer(r"\r\n|\r|\n", text)]

    def _units(self, chars: str) -> int:
        if self.encoding == "utf-8":
            return len(chars.encode("utf-8", errors="surrogatepass"))
        if self.encoding == "utf-32":
            return len(chars)
        return len(chars) + sum(1 for ch in chars if ord(ch) > 0xFFFF)

    def _line_end(self, line: int) -> int:
        """The offset where `line`'s text ends, before its line break."""
        if line + 1 < len(self.starts):
            end = self.starts[line + 1] - 1
            if self.text[end] == "\n" and end > self.starts[line] and self.text[end - 1] == "\r":
                end -= 1
            return end
        return len(self.text)

    def position(self, offset: int) -> lsp.Position:
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self.starts, offset) - 1
        offset = min(offset, self._line_end(line))  # inside a `\r\n`: the end of the line
        return lsp.Position(line, self._units(self.text[self.starts[line]:offset]))

    def offset(self, position: lsp.Position) -> int:
        if position.line >= len(self.starts):
            return len(self.text)
        i, end = self.starts[position.line], self._line_end(position.line)
        units = 0
        while i < end:
            units += self._units(self.text[i])
            if units > position.character:
                break
            i += 1
        return i

    def range(self, start: int, end: int) -> lsp.Range:
        return lsp.Range(self.position(start), self.position(max(start, end)))

    def whole(self) -> lsp.Range:
        return self.range(0, len(self.text))


# ---------------------------------------------------------------------- diagnostics

def diagnostics(text: str, uri: str, encoding: str = "utf-16") -> list[lsp.Diagnostic]:
    """What `nnspec check` reports for `text`, as LSP diagnostics."""
    lines = Lines(text, encoding)
    try:
        _, diags, _ = check_source(text, _filename(uri))
    except Exception:  # the server must outlive a checker bug; the user sees it, located at line 1
        log.error("internal error checking %s\n%s", uri, traceback.format_exc())
        return [lsp.Diagnostic(lines.range(0, 0), "internal compiler error: this is a bug in nnspec, "
                               "not in your spec; run `nnspec check` on the file and report its output",
                               severity=lsp.DiagnosticSeverity.Error, source=SOURCE)]
    return [to_lsp(d, lines, uri) for d in diags]


def to_lsp(d: Diagnostic, lines: Lines, uri: str) -> lsp.Diagnostic:
    """One nnspec diagnostic: range at its primary label, the label, notes and help in the
    message (as the terminal shows them), secondary labels as related information."""
    span = d.primary_span
    primary = next((lab for lab in d.labels if lab.span == span), None)
    text = [d.message]
    if primary is not None and primary.message:
        text.append(primary.message)
    text += [f"note: {n}" for n in d.notes]
    if d.help:
        text.append(f"help: {d.help}")
    related = [lsp.DiagnosticRelatedInformation(lsp.Location(uri, lines.range(lab.span.start, lab.span.end)),
                                                lab.message or "related")
               for lab in d.labels if lab is not primary]
    return lsp.Diagnostic(
        range=lines.range(span.start, span.end) if span is not None else lines.range(0, 0),
        message="\n".join(text),
        severity=lsp.DiagnosticSeverity.Error if d.severity is Severity.ERROR else lsp.DiagnosticSeverity.Warning,
        code=d.code,
        source=SOURCE,
        related_information=related or None,
        tags=[lsp.DiagnosticTag.Unnecessary] if d.code == "W007" else None,  # an unused node
    )


def _filename(uri: str) -> str:
    """What diagnostics call the file: its path for a `file:` URI."""
    if uri.startswith("file://"):
        from urllib.parse import unquote, urlparse
        return unquote(urlparse(uri).path) or uri
    return uri


# -------------------------------------------------------------------------- context

_TOKEN = re.compile(r"""(?P<comment>\#[^\n]*)
                      | (?P<string>"(?:[^"\\\n]|\\.)*(?P<close>")?)
                      | (?P<nl>\r\n|\r|\n)
                      | (?P<number>[+-]?\.?[0-9](?:[eE][+-]|[0-9A-Za-z_.])*)
                      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
                      | (?P<ws>[ \t\f]+)
                      | (?P<other>.)""", re.X)


@dataclass
class Token:
    kind: str
    text: str
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.text)


@dataclass
class Context:
    """Where an offset stands: the blocks around it (`model`, `train`, `block`), the tokens
    of its statement before it, the calls and lists open around it, and the word it ends."""
    blocks: list[str] = field(default_factory=list)
    words: list[Token] = field(default_factory=list)
    calls: list[str | None] = field(default_factory=list)  # the name before each open `(`; None for `[`
    inside: str | None = None  # "comment" or "string"
    partial: str = ""

    @property
    def block(self) -> str | None:
        return self.blocks[-1] if self.blocks else None

    @property
    def statement(self) -> list[Token]:
        """The statement's tokens without a `label:` and without what open calls hold."""
        words = self.words
        if len(words) >= 2 and words[0].kind == "name" and words[1].text == ":":
            words = words[2:]
        out, depth = [], 0
        for t in words:
            if t.text in "([" and t.kind == "other":
                if depth == 0 and t.text == "[":
                    out.append(Token("list", "[", t.start))  # a list is one argument
                depth += 1
            elif t.text in ")]" and t.kind == "other":
                depth -= 1
            elif depth == 0:
                out.append(t)
        return out


def context(text: str, offset: int) -> Context:
    """Scan `text` up to `offset`."""
    ctx = Context()
    depth: list[str | None] = []
    pending: list[str] = []  # the opener keyword of each `{`
    for m in _TOKEN.finditer(text, 0, offset):
        kind = m.lastgroup or "other"
        tok = Token(kind, m.group(), m.start())
        if m.end() == offset and (kind == "comment" or (kind == "string" and m.group("close") is None)):
            ctx.inside = kind
        if kind == "ws" or kind == "comment":
            continue
        if kind == "nl":
            if not depth:
                ctx.words = []
            continue
        if kind == "other" and tok.text in "([":
            prev = ctx.words[-1] if ctx.words else None
            depth.append(prev.text if tok.text == "(" and prev is not None and prev.kind == "name"
                         and prev.end == tok.start else None)
        elif kind == "other" and tok.text in ")]":
            if depth:
                depth.pop()
        elif kind == "other" and tok.text == "{" and not depth:
            head = ctx.words[0].text if ctx.words else ""
            pending.append(head)
            ctx.words = []
            continue
        elif kind == "other" and tok.text == "}" and not depth:
            if pending:
                pending.pop()
            ctx.words = []
            continue
        ctx.words.append(tok)
    ctx.blocks = pending
    ctx.calls = depth
    if ctx.words and ctx.words[-1].kind == "name" and ctx.words[-1].end == offset and ctx.inside is None:
        ctx.partial = ctx.words.pop().text
    return ctx


def word_at(text: str, offset: int) -> tuple[str, int, int] | None:
    """The identifier at or just before `offset`, with its span."""
    for m in _WORD.finditer(text, max(0, text.rfind("\n", 0, offset) + 1)):
        if m.start() <= offset <= m.end():
            return m.group(), m.start(), m.end()
        if m.start() > offset:
            break
    return None


# ------------------------------------------------------------------------ the registries

def head_entry(head: str, block: str | None, blocks: Sequence[str] = ()) -> tuple[str, Entry | None]:
    """The registry row of a statement that starts with `head` in `block`: (kind, row)."""
    if block in ("model", BLOCK):
        if head == "input" and block == "model":
            return "model input", INPUT
        if head in blocks:
            return "block", None
        return "layer", LAYERS.get(head)
    if block == "train":
        return "train setting", TRAIN.get(head)
    if head == "regularize":
        return "section", REGULARIZE
    return "section", None


def statement_entry(stmt: Sequence[Token], block: str | None, blocks: Sequence[str] = ()) -> tuple[str, Entry | None]:
    """The row whose arguments a statement writes: its head's, or for `loss NAME` and
    `optimizer NAME` the loss's or optimizer's."""
    head = stmt[0].text
    if block is None and head in ("loss", "optimizer") and len(stmt) >= 2 and stmt[1].kind == "name":
        registry = LOSSES if head == "loss" else OPTIMIZERS
        return registry.kind, registry.get(stmt[1].text)
    return head_entry(head, block, blocks)


def values_of(ptype: Any) -> list[tuple[str, Entry | None, str]]:
    """The words a parameter of type `ptype` accepts: (word, row or None, kind)."""
    if isinstance(ptype, Symbol):
        reg = SYMBOLS.get(ptype.kind)
        return [(n, reg.get(n), reg.kind) for n in reg.names()] if reg else []
    if isinstance(ptype, Choice):
        return [(o, None, "choice") for o in ptype.options]
    if isinstance(ptype, Bool):
        return [("true", None, "value"), ("false", None, "value")]
    if isinstance(ptype, Union):
        return [v for o in ptype.options for v in values_of(o)]
    if isinstance(ptype, ListOf):
        return values_of(ptype.item)
    return []


def describe(entry: Entry, kind: str) -> str:
    """A registry row as Markdown: name, kind, description, aliases, arguments."""
    out = [f"**{entry.name}** ({kind})", "", entry.doc]
    if entry.aliases:
        out += ["", "also written " + ", ".join(f"`{a}`" for a in entry.aliases)]
    params = list(entry.params) + ([entry.variadic] if entry.variadic else [])
    if params:
        out += ["", "| argument | given | default | accepts | meaning |", "| --- | --- | --- | --- | --- |"]
        for p in params:
            cells = [f"`{p.name}`", _given(entry, p), _default(p), p.type.describe(), p.doc]
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(out).strip()


def describe_param(p: Param, entry: Entry) -> str:
    default = "required" if p.required else f"default {_default(p)}"
    return (f"**{p.name}** (argument of `{entry.name}`, {_given(entry, p)}, {default})\n\n"
            f"{p.doc}\n\naccepts {p.type.describe()}")


def _given(entry: Entry, p: Param) -> str:
    if entry.variadic is p:
        return "any number"
    if p.positional:
        return f"{_ordinal(entry.positionals.index(p) + 1)} or by name"
    return "by name"


def _default(p: Param) -> str:
    if p.required:
        return "required"
    if p.default is None:
        return "none"
    if isinstance(p.default, bool):
        return f"`{'true' if p.default else 'false'}`"
    return f"`{p.default}`"


def _ordinal(n: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")


# ----------------------------------------------------------------------- completion

_KIND = {
    "layer": lsp.CompletionItemKind.Class, "block": lsp.CompletionItemKind.Class,
    "activation": lsp.CompletionItemKind.Function, "initializer": lsp.CompletionItemKind.Function,
    "schedule": lsp.CompletionItemKind.Function, "data source": lsp.CompletionItemKind.Function,
    "loss": lsp.CompletionItemKind.Function, "optimizer": lsp.CompletionItemKind.Function,
    "metric": lsp.CompletionItemKind.EnumMember, "choice": lsp.CompletionItemKind.EnumMember,
    "value": lsp.CompletionItemKind.Value, "constant": lsp.CompletionItemKind.Constant,
    "node": lsp.CompletionItemKind.Variable, "argument": lsp.CompletionItemKind.Property,
    "section": lsp.CompletionItemKind.Keyword, "keyword": lsp.CompletionItemKind.Keyword,
    "train setting": lsp.CompletionItemKind.Property,
}


def _item(label: str, kind: str, doc: str | None = None, detail: str | None = None) -> lsp.CompletionItem:
    return lsp.CompletionItem(
        label, kind=_KIND.get(kind, lsp.CompletionItemKind.Text), detail=detail or kind,
        documentation=lsp.MarkupContent(lsp.MarkupKind.Markdown, doc) if doc else None)


def _rows(registry: Registry) -> list[lsp.CompletionItem]:
    return [_item(n, registry.kind, describe(e, registry.kind)) for n in registry.names()
            if (e := registry.get(n)) is not None]


def _arguments(entry: Entry, given: set[str]) -> list[lsp.CompletionItem]:
    return [_item(f"{p.name}=", "argument", describe_param(p, entry), f"argument of `{entry.name}`")
            for p in entry.params if p.name not in given]


def _values(ptype: Any) -> list[lsp.CompletionItem]:
    return [_item(w, kind, describe(e, kind) if e else None) for w, e, kind in values_of(ptype)]


@dataclass(frozen=True)
class Names:
    """What a file defines, read from its text (so it works while the file does not parse)."""
    lets: dict[str, int]
    blocks: dict[str, int]

    @staticmethod
    def of(text: str) -> Names:
        lets = {m.group(1): m.start(1) for m in re.finditer(r"(?m)^[ \t]*let[ \t]+([A-Za-z_]\w*)", text)}
        blocks = {m.group(1): m.start(1)
                  for m in re.finditer(rf"(?m)^[ \t]*{BLOCK}[ \t]+([A-Za-z_]\w*)", text)}
        return Names(lets, blocks)


def _node_names(text: str, offset: int) -> list[str]:
    """The labels and input names of the `{ }` block around `offset`."""
    start = text.rfind("{", 0, offset)
    end = text.find("}", offset)
    body = text[start + 1:end if end >= 0 else len(text)]
    names = re.findall(r"(?m)^[ \t]*([A-Za-z_]\w*)[ \t]*:", body)
    names += re.findall(r"(?m)^[ \t]*input[ \t]+([A-Za-z_]\w*)", body)
    return list(dict.fromkeys(names))


def completions(text: str, offset: int) -> list[lsp.CompletionItem]:
    """What may be written at `offset`."""
    ctx = context(text, offset)
    if ctx.inside is not None:
        return []
    names = Names.of(text)
    lets = [_item(n, "constant", f"`let {n}`") for n in names.lets]
    if ctx.calls and ctx.calls[-1] is not None:
        return _in_call(ctx, ctx.calls[-1]) + lets
    if ctx.calls:  # inside `[ ]`: numbers, or constants
        return lets
    stmt = ctx.statement
    if not stmt:
        if ctx.block == "train":
            return _rows(TRAIN)
        if ctx.block in ("model", BLOCK):
            heads = _rows(LAYERS) + [_item(b, "block", f"the block `{b}` defined in this file") for b in names.blocks]
            if ctx.block == "model":
                heads.append(_item("input", "keyword", describe(INPUT, "keyword")))
            return heads
        return [_item(s, "section", doc) for s, doc in SECTIONS.items()]
    head = stmt[0].text
    if ctx.block is None and head in ("loss", "optimizer") and len(stmt) == 1:
        return _rows(LOSSES if head == "loss" else OPTIMIZERS)
    if ctx.block is None and head == "let":
        return [] if len(stmt) < 3 else lets + _all_values()
    kind, entry = statement_entry(stmt, ctx.block, tuple(names.blocks))
    last = stmt[-1]
    if last.text == "=" and len(stmt) >= 2:
        key = stmt[-2].text
        p = entry.param(key) if entry else (_REPEAT if key == REPEAT and kind == "block" else None)
        return (_values(p.type) if p else []) + lets
    in_graph = ctx.block in ("model", BLOCK)
    if in_graph and last.text == FROM:
        nodes = _node_names(text, offset) + ([BLOCK_INPUT] if ctx.block == BLOCK else [])
        return [_item(n, "node", f"the node `{n}`") for n in nodes]
    items: list[lsp.CompletionItem] = []
    if entry is not None:
        written, given = _split_args(stmt[1:])
        items += _arguments(entry, given)
        if kind in (LOSSES.kind, OPTIMIZERS.kind):
            written = written[1:]  # the loss's or optimizer's own name
        if head == "input":
            written = written[2:]  # its name and shape, `x[2]`
        if entry.attrs.get("merge"):
            items += [_item(n, "node", f"the node `{n}`") for n in _node_names(text, offset)]
        positionals = entry.positionals
        if len(written) < len(positionals):
            items += _values(positionals[len(written)].type)
        if entry.variadic is not None:
            items += _values(entry.variadic.type)
    elif kind == "block":
        _, given = _split_args(stmt[1:])
        block = _block_entry(head)
        items += [_item(f"{p}=", "argument", f"parameter of the block `{head}`")
                  for p in _block_params(text, head) if p not in given]
        if REPEAT not in given:
            items.append(_item(f"{REPEAT}=", "argument", describe_param(_REPEAT, block)))
    if in_graph and head != "input":
        items.append(_item(FROM, "keyword", "`from NAME`: read the node `NAME` instead of the line above"))
    return items + lets


def _split_args(tokens: Sequence[Token]) -> tuple[list[Token], set[str]]:
    """A statement's arguments after its head: the positional values, and the keys given
    (`from NAME` is neither)."""
    positional: list[Token] = []
    keys: set[str] = set()
    i = 0
    while i < len(tokens):
        if i + 1 < len(tokens) and tokens[i + 1].text == "=":
            keys.add(tokens[i].text)
            i += 3
        elif tokens[i].text == FROM:
            i += 2
        else:
            positional.append(tokens[i])
            i += 1
    return positional, keys


def _block_params(text: str, name: str) -> list[str]:
    """The parameter names of `block NAME(a, b=1)`, read from the text."""
    m = re.search(rf"(?m)^[ \t]*{BLOCK}[ \t]+{re.escape(name)}[ \t]*\(([^)]*)\)", text)
    return re.findall(r"(?:^|,)\s*([A-Za-z_]\w*)", m.group(1)) if m else []


def _block_entry(name: str) -> Entry:
    return Entry(name, (_REPEAT,), doc=f"the block `{name}`")


def _in_call(ctx: Context, name: str) -> list[lsp.CompletionItem]:
    """Inside `name(...)`: its arguments, or after `key=` the values that key takes."""
    entry = next((r.get(name) for r in _CALLABLE if name in r), None)
    if entry is None:
        return []
    words: list[Token] = []
    depth = 0
    for t in reversed(ctx.words):  # the tokens inside the innermost open call
        if t.kind == "other" and t.text in ")]":
            depth += 1
        elif t.kind == "other" and t.text in "([":
            if depth == 0:
                break
            depth -= 1
        elif depth == 0:
            words.insert(0, t)
    if words and words[-1].text == "=" and len(words) >= 2:
        p = entry.param(words[-2].text)
        return _values(p.type) if p else []
    items = _arguments(entry, {t.text for t, nxt in zip(words, words[1:]) if nxt.text == "="})
    if name == "builtin":  # the dataset's own arguments: the one named first, else every dataset's
        named = DATASETS.get(words[0].text.strip('"')) if words and words[0].kind == "string" else None
        given = {t.text for t, nxt in zip(words, words[1:]) if nxt.text == "="}
        items += [_item(f"{p.name}=", "argument", describe_param(p, d), f"argument of the dataset `{d.name}`")
                  for d in ([named] if named else DATASETS) for p in d.params if p.name not in given]
        items = list({i.label: i for i in items}.values())
    return items


def _all_values() -> list[lsp.CompletionItem]:
    return [item for r in (ACTIVATIONS, INITIALIZERS, SCHEDULES) for item in _rows(r)]


# ----------------------------------------------------------------------------- hover

def hover(text: str, offset: int, diags: Iterable[lsp.Diagnostic] = (), encoding: str = "utf-16") -> str | None:
    """Markdown for the name at `offset`, and the explanation of every diagnostic there."""
    parts = []
    found = word_at(text, offset)
    if found is not None:
        word, start, end = found
        parts += _hover_word(text, word, start, end)
    lines = Lines(text, encoding)
    here = lines.position(offset)
    for d in diags:
        if isinstance(d.code, str) and _covers(d.range, here) and (long := explain(d.code)):
            parts.append(f"```text\n{long.rstrip()}\n```")
    return "\n\n---\n\n".join(dict.fromkeys(parts)) or None


def _defined(text: str, offset: int) -> list[str]:
    """The line that defines the name at `offset` (a `let`, a node, a block), as code."""
    span = definition(text, offset)
    return [_line_of(text, span[0])] if span is not None else []


def _line_of(text: str, offset: int) -> str:
    start = max(text.rfind("\n", 0, offset), text.rfind("\r", 0, offset)) + 1
    end = re.compile(r"\r|\n|$").search(text, offset).end()  # type: ignore[union-attr]
    return f"```nnspec\n{text[start:end].strip()}\n```"


def _covers(r: lsp.Range, p: lsp.Position) -> bool:
    return (r.start.line, r.start.character) <= (p.line, p.character) <= (r.end.line, r.end.character)


def _hover_word(text: str, word: str, start: int, end: int) -> list[str]:
    ctx = context(text, start)
    if ctx.inside == "comment":
        if _CODE.fullmatch(word) and word in CODES:
            return [f"```text\n{explain(word).rstrip()}\n```"]  # type: ignore[union-attr]
        return []
    if ctx.inside == "string":
        ds = DATASETS.get(word)
        return [describe(ds, DATASETS.kind)] if ds and ctx.calls and ctx.calls[-1] == "builtin" else []
    after = text[end:end + 40].lstrip(" \t")
    names = Names.of(text)
    stmt = ctx.statement
    if not ctx.calls:
        if not stmt and after.startswith(":") and ctx.block in ("model", BLOCK):
            return _defined(text, start)
        if not stmt:
            kind, entry = head_entry(word, ctx.block, tuple(names.blocks))
            if entry is not None and kind != "section":
                return [describe(entry, kind)]
            if ctx.block is None and word in SECTIONS:
                return [f"**{word}** (section)\n\n{SECTIONS[word]}"]
            if kind == "block":
                return _defined(text, start) or [f"**{word}** (a block defined in this file)"]
        elif after.startswith("=") and not after.startswith("=="):
            _, entry = statement_entry(stmt, ctx.block, tuple(names.blocks))
            p = entry.param(word) if entry else None
            if p is not None and entry is not None:
                return [describe_param(p, entry)]
        elif ctx.block is None and stmt[0].text in ("loss", "optimizer") and len(stmt) == 1:
            registry = LOSSES if stmt[0].text == "loss" else OPTIMIZERS
            if (e := registry.get(word)) is not None:
                return [describe(e, registry.kind)]
    else:
        name = ctx.calls[-1]
        entry = next((r.get(name) for r in _CALLABLE if name and name in r), None)
        if entry is not None and after.startswith("="):
            p = entry.param(word)
            if p is None and name == "builtin":
                ds = next((d for d in DATASETS if d.param(word)), None)
                return [describe_param(ds.param(word), ds)] if ds else []
            return [describe_param(p, entry)] if p else []
    if (shown := _defined(text, start)):
        return shown
    if word in names.lets:  # the file does not parse: its `let` line, found by its text
        return [_line_of(text, names.lets[word])]
    kinds = [SYMBOLS[k] for k in ("activation", "initializer", "schedule", "metric", "data source")]
    matches = [describe(e, r.kind) for r in (*kinds, *REGISTRIES) if (e := r.get(word)) is not None]
    return list(dict.fromkeys(matches))


# ------------------------------------------------------------------------ formatting

def formatting(text: str, encoding: str = "utf-16") -> list[lsp.TextEdit]:
    """`nnspec fmt` as one edit over the whole file; none when it does not parse cleanly."""
    from nnspec.format import format_spec
    from nnspec.parse import parse_collect
    try:
        spec, diags, _ = parse_collect(text)
        if spec is None or any(d.is_error for d in diags):
            return []
        formatted = format_spec(spec)
    except Exception:  # IR with no text form (format_spec's ValueError), or a bug: change nothing
        log.error("cannot format\n%s", traceback.format_exc())
        return []
    if formatted == text:
        return []
    return [lsp.TextEdit(Lines(text, encoding).whole(), formatted)]


# ------------------------------------------------------------------------ definition

def definition(text: str, offset: int) -> tuple[int, int] | None:
    """The span that defines the name at `offset`: a `let`, a block, a block's parameter,
    or a node or input of the model or block around it. None when the file does not parse."""
    from nnspec.parse import parse_collect
    found = word_at(text, offset)
    if found is None:
        return None
    word, *_ = found
    try:
        spec, _, _ = parse_collect(text)
    except Exception:
        return None
    if spec is None:
        return None
    block = next((b for b in spec.blocks if b.span and b.span.start <= offset < b.span.end), None)
    scopes: list[Iterable[tuple[str | None, ir.Span | None]]] = []  # a block's parameter may be no name
    if block is not None:
        scopes.append((a.key or _ref_name(a.value), a.key_span or a.span) for a in block.params)
        scopes.append(_nodes(text, block.nodes))
    elif spec.model is not None:
        scopes.append(_inputs(text, spec.model.inputs))
        scopes.append(_nodes(text, spec.model.nodes))
    scopes.append((let.name, let.name_span) for let in spec.lets)
    scopes.append((b.name, b.name_span) for b in spec.blocks)
    for scope in scopes:
        for name, span in scope:
            if name == word and span is not None:
                return span.start, span.end
    return None


def _ref_name(v: ir.Value) -> str | None:
    return v.name if isinstance(v, ir.Ref) else None


def _nodes(text: str, nodes: Iterable[ir.Node]) -> Iterable[tuple[str, ir.Span | None]]:
    for n in nodes:
        if n.labelled and n.span is not None and text.startswith(n.name, n.span.start):
            yield n.name, ir.Span(n.span.start, n.span.start + len(n.name))


def _inputs(text: str, inputs: Iterable[ir.Input]) -> Iterable[tuple[str, ir.Span | None]]:
    for i in inputs:
        if i.span is None:
            continue
        m = re.compile(rf"input\s+({re.escape(i.name)})\b").match(text, i.span.start)
        if m:
            yield i.name, ir.Span(m.start(1), m.end(1))


# --------------------------------------------------------------------------- server

def server():  # -> pygls LanguageServer; pygls is imported only here
    """The pygls server, its features wired to the functions above."""
    from pygls.lsp.server import LanguageServer

    from nnspec import __version__

    ls = LanguageServer("nnspec", __version__)
    last: dict[str, list[lsp.Diagnostic]] = {}

    def encoding() -> str:
        return str(ls.workspace.position_encoding or "utf-16")

    def publish(uri: str) -> None:
        doc = ls.workspace.get_text_document(uri)
        last[uri] = diagnostics(doc.source, uri, encoding())
        ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri, last[uri], doc.version))

    def text_offset(uri: str, position: lsp.Position) -> tuple[str, int]:
        text = ls.workspace.get_text_document(uri).source
        return text, Lines(text, encoding()).offset(position)

    @ls.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(params: lsp.DidOpenTextDocumentParams) -> None:
        publish(params.text_document.uri)

    @ls.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(params: lsp.DidChangeTextDocumentParams) -> None:
        publish(params.text_document.uri)

    @ls.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(params: lsp.DidCloseTextDocumentParams) -> None:
        last.pop(params.text_document.uri, None)
        ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(params.text_document.uri, []))

    @ls.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=[" ", "=", "("]))
    def completion(params: lsp.CompletionParams) -> lsp.CompletionList:
        text, offset = text_offset(params.text_document.uri, params.position)
        return lsp.CompletionList(is_incomplete=False, items=completions(text, offset))

    @ls.feature(lsp.TEXT_DOCUMENT_HOVER)
    def on_hover(params: lsp.HoverParams) -> lsp.Hover | None:
        text, offset = text_offset(params.text_document.uri, params.position)
        md = hover(text, offset, last.get(params.text_document.uri, ()), encoding())
        return lsp.Hover(lsp.MarkupContent(lsp.MarkupKind.Markdown, md)) if md else None

    @ls.feature(lsp.TEXT_DOCUMENT_FORMATTING)
    def on_formatting(params: lsp.DocumentFormattingParams) -> list[lsp.TextEdit]:
        text = ls.workspace.get_text_document(params.text_document.uri).source
        return formatting(text, encoding())

    @ls.feature(lsp.TEXT_DOCUMENT_DEFINITION)
    def on_definition(params: lsp.DefinitionParams) -> lsp.Location | None:
        text, offset = text_offset(params.text_document.uri, params.position)
        span = definition(text, offset)
        if span is None:
            return None
        return lsp.Location(params.text_document.uri, Lines(text, encoding()).range(*span))

    return ls


def serve() -> None:
    """Run the server on stdin and stdout until the client says `exit`."""
    logging.basicConfig(level=logging.WARNING, format="nnspec lsp: %(message)s")  # stderr: stdout is the protocol
    # The protocol gets its own copies of the two streams (pygls closes them at `exit`), and
    # a stray `print` goes to stderr instead of into the middle of a message.
    stdin = os.fdopen(os.dup(sys.stdin.fileno()), "rb")
    stdout = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    saved, sys.stdout = sys.stdout, sys.stderr
    try:
        server().start_io(stdin, stdout)
    finally:
        sys.stdout = saved
