"""format_spec(spec) -> canonical `.nn` text: the printer behind `nnspec fmt`.

The canonical layout:
- `let` statements first, then the `block NAME(PARAMS) { }` definitions in the order
  written, then the sections in `ir.SECTIONS` order: `model NAME { }`,
  `loss`, `optimizer`, `regularize`, `train { }`, whatever order the source used;
- one blank line between the groups that are present (the lets | the model block |
  the loss, optimizer and regularize lines | the train block | the comments that end
  the file; each block definition is a group of its own) and no blank lines anywhere else: blank lines in the source are not kept;
- 4-space indentation inside blocks, `}` on a line of its own; one space between a
  statement's arguments, `key=value`, `[1, 2]`, `f(a, k=v)`, `input x[8, 8]`;
- numbers keep the text they were written with (`1e-3` stays `1e-3`); numbers built
  without text print as the shortest text that reads back to the same value and type;
- every comment is kept: leading comments as `# text` lines above their statement, at
  its indentation; a same-line comment after two spaces; comments before a `}` stay
  inside the block. `#text` gains a space, as black does, except `#!`, `#:` and `##`.
  A comment written after a `}` has no place of its own in the IR: the parser gives
  it to the next statement, so it prints above that statement;
- a model's inputs and layers print in the order written (IR without spans: in an order
  the parser wires back the same way); an unlabelled layer's name and its input are
  implied by where it stands; a layer
  that reads another node than the line above ends in `from NAME`, and a merge names
  its inputs first (`concat a b axis=0`).

Non-empty output ends with exactly one newline; an empty spec prints as "". IR that
has no text form (a NaN, a name that is not a name, `f a [1]` read back as `a[1]`)
raises ValueError rather than printing text that parses differently.
"""

from __future__ import annotations

import math
import re
from itertools import groupby
from typing import cast

from nnspec import ir
from nnspec.parse import _NUMBER, BLOCK, BLOCK_INPUT, FROM, is_merge, parse  # the parser's own syntax, so they cannot drift

INDENT = "    "

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEYWORDS = ("true", "false")  # lexed as booleans wherever a value may stand
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t"}


def quote(text: str) -> str:
    """`text` as an nnspec string literal."""
    return '"' + "".join(_ESCAPES.get(c, c) for c in text) + '"'


def format_source(text: str, filename: str = "<string>") -> str:
    """Parse `text` and print it canonically; raises NNSpecError on bad input."""
    return format_spec(parse(text, filename))


def format_spec(spec: ir.Spec) -> str:
    """The canonical text of `spec`."""
    groups = [[line for let in spec.lets
               for line in _statement(let, f"let {_name(let.name)} = {_value(let.value)}", "")]]
    groups += [_definition(b) for b in spec.blocks]
    present = [node for node in ((spec.losses if s == "loss" and spec.losses is not None else getattr(spec, s))
                                 for s in ir.SECTIONS) if node is not None]
    for is_block, run in groupby(present, key=lambda node: not isinstance(node, ir.Directive)):
        if is_block:
            groups += [_block(node) for node in run]
        else:
            groups.append([line for d in run for line in _directive(cast(ir.Directive, d), "")])
    groups.append(_comments(spec.end_comments, ""))
    text = "\n\n".join("\n".join(lines) for lines in groups if lines)
    return text + "\n" if text else ""


# -------------------------------------------------------------------------- statements

def _block(node: ir.Model | ir.Train | ir.Losses) -> list[str]:
    if isinstance(node, ir.Losses):  # `NAME: LOSS ARGS`, one line per output
        header = "loss {"
        body = [line for h in node.heads
                for line in _statement(h, f"{_name(h.name)}: " * h.labelled + _words(_name(h.op), h.args), INDENT)]
    elif isinstance(node, ir.Model):
        header = "model {" if node.name is None else f"model {_name(node.name)} {{"
        body = []
        previous: str | None = None
        for item in _source_order(node):
            body += _model_statement(item, previous)
            previous = item.name
    else:
        header = "train {"
        body = [line for d in node.statements for line in _directive(d, INDENT)]
    return _statement(node, header, "") + body + _comments(node.end_comments, INDENT) + ["}"]


def _definition(block: ir.Block) -> list[str]:
    """`block NAME(PARAMS) {`, its layers as a model's (the first reads `input`), `}`."""
    params = f"({', '.join(_arg(a) for a in block.params)})" if block.params else ""
    body = []
    previous: str | None = BLOCK_INPUT
    nodes = sorted(block.nodes, key=lambda n: n.span.start if n.span is not None else 0) \
        if all(n.span is not None for n in block.nodes) \
        else list(block.nodes)
    for node in nodes:
        body += _model_statement(node, previous)
        previous = node.name
    return (_statement(block, f"{BLOCK} {_name(block.name)}{params} {{", "") + body
            + _comments(block.end_comments, INDENT) + ["}"])


def _model_statement(item: ir.Input | ir.Node, previous: str | None) -> list[str]:
    """An input, or a layer printed after the item named `previous`: a merge names what it
    reads (`add h1 h2`); another layer reads the line above, or says `from NAME`."""
    if isinstance(item, ir.Input):
        head = f"input {_name(item.name)}[{_values(item.shape)}]"
        return _statement(item, _words(head, item.args) if item.args else head, INDENT)
    label = f"{_name(item.name)}: " if item.labelled else ""
    positional_name = next((a.value.name for a in item.args if a.key is None and isinstance(a.value, ir.Ref)
                            and (is_merge(item.op) or a.value.name == FROM)), None)
    if positional_name is not None:
        raise ValueError(f"`{item.name}`: the name `{positional_name}` among its arguments would read as a node "
                         "it reads")
    names = tuple(ir.Arg(None, ir.Ref(n)) for n in item.inputs)
    if is_merge(item.op):
        args = names + item.args
    elif item.inputs == ((previous,) if previous is not None else ()):
        args = item.args
    elif len(item.inputs) == 1:
        args = item.args + (ir.Arg(None, ir.Ref(FROM)),) + names
    else:
        raise ValueError(f"`{item.name}` reads {len(item.inputs)} nodes, but only a merge reads more than one, "
                         "and a layer without an input can only come before the model's inputs")
    return _statement(item, label + _words(_name(item.op), args), INDENT)


