"""The nnspec IR: frozen, plain data, no JAX. Every node carries its source span.

The IR is what the parser builds and what other tools may build instead of text.
It records *what was written* (structure, names, literal values); the checker
resolves names against the registries and infers shapes. Spans and comments do not
take part in equality, so `parse(fmt(spec)) == spec`; JSON keeps them all.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any

from nnspec.source import Span

VERSION = 1


def _span() -> Any:
    return field(default=None, compare=False, repr=False)


def _comments() -> Any:
    return field(default=(), compare=False, repr=False)


# ------------------------------------------------------------------------------ values

@dataclass(frozen=True)
class Number:
    value: int | float
    text: str | None = field(default=None, compare=False)  # as written, kept by `fmt`
    span: Span | None = _span()


@dataclass(frozen=True)
class String:
    value: str
    span: Span | None = _span()


@dataclass(frozen=True)
class Bool:
    value: bool
    span: Span | None = _span()


@dataclass(frozen=True)
class Ref:
    """A bare name: a symbol (`relu`), a flag (`restore_best`) or a `let` constant."""
    name: str
    span: Span | None = _span()


@dataclass(frozen=True)
class Shaped:
    """`x[28, 28]`: a name with dimensions."""
    name: str
    dims: tuple[Value, ...]
    span: Span | None = _span()


@dataclass(frozen=True)
class List:
    items: tuple[Value, ...]
    span: Span | None = _span()


@dataclass(frozen=True)
class Call:
    """`normal(stddev=0.1)`, `builtin("moons", n=500)`."""
    name: str
    args: tuple[Arg, ...] = ()
    span: Span | None = _span()
    name_span: Span | None = _span()


Value = Number | String | Bool | Ref | Shaped | List | Call


@dataclass(frozen=True)
class Arg:
    """A positional (`key is None`) or keyword argument."""
    key: str | None
    value: Value
    span: Span | None = _span()
    key_span: Span | None = _span()


# -------------------------------------------------------------------------- statements

@dataclass(frozen=True)
class Let:
    name: str
    value: Value
    span: Span | None = _span()
    name_span: Span | None = _span()
    comments: tuple[str, ...] = _comments()
    trailing: str | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Input:
    """`input x[2]`: a named model input with a per-example shape. `args` is what follows
    the shape, its type: `input tokens[20] int vocab=1000`; none for numbers."""
    name: str
    shape: tuple[Value, ...]
    span: Span | None = _span()
    comments: tuple[str, ...] = _comments()
    trailing: str | None = field(default=None, compare=False, repr=False)
    args: tuple[Arg, ...] = ()


@dataclass(frozen=True)
class Node:
    """One layer: an op applied to named inputs. `labelled` says the name was written.
    `inputs` are the nodes it reads, as written (`from h1`, `add h1 h2`) or implied (the
    line above); `input_spans` locate the written ones. The checker resolves them."""
    name: str
    op: str
    inputs: tuple[str, ...]
    args: tuple[Arg, ...] = ()
    labelled: bool = False
    span: Span | None = _span()
    op_span: Span | None = _span()
    comments: tuple[str, ...] = _comments()
    trailing: str | None = field(default=None, compare=False, repr=False)
    input_spans: tuple[Span, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class Directive:
    """A keyword statement: `loss ...`, `optimizer ...`, `regularize ...`, `batch 32`."""
    keyword: str
    args: tuple[Arg, ...] = ()
    span: Span | None = _span()
    keyword_span: Span | None = _span()
    comments: tuple[str, ...] = _comments()
    trailing: str | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Model:
    name: str | None
    inputs: tuple[Input, ...]
    nodes: tuple[Node, ...]
    span: Span | None = _span()
    comments: tuple[str, ...] = _comments()
    trailing: str | None = field(default=None, compare=False, repr=False)
    end_comments: tuple[str, ...] = _comments()

    @property
    def output(self) -> str | None:
        """The name of the last node (or input): the model's output."""
        if self.nodes:
            return self.nodes[-1].name
        return self.inputs[-1].name if self.inputs else None


@dataclass(frozen=True)
class Block:
    """`block res_unit(filters, kernel=3) { ... }`: layers defined once, used in a model
    like a layer (`r1: res_unit 8`). `params` are as written: a bare name is a required
    parameter, `name=value` one with a default. The nodes read `input` (nnspec/blocks.py's
    `INPUT`), the node the use reads, and the block's output is its last node."""
    name: str
    params: tuple[Arg, ...]
    nodes: tuple[Node, ...]
    span: Span | None = _span()
    name_span: Span | None = _span()
    comments: tuple[str, ...] = _comments()
    trailing: str | None = field(default=None, compare=False, repr=False)
    end_comments: tuple[str, ...] = _comments()


