"""Argument schemas: what a layer, loss, optimizer, ... accepts, and how values are checked.

A `Signature` is a tuple of `Param`s. Each param has a *type* (`Int`, `Float`, `Bool`,
`Str`, `Choice`, `Array`, `ListOf`, `Union`, `Symbol`) that turns an IR value into a
plain Python value or raises `ArgError` with a message and a help line. The registries
(layers/, losses.py, optim.py, datasets.py) are tables of signatures; check.py
applies them. Pure Python: no JAX, no NumPy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence


class ArgError(Exception):
    """A value that does not fit its parameter. `code` picks the diagnostic."""

    def __init__(self, code: str, message: str, help: str | None = None, span: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.help = help
        self.span = span


E_TYPE = "E103"   # wrong type
E_RANGE = "E104"  # out of range


@dataclass(frozen=True)
class Int:
    min: int | None = None
    max: int | None = None

    def describe(self) -> str:
        return "an integer" + _range_text(self.min, None, self.max, None)

    def convert(self, v: Any) -> int:
        # `n=1e3` means 1000: a whole number written with an exponent is still whole
        if isinstance(v, float) and v.is_integer() and abs(v) < 2 ** 53:
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise ArgError(E_TYPE, f"expected an integer, found {_show(v)}")
        _check_range(v, self.min, None, self.max, None)
        return v


@dataclass(frozen=True)
class Float:
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def describe(self) -> str:
        return "a number" + _range_text(self.ge, self.gt, self.le, self.lt)

    def convert(self, v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ArgError(E_TYPE, f"expected a number, found {_show(v)}")
        if not math.isfinite(_as_float(v)):
            raise ArgError(E_RANGE, f"expected a finite number, found {_show_huge(v)}")
        v = float(v)
        _check_range(v, self.ge, self.gt, self.le, self.lt)
        return v


@dataclass(frozen=True)
class Bool:
    def describe(self) -> str:
        return "`true` or `false`"

    def convert(self, v: Any) -> bool:
        if not isinstance(v, bool):
            raise ArgError(E_TYPE, f"expected `true` or `false`, found {_show(v)}")
        return v


@dataclass(frozen=True)
class Str:
    def describe(self) -> str:
        return "a string"

    def convert(self, v: Any) -> str:
        if not isinstance(v, str) or isinstance(v, Sym):
            raise ArgError(E_TYPE, f"expected a string in quotes, found {_show(v)}")
        return v


@dataclass(frozen=True)
class NpyFile(Str):
    """The path of a NumPy `.npy` file, as a string; read relative to the spec's folder by
    nnspec/pretrained.py, not here."""

    def describe(self) -> str:
        return "the path of a `.npy` file"

    def convert(self, v: Any) -> str:
        if not isinstance(v, str) or isinstance(v, Sym):
            raise ArgError(E_TYPE, f"expected the path of a `.npy` file in quotes, found {_show(v)}")
        if not v.lower().endswith(".npy"):
            raise ArgError(E_TYPE, f"expected the path of a `.npy` file, found `\"{v}\"`",
                           "save the array with `numpy.save(\"table.npy\", array)` and name that file")
        return v


class Word:
    """A bare name such as `monitor=val_loss`; validated by a later pass."""

    def describe(self) -> str:
        return "a name"

    def convert(self, v: Any) -> str:
        if not isinstance(v, Sym):
            raise ArgError(E_TYPE, f"expected a name, found {_show(v)}")
        return str(v)


@dataclass(frozen=True)
class Choice:
    """One of a few bare words, as in `mode=max`."""
    options: tuple[str, ...]

    def describe(self) -> str:
        return "one of " + ", ".join(f"`{o}`" for o in self.options)

    def convert(self, v: Any) -> str:
        from nnspec.suggest import did_you_mean
        if not isinstance(v, Sym):
            raise ArgError(E_TYPE, f"expected {self.describe()}, found {_show(v)}")
        if v not in self.options:
            raise ArgError(E_RANGE, f"`{v}` is not {self.describe()}",
                           did_you_mean(v, self.options))
        return str(v)


@dataclass(frozen=True)
class Array:
    """A literal numeric array, written as nested lists; converted to nested tuples of float."""

    def describe(self) -> str:
        return "a list of numbers"

    def convert(self, v: Any) -> tuple:
        if not isinstance(v, tuple):
            raise ArgError(E_TYPE, f"expected a list of numbers, found {_show(v)}")
        return _numeric_nested(v)


@dataclass(frozen=True)
class ListOf:
    """A list of `item`; a single item is accepted as a list of one."""
    item: Any
    min_len: int = 1

    def describe(self) -> str:
        return f"{self.item.describe()}, or a list of them"

    def convert(self, v: Any) -> tuple:
        items = v if isinstance(v, tuple) else (v,)
        if len(items) < self.min_len:
            raise ArgError(E_RANGE, f"expected at least {self.min_len} item(s)")
        return tuple(self.item.convert(x) for x in items)


@dataclass(frozen=True)
class Union:
    """The first alternative that accepts the value wins."""
    options: tuple[Any, ...]

    def describe(self) -> str:
        return " or ".join(o.describe() for o in self.options)

    def convert(self, v: Any) -> Any:
        errors = []
        for opt in self.options:
            try:
                return opt.convert(v)
            except ArgError as exc:
                errors.append(exc)
        ranged = [e for e in errors if e.code == E_RANGE]
        if ranged:
            raise ranged[0]
        raise ArgError(E_TYPE, f"expected {self.describe()}, found {_show(v)}")


@dataclass(frozen=True)
class Symbol:
    """A name from a registry (`relu`) or a call of one (`leaky_relu(slope=0.2)`);
    resolved by check.py, which knows the registries. `kind` names it in messages."""
    kind: str

    def describe(self) -> str:
        return f"an {self.kind}" if self.kind[0] in "aeiou" else f"a {self.kind}"

    def convert(self, v: Any) -> Any:  # pragma: no cover - check.py resolves symbols
        raise NotImplementedError


class Sym(str):
    """A bare name in value position (as opposed to a quoted string)."""


@dataclass(frozen=True)
class Param:
    name: str
    type: Any
    default: Any = None
    required: bool = False
    positional: bool = False
    doc: str = ""
    flag: bool = False  # a bare name sets it to true, as in `restore_best`
    aliases: tuple[str, ...] = ()


def P(name: str, type: Any, default: Any = None, doc: str = "", *, required: bool = False,
      positional: bool = False) -> Param:
    """Shorthand for a parameter row."""
    return Param(name, type, default, required, positional, doc, flag=isinstance(type, Bool))


@dataclass(frozen=True)
class Entry:
    """One row of a registry: a named thing and its parameters."""
    name: str
    params: tuple[Param, ...] = ()
    doc: str = ""
    aliases: tuple[str, ...] = ()
    variadic: Param | None = None  # takes any number of extra positionals
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    @property
    def positionals(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.positional)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params if not p.required}


class Registry:
    """Rows by name and by alias, in declaration order."""

    def __init__(self, kind: str, entries: Sequence[Entry]) -> None:
        self.kind = kind
        self.entries = tuple(entries)
        self._by_name: dict[str, Entry] = {}
        for e in entries:
            for n in (e.name, *e.aliases):
                assert n not in self._by_name, f"duplicate {kind} `{n}`"
                self._by_name[n] = e

    def get(self, name: str) -> Entry | None:
        return self._by_name.get(name)

    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    def __iter__(self):
        return iter(self.entries)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name


def _numeric_nested(v: tuple) -> tuple:
    out: list[tuple | float] = []
    for x in v:
        if isinstance(x, tuple):
            out.append(_numeric_nested(x))
        elif isinstance(x, bool) or not isinstance(x, (int, float)):
            raise ArgError(E_TYPE, f"expected a list of numbers, found {_show(x)} in it")
        elif not math.isfinite(_as_float(x)):
            raise ArgError(E_RANGE, f"expected finite numbers, found {_show_huge(x)} in it")
        else:
            out.append(float(x))
    return tuple(out)


def _as_float(v: int | float) -> float:
    """`float(v)`, but an integer too large for a float (400 nines) is ±inf, not an OverflowError."""
    try:
        return float(v)
    except OverflowError:
        return math.inf if v > 0 else -math.inf


def _show_huge(v: int | float) -> str:
    if isinstance(v, int) and len(str(abs(v))) > 20:
        return f"a number with {len(str(abs(v))):,} digits"
    return f"`{v}`"


def _show(v: Any) -> str:
    if isinstance(v, bool):
        return f"`{'true' if v else 'false'}`"
    if isinstance(v, Sym):
        return f"the name `{v}`"
    if isinstance(v, str):
        return f"the string `\"{v}\"`"
    if isinstance(v, tuple):
        return "a list"
    if isinstance(v, Callish):
        return f"`{v.name}(...)`"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return f"`{v:g}`" if "e" in f"{v:g}" else f"`{v}`"
    return f"`{v}`"


@dataclass(frozen=True)
class Callish:
    """A call in value position, handed to converters that do not expect one."""
    name: str


def _fmt(x: float) -> str:
    if isinstance(x, int) and not isinstance(x, bool):
        return f"{x:,}"  # exactly: a seed's limit is 9,223,372,036,854,775,807, not 9.22337e+18
    if float(x).is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:g}"


def _range_text(ge, gt, le, lt) -> str:
    parts = []
    if ge is not None:
        parts.append(f"≥ {_fmt(ge)}")
    if gt is not None:
        parts.append(f"> {_fmt(gt)}")
    if le is not None:
        parts.append(f"≤ {_fmt(le)}")
    if lt is not None:
        parts.append(f"< {_fmt(lt)}")
    return (" " + " and ".join(parts)) if parts else ""


def _check_range(v, ge, gt, le, lt) -> None:
    bad = ((ge is not None and v < ge) or (gt is not None and v <= gt)
           or (le is not None and v > le) or (lt is not None and v >= lt))
    if bad:
        raise ArgError(E_RANGE, f"`{_fmt(v)}` is out of range: must be" + _range_text(ge, gt, le, lt))


# A cross-parameter check: (bound params, names given explicitly) -> None or raise ArgError.
Check = Callable[[Mapping[str, Any], set], None]


@dataclass(frozen=True)
class Dims:
    """One whole number per spatial axis of a window (`kernel=[3, 5]`: height 3, width 5);
    a single number stands for every axis (`kernel=3` is 3×3). Converted to a tuple of `n`."""
    n: int
    min: int = 1

    def describe(self) -> str:
        one = "a whole number" + _range_text(self.min, None, None, None)
        return one if self.n == 1 else f"{one}, or a list of {self.n} of them"

    def convert(self, v: Any) -> tuple[int, ...]:
        item = Int(min=self.min)
        if not isinstance(v, tuple):
            return (item.convert(v),) * self.n
        if len(v) != self.n:
            axes = "one number" if self.n == 1 else f"{self.n} numbers, one per axis"
            eg = "" if self.n == 1 else f", or {self.n}, as in `[{', '.join(map(str, range(3, 3 + self.n)))}]`"
            raise ArgError(E_TYPE, f"expected {axes}, found a list of {len(v)}",
                           f"write one number{'' if self.n == 1 else ' for every axis'}, as in `3`{eg}")
        return tuple(item.convert(x) for x in v)