def _directive(d: ir.Directive, indent: str) -> list[str]:
    return _statement(d, _words(_name(d.keyword), d.args), indent)


def _statement(node: ir.Let | ir.Input | ir.Node | ir.Directive | ir.Model | ir.Train | ir.Block | ir.Losses,
               text: str, indent: str) -> list[str]:
    """`text` at `indent`, under its leading comments and before its trailing one."""
    trailing = "" if node.trailing is None else "  " + _comment(node.trailing.replace("\n", " "))
    return _comments(node.comments, indent) + [indent + text + trailing]


def _source_order(model: ir.Model) -> list[ir.Input | ir.Node]:
    """Inputs and layers in the order they were written, when every one has a span (parsed
    text); else interleaved so that each layer reads the item printed before it where an
    input allows, which is how the parser wires an input to a layer. Either way a layer
    that reads another node than the item above it prints `from NAME`."""
    items: list[ir.Input | ir.Node] = [*model.inputs, *model.nodes]
    if all(item.span is not None for item in items):
        return sorted(items, key=lambda item: item.span.start)  # type: ignore[union-attr]
    out: list[ir.Input | ir.Node] = []
    pending = list(model.inputs)
    previous: str | None = None
    for node in model.nodes:
        if node.inputs != ((previous,) if previous is not None else ()):
            names = [i.name for i in pending]
            read = [names.index(n) for n in node.inputs if n in names]
            if read:  # the inputs it reads, and those declared before them, print above it
                k = max(read) + 1
                out += pending[:k]
                del pending[:k]
        out.append(node)
        previous = node.name
    return out + pending


def _comments(comments: tuple[str, ...], indent: str) -> list[str]:
    return [indent + _comment(line) for text in comments for line in text.split("\n")]


def _comment(text: str) -> str:
    text = text.rstrip()
    if text and not text[0].isspace() and text[0] not in "!#:":
        text = " " + text
    return "#" + text


# ------------------------------------------------------------------------------ values

def _words(head: str, args: tuple[ir.Arg, ...]) -> str:
    """A statement: its head and arguments separated by spaces."""
    for before, arg in zip(args, args[1:]):
        # `f a [1]` reads back as `f a[1]`: the grammar has no way to write this.
        if isinstance(before.value, ir.Ref) and arg.key is None and isinstance(arg.value, ir.List):
            raise ValueError(f"`{head}`: a positional list cannot follow the name "
                             f"`{before.value.name}` in a statement; it would read as `{before.value.name}[...]`")
    return " ".join([head] + [_arg(a) for a in args])


def _arg(arg: ir.Arg) -> str:
    return _value(arg.value) if arg.key is None else f"{_name(arg.key, value=True)}={_value(arg.value)}"


def _values(values: tuple[ir.Value, ...]) -> str:
    return ", ".join(_value(v) for v in values)


def _value(v: ir.Value) -> str:
    if isinstance(v, ir.Number):
        return _number(v)
    if isinstance(v, ir.String):
        return quote(v.value)
    if isinstance(v, ir.Bool):
        return "true" if v.value else "false"
    if isinstance(v, ir.Ref):
        return _name(v.name, value=True)
    if isinstance(v, ir.Shaped):
        return f"{_name(v.name, value=True)}[{_values(v.dims)}]"
    if isinstance(v, ir.List):
        return f"[{_values(v.items)}]"
    if isinstance(v, ir.Call):
        return f"{_name(v.name, value=True)}({', '.join(_arg(a) for a in v.args)})"
    raise TypeError(f"not an IR value: {v!r}")


def _number(n: ir.Number) -> str:
    if n.text is not None and _reads_as(n.text, n.value):
        return n.text
    value = n.value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"`Number` holds {value!r}, not an int or a float")
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        raise ValueError("NaN has no nnspec text")
    if math.isinf(value):
        return "1e999" if value > 0 else "-1e999"  # the literal the parser reads as inf
    return repr(value)  # shortest text that reads back exactly, always with `.` or `e`


def _reads_as(text: str, value: int | float) -> bool:
    """Whether the parser reads `text` as this value, of this type."""
    if not _NUMBER.fullmatch(text):
        return False
    if any(c in text for c in ".eE"):
        return isinstance(value, float) and float(text) == value
    return isinstance(value, int) and not isinstance(value, bool) and int(text) == value


def _name(name: str, *, value: bool = False) -> str:
    if not _NAME.fullmatch(name) or (value and name in _KEYWORDS):
        raise ValueError(f"`{name}` cannot be written as a name in nnspec text")
    return name


def unified_diff(old: str, new: str, path: str) -> str:
    """What `nnspec fmt --diff` prints: a unified diff from `old` to `new` with `a/PATH`
    and `b/PATH` headers, which `patch -p1` and `git apply` apply; a last line without
    its newline is marked as diff(1) marks it."""
    import difflib
    import re

    def lines(text: str) -> list[str]:  # only "\n" ends a line (not "\x0c" or "\u2028")
        return re.findall(r"[^\n]*\n|[^\n]+\Z", text)
    out = []
    path = path.lstrip("/")  # as git writes an absolute path: `a/tmp/x.nn`
    for line in difflib.unified_diff(lines(old), lines(new), f"a/{path}", f"b/{path}"):
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)