@dataclass(frozen=True)
class Train:
    statements: tuple[Directive, ...]
    span: Span | None = _span()
    comments: tuple[str, ...] = _comments()
    trailing: str | None = field(default=None, compare=False, repr=False)
    end_comments: tuple[str, ...] = _comments()

    def get(self, keyword: str) -> Directive | None:
        return next((s for s in self.statements if s.keyword == keyword), None)


@dataclass(frozen=True)
class Losses:
    """`loss { priority: binary_crossentropy weight=1.0 metrics=[accuracy] ... }`: one line
    per output of a model with several, each a node whose `name` is the output it trains
    (its label) and whose `op` is the loss; the args are the loss's own, `weight` and
    `metrics`. The model's outputs are these nodes, in this order."""
    heads: tuple[Node, ...]
    span: Span | None = _span()
    keyword_span: Span | None = _span()
    comments: tuple[str, ...] = _comments()
    trailing: str | None = field(default=None, compare=False, repr=False)
    end_comments: tuple[str, ...] = _comments()


@dataclass(frozen=True)
class Spec:
    lets: tuple[Let, ...] = ()
    model: Model | None = None
    loss: Directive | None = None
    optimizer: Directive | None = None
    regularize: Directive | None = None
    train: Train | None = None
    version: int = VERSION
    end_comments: tuple[str, ...] = _comments()
    span: Span | None = _span()
    blocks: tuple[Block, ...] = ()  # in the order written; last, so older IR reads unchanged
    losses: Losses | None = None  # `loss { ... }`, for several outputs (then `loss` is None)


SECTIONS = ("model", "loss", "optimizer", "regularize", "train")  # canonical order

# ---------------------------------------------------------------------------- JSON

_KINDS = {cls.__name__: cls for cls in (Number, String, Bool, Ref, Shaped, List, Call, Arg, Let,
                                        Input, Node, Directive, Model, Block, Train, Losses, Spec)}


def to_data(obj: Any) -> Any:
    """IR -> plain JSON-able data; each node is a dict tagged with its `kind`."""
    if isinstance(obj, Span):
        return [obj.start, obj.end]
    if dataclasses.is_dataclass(obj):
        data: dict[str, Any] = {"kind": type(obj).__name__}
        for f in dataclasses.fields(obj):
            data[f.name] = to_data(getattr(obj, f.name))
        return data
    if isinstance(obj, tuple):
        return [to_data(x) for x in obj]
    return obj


class IRFormatError(ValueError):
    """The JSON is not nnspec IR (or is of another version); the message names the JSON
    path of the first bad value, as in `model.nodes[2].name`."""


# How deep IR JSON may nest (objects and arrays). A list nested 100 deep, as the checker
# allows, takes 200 levels; deeper input is refused before anything recurses on it.
MAX_JSON_DEPTH = 300

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_VALUE_KINDS = ("Number", "String", "Bool", "Ref", "Shaped", "List", "Call")

# Each field's type, for checking IR that another tool wrote: a kind name (or a tuple of
# them) is a node; "name" is an identifier; "span" is [start, end]; "[T]" an array of T,
# "T?" T or null.
_FIELDS: dict[str, dict[str, str]] = {
    "Number": {"value": "number", "text": "str?", "span": "span?"},
    "String": {"value": "str", "span": "span?"},
    "Bool": {"value": "bool", "span": "span?"},
    "Ref": {"name": "name", "span": "span?"},
    "Shaped": {"name": "name", "dims": "[value]", "span": "span?"},
    "List": {"items": "[value]", "span": "span?"},
    "Call": {"name": "name", "args": "[Arg]", "span": "span?", "name_span": "span?"},
    "Arg": {"key": "name?", "value": "value", "span": "span?", "key_span": "span?"},
    "Let": {"name": "name", "value": "value", "span": "span?", "name_span": "span?", "comments": "[str]",
            "trailing": "str?"},
    "Input": {"name": "name", "shape": "[value]", "span": "span?", "comments": "[str]", "trailing": "str?",
              "args": "[Arg]"},
    "Node": {"name": "name", "op": "name", "inputs": "[name]", "args": "[Arg]", "labelled": "bool",
             "span": "span?", "op_span": "span?", "comments": "[str]", "trailing": "str?",
             "input_spans": "[span]"},
    "Directive": {"keyword": "name", "args": "[Arg]", "span": "span?", "keyword_span": "span?",
                  "comments": "[str]", "trailing": "str?"},
    "Model": {"name": "name?", "inputs": "[Input]", "nodes": "[Node]", "span": "span?", "comments": "[str]",
              "trailing": "str?", "end_comments": "[str]"},
    "Block": {"name": "name", "params": "[Arg]", "nodes": "[Node]", "span": "span?", "name_span": "span?",
              "comments": "[str]", "trailing": "str?", "end_comments": "[str]"},
    "Train": {"statements": "[Directive]", "span": "span?", "comments": "[str]", "trailing": "str?",
              "end_comments": "[str]"},
    "Losses": {"heads": "[Node]", "span": "span?", "keyword_span": "span?", "comments": "[str]",
               "trailing": "str?", "end_comments": "[str]"},
    "Spec": {"lets": "[Let]", "model": "Model?", "loss": "Directive?", "optimizer": "Directive?",
             "regularize": "Directive?", "train": "Train?", "version": "int", "end_comments": "[str]",
             "span": "span?", "blocks": "[Block]", "losses": "Losses?"},
}


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return f"a `{v.get('kind')}` object" if isinstance(v.get("kind"), str) else "an object"


