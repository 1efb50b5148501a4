"""Sweeps: `lr=sweep(1e-3, 1e-2, 1e-1)` declares values to try; every combination of the
declared axes (a grid) is one model. Pure Python, part of the front end.

    optimizer sgd lr=sweep(0.01, 0.1, 1) momentum=sweep(0, 0.9)   # 6 models
    optimizer adam lr=sweep_log(1e-4, 1e-1, n=16)                 # 16 random rates
    seed sweep(0, 1, 2, 3, 4)                                     # an ensemble of 5

`expand` turns a spec with sweeps into one plain spec per model (the sweep replaced by a
number), each checked as usual. An axis is *traced* when its values only change numbers
that the lowered program takes as arguments (learning rate, momentum, penalties, drop
probability, augmentation strengths, schedule constants, seed): such models share one
vmapped program. Other axes (units, batch size, ...) change the program, so each of
their values gets its own.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
import zlib
from dataclasses import dataclass
from typing import Any, Iterator

from nnspec import ir
from nnspec.diagnostics import Diagnostic, error
from nnspec.layers import ACTIVATIONS, LAYERS
from nnspec.source import Span

SWEEPS = ("sweep", "sweep_log", "sweep_uniform")
MAX_MODELS = 4096

# Parameters whose values are traced by the lowered program (see lower.Model.hparams,
# lower.optimizer_hparams and lower.TRACED_SCHEDULE_PARAMS).
_TRACED_OPTIMIZER = {"lr", "momentum", "beta1", "beta2", "eps", "rho", "decay", "initial_accumulator",
                     "weight_decay", "clip_norm", "clip_value"}
_TRACED_SCHEDULE = {"initial", "value", "final"}
_TRACED_REGULARIZE = {"l1", "l2", "weight_decay"}
_TRACED_LAYER = ({"drop_prob", "l1", "l2", "beta", "height", "width", "factor"}  # `beta`: sample's; the rest: augmentation's
                 | {p.name for a in ACTIVATIONS for p in a.params if p.name != "approximate"})
# A recurrent layer's dropout decides whether its program draws masks at all: one program per value.
_UNTRACED_IN = {op: {"drop_prob", "recurrent_drop_prob"} for op in ("simple_rnn", "lstm", "gru")}


@dataclass(frozen=True)
class Axis:
    """One swept parameter: its name in tables (`lr`, `h1.drop_prob`), its values, and
    whether models that differ only in it can share a compiled program."""
    name: str
    values: tuple[float | int, ...]
    traced: bool
    span: Span | None


@dataclass(frozen=True)
class Member:
    setting: dict[str, float | int]  # axis name -> value
    spec: ir.Spec


class SweepError(Exception):
    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__(diagnostics[0].message)
        self.diagnostics = diagnostics


def _sites(spec: ir.Spec) -> Iterator[tuple[ir.Call, str, bool]]:
    """Every sweep call in the spec: (call, axis name, traced)."""
    def in_args(args: tuple[ir.Arg, ...], positional: tuple[str, ...], prefix: str, traced: set[str] | frozenset[str],
                inner_traced: set[str] | frozenset[str] = frozenset()) -> Iterator[tuple[ir.Call, str, bool]]:
        pos = list(positional)
        for arg in args:
            key = arg.key if arg.key is not None else (pos.pop(0) if pos else "?")
            v = arg.value
            if isinstance(v, ir.Call) and v.name in SWEEPS:
                yield v, f"{prefix}{key}", key in traced
            elif isinstance(v, ir.Call):  # a schedule, an activation or an initializer
                for call, name, tr in in_args(v.args, (), f"{prefix}{key}.", inner_traced):
                    yield call, name, tr and key in traced | {"activation"}
    if spec.optimizer is not None:
        yield from in_args(spec.optimizer.args, ("optimizer",), "", _TRACED_OPTIMIZER, _TRACED_SCHEDULE)
    if spec.regularize is not None:
        yield from in_args(spec.regularize.args, (), "regularize.", _TRACED_REGULARIZE)
    if spec.loss is not None:
        yield from in_args(spec.loss.args, ("loss",), "loss.", set())
    for head in spec.losses.heads if spec.losses is not None else ():  # `loss { NAME: ... }`
        yield from in_args(head.args, ("loss",), f"loss.{head.name}.", set())
    if spec.model is not None:
        blocks = {b.name: b for b in spec.blocks}  # a use of a block: its parameters, in order
        for node in spec.model.nodes:
            entry = LAYERS.get(node.op)
            positional = tuple(p.name for p in entry.positionals) if entry else tuple(
                a.key or getattr(a.value, "name", "?") for a in blocks[node.op].params) if node.op in blocks else ()
            traced = _TRACED_LAYER - _UNTRACED_IN.get(node.op, set())
            yield from in_args(node.args, positional, f"{node.name}.", traced, traced)
    if spec.train is not None:
        for d in spec.train.statements:
            traced = {"value"} if d.keyword == "seed" else set()
            for call, name, tr in in_args(d.args, ("value" if d.keyword == "seed" else "source",), f"{d.keyword}.", traced):
                yield call, "seed" if d.keyword == "seed" else name, tr


def _values(call: ir.Call, name: str) -> tuple[float | int, ...]:
    """The values a sweep call stands for; raises SweepError with a located diagnostic."""
    def bad(message: str, help: str) -> SweepError:
        return SweepError([error("E312", message, call.span, "", help=help)])
    nums = []
    keys = {}
    for arg in call.args:
        if not isinstance(arg.value, ir.Number):
            raise bad(f"`{call.name}` takes numbers", f"write the values to try, as in `{call.name}(0.01, 0.1)`"
                      if call.name == "sweep" else f"write `{call.name}(LOW, HIGH, n=COUNT)`")
        if arg.key is None:
            nums.append(arg.value.value)
        else:
            keys[arg.key] = arg.value.value
    if call.name == "sweep":
        if keys or not nums:
            raise bad("`sweep` takes the values to try", "write them in order, as in `sweep(0.01, 0.1, 1)`")
        if len(set(nums)) != len(nums):
            raise bad("`sweep` lists a value twice", "list each value once")
        return tuple(nums)
    if len(nums) != 2 or set(keys) != {"n"}:
        raise bad(f"`{call.name}` needs a range and a count", f"write `{call.name}(LOW, HIGH, n=COUNT)`, as in "
                  f"`{call.name}(1e-4, 1e-1, n=16)`")
    try:
        low, high, n = float(nums[0]), float(nums[1]), keys["n"]
    except OverflowError:  # an integer with hundreds of digits
        raise bad(f"the range of `{call.name}` is too large for a float", "write the ends as numbers such as `1e-4`") from None
    if not (isinstance(n, int) and n >= 1):
        raise bad(f"`n` must be a whole number ≥ 1, found `{n}`", "write how many values to draw, as in `n=16`")
    if n > MAX_MODELS:  # refuse before drawing: `n=1000000000` would take minutes and gigabytes
        raise SweepError([error("E313", f"the sweep has {n:,} models, more than {MAX_MODELS:,}", call.span, "",
                                help="try fewer values, or sweep fewer parameters at once")])
    if not low < high:
        raise bad(f"the range of `{call.name}` is empty ({low:g} is not below {high:g})", "write the lower end first")
    if call.name == "sweep_log" and low <= 0:
        raise bad("`sweep_log` needs a range of positive numbers", "use `sweep_uniform` for ranges that reach 0")
    rng = random.Random(zlib.crc32(name.encode()))  # the same draws every time
    if call.name == "sweep_log":
        draws = [math.exp(rng.uniform(math.log(low), math.log(high))) for _ in range(n)]
    else:
        draws = [rng.uniform(low, high) for _ in range(n)]
    return tuple(sorted(float(f"{d:.6g}") for d in draws))


def show(value: float | int) -> str:
    """A swept value for notes and tables: `0.001`, `64`; an integer past a float's range
    (hundreds of digits) by its size, as `format(v, "g")` would raise OverflowError."""
    if isinstance(value, int) and not -10**16 < value < 10**16:
        return f"a {len(str(abs(value))):,}-digit integer" if abs(value) < 10**4000 else "an integer past 10^4000"
    return f"{value:g}"


def axes(spec: ir.Spec) -> list[tuple[Axis, ir.Call]]:
    """The sweep axes of a spec, in source order; raises SweepError for malformed ones."""
    out: list[tuple[Axis, ir.Call]] = []
    errors: list[Diagnostic] = []
    for let in spec.lets:
        for call in sweep_calls(let.value):
            errors.append(error("E313", f"`{call.name}` cannot be stored in a constant", call.span, "",
                                help=f"write `{call.name}(...)` where the value is used"))
    names: set[str] = set()
    for call, name, traced in _sites(spec):
        try:
            values = _values(call, name)
        except SweepError as exc:
            errors.extend(exc.diagnostics)
            continue
        if name in names:
            name = f"{name}@{call.span.start if call.span else len(out)}"
        names.add(name)
        out.append((Axis(name, values, traced, call.span), call))
    if errors:
        raise SweepError(errors)
    out.sort(key=lambda pair: pair[0].span.start if pair[0].span else 0)  # source order
    total = math.prod(len(a.values) for a, _ in out) if out else 1
    if total > MAX_MODELS:
        raise SweepError([error("E313", f"the sweep has {total:,} models, more than {MAX_MODELS:,}",
                                out[0][0].span, "", help="try fewer values, or sweep fewer parameters at once")])
    return out


def sweep_calls(v: ir.Value) -> Iterator[ir.Call]:
    """Every `sweep(...)`-like call inside a value, however deeply nested."""
    if isinstance(v, ir.Call):
        if v.name in SWEEPS:
            yield v
        for a in v.args:
            yield from sweep_calls(a.value)
    elif isinstance(v, ir.List):
        for x in v.items:
            yield from sweep_calls(x)


def expand(spec: ir.Spec, found: list[tuple[Axis, ir.Call]]) -> list[Member]:
    """One plain spec per combination of the axes' values (the first axis varies slowest)."""
    members = []
    along = _paths_to(spec, {id(call) for _, call in found})
    for combo in itertools.product(*(a.values for a, _ in found)):
        replace = {id(call): ir.Number(value, repr(value), call.span) for (_, call), value in zip(found, combo)}
        members.append(Member({a.name: v for (a, _), v in zip(found, combo)}, _substitute(spec, replace, along)))
    return members


