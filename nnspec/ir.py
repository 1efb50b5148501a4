"""The nnspec IR: frozen, plain data, no JAX. Every node carries its source span.

The IR is what the parser builds and what other tools may build instead of text.
It records *what was written* (structure, names, literal values); the checker
resolves names against the registries and infers shapes. Spans and comments do not
take part in equality, so `parse(fmt(spec)) == spec`; JSON keeps them all.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Union

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
    dims: tuple["Value", ...]
    span: Span | None = _span()


@dataclass(frozen=True)
class List:
    items: tuple["Value", ...]
    span: Span | None = _span()


@dataclass(frozen=True)
class Call:
    """`normal(stddev=0.1)`, `builtin("moons", n=500)`."""
    name: str
    args: tuple["Arg", ...] = ()
    span: Span | None = _span()
    name_span: Span | None = _span()


Value = Union[Number, String, Bool, Ref, Shaped, List, Call]


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
    """`input x[2]`: a named model input with a per-example shape."""
    name: str
    shape: tuple[Value, ...]
    span: Span | None = _span()
    comments: tuple[str, ...] = _comments()
    trailing: str | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Node:
    """One layer: an op applied to named inputs. `labelled` says the name was written."""
    name: str
    op: str
    inputs: tuple[str, ...]
    args: tuple[Arg, ...] = ()
    labelled: bool = False
    span: Span | None = _span()
    op_span: Span | None = _span()
    comments: tuple[str, ...] = _comments()
    trailing: str | None = field(default=None, compare=False, repr=False)


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
class Train:
    statements: tuple[Directive, ...]
    span: Span | None = _span()
    comments: tuple[str, ...] = _comments()
    trailing: str | None = field(default=None, compare=False, repr=False)
    end_comments: tuple[str, ...] = _comments()

    def get(self, keyword: str) -> Directive | None:
        return next((s for s in self.statements if s.keyword == keyword), None)


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


SECTIONS = ("model", "loss", "optimizer", "regularize", "train")  # canonical order

# ---------------------------------------------------------------------------- JSON

_KINDS = {cls.__name__: cls for cls in (Number, String, Bool, Ref, Shaped, List, Call, Arg, Let,
                                        Input, Node, Directive, Model, Train, Spec)}


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
    """The JSON is not nnspec IR (or is of another version)."""


def from_data(data: Any) -> Any:
    """Plain data -> IR, the inverse of `to_data`."""
    if isinstance(data, dict):
        kind = data.get("kind")
        cls = _KINDS.get(kind)  # type: ignore[arg-type]
        if cls is None:
            raise IRFormatError(f"unknown IR node kind `{kind}`")
        kwargs = {}
        names = {f.name for f in dataclasses.fields(cls)}
        for key, value in data.items():
            if key == "kind":
                continue
            if key not in names:
                raise IRFormatError(f"`{kind}` has no field `{key}`")
            if key.endswith("span") and value is not None:
                if not (isinstance(value, list) and len(value) == 2):
                    raise IRFormatError(f"`{kind}.{key}` must be [start, end]")
                kwargs[key] = Span(int(value[0]), int(value[1]))
            else:
                kwargs[key] = from_data(value)
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise IRFormatError(f"`{kind}`: {exc}") from None
    if isinstance(data, list):
        return tuple(from_data(x) for x in data)
    return data


def to_json(spec: Spec, *, indent: int | None = 2) -> str:
    return json.dumps(to_data(spec), indent=indent)


def from_json(text: str) -> Spec:
    """Read IR written by `to_json` (by nnspec or by another tool)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IRFormatError(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("kind") != "Spec":
        raise IRFormatError("the top-level object must be a `Spec`")
    if data.get("version") != VERSION:
        raise IRFormatError(f"IR version {data.get('version')!r} is not supported (expected {VERSION})")
    return from_data(data)


_NOT_MEANING = {"span", "name_span", "key_span", "op_span", "keyword_span", "comments", "trailing",
                "end_comments", "text"}


def fingerprint(node: Any) -> str:
    """A hash of what a spec (or one of its nodes) *means*: spans, comments and the
    spelling of numbers do not count, so reformatting keeps the fingerprint."""
    import hashlib

    def strip(d: Any) -> Any:
        if isinstance(d, dict):
            return {k: strip(v) for k, v in d.items() if k not in _NOT_MEANING}
        if isinstance(d, list):
            return [strip(x) for x in d]
        return d

    text = json.dumps(strip(to_data(node)), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