def _read(data: Any, want: str, path: str, depth: int) -> Any:
    """Checked plain data -> IR for a field of type `want` at JSON `path`."""
    if depth > MAX_JSON_DEPTH:
        shown = path if len(path) <= 80 else path[:80] + "…"  # a path 300 levels long says nothing more
        raise IRFormatError(f"`{shown}` nests deeper than {MAX_JSON_DEPTH} levels")
    if want.endswith("?"):
        return None if data is None else _read(data, want[:-1], path, depth)

    def bad(expected: str) -> IRFormatError:
        return IRFormatError(f"`{path}` must be {expected}, found {_json_type(data)}")

    if want.startswith("["):
        if not isinstance(data, list):
            raise bad("an array")
        return tuple(_read(x, want[1:-1], f"{path}[{i}]", depth + 1) for i, x in enumerate(data))
    if want == "str":
        if not isinstance(data, str):
            raise bad("a string")
        return data
    if want == "name":
        if not isinstance(data, str):
            raise bad("a name (a string)")
        if not _IDENT.fullmatch(data):
            raise IRFormatError(f"`{path}` must be a name (letters, digits and `_`, not first a digit), "
                                f"found {json.dumps(data)[:40]}")
        return data
    if want == "bool":
        if not isinstance(data, bool):
            raise bad("`true` or `false`")
        return data
    if want in ("int", "number"):
        if isinstance(data, bool) or not isinstance(data, (int, float) if want == "number" else int):
            raise bad("an integer" if want == "int" else "a number")
        return data
    if want == "span":
        if not (isinstance(data, list) and len(data) == 2
                and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in data)
                and data[0] <= data[1]):
            raise IRFormatError(f"`{path}` must be a span, [start, end] with 0 ≤ start ≤ end, or null")
        return Span(data[0], data[1])
    kinds = _VALUE_KINDS if want == "value" else (want,)
    if not isinstance(data, dict):
        raise bad("a value node" if want == "value" else f"a `{want}` object")
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in kinds:
        expected = "one of " + ", ".join(f"`{k}`" for k in kinds) if len(kinds) > 1 else f"`{want}`"
        raise IRFormatError(f"`{path}.kind` must be {expected}, found {json.dumps(kind)[:40]}")
    fields = _FIELDS[kind]
    cls = _KINDS[kind]
    required = {f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    kwargs = {}
    for key, value in data.items():
        if key == "kind":
            continue
        if key not in fields:
            raise IRFormatError(f"`{path}`: `{kind}` has no field `{key}`")
        kwargs[key] = _read(value, fields[key], f"{path}.{key}", depth + 1)
    missing = sorted(required - set(kwargs))
    if missing:
        raise IRFormatError(f"`{path}`: `{kind}` needs the field `{missing[0]}`")
    return cls(**kwargs)


def json_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of the IR, from the same table `from_data` checks
    against; published as nnspec/ir.schema.json. A schema cannot say that a span's start
    is at most its end, or that a layer reads an input or a layer defined above it:
    `from_data` does."""
    def field_schema(want: str) -> dict[str, Any]:
        if want.endswith("?"):
            return {"oneOf": [field_schema(want[:-1]), {"type": "null"}]}
        if want.startswith("["):
            return {"type": "array", "items": field_schema(want[1:-1])}
        simple = {"str": {"type": "string"}, "bool": {"type": "boolean"}, "int": {"type": "integer"},
                  "number": {"type": "number"}}
        return simple.get(want, {"$ref": f"#/$defs/{want}"})

    defs: dict[str, Any] = {
        "name": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
        "span": {"type": "array", "prefixItems": [{"type": "integer", "minimum": 0}] * 2,
                 "minItems": 2, "maxItems": 2, "description": "[start, end), character offsets, start ≤ end"},
        "value": {"oneOf": [{"$ref": f"#/$defs/{k}"} for k in _VALUE_KINDS]},
    }
    for kind, fields in _FIELDS.items():
        cls = _KINDS[kind]
        required = [f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        props = {"kind": {"const": kind}, **{k: field_schema(t) for k, t in fields.items()}}
        if kind == "Spec":
            props["version"] = {"const": VERSION}
            required.append("version")
        defs[kind] = {"type": "object", "properties": props, "required": ["kind", *required],
                      "additionalProperties": False}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": f"nnspec IR, version {VERSION}", "$ref": "#/$defs/Spec", "$defs": defs}


def from_data(data: Any) -> Spec:
    """Plain data -> IR, the inverse of `to_data`; every field's type is checked, and
    what the parser guarantees of text (sections under their own keyword) is checked of
    the IR too. The nodes' order is the order of evaluation, so each name a layer reads
    must be an input or a layer before it: JSON has no text for the checker's located
    E250/E251 to point at, so its path is named here. How many names a layer may read
    (one, or two or more for a merge) is the checker's to say (E253)."""
    spec = _read(data, "Spec", "spec", 0)
    for section in ("loss", "optimizer", "regularize"):
        d = getattr(spec, section)
        if d is not None and d.keyword != section:
            raise IRFormatError(f"`spec.{section}.keyword` must be \"{section}\", found {json.dumps(d.keyword)}")
    if spec.loss is not None and spec.losses is not None:
        raise IRFormatError("`spec.loss` and `spec.losses` are one section: give one of them")
    if spec.model is not None:
        defined = {i.name for i in spec.model.inputs}
        for i, node in enumerate(spec.model.nodes):
            for k, name in enumerate(node.inputs):
                if name not in defined:
                    raise IRFormatError(f"`spec.model.nodes[{i}].inputs[{k}]` names `{name}`, "
                                        "which is not an input or a layer above it")
            defined.add(node.name)
    for b, block in enumerate(spec.blocks):
        defined = {"input"}  # what a block reads (parse.BLOCK_INPUT)
        for i, node in enumerate(block.nodes):
            for k, name in enumerate(node.inputs):
                if name not in defined:
                    raise IRFormatError(f"`spec.blocks[{b}].nodes[{i}].inputs[{k}]` names `{name}`, "
                                        "which is not `input` or a layer above it")
            defined.add(node.name)
    return spec


def to_json(spec: Spec, *, indent: int | None = 2) -> str:
    return json.dumps(to_data(spec), indent=indent)


def from_json(text: str) -> Spec:
    """Read IR written by `to_json` (by nnspec or by another tool); raises IRFormatError."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IRFormatError(f"not JSON: {exc}") from None
    except RecursionError:  # `[[[[...` a hundred thousand deep
        raise IRFormatError(f"the JSON nests deeper than {MAX_JSON_DEPTH} levels") from None
    if not isinstance(data, dict) or data.get("kind") != "Spec":
        raise IRFormatError("the top-level object must be a `Spec`")
    if data.get("version") != VERSION:
        raise IRFormatError(f"IR version {json.dumps(data.get('version'))[:40]} is not supported (expected {VERSION})")
    return from_data(data)


_NOT_MEANING = {"span", "name_span", "key_span", "op_span", "keyword_span", "comments", "trailing",
                "end_comments", "text", "input_spans"}


def fingerprint(node: Any) -> str:
    """A hash of what a spec (or one of its nodes) *means*: spans, comments and the
    spelling of numbers do not count, so reformatting keeps the fingerprint."""
    import hashlib

    def strip(d: Any) -> Any:
        if isinstance(d, dict):
            # an input without a type (`input x[2]`) hashes as it did before inputs had one
            # and a spec without blocks as it did before blocks existed
            return {k: strip(v) for k, v in d.items() if k not in _NOT_MEANING
                    and not (k == "args" and d.get("kind") == "Input" and not v)
                    and not (k == "blocks" and d.get("kind") == "Spec" and not v)}
        if isinstance(d, list):
            return [strip(x) for x in d]
        return d

    text = json.dumps(strip(to_data(node)), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