def first_values(spec: ir.Spec) -> ir.Spec:
    """The spec with each sweep call replaced by its first number, for checking the rest of
    a spec whose sweeps are malformed or too large (a call without a number stays)."""
    replace = {}
    for call, _, _ in _sites(spec):
        first = next((a.value for a in call.args if isinstance(a.value, ir.Number)), None)
        if first is not None:
            replace[id(call)] = dataclasses.replace(first, span=call.span)
    return _substitute(spec, replace, _paths_to(spec, set(replace)))


def _children(node: Any) -> Iterator[Any]:
    if isinstance(node, tuple):
        yield from node
    elif dataclasses.is_dataclass(node) and not isinstance(node, type):
        for f in dataclasses.fields(node):
            yield getattr(node, f.name)


def _paths_to(spec: ir.Spec, targets: set[int]) -> set[int]:
    """The ids of the nodes (and tuples) that hold one of `targets`, found in one walk."""
    along: set[int] = set()

    def walk(node: Any) -> bool:
        hit = id(node) in targets
        for child in _children(node):
            hit = walk(child) or hit
        if hit:
            along.add(id(node))
        return hit
    walk(spec)
    return along


def _substitute(node: Any, replace: dict[int, Any], along: set[int]) -> Any:
    """`node` with `replace`d nodes swapped in; only the nodes `along` the way to them are
    rebuilt, so a model of a 4,096-model sweep costs its sweeps' depth, not the spec's size."""
    if id(node) in replace:
        return replace[id(node)]
    if id(node) not in along:
        return node
    if isinstance(node, tuple):
        return tuple(_substitute(x, replace, along) for x in node)
    changes = {f.name: _substitute(getattr(node, f.name), replace, along) for f in dataclasses.fields(node)
               if id(getattr(node, f.name)) in along}
    return dataclasses.replace(node, **changes)
