"""check(spec) -> Program: resolve names against the registries, bind and range-check
arguments, infer shapes, and check that loss, output, metrics and data agree.

Every problem becomes a Diagnostic; all of them are collected, then raised at once.
The passes run in order (PASSES), each adding to one shared `_Checker`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from typing import Any, Callable, Iterable, Mapping

from nnspec import ir
from nnspec import blocks, columns, graph
from nnspec.checked import (EarlyStop, added_losses, Fn, Head, Input, Layer, LossProgram, MetricProgram, ModelProgram,
                            OptimizerProgram, Program, Regularization, Sweep, TrainProgram, is_bias)
from nnspec.datasets import DATASETS, SOURCES, DataSource, classes_of, features_of, input_of, labels_of, vocab_of
from nnspec.diagnostics import Diagnostic, NNSpecError, error, warning
from nnspec.layers import ACTIVATIONS, INITIALIZERS, LAYERS, ShapeError, param_shapes, show_shape
from nnspec.layers import out_shape as layer_out_shape
from nnspec.losses import LOSSES, METRICS, metric_key
from nnspec.optim import OPTIMIZERS, SCHEDULES
from nnspec.params import (ArgError, Bool, Callish, Choice, Entry, Float, Int, ListOf, P, Param,
                           Registry, Str, Sym, Symbol, Union, Word)
from nnspec.source import Source, Span
from nnspec.suggest import closest, did_you_mean, one_of, plural

# layer arguments that only rows with weights take (nnspec/layers/__init__.py's `freezable`)
_WEIGHTS_ONLY = ("trainable", "lr_mult", "bias_lr_mult")

SYMBOLS: dict[str, Registry] = {
    "activation": ACTIVATIONS, "initializer": INITIALIZERS, "schedule": SCHEDULES,
    "metric": METRICS, "data source": SOURCES,
}

_Word = Word  # a bare name such as `monitor=val_loss`; validated by a later pass


class _Column(Word):
    """A column's name: bare (`color`) or quoted (`"home city"`)."""

    def describe(self) -> str:
        return "a column name"

    def convert(self, v: Any) -> str:
        if not isinstance(v, str):
            raise ArgError("E103", f"expected a column name, found {_describe(v)}")
        return str(v)


class _Category(Word):
    """One category in a declared vocabulary: a name, a string or a number."""

    def describe(self) -> str:
        return "a category: a name, a string or a number"

    def convert(self, v: Any) -> str:
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise ArgError("E103", f"expected a category, found {_describe(v)}")
        return columns.category(v if isinstance(v, str) else repr(float(v)))


_SPLIT = {"val": "validation", "test": "test"}


def _arg_span(d: ir.Directive, key: str) -> Span | None:
    """The span of `d`'s argument `key=...`, None if it has none."""
    return next((a.span for a in d.args if a.key == key), None)


def _describe(v: Any) -> str:
    from nnspec.params import _show
    return _show(v)


TRAIN = Registry("train setting", [
    Entry("data", (Param("source", Symbol("data source"), None, True, True,
                         "`builtin(\"NAME\", ...)`, `csv(\"PATH\", target=...)`, `npz(\"PATH\")`, "
                         "`jsonl`, `parquet`, `npy` or `idx`; `train=` names it too", aliases=("train",)),
                   P("val", Symbol("data source"), None, "a file of validation examples, instead of `split val=`"),
                   P("test", Symbol("data source"), None, "a file of test examples, instead of `split test=`")),
          doc="where the examples come from"),
    Entry("split", (P("val", Float(ge=0, lt=1), 0.0, "fraction held out for validation"),
                    P("test", Float(ge=0, lt=1), 0.0, "fraction held out for the final test"),
                    P("stratify", Bool(), False, "cut the fractions within each class, so each part has "
                                                 "the classes in the data's proportions"),
                    P("column", Str(), None, "a CSV column saying `train`, `val` or `test` on each row, "
                                             "instead of fractions")),
          doc="how the data is divided into train, validation and test"),
    Entry("batch", (P("size", Union((Int(min=1), Choice(("all",)))), required=True, positional=True,
                      doc="examples per gradient step: `1` (pure SGD), `B` (mini-batch) or `all`"),),
          doc="mini-batch size"),
    Entry("epochs", (P("count", Int(min=1), required=True, positional=True, doc="passes over the training data"),),
          doc="how long to train"),
    Entry("steps", (P("count", Int(min=1, max=2**31 - 1), required=True, positional=True,
                      doc="gradient steps to train for (Caffe's `max_iter`); the last epoch ends part way"),),
          doc="how long to train, in gradient steps instead of epochs"),
    Entry("early_stop", (P("monitor", _Word(), "val_loss", "the metric to watch, as in `val_loss`"),
                         P("mode", Choice(("auto", "min", "max")), "auto", "whether lower or higher is better"),
                         P("patience", Int(min=0), 5, "epochs without improvement before stopping"),
                         P("min_delta", Float(ge=0), 0.0, "smallest change that counts as improvement"),
                         P("restore_best", Bool(), False, "end with the best epoch's weights")),
          doc="stop when the monitored metric stops improving"),
    Entry("seed", (P("value", Int(min=0, max=2**63 - 1), required=True, positional=True, doc="seed for every random choice"),),
          doc="makes runs repeatable"),
    Entry("start_from", (P("run", Str(), required=True, positional=True,
                           doc="a finished run's folder, relative to the spec's folder"),
                         P("optimizer", Bool(), False,
                           "also go on with the run's optimizer state (Adam's moments, its step count), as a "
                           "second `fit` of the same model does; it needs the same layers and optimizer")),
          doc="start from a finished run's final weights, layer by layer name (a second phase, fine-tuning)"),
    Entry("metrics", (), variadic=P("metric", Symbol("metric")), doc="what to report besides the loss"),
    Entry("target", (P("of", Choice(("input",)), required=True, positional=True,
                       doc="`input`: the targets are the inputs themselves, for an autoencoder"),),
          doc="what the model learns to output, when it is not the data's targets"),
    Entry("standardize", (P("enabled", Bool(), True, positional=True, doc="`false` to turn it off"),),
          doc="rescale each feature to mean 0 and standard deviation 1, using training statistics"),
    Entry("divergence", (P("factor", Union((Float(gt=1), Choice(("off",)))), required=True, positional=True,
                           doc="stop (E404) once an epoch's mean training loss exceeds this many times "
                               "the initial loss; `off` stops only for NaN or infinity"),),
          doc="when a run counts as diverged"),
    Entry("devices", (P("count", Union((Int(min=1), Choice(("all",)))), required=True, positional=True,
                        doc="how many devices split each batch: `N`, or `all` that JAX sees"),
                      P("shard", Choice(("none", "params")), "none",
                        doc="`params`: each weight array and its optimizer state split over the devices too, "
                            "gathered where a step needs it (for models too large for one device); `none`: "
                            "a copy on every device")),
          doc="data parallelism: each batch split over several devices (docs/scale.md)"),
    Entry("precision", (P("dtype", Choice(("float32", "bf16")), required=True, positional=True,
                          doc="`bf16`: compute in bfloat16, keeping float32 weights; `float32`: everything in float32"),),
          doc="the number format of the forward and backward pass"),
    Entry("categorical", (P("unknown", Choice(columns.UNKNOWN), "error",
                            "a category the training split lacks: `error` (located), or `slot`, one more "
                            "column for every unseen category"),),
          variadic=P("column", _Column()),
          doc="feature columns of categories, one-hot encoded with a vocabulary of the training split; "
              "`NAME=[A, B, ...]` lists a column's categories instead (docs/language.md)"),
    Entry("missing", (P("fill", Union((Choice(columns.STRATEGIES), Float(), Str())), "error", positional=True,
                        doc="an empty feature cell: `error`, `drop` (the row), `mean`, `median`, `mode` "
                            "(of the training split) or a constant"),),
          doc="what fills empty cells: `missing FILL` for every feature column, `NAME=FILL` for one"),
    Entry("sample_weight", (P("column", Str(), required=True, positional=True,
                              doc="a CSV column holding each example's weight in the loss, a number ≥ 0; "
                                  "read as a weight, never as a feature"),),
          doc="weigh each example's loss by a column of the data (Keras's `sample_weight`); the metrics "
              "count every example alike"),
    Entry("stream", (P("window", Union((Int(min=1), Choice(("auto",)))), "auto", positional=True,
                       doc="the most examples read at once, a multiple of the batch size (three batches at least); `auto`: up to 32 MiB of them"),),
          doc="read the training examples from their `.npy` file a window at a time, for data larger than "
              "memory (docs/data.md)"),
    Entry("history", (P("of", Choice(("epochs", "steps")), required=True, positional=True,
                        doc="`steps`: every gradient step's training loss too (`steps.csv`); `epochs`: one row an epoch"),),
          doc="what the run records of its training loss"),
])

# What follows an input's shape: `input tokens[20] int vocab=1000`.
INPUT = Entry("input", (
    P("type", Choice(("float", "int")), "float", "`int` for token ids (read by `embedding`)", positional=True),
    P("vocab", Int(min=1), None, "for `int`: how many token ids there are, 0..vocab-1"),
), doc="an input's type")

REGULARIZE = Entry("regularize", (
    P("l1", Float(ge=0), 0.0, "λ₁ in λ₁·Σ|w| added to the loss"),
    P("l2", Float(ge=0), 0.0, "λ₂ in λ₂·Σw² added to the loss"),
    P("weight_decay", Float(ge=0), 0.0, "decoupled weight decay, applied by the optimizer"),
    P("include_bias", Bool(), False, "penalize biases too"),
), doc="weight penalties for the whole model")

# Bytes per parameter-sized array (float32) and how many such arrays training keeps:
# the parameters, their gradients, and the optimizer's slots.
_BYTES = 4


def physical_memory() -> int | None:
    """Bytes of RAM on this machine, if the OS says."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


# How deep a value may nest lists once constants are substituted (as brackets in the text).
MAX_VALUE_DEPTH = 100


class _Checker:
    def __init__(self, spec: ir.Spec, source: Source | None, memory_budget: int | None) -> None:
        self.spec = spec
        self.source = source
        self.budget = memory_budget
        self.diags: list[Diagnostic] = []
        self.lets: dict[str, ir.Let] = {}
        self.used_lets: set[str] = set()
        self.model: ModelProgram | None = None
        # With errors in the model but a known output: its layers whose shapes are known
        # (some without their input's), for the checks that only need the output. Never lowered.
        self.outline: ModelProgram | None = None
        self.loss: LossProgram | None = None
        # a `loss { }` block's lines, checked: (output, loss, weight, metrics, line); shapes
        # come from the model in check_agreement
        self.head_lines: list[tuple[str, LossProgram, float, tuple[MetricProgram, ...], Span | None]] = []
        self.heads: tuple[Head, ...] = ()
        self.optimizer: OptimizerProgram | None = None
        self.reg = Regularization()
        self.train: TrainProgram | None = None
        self.bound_source: DataSource | None = None  # the `data` line's, once bound
        self.targets_are_inputs = False  # the train block says `target input`
        self.reg_span: dict[str, Span | None] = {}
        self.expansion: blocks.Expansion | None = None  # the model's uses of blocks, expanded
        # shape errors whose help declares the model's input anew: (diagnostic index, error),
        # fitted to the built-in data once the train block is known (check_input_fixes)
        self.declared: list[tuple[int, ShapeError]] = []

    # -------------------------------------------------------------- reporting
    def err(self, *args: Any, **kw: Any) -> None:
        self.diags.append(error(*args, **kw))

    def warn(self, *args: Any, **kw: Any) -> None:
        self.diags.append(warning(*args, **kw))

    # ----------------------------------------------------------------- values
    def pyvalue(self, v: ir.Value, accepts_words: bool, seen: frozenset = frozenset(), depth: int = 0) -> Any:
        """IR value -> Python value for a param type; raises ArgError (with span)."""
        if isinstance(v, ir.Number):
            return v.value
        if isinstance(v, (ir.String, ir.Bool)):
            return v.value
        if isinstance(v, ir.List):
            if depth >= MAX_VALUE_DEPTH:  # `let a2 = [a1]`, `let a3 = [a2]`, ...: deeper than any bracket
                raise ArgError("E025", f"lists nested more than {MAX_VALUE_DEPTH} levels deep through constants",
                               f"nest lists at most {MAX_VALUE_DEPTH} levels deep", v.span)
            return tuple(self.pyvalue(x, accepts_words, seen, depth + 1) for x in v.items)
        if isinstance(v, ir.Ref):
            # a chain of constants (`let b = a`, `let c = b`, ...) is followed without
            # recursing, into one set (`seen | {name}` at each step copied it: quadratic)
            chain = set(seen)
            while isinstance(v, ir.Ref) and v.name in self.lets:
                if v.name in chain:
                    raise ArgError("E109", f"`{v.name}` is defined in terms of itself",
                                   f"give `{v.name}` a value that does not use `{v.name}`", v.span)
                self.used_lets.add(v.name)
                chain.add(v.name)
                v = self.lets[v.name].value
            if not isinstance(v, ir.Ref):
                return self.pyvalue(v, accepts_words, frozenset(chain), depth)
            if not accepts_words:
                meant = closest(v.name, self.lets)
                if meant is not None:
                    self.used_lets.add(meant)  # no "never used" warning on top of the typo
                raise ArgError("E109", f"unknown constant `{v.name}`",
                               did_you_mean(v.name, self.lets, fallback="define it first with `let "
                                            f"{v.name} = ...`"), v.span)
            return Sym(v.name)
        if isinstance(v, ir.Call):
            return Callish(v.name)
        if isinstance(v, ir.Shaped):
            raise ArgError("E103", f"unexpected `{v.name}[...]` here", "dimensions in `[ ]` only follow an input's name", v.span)
        raise AssertionError(v)  # pragma: no cover

    def convert(self, ptype: Any, v: ir.Value) -> Any:
        if isinstance(ptype, Symbol):
            return self.symbol(ptype.kind, v)
        if isinstance(ptype, Union) and any(isinstance(o, Symbol) for o in ptype.options):
            seen: set[str] = set()
            while isinstance(v, ir.Ref) and v.name in self.lets and v.name not in seen:
                seen.add(v.name)
                self.used_lets.add(v.name)
                v = self.lets[v.name].value
            if isinstance(v, ir.Call) or (isinstance(v, ir.Ref) and v.name not in self.lets):
                sym = next(o for o in ptype.options if isinstance(o, Symbol))
                return self.symbol(sym.kind, v)
            rest = Union(tuple(o for o in ptype.options if not isinstance(o, Symbol)))
            return self.convert(rest, v)
        try:
            return ptype.convert(self.pyvalue(v, _accepts_words(ptype)))
        except ArgError as exc:
            if exc.span is None:
                exc.span = v.span
            raise

    def symbol(self, kind: str, v: ir.Value) -> Fn | None:
        """Resolve `relu` or `leaky_relu(slope=0.2)` against the registry of `kind`."""
        registry = SYMBOLS[kind]
        seen: set[str] = set()
        while isinstance(v, ir.Ref) and v.name in self.lets:  # iteratively: chains may be long
            if v.name in seen:
                raise ArgError("E109", f"`{v.name}` is defined in terms of itself",
                               f"give `{v.name}` a value that does not use `{v.name}`", v.span)
            seen.add(v.name)
            self.used_lets.add(v.name)
            v = self.lets[v.name].value
        args: tuple[ir.Arg, ...]
        if isinstance(v, ir.Ref):
            name, args, name_span = v.name, (), v.span
        elif isinstance(v, ir.Call):
            name, args, name_span = v.name, v.args, v.name_span
        elif isinstance(v, ir.String) and v.value in registry:
            raise ArgError("E103", f"expected {Symbol(kind).describe()}, found the string `\"{v.value}\"`",
                           f"names are written without quotes: `{v.value}`", v.span)
        else:
            raise ArgError("E103", f"expected {Symbol(kind).describe()}, found {_describe(self.pyvalue(v, True))}",
                           f"{plural(kind)} are names such as {one_of(registry.names()[:3])}", v.span)
        entry = registry.get(name)
        if entry is None:
            self.unknown(kind, name, name_span, registry.names())
            return None
        # `builtin("moons", n=500)` passes the dataset's own arguments through
        passthrough = kind == "data source" and entry.name == "builtin"
        params = self.bind(entry, args, v.span, what=f"{kind} `{name}`", extra_ok=passthrough, call=True)
        if params is None:
            return None
        params.pop("__given__")
        return Fn(entry.name, params)

    def written(self, span: Span | None) -> str | None:
        """The source text under `span`, on one line, if there is a source."""
        if self.source is None or span is None:
            return None
        text = self.source.text[span.start:span.end]
        return " ".join(text.split()) or None

    def unknown(self, kind: str, name: str, span: Span | None, names: Iterable[str], *,
                extra: str | None = None, code: str = "E101") -> None:
        names = tuple(names)
        hint = did_you_mean(name, names)
        if hint is None:
            hint = extra or f"known {plural(kind)}: {one_of(names)}"
        if code == "E270":
            self.err(code, f"the model has no layer `{name}` to train as an output", span, "not a layer of the model",
                     help=hint)
            return
        self.err("E101", f"unknown {kind} `{name}`", span, f"not a known {kind}", help=hint)

    # ---------------------------------------------------------------- binding
    def bind(self, entry: Entry, args: Iterable[ir.Arg], span: Span | None, *, what: str,
             extra_ok: bool = False, call: bool = False, head: str = "") -> dict[str, Any] | None:
        """Match arguments to `entry`'s params; fill defaults. None if anything failed.
        With `extra_ok`, unknown keywords are returned under the key `"__extra__"`;
        `call` says the entry is written as a call, `f(...)`, and `head` is the keyword
        written before its name (`loss`), for the helps' examples."""
        ok = True
        given: dict[str, ir.Arg] = {}
        values: dict[str, Any] = {}
        positionals = list(entry.positionals)
        variadic: list[Any] = []
        extra: dict[str, ir.Arg] = {}
        skipped: set[str] = set()
        unknown_keys = False
        for arg in args:
            if arg.key is None:
                flag = self.flag(entry, arg)
                later = self.later_positional(positionals, arg)
                if flag is not None:
                    name = flag
                elif later is not None:
                    # `dense relu`: `relu` is the activation, so the units are missing
                    ok = False
                    first = positionals[0]
                    skipped.add(first.name)
                    del positionals[:positionals.index(later) + 1]
                    self.err("E106", f"missing `{first.name}` for {what}", arg.span,
                             f"this is the `{later.name}`; `{first.name}` comes before it",
                             help=f"write `{entry.name} {first.name.upper()} {arg.value.name}`")  # type: ignore[union-attr]
                    continue
                elif positionals:
                    name = positionals.pop(0).name
                    while name in given and positionals:
                        name = positionals.pop(0).name
                elif entry.variadic is not None:
                    try:
                        variadic.append((self.convert(entry.variadic.type, arg.value), arg))
                    except ArgError as exc:
                        ok = self.arg_error(exc, arg) and False
                    continue
                else:
                    ok = False
                    n = len(entry.positionals)
                    takes = f"takes {n} positional argument{'s' if n != 1 else ''}" if n else "takes no positional arguments"
                    self.err("E107", f"unexpected argument to {what}", arg.span, f"{what} {takes}",
                             help=self.usage_help(entry, arg, call=call, head=head))
                    continue
            else:
                name = arg.key
                p = entry.param(name)
                if p is None:
                    alias = next((q for q in entry.params if name in q.aliases), None)
                    if alias is not None:
                        name = alias.name
                    elif extra_ok:
                        extra[name] = arg
                        continue
                    elif name in _WEIGHTS_ONLY and LAYERS.get(entry.name) is entry:
                        ok = False
                        self.err("E118", f"`{name}` on {what}, which has no weights", arg.key_span or arg.span,
                                 "nothing here to train", help=f"remove `{name}`: it applies to layers with weights "
                                                               "(`dense`, `conv2d`, `embedding`, ...)")
                        continue
                    else:
                        ok = False
                        unknown_keys = True
                        hint = did_you_mean(name, [q.name for q in entry.params])
                        if name == "decay_mult" and LAYERS.get(entry.name) is entry:
                            hint = ("for Caffe's `decay_mult`, write a layer's own `l2=` (added to `regularize l2=`), "
                                    "and `regularize include_bias=true` to decay the biases")
                        if hint is None and len(entry.params) == 1:
                            hint = f"{what} takes `{entry.params[0].name}`: {entry.params[0].doc}"
                        if hint is None:
                            hint = (f"{what} takes {one_of([q.name for q in entry.params])}" if entry.params
                                    else f"{what} takes only values by position, each {entry.variadic.type.describe()}"
                                    if entry.variadic is not None else f"{what} takes no arguments")
                        self.err("E102", f"unknown argument `{name}` for {what}", arg.key_span or arg.span,
                                 "not an argument here", help=hint)
                        continue
            if name in given:
                ok = False
                self.err("E105", f"`{name}` given twice", arg.span, "given again here",
                         secondary=[(given[name].span, "first given here")], help="remove one of them")
                continue
            given[name] = arg
            p = entry.param(name)
            assert p is not None
            if p.flag and arg.key is None and isinstance(arg.value, ir.Ref) and arg.value.name == p.name:
                values[name] = True
                continue
            try:
                values[name] = self.convert(p.type, arg.value)
            except ArgError as exc:
                ok = self.arg_error(exc, arg, p) and False
                continue
            if values[name] is None and isinstance(p.type, (Symbol, Union)):
                ok = False  # an unknown symbol, already reported
        for p in entry.params:
            if p.name in values or p.name in given or p.name in skipped:
                continue
            if p.required and unknown_keys:
                ok = False  # the unknown argument is most likely this one, misnamed
            elif p.required and not (self.targets_are_inputs and p.name in entry.attrs.get("unless_target_input", ())):
                ok = False
                self.err("E106", f"missing `{p.name}` for {what}", span, f"needs `{p.name}`",
                         help=f"`{p.name}`: {p.doc}; write {self.usage(entry, call=call, head=head)}")
            else:
                values[p.name] = self.default(p)
        if not ok:
            return None
        if entry.variadic is not None:
            values[entry.variadic.name + "s"] = tuple(v for v, _ in variadic)
        check: Callable | None = entry.attrs.get("check")
        if check is not None:
            try:
                check(values, set(given))
            except ArgError as exc:
                # point at the arguments the message names, the last one primary
                named = [given[n] for n in re.findall(r"`(\w+)`", exc.message) if n in given]
                if named:
                    self.err(exc.code, exc.message, named[-1].span, "",
                             secondary=[(a.span, "") for a in named[:-1]], help=exc.help)
                else:
                    self.err(exc.code, exc.message, span, "", help=exc.help)
                return None
        if extra_ok:
            values["__extra__"] = extra
        values["__given__"] = given
        return values

    def later_positional(self, positionals: list[Param], arg: ir.Arg) -> Param | None:
        """The positional after the next one that a bare name belongs to, when the next
        one cannot take a name (`dense relu`: `relu` fits `activation`, not `units`)."""
        v = arg.value
        if len(positionals) < 2 or not isinstance(v, ir.Ref) or v.name in self.lets:
            return None
        if _accepts_words(positionals[0].type) or _symbol_kind(positionals[0].type) is not None:
            return None
        for p in positionals[1:]:
            kind = _symbol_kind(p.type)
            if kind is not None and v.name in SYMBOLS[kind]:
                return p
        return None

    def flag(self, entry: Entry, arg: ir.Arg) -> str | None:
        """A bare name that is a boolean parameter of `entry` (`restore_best`)."""
        if isinstance(arg.value, ir.Ref):
            p = entry.param(arg.value.name)
            if p is not None and p.flag:
                return p.name
        return None

    def default(self, p: Param) -> Any:
        if isinstance(p.type, Symbol) and isinstance(p.default, str):
            entry = SYMBOLS[p.type.kind].get(p.default)
            assert entry is not None, p
            return Fn(entry.name, entry.defaults())
        return p.default

    def arg_error(self, exc: ArgError, arg: ir.Arg, p: Param | None = None) -> bool:
        label = {"E103": f"expected {p.type.describe()}" if p is not None and not isinstance(p.type, _Word) else "",
                 "E104": "out of range"}.get(exc.code, "")
        if exc.code == "E109":
            label = "not defined"
        help_ = exc.help
        if help_ is None and p is not None and p.doc and exc.code in ("E103", "E104"):
            help_ = f"`{p.name}`: {p.doc}"
        self.err(exc.code, exc.message, exc.span or arg.span, label, help=help_)
        return False

    def usage(self, entry: Entry, *, call: bool = False, head: str = "") -> str:
        """How to write `entry` with its required arguments: `dense UNITS`, `constant(VALUE)`."""
        return _written(entry, [p for p in entry.params if p.required], call, head)

    def usage_help(self, entry: Entry, arg: ir.Arg | None = None, *, call: bool = False, head: str = "") -> str:
        if arg is not None and isinstance(arg.value, ir.Ref):
            for p in entry.params:
                kind = _symbol_kind(p.type)
                if not p.positional and kind is not None and arg.value.name in SYMBOLS[kind]:
                    return f"name it: `{p.name}={arg.value.name}`"
        names = [p.name for p in entry.params if not p.positional and not p.required]
        tail = f"; other arguments need a name: {one_of(names)}" if names else ""
        if entry.attrs.get("merge"):
            return f"`{entry.name}` takes the names of the nodes it merges, as in `{entry.name} h1 h2`{tail}"
        shown = [p for p in entry.params if p.positional or p.required]
        return f"write {_written(entry, shown, call, head)}{tail}"

    # ----------------------------------------------------------------- passes
    def check_lets(self) -> None:
        last = {let.name: i for i, let in enumerate(self.spec.lets)}  # linear: specs may hold thousands
        for i, let in enumerate(self.spec.lets):
            if let.name in self.lets:
                self.err("E110", f"`{let.name}` is defined twice", let.name_span, "defined again here",
                         secondary=[(self.lets[let.name].name_span, "first defined here")],
                         help="give the second one another name")
                continue
            for ref in _refs(let.value):
                if ref.name not in self.lets and last.get(ref.name, -1) > i:
                    self.err("E109", f"`{ref.name}` is used before it is defined", ref.span, "not defined yet",
                             help=f"define `{ref.name}` above this line")
            self.lets[let.name] = let

    def check_model(self) -> None:
        model = self.spec.model
        if model is None:
            self.err("E112", "no `model` section", _first_line(self.source), "",
                     help="a spec needs `model NAME { input x[N] ... }`")
            return
        inputs = []
        types: dict[str, Input] = {}
        names: dict[str, Span | None] = {}
        shapes: dict[str, tuple[int, ...]] = {}
        for inp in model.inputs:
            dims = []
            for d in inp.shape:
                try:
                    dims.append(Int(min=1).convert(self.pyvalue(d, False)))
                except ArgError as exc:
                    msg = exc.message if exc.code == "E109" else f"input dimensions must be whole numbers ≥ 1, found {_describe(self.pyvalue(d, True))}"
                    self.err("E203" if exc.code != "E109" else "E109", msg, d.span, "", help=exc.help if exc.code == "E109" else "write the number of features, as in `input x[2]`")
            if not inp.shape:
                self.err("E203", f"input `{inp.name}` has no shape", inp.span, "",
                         help=f"write its dimensions, as in `input {inp.name}[2]`")
            kind = self.input_type(inp)
            if len(dims) == len(inp.shape) and dims and kind is not None:
                inputs.append((inp.name, tuple(dims)))
                shapes[inp.name] = tuple(dims)
                types[inp.name] = Input(inp.name, tuple(dims), *kind)
            if inp.name in names:
                self.err("E110", f"`{inp.name}` is defined twice", inp.span, "", secondary=[(names[inp.name], "first defined here")],
                         help="give each input and layer its own name")
            names[inp.name] = inp.span
        if not model.inputs:
            self.err("E204", "the model has no input", model.span, "",
                     help="start the model with `input NAME[SHAPE]`, as in `input x[2]`")
        graph_errors, broken = graph.edges(model)
        self.diags += graph_errors
        outputs = tuple(h.name for h in self.spec.losses.heads) if self.spec.losses is not None else ()
        unused = graph.unused(model, outputs) if not graph_errors else []
        expansion = self.expansion = blocks.expand(self, model, broken)  # uses of blocks -> their layers
        model = expansion.model
        # A node whose shape is unknown (its layer, arguments or input failed) is left out of
        # `shapes`: whatever reads it goes unchecked rather than reporting follow-on errors,
        # while a layer whose output does not depend on its input (`dense 4`) starts afresh.
        layers: list[Layer] = []
        ok = bool(inputs) and len(inputs) == len(model.inputs) and not graph_errors
        for node in expansion.each(self.diags, shapes):
            if node.name in names:
                self.err("E110", f"`{node.name}` is defined twice", node.span, "",
                         secondary=[(names[node.name], "first defined here")],
                         help="give each input and layer its own name")
            names[node.name] = node.span
            entry = LAYERS.get(node.op)
            if entry is None:
                self.unknown_layer(node)
                ok = False
                continue
            params = self.bind(entry, node.args, node.span, what=f"`{node.op}`")
            if params is None:
                ok = False
                continue
            if not node.inputs and model.inputs:  # without any input, E204 above says it once
                self.err("E204", f"`{node.op}` comes before the model's input", node.op_span, "nothing flows into it yet",
                         help="declare `input NAME[SHAPE]` as the model's first line")
            merge = bool(entry.attrs.get("merge"))
            if node.name in broken or not self.arity(node, merge, entry.attrs.get("inputs")) or \
                    not self.tokens(node, entry, params, types):
                ok = False
                continue
            in_shapes = [shapes.get(n) for n in node.inputs]
            in_shape = in_shapes[0] if in_shapes else None
            fits = False
            if in_shapes and all(s is not None for s in in_shapes):  # else nothing to check against: reported already
                try:
                    if merge:
                        pshapes, out = {}, entry.attrs["merge_shape"](params, in_shapes)
                    else:
                        assert in_shape is not None  # every input has a shape
                        pshapes = param_shapes(entry.name, params, in_shape)
                        out = entry.attrs["out_shape"](params, in_shape)
                    fits = True
                except ShapeError as exc:
                    self.shape_error(exc, node, entry, params, in_shapes, layers)
            if not fits:
                ok = False
                out = entry.attrs["out_shape"](params, None)
                if out is not None:  # this layer is wrong, but what it outputs is still known
                    shapes[node.name] = out
                    layers.append(Layer(node.name, entry.name, node.inputs, _public(params), (), out, {}, node.span))
                continue
            assert in_shape is not None  # it fits: every input has a shape
            if "bias_lr_mult" in params["__given__"] and not any(is_bias(n) for n in pshapes):
                self.err("E118", f"`bias_lr_mult` on a `{node.op}` without biases",
                         params["__given__"]["bias_lr_mult"].span, "no bias to multiply the rate of",
                         help="remove `bias_lr_mult`; `lr_mult=` multiplies the rate for all of its weights")
                ok = False
            shapes[node.name] = out
            layers.append(Layer(node.name, entry.name, node.inputs, _public(params), in_shape, out,
                                pshapes, node.span, tuple(in_shapes)))  # type: ignore[arg-type]
        self.diags += unused
        outline = ModelProgram(model.name, tuple(inputs), tuple(layers),
                               tuple(types[n] for n, _ in inputs))
        if ok:
            self.model = outline
        elif model.nodes and model.nodes[-1].name in shapes:
            self.outline = outline  # the output is known: loss and data agreement can still be checked

    def input_type(self, inp: ir.Input) -> tuple[str, int | None] | None:
        """`input x[2]` -> float32; `input tokens[20] int vocab=1000` -> int32 below 1000."""
        if not inp.args:
            return ("float32", None)
        bound = self.bind(INPUT, inp.args, inp.span, what=f"input `{inp.name}`")
        if bound is None:
            return None
        if bound["type"] == "float" and bound["vocab"] is not None:
            self.err("E255", f"`vocab` is for token ids, but input `{inp.name}` holds numbers",
                     bound["__given__"]["vocab"].span, "", help=f"write `input {inp.name}[...] int vocab=N` for token ids")
            return None
        return ("int32", bound["vocab"]) if bound["type"] == "int" else ("float32", None)

    def arity(self, node: ir.Node, merge: bool, exactly: int | None = None) -> bool:
        """A merge reads two or more nodes (`exactly` that many where its row says, as
        `sample` reads a mean and a log-variance); any other layer one."""
        if exactly is not None and len(node.inputs) != exactly:
            found = "none" if not node.inputs else ", ".join(f"`{n}`" for n in node.inputs)
            spans = node.input_spans
            where = spans[exactly] if len(spans) > exactly else node.span
            more = len(node.inputs) > exactly
            self.err("E257", f"`{node.op}` reads {exactly} nodes, the mean and the log-variance, but names "
                             f"{len(node.inputs)} ({found})" if node.inputs else
                     f"`{node.op}` reads {exactly} nodes, the mean and the log-variance, but names none",
                     where, "not read: one too many" if more else "needs a mean and a log-variance",
                     help=f"name the two layers in that order, as in `z: {node.op} mean log_var`")
            return False
        if merge and len(node.inputs) < 2:
            found = "none" if not node.inputs else f"only `{node.inputs[0]}`"
            self.err("E253", f"`{node.op}` merges two or more nodes, but names {found}", node.span, "",
                     help=f"name the nodes it merges, as in `{node.op} h1 h2`")
            return False
        if not merge and len(node.inputs) > 1:
            self.err("E253", f"`{node.op}` reads one node, but names {len(node.inputs)}", node.span, "",
                     help="combine them first with a merge, such as `add h1 h2`")
            return False
        return True

    def tokens(self, node: ir.Node, entry: Entry, params: dict[str, Any], types: Mapping[str, Input]) -> bool:
        """Token ids flow only into `embedding`, and `embedding` reads only token ids; its
        `vocab` comes from the input when the line does not give it (filled into `params`)."""
        declared = {i.name: i.span for i in self.spec.model.inputs}  # type: ignore[union-attr]
        reads_ids = bool(entry.attrs.get("tokens"))
        for i, name in enumerate(node.inputs):
            kind = types.get(name)
            if name in declared and kind is None:
                return False  # the input itself is wrong: reported
            where = node.input_spans[i] if i < len(node.input_spans) else node.op_span
            ids = kind is not None and kind.dtype == "int32"
            if ids and not reads_ids:
                self.err("E254", f"`{node.op}` cannot read the token ids of `{name}`", where,
                         "reads token ids", secondary=[(declared[name], "an `int` input")],
                         help=f"token ids are not numbers to compute with: read `{name}` with `embedding DIM` first")
                return False
            if reads_ids and not ids:
                if name in declared:
                    dims = ", ".join(map(str, kind.shape)) if kind is not None else "STEPS"
                    self.err("E254", f"`{node.op}` reads token ids, but `{name}` is an input of numbers", where,
                             "numbers, not token ids" if i < len(node.input_spans) else "expects token ids",
                             secondary=[(declared[name], "not an `int` input")],
                             help=f"declare it `input {name}[{dims}] int vocab=N`, N the number of token ids")
                else:
                    layer = next((n for n in self.spec.model.nodes if n.name == name), None)  # type: ignore[union-attr]
                    what = f"`{name}` is a layer" if layer is None or layer.labelled else f"its input is a `{layer.op}` layer"
                    ints = [t.name for t in types.values() if t.dtype == "int32"]
                    self.err("E254", f"`{node.op}` reads token ids, but {what}", where, "expects token ids",
                             secondary=[(layer.span, "outputs numbers")] if layer is not None else [],
                             help=f"read an `int` input instead, as in `{node.op} ... from {ints[0]}`" if ints else
                             f"read an `int` input, declared as `input NAME[STEPS] int vocab=N`, with `{node.op} ... from NAME`")
                return False
        if not entry.attrs.get("tokens"):
            return True
        kind = types[node.inputs[0]]
        given = params["__given__"]
        if params["vocab"] is None:
            if kind.vocab is None:
                self.err("E255", f"`{node.op}` needs the vocabulary size", node.span, "",
                         help=f"give it on the input, `input {kind.name}[...] int vocab=N`, or here, `{node.op} DIM vocab=N`")
                return False
            params["vocab"] = kind.vocab
        elif kind.vocab is not None and params["vocab"] < kind.vocab:
            self.err("E255", f"`{node.op}` has {params['vocab']} vectors, but input `{kind.name}` has token ids up to "
                             f"{kind.vocab - 1}", given["vocab"].span, "",
                     help=f"drop `vocab=` to take the input's `vocab={kind.vocab}`")
            return False
        if params["padding"] is not None and params["padding"] >= params["vocab"]:
            self.err("E255", f"`padding={params['padding']}` is not a token id: the vocabulary is 0..{params['vocab'] - 1}",
                     given["padding"].span, "", help="the padding token is usually `padding=0`")
            return False
        return True

    def shape_error(self, exc: ShapeError, node: ir.Node, entry: Entry, params: dict[str, Any],
                    in_shapes: list[Any], layers: list[Layer]) -> None:
        given = params["__given__"]
        if exc.arg is not None and exc.arg.startswith("input:"):
            i = int(exc.arg.split(":")[1])
            spans = node.input_spans
            span = spans[i] if i < len(spans) else node.span
            first = spans[0] if spans else None
            self.err(exc.code, exc.message, span, f"`{node.inputs[i]}` has shape {show_shape(in_shapes[i])}",
                     secondary=[(first, f"`{node.inputs[0]}` has shape {show_shape(in_shapes[0])}")] if first else [],
                     help=exc.help)
            return
        span = given[exc.arg].span if exc.arg in given else node.span
        in_shape = in_shapes[0] if in_shapes else None
        assert in_shape is not None  # called only when every input has a shape
        made = {layer.name: layer for layer in layers if layer.in_shape}  # the layers above that fit
        secondary, help_ = self.fix_from_producer(exc, node, entry, params, made)
        self.err(exc.code, exc.message, span, f"input shape is {show_shape(in_shape)}", secondary=secondary,
                 help=help_)

    def fix_from_producer(self, exc: ShapeError, node: ir.Node, entry: Entry, params: dict[str, Any],
                          made: Mapping[str, Layer]) -> tuple[list[tuple[Span | None, str]], str | None]:
        """A shape error's help, worded for the node that feeds the layer: remove the
        `flatten` that flattened what it reads, turn a switch of the layer above
        (`sequences=true`) that makes its output fit, or get the shape it wants by declaring
        the model's input so or by a `reshape`; each only where the layer would then fit."""
        if entry.attrs.get("merge"):  # its `axis`: nothing above it is to blame
            return [], exc.helped()
        source = node.inputs[0]
        producer = made.get(source)
        if producer is not None and producer.op in ("flatten", "reshape") and _fits(entry, params, producer.in_shape):
            return ([(producer.span, f"makes {show_shape(producer.out_shape)} of {show_shape(producer.in_shape)}")],
                    f"remove this `{producer.op}`: `{node.op}` takes its input, {show_shape(producer.in_shape)}, as it is")
        switch = self.switch(producer, entry, params) if producer is not None else None
        if switch is not None:
            fix, where = switch
            rest = f"; or {exc.help}" if exc.help and exc.want is None else ""
            return [where], f"{fix}{rest}"
        model = self.spec.model
        assert model is not None
        if exc.want is None or not _fits(entry, params, exc.want):
            return [], exc.helped()
        dims = ", ".join(map(str, exc.want))
        readers = sum(source in n.inputs for n in model.nodes)
        if any(i.name == source for i in model.inputs) and readers == 1:
            self.declared.append((len(self.diags), exc))
            return [], exc.helped(f"declare `input {source}[{dims}]`")
        return [], exc.helped(f"put `reshape [{dims}]` before it")

    def switch(self, producer: Layer, entry: Entry, params: dict[str, Any]) -> tuple[str, tuple[Span | None, str]] | None:
        """A true/false argument of `producer` that, turned, gives an output this layer
        takes (`sequences`, `per_step`): how to write it, and where."""
        row = LAYERS.get(producer.op)
        # the line as written, for the argument's own span; a layer of a block has none here
        node = next((n for n in self.spec.model.nodes if n.name == producer.name), None)  # type: ignore[union-attr]
        if row is None:
            return None
        for q in row.params:
            if not isinstance(q.type, Bool) or not isinstance(producer.params.get(q.name), bool):
                continue
            turned = {**producer.params, q.name: not producer.params[q.name]}
            try:
                out = layer_out_shape(producer.op, turned, producer.in_shape)
            except ShapeError:
                continue
            if out is None or out == producer.out_shape or not _fits(entry, params, out):
                continue
            arg = next((a for a in node.args if a.key == q.name or
                        (a.key is None and isinstance(a.value, ir.Ref) and a.value.name == q.name)), None) if node else None
            label = f"outputs {show_shape(producer.out_shape)}"
            if arg is not None or (node is None and producer.params[q.name] != q.default):
                written = q.name if arg is not None and arg.key is None else f"{q.name}={str(producer.params[q.name]).lower()}"
                return f"remove `{written}` from the `{producer.op}` it reads", (arg.span if arg else producer.span, label)
            return (f"write `{q.name}={str(not producer.params[q.name]).lower()}` on the `{producer.op}` it reads",
                    (producer.span, label))
        return None

    def unknown_layer(self, node: ir.Node) -> None:
        extra = None
        if node.op in ("loss", "optimizer", "regularize", "train", "model"):
            extra = f"`{node.op}` belongs outside the model block"
        elif node.op in TRAIN:
            extra = f"`{node.op}` belongs in the `train {{ }}` block"
        self.unknown("layer", node.op, node.op_span, [*LAYERS.names(), *(b.name for b in self.spec.blocks)],
                     extra=extra)

    def named(self, d: ir.Directive | None, registry: Registry, kind: str) -> tuple[Entry, dict[str, Any]] | None:
        """`loss NAME ARGS` / `optimizer NAME ARGS`: the registry row and its bound arguments."""
        if d is None:
            return None
        entry = self.head(d, registry, kind)
        if entry is None:
            return None
        params = self.bind(entry, d.args[1:], d.span, what=f"{kind} `{d.args[0].value.name}`", head=kind)  # type: ignore[union-attr]
        return None if params is None else (entry, params)

    def check_loss(self) -> None:
        if self.spec.losses is not None:
            self.check_losses(self.spec.losses)
            return
        found = self.named(self.spec.loss, LOSSES, "loss")
        if found is not None:
            entry, params = found
            self.loss = LossProgram(entry.name, _public(params), entry.attrs["task"])

    def check_losses(self, block: ir.Losses) -> None:
        """`loss { NAME: LOSS [ARGS] [weight=W] [metrics=[...]] ... }`: one line per output,
        each naming a layer of the model; the outputs train on the weighted sum."""
        if not block.heads:
            self.err("E271", "the `loss` block is empty", block.keyword_span, "",
                     help="write one line per output of the model: `NAME: LOSS`, as in `out: mse`")
            return
        nodes = [n.name for n in self.spec.model.nodes] if self.spec.model is not None else []
        inputs = [i.name for i in self.spec.model.inputs] if self.spec.model is not None else []
        seen: dict[str, Span | None] = {}
        batch_reduction: list[tuple[ir.Node, str, Span | None]] = []
        for h in block.heads:
            if not h.labelled:
                self.err("E271", f"which output does `{h.op}` train?", h.op_span, "no output named",
                         help=f"for a model with one output, write `loss {_written_line(h)}` on one line; for several, "
                              f"name each output first: `NAME: {h.op}`, where NAME is a layer of the model")
                continue
            label_span = Span(h.span.start, h.span.start + len(h.name)) if h.span is not None else None
            if h.name in seen:
                self.err("E271", f"output `{h.name}` is given two losses", label_span, "given again here",
                         secondary=[(seen[h.name], "first given here")],
                         help="give each output one line; to weigh it more, use `weight=`")
                continue
            seen[h.name] = label_span
            if self.spec.model is not None and h.name not in nodes:
                extra = (f"`{h.name}` is an input; an output is a layer" if h.name in inputs else None)
                self.unknown("output", h.name, label_span, nodes, extra=extra, code="E270")
                continue
            entry = LOSSES.get(h.op)
            if entry is None:
                self.unknown("loss", h.op, h.op_span, LOSSES.names())
                continue
            own = [a for a in h.args if a.key not in ("weight", "metrics")]
            params = self.bind(entry, own, h.span, what=f"loss `{h.op}`", head="loss")
            weight = self.head_weight(h)
            if params is None or weight is None:
                continue
            loss = LossProgram(entry.name, _public(params), entry.attrs["task"])
            if not self.one_batch_reduction(h, loss, batch_reduction):
                continue
            metrics = self.head_metrics(h, loss)
            if metrics is not None and self.own_keys(h, label_span):
                self.head_lines.append((h.name, loss, weight, metrics, h.span))

    def own_keys(self, h: ir.Node, label_span: Span | None) -> bool:
        """An output's history key `NAME_loss` is not the key of a term a `sample` layer
        adds (`kl_loss`, or `Z_kl_loss` for each of several)."""
        model = self.model or self.outline
        taken = {key: layer for key, layer in added_losses(model.layers if model else ())}
        layer = taken.get(f"{h.name}_loss")
        if layer is None:
            return True
        self.err("E274", f"output `{h.name}` reports `{h.name}_loss`, as the KL term of `{layer.op}` layer "
                         f"`{layer.name}` does", label_span, "its loss is reported as `" + h.name + "_loss`",
                 secondary=[(layer.span, "adds the KL term, reported as `" + h.name + "_loss`")],
                 help=f"rename the output layer, as in `{h.name}_out`, so each history key says one thing")
        return False

    def one_batch_reduction(self, h: ir.Node, loss: LossProgram,
                            first: list[tuple[ir.Node, str, Span | None]]) -> bool:
        """The outputs of a `loss { }` block reduce the batch alike: the step's objective is
        one sum or one mean over the examples (their losses and the KL terms together).
        `first` holds the first line seen, its reduction and where it says so."""
        arg = next((a for a in h.args if a.key == "batch_reduction"), None)
        mine, where = loss.params["batch_reduction"], arg.span if arg is not None else None
        if not first:
            first.append((h, mine, where))
            return True
        (other, theirs, other_where), = first
        if mine == theirs:
            return True

        def does(r: str) -> str:
            return "sums" if r == "sum" else "averages"
        self.err("E273", f"output `{h.name}` {does(mine)} its loss over the batch, but `{other.name}` {does(theirs)} it",
                 where or h.span, f"`batch_reduction={mine}`",
                 secondary=[(other_where or other.span, f"`batch_reduction={theirs}`")],
                 help=f"the step minimizes one total over the batch: give every output `batch_reduction={theirs}`")
        return False

    def head_weight(self, h: ir.Node) -> float | None:
        arg = next((a for a in h.args if a.key == "weight"), None)
        if arg is None:
            return 1.0
        try:
            return Float(ge=0).convert(self.pyvalue(arg.value, False))
        except ArgError as exc:
            self.arg_error(exc, arg)
            return None

    def head_metrics(self, h: ir.Node, loss: LossProgram) -> tuple[MetricProgram, ...] | None:
        """`metrics=accuracy` or `metrics=[accuracy, f1(macro)]` on an output's loss line,
        checked as the train block's `metrics` line is, against that output."""
        arg = next((a for a in h.args if a.key == "metrics"), None)
        if arg is None:
            return ()
        items = arg.value.items if isinstance(arg.value, ir.List) else (arg.value,)
        found: list[MetricProgram] = []
        args: list[ir.Arg] = []
        ok = True
        for v in items:
            try:
                fn = self.symbol("metric", v)
            except ArgError as exc:
                self.arg_error(exc, ir.Arg(None, v, v.span))
                fn = None
            if fn is None:
                ok = False
                continue
            m = _metric(fn)
            if m.key in (f.key for f in found):
                self.err("E105", f"`{m.key}` given twice", v.span, "", help="list each metric once")
                ok = False
                continue
            found.append(m)
            args.append(ir.Arg(None, v, v.span))
        model = self.model or self.outline
        layer = next((x for x in model.layers if x.name == self.node_of(h.name)), None) if model is not None else None
        before = len([d for d in self.diags if d.is_error])
        self.metrics_fit(tuple(found), args, loss, layer)
        ok = ok and len([d for d in self.diags if d.is_error]) == before
        return tuple(found) if ok else None

    def check_optimizer(self) -> None:
        found = self.named(self.spec.optimizer, OPTIMIZERS, "optimizer")
        d = self.spec.optimizer
        if found is not None and d is not None:
            entry, params = found
            self.optimizer = OptimizerProgram(entry.name, _public(params))
            lr = params["lr"]
            if isinstance(lr, Fn):  # a schedule starts at `initial` (or its constant `value`)
                lr = lr.params.get("initial", lr.params.get("value"))
            if isinstance(lr, float) and lr > entry.attrs["lr_warn"]:
                arg = params["__given__"].get("lr")
                self.warn("W001", f"learning rate {lr:g} is very large for `{entry.name}`",
                          arg.span if arg else d.span, "may diverge",
                          help=f"typical values for `{entry.name}` are at most {entry.attrs['lr_warn']:g}; "
                               "if the loss becomes NaN, lower it")

    def head(self, d: ir.Directive, registry: Registry, kind: str) -> Entry | None:
        """The registry row named by a directive's first positional (`loss mse`)."""
        first = d.args[0] if d.args else None
        if first is not None and first.key is None and isinstance(first.value, ir.String):
            self.err("E103", f"expected a {kind} name, found the string `\"{first.value.value}\"`", first.span, "",
                     help=f"names are written without quotes: `{kind} {first.value.value}`"
                     if first.value.value in registry else f"write `{kind} NAME`, as in `{_EXAMPLE[kind]}`")
            return None
        if first is None or first.key is not None or not isinstance(first.value, ir.Ref):
            self.err("E106", f"`{kind}` needs a name", first.span if first else d.keyword_span,
                     "", help=f"write `{kind} NAME`, as in `{_EXAMPLE[kind]}`; known: {one_of(e.name for e in registry)}")
            return None
        entry = registry.get(first.value.name)
        if entry is None:
            self.unknown(kind, first.value.name, first.value.span, registry.names())
        return entry

    def check_input_fixes(self) -> None:
        """A shape error's help that declares the model's input anew (`input x[8, 8, 1]`)
        also loads a built-in dataset so, where one of its arguments gives that shape
        (`builtin("digits", image=true)`); where none does, it reshapes inside the model."""
        if self.train is None or self.train.data.kind != "builtin":
            return
        ds = DATASETS.get(self.train.data.params["name"])
        assert ds is not None
        for i, exc in self.declared:
            assert exc.want is not None
            dims = ", ".join(map(str, exc.want))
            diag = self.diags[i]
            if tuple(features_of(ds, self.train.data.params)) == exc.want:
                continue
            option = _dataset_option(ds, self.train.data.params, exc.want)
            if option is None:
                help_ = exc.helped(f"put `reshape [{dims}]` before it")
            else:
                help_ = f"{diag.help}, and load the data so: `data {self.builtin_with(*option)}`"
            self.diags[i] = dataclasses.replace(diag, help=help_)

    def builtin_with(self, key: str, value: Any) -> str:
        """The train block's `builtin(...)` call as written, with `key=value` set."""
        from nnspec.format import _value
        data = next(d for d in self.spec.train.statements if d.keyword == "data")  # type: ignore[union-attr]
        call = data.args[0].value
        assert isinstance(call, ir.Call)
        arg = ir.Arg(key, ir.Bool(value) if isinstance(value, bool) else ir.Number(value))
        return _value(dataclasses.replace(call, args=tuple(a for a in call.args if a.key != key) + (arg,)))

    def check_regularize(self) -> None:
        d = self.spec.regularize
        if d is None:
            return
        params = self.bind(REGULARIZE, d.args, d.span, what="`regularize`")
        if params is None:
            return
        given = params["__given__"]
        self.reg_span = {k: a.span for k, a in given.items()}
        self.reg = Regularization(params["l1"], params["l2"], params["weight_decay"], params["include_bias"])
        if self.optimizer is not None and self.optimizer.name == "adamw" and "weight_decay" in given:
            opt_wd = self.spec.optimizer.args  # type: ignore[union-attr]
            opt_span = next((a.span for a in opt_wd if a.key == "weight_decay"), self.spec.optimizer.span)  # type: ignore[union-attr]
            self.err("E309", "weight decay is given twice", given["weight_decay"].span, "here",
                     secondary=[(opt_span, "and `adamw` applies its own")],
                     help="set it once: `optimizer adamw weight_decay=...` and remove it from `regularize`")

    def check_train(self) -> None:
        block = self.spec.train
        if block is None:
            return
        seen: dict[str, ir.Directive] = {}
        bound: dict[str, dict[str, Any]] = {}
        self.targets_are_inputs = any(d.keyword == "target" for d in block.statements)
        for d in block.statements:
            entry = TRAIN.get(d.keyword)
            if entry is None:
                extra = None
                if d.keyword in LAYERS:
                    extra = f"`{d.keyword}` is a layer: it belongs in the `model {{ }}` block"
                elif d.keyword in ("loss", "optimizer", "regularize"):
                    extra = f"`{d.keyword}` is a section of its own, outside `train {{ }}`"
                self.unknown("train setting", d.keyword, d.keyword_span, TRAIN.names(), extra=extra)
                continue
            if d.keyword in seen:
                self.err("E111", f"`{d.keyword}` is given twice", d.keyword_span, "given again here",
                         secondary=[(seen[d.keyword].keyword_span, "first given here")], help="keep one")
                continue
            seen[d.keyword] = d
            if d.keyword == "data":
                params = self.data_source(d)
            elif d.keyword in ("categorical", "missing"):
                params = self.bind(entry, d.args, d.span, what=f"`{d.keyword}`", extra_ok=True)
            else:
                params = self.bind(entry, d.args, d.span, what=f"`{d.keyword}`")
            if params is not None:
                bound[d.keyword] = params
        misspelt = {closest(d.keyword, TRAIN.names()) for d in block.statements if d.keyword not in TRAIN}
        missing = [k for k in ("data",) if k not in seen and k not in misspelt]
        for k in missing:
            self.err("E112", f"`train` has no `{k}`", block.span, "", help='say where the examples come from, as in `data builtin("moons")`')
        if self.spec.model is not None and self.spec.loss is None and self.spec.losses is None:
            self.err("E112", "training needs a `loss`", block.span, "", help="add a line such as `loss mse` or `loss binary_crossentropy`")
        if self.spec.optimizer is None:
            self.err("E112", "training needs an `optimizer`", block.span, "", help="add a line such as `optimizer sgd lr=0.1`")
        # Each setting is checked on its own, so one bad line hides no other; the train
        # program exists only when every line is right.
        ok = len(bound) == len(seen) and "data" in seen
        split = bound.get("split", {"val": 0.0, "test": 0.0})
        if "split" in bound:
            ok = self.check_split(split, seen["split"], bound.get("data"), seen.get("data"),
                                  bound.get("target", {"of": "data"})["of"]) and ok
        if split["val"] + split["test"] >= 1:
            self.err("E308", f"`val` and `test` leave nothing to train on ({split['val']:g} + {split['test']:g} ≥ 1)",
                     seen["split"].span, "", help="keep their sum below 1, as in `split val=0.2 test=0.1`")
            ok = False
        batch = bound.get("batch", {"size": 32})["size"]
        metrics = tuple(_metric(m) for m in bound.get("metrics", {"metrics": ()})["metrics"] if m is not None)
        keys = [m.key for m in metrics]
        if len(set(keys)) != len(keys):
            twice = [k for i, k in enumerate(keys) if k in keys[:i]]
            written: dict[str, str] = {}
            for arg, m in zip(seen["metrics"].args, metrics):
                written.setdefault(m.key, self.written(arg.span) or m.key)
            self.err("E105", f"`{twice[0]}` given twice", seen["metrics"].span, "",
                     help=f"list each metric once: `metrics {' '.join(written.values())}`")
            ok = False
        # what each epoch measures, by its history key: the loss, and each metric (with a
        # `loss { }` block, each output's loss and metrics, `NAME_loss`, `NAME_accuracy`)
        measured = {"loss": "min", **{m.key: m.mode for m in metrics}}
        if self.spec.losses is not None:
            if "metrics" in seen:
                first = self.spec.losses.heads[0]
                self.err("E272", "with several outputs, say which output each metric is for", seen["metrics"].span,
                         "for which output?", secondary=[(self.spec.losses.keyword_span, "the outputs' losses")],
                         help=f"put the metrics on the output's loss line, as in "
                              f"`{first.name or 'NAME'}: {first.op} metrics=[{', '.join(k for k in keys) or 'accuracy'}]`, "
                              "and remove this line")
                ok = False
            for name, _, _, ms, _ in self.head_lines:
                measured.update({f"{name}_loss": "min", **{f"{name}_{m.key}": m.mode for m in ms}})
        # the terms layers add to the loss (a `sample` layer's `kl_loss`; Program.added_losses)
        model = self.model or self.outline
        measured.update({key: "min" for key, _ in added_losses(model.layers if model else ())})
        es = None
        if "early_stop" in bound and ("metrics" in bound or "metrics" not in seen):
            es = self.early_stop(bound["early_stop"], seen["early_stop"], measured,
                                 split["val"] > 0 or "val" in bound.get("data", {}) or bool(split.get("column")), seen)
            ok = ok and es is not None
        if "metrics" in bound or "metrics" not in seen:
            ok = self.check_plateau(measured, split["val"] > 0 or bool(split.get("column"))) and ok
        target = bound.get("target", {"of": "data"})["of"]
        if "data" in bound:
            for key in ("source", "val", "test"):
                if key in bound["data"]:
                    ok = self.check_targets(bound["data"][key], seen["data"], seen.get("target") if target == "input" else None,
                                            key) and ok
            for key in ("val", "test"):
                if key in bound["data"] and split[key] > 0:
                    arg = next(a for a in seen["data"].args if a.key == key)
                    self.err("E108", f"the {_SPLIT[key]} data is given twice: as a file and as a fraction to split off",
                             arg.span, f"the {_SPLIT[key]} file", secondary=[(seen["split"].span, f"and `{key}={split[key]:g}`")],
                             help=f"keep the `{key}=` file and remove `{key}=` from `split`, or the other way round")
                    ok = False
        self.check_metrics(metrics, seen.get("metrics"), autoencoder=target == "input")
        devices = bound.get("devices", {"count": None})["count"]
        if isinstance(devices, int) and isinstance(batch, int) and batch % devices:
            from nnspec.devices import batch_choices, nearest_batches  # pure Python: no JAX
            sizes = nearest_batches(batch, devices)
            self.err("E320", f"a batch of {batch} does not split evenly over {devices} devices",
                     seen["batch"].args[0].span if seen.get("batch") and seen["batch"].args else None,
                     f"{batch // devices} per device and {batch % devices} left over",
                     secondary=[(seen["devices"].span, f"{devices} devices")],
                     help=batch_choices(batch, devices) + f" gives each device {sizes[0] // devices}"
                          + (f" or {sizes[1] // devices}" if len(sizes) > 1 else "") + " examples")
            ok = False
        cols = self.check_columns(bound, seen, target)
        ok = ok and cols is not None
        stream = self.check_stream(bound, seen, batch, target)
        ok = ok and stream is not False
        weighted = self.check_sample_weight(bound, seen, target)
        ok = ok and weighted is not False
        ok = self.check_steps(bound, seen) and ok
        if not ok:
            return
        self.train = TrainProgram(
            data=bound["data"]["source"], val=split["val"], test=split["test"],
            batch=None if batch == "all" else batch, epochs=bound.get("epochs", {"count": 10})["count"],
            seed=bound.get("seed", {"value": 0})["value"], metrics=metrics,
            standardize=bound.get("standardize", {"enabled": False})["enabled"], early_stop=es,
            data_span=seen["data"].span, divergence=_divergence(bound), target=target, devices=devices,
            devices_span=seen["devices"].span if "devices" in seen else None,
            shard=bound.get("devices", {"shard": "none"})["shard"],
            precision=bound.get("precision", {"dtype": "float32"})["dtype"],
            history=bound.get("history", {"of": "epochs"})["of"],
            val_data=bound["data"].get("val"), test_data=bound["data"].get("test"),
            val_span=_arg_span(seen["data"], "val"), test_span=_arg_span(seen["data"], "test"),
            columns=cols if cols else None,
            stratify=split.get("stratify", False), split_column=split.get("column"),
            split_span=seen["split"].span if "split" in seen else None,
            start_from=bound["start_from"]["run"] if "start_from" in bound else None,
            start_optimizer=bound["start_from"]["optimizer"] if "start_from" in bound else False,
            start_span=seen["start_from"].span if "start_from" in seen else None,
            stream=stream, steps=bound["steps"]["count"] if "steps" in bound else None,
            sample_weight=weighted if isinstance(weighted, str) else None,
            sample_weight_span=seen["sample_weight"].span if "sample_weight" in seen else None)

    def check_sample_weight(self, bound: Mapping[str, dict[str, Any]], seen: Mapping[str, ir.Directive],
                            target: str) -> str | None | bool:
        """`sample_weight`'s column; None without the line, False if it cannot be honoured."""
        if "sample_weight" not in seen:
            return None
        if "sample_weight" not in bound:
            return False
        d = seen["sample_weight"]
        data = bound.get("data", {})
        source = data.get("source")
        why = help = None
        other: tuple[Span | None, str] | None = None
        if self.spec.losses is not None:
            why = "`sample_weight` weighs an example's loss, but a `loss { }` block has one loss per output"
            other = (self.spec.losses.keyword_span, "several outputs")
            help = "weigh the outputs with `weight=` on their loss lines, or leave out `sample_weight`"
        elif source is not None and source.kind != "csv":
            why = f"`sample_weight` reads a column of a CSV file, not of `{source.kind}` data"
            other = (seen["data"].span, f"`{source.kind}` data")
            help = "read the data from a CSV file with the weights as a column"
        elif any(k in data for k in ("val", "test")):
            key = next(k for k in ("val", "test") if k in data)
            why = "`sample_weight` reads the weights of the training file only, not of separate validation or test files"
            other = (_arg_span(seen["data"], key), "a file of its own")
            help = "split the examples off the one file (`split val=0.2`, or `split column=`), or leave out the weights"
        elif target == "input":
            why = "`sample_weight` needs a CSV file's columns, but an autoencoder reads its inputs as targets"
            other = (seen["target"].span, "the targets are the inputs")
            help = "leave out `sample_weight`"
        if why is None:
            return bound["sample_weight"]["column"]
        self.err("E331", why, d.keyword_span, "cannot weigh these examples", secondary=[other] if other else [],
                 help=help)
        return False

    def check_steps(self, bound: Mapping[str, dict[str, Any]], seen: Mapping[str, ir.Directive]) -> bool:
        """`steps N` says how long instead of `epochs`; its last, partial epoch is one program
        of its own, which the streamed epoch and the step history do not have (E119)."""
        if "steps" not in seen:
            return True
        d = seen["steps"]
        if "epochs" in seen:
            self.err("E108", "`steps` and `epochs` both say how long to train", d.span, "",
                     secondary=[(seen["epochs"].span, "and this")], help="keep one of them")
            return False
        for other, why in (("stream", "a streamed epoch"), ("history", "the step history (`history steps`)")):
            if other in seen and (other != "history" or bound.get("history", {}).get("of") == "steps"):
                self.err("E119", f"`steps` ends the last epoch part way, which {why} cannot do yet", d.span,
                         "a partial last epoch", secondary=[(seen[other].span, "whole epochs only")],
                         help=f"count whole epochs with `epochs N`, or remove "
                              f"`{self.written(seen[other].span) or seen[other].keyword}`")
                return False
        return True

    def check_stream(self, bound: Mapping[str, dict[str, Any]], seen: Mapping[str, ir.Directive], batch: Any,
                     target: str) -> int | str | None | bool:
        """`stream`'s window (`auto` or a number of examples); None without the line, False if wrong."""
        if "stream" not in seen:
            return None
        if "stream" not in bound:
            return False
        d = seen["stream"]
        window = bound["stream"]["window"]
        ok = True
        sources = [(k, bound.get("data", {}).get(k)) for k in ("source", "val", "test")]
        for key, source in sources:
            if source is not None and source.kind not in ("npy", "parquet"):
                arg = d.keyword_span
                self.err("E327", f"`stream` reads `npy` or `parquet` files, not `{source.kind}` data", arg,
                         "needs `npy` or `parquet` data",
                         secondary=[(_arg_span(seen["data"], key) or seen["data"].span,
                                     f"`{source.kind}` data is read whole")],
                         help="remove `stream`: a built-in dataset fits in memory" if source.kind == "builtin" else
                              "save the table as Parquet (`pandas.DataFrame.to_parquet`) and read it with "
                              '`data parquet("FILE.parquet", target="COLUMN")`' if source.kind in ("csv", "jsonl") else
                              'save the examples with `numpy.save` and read them with `data npy(x="X.npy", y="Y.npy")`')
                ok = False
                break
        if ok and target == "input":
            self.err("E327", "`stream` needs a targets file, but an autoencoder's targets are its inputs",
                     d.keyword_span, "cannot stream", secondary=[(seen["target"].span, "the targets are the inputs")],
                     help="remove `stream`, or give the targets as their own file with `npy(x=..., y=...)` "
                          "or as a column of a Parquet file (`target=\"COLUMN\"`)")
            ok = False
        if ok and batch == "all":
            self.err("E327", "`stream` reads a window of mini-batches at a time, but `batch all` needs every "
                             "example at once", d.keyword_span, "cannot stream",
                     secondary=[(seen["batch"].span, "one batch of every example")],
                     help="use mini-batches, as in `batch 256`")
            ok = False
        if ok and isinstance(window, int) and isinstance(batch, int) and window % batch:
            below = window // batch * batch
            sizes = [s for s in (below, below + batch) if s >= 3 * batch] or [3 * batch]  # E332: three at least
            span = d.args[0].span if d.args else d.span
            self.err("E328", f"a window of {window} examples is not a whole number of batches of {batch}", span,
                     f"{window // batch} batches and {window % batch} examples",
                     secondary=[(seen["batch"].span, f"batches of {batch}")] if "batch" in seen else [],
                     help=" or ".join(f"`stream {s}`" for s in sizes) + " holds whole batches")
            ok = False
        if ok and isinstance(window, int) and isinstance(batch, int) and window < 3 * batch:
            span = d.args[0].span if d.args else d.span
            words = "one batch" if window == batch else "two batches"
            self.err("E332", f"a window of {window} examples is {words} of {batch}: a window holds three batches "
                             f"at least", span, words,
                     secondary=[(seen["batch"].span, f"batches of {batch}")] if "batch" in seen else [],
                     help=f"`stream {3 * batch}` holds three batches")
            ok = False
        return window if ok else False

    def check_columns(self, bound: Mapping[str, dict[str, Any]], seen: Mapping[str, ir.Directive],
                      target: str) -> columns.Columns | bool | None:
        """The `categorical` and `missing` lines as a `Columns`; False for none, None if wrong."""
        lines = [k for k in ("categorical", "missing") if k in seen]
        if not lines:
            return False
        if any(k not in bound for k in lines):
            return None
        ok = True
        source: DataSource | None = bound.get("data", {}).get("source")
        if source is not None and (source.kind not in ("csv", "jsonl") or target == "input"):
            why = ("an autoencoder's inputs are its targets, read as numbers" if target == "input" else
                   f"`{source.kind}` data has no columns of cells to encode" if source.kind != "parquet" else
                   "Parquet columns are read as arrays, not as cells")
            for k in lines:
                self.err("E114", f"`{k}` needs the columns of a CSV or JSON lines file", seen[k].keyword_span,
                         "not for this data", secondary=[(seen["data"].span if target != "input" else seen["target"].span,
                                                          why)],
                         help="encode the columns before saving the arrays, or read the data from a CSV file")
            return None
        targets = set()
        feats = None
        if source is not None:
            t = source.params.get("target") or ()
            targets = {t} if isinstance(t, str) else set(t)
            f = source.params.get("features")
            feats = None if f is None else ({f} if isinstance(f, str) else set(f))
        names: dict[str, ir.Arg] = {}
        vocab: list[tuple[str, tuple[str, ...]]] = []

        def column(name: str, arg: ir.Arg, line: str) -> bool:
            span = arg.key_span or arg.span
            if name in targets:
                self.err("E116", f"column `{name}` is the target", span, f"`{line}` is for feature columns",
                         secondary=[(seen["data"].span, "names it the target")],
                         help=f"remove `{name}` from `{line}`: a text target's classes are named already")
                return False
            if feats is not None and name not in feats:
                self.err("E116", f"column `{name}` is not one of the features", span, "not a feature",
                         secondary=[(seen["data"].span, "`features=` leaves it out")],
                         help=f"add \"{name}\" to `features=[...]`, or remove it here")
                return False
            return True

        cat = bound.get("categorical")
        if cat is not None:
            args = [a for a in seen["categorical"].args if a.key != "unknown"]
            for arg, name in zip([a for a in args if a.key is None], cat["columns"]):
                if name in names:
                    self.err("E116", f"column `{name}` is listed twice", arg.span, "again here",
                             secondary=[(names[name].span, "first here")], help="list each column once")
                    ok = False
                    continue
                names[name] = arg
                ok = column(name, arg, "categorical") and ok
            for name, arg in cat["__extra__"].items():
                if name in names:
                    self.err("E116", f"column `{name}` is listed twice", arg.span, "again here",
                             secondary=[(names[name].span, "first here")], help="list each column once")
                    ok = False
                    continue
                names[name] = arg
                ok = column(name, arg, "categorical") and ok
                try:
                    cats = self.convert(ListOf(_Category()), arg.value)
                except ArgError as exc:
                    ok = self.arg_error(exc, arg) and False
                    continue
                twice = [c for i, c in enumerate(cats) if c in cats[:i]]
                if twice:
                    self.err("E116", f"category `{twice[0]}` is listed twice for column `{name}`", arg.value.span,
                             f"`{twice[0]}` twice", help="list each category once (`1` and `1.0` are one category)")
                    ok = False
                vocab.append((name, tuple(cats)))
            if not names:
                self.err("E106", "`categorical` names no column", seen["categorical"].span, "which columns?",
                         help="name them, as in `categorical color city`")
                ok = False
        fills: list[tuple[str, columns.Fill]] = []
        default = columns.Fill("error")
        miss = bound.get("missing")
        if miss is not None:
            def fill_of(v: Any, arg: ir.Arg | None) -> columns.Fill:
                # a strategy is a bare word (`mean`); a quoted one is text (`"mean"`)
                word = arg is None or not isinstance(arg.value, (ir.String, ir.Number))
                return columns.Fill(v) if word and v in columns.STRATEGIES else columns.Fill("constant", v)
            given = miss["__given__"].get("fill")
            default = fill_of(miss["fill"], given)
            if default.how == "constant" and isinstance(default.value, str):
                self.err("E115", "a text fill for every column", given.span, "numeric columns need a number",
                         help="fill the categorical columns one by one, as in `missing city=\"none\"`")
                ok = False
            if default.how in columns.NUMERIC_ONLY:
                for name in names:
                    if name not in miss["__extra__"]:
                        self.err("E115", f"`{default.how}` fills every column, but `{name}` holds categories", given.span,
                                 "a number's statistic", secondary=[(names[name].span, "a categorical column")],
                                 help=f"fill it with its most frequent category: `missing {default.how} {name}=mode`")
                        ok = False
            for name, arg in miss["__extra__"].items():
                try:
                    v = self.convert(Union((Choice(columns.STRATEGIES), Float(), Str())), arg.value)
                except ArgError as exc:
                    ok = self.arg_error(exc, arg) and False
                    continue
                fill = fill_of(v, arg)
                ok = column(name, arg, "missing") and ok
                if fill.how in columns.NUMERIC_ONLY and name in names:
                    self.err("E115", f"`{fill.how}` of a categorical column", arg.value.span, "a number's statistic",
                             secondary=[(names[name].span, "a categorical column")],
                             help=f"fill it with its most frequent category: `{name}=mode`, or a constant")
                    ok = False
                listed = dict(vocab).get(name)
                if (fill.how == "constant" and listed is not None and cat is not None and cat["unknown"] == "error"
                        and columns.category(fill.value if isinstance(fill.value, str) else repr(fill.value)) not in listed):
                    self.err("E115", f"the fill of column `{name}` is not one of its categories", arg.value.span,
                             "not listed", secondary=[(names[name].span, "the categories")],
                             help="add it to the column's categories, or fill it with `mode`")
                    ok = False
                if fill.how == "constant" and isinstance(fill.value, str) and name not in names:
                    self.err("E115", f"a text fill for column `{name}`, which holds numbers", arg.value.span,
                             "not a number", help=f"fill it with a number, or declare it `categorical {name}`")
                    ok = False
                fills.append((name, fill))
        if not ok:
            return None
        return columns.Columns(tuple(names), tuple(vocab), cat["unknown"] if cat else "error", default, tuple(fills))


    def check_split(self, split: Mapping[str, Any], d: ir.Directive, data: Mapping[str, Any] | None,
                    data_line: ir.Directive | None, target: str) -> bool:
        """`stratify` needs classes to stratify and something to split off; `column=` names
        a CSV column, and says the whole split alone (no fractions, no separate files)."""
        ok = True
        given = split.get("__given__", {})
        column = split.get("column")
        if column is not None:
            at = given["column"].span if "column" in given else d.span
            for key in ("val", "test", "stratify"):
                if key in given:
                    self.err("E108", f"the split is given twice: by the column `{column}` and by `{key}`",
                             given[key].span, f"and by `{key}`", secondary=[(at, "the split column")],
                             help=f"a split column says every row's part: remove `{key}`")
                    ok = False
            for key in ("val", "test"):
                if data is not None and key in data and data_line is not None:
                    self.err("E108", f"the {_SPLIT[key]} data is given twice: as a file and by the split column",
                             _arg_span(data_line, key), f"the {_SPLIT[key]} file",
                             secondary=[(at, "the split column")],
                             help=f"remove the `{key}=` file, or the split column")
                    ok = False
            source = data.get("source") if data is not None else None
            if source is not None and source.kind != "csv":
                self.err("E326", f"a split column is a column of a CSV file, but the data is read by `{source.kind}`",
                         at, "a column", secondary=[(data_line.span if data_line else None, f"`{source.kind}` data")],
                         help="give the part of each example in a separate file (`data ... val=... test=...`), "
                              "or split by fractions")
                ok = False
        if split.get("stratify") and column is None:
            at = given["stratify"].span if "stratify" in given else d.span
            task = self.loss.task if self.loss is not None else None
            why = ("the targets are the inputs (`target input`)" if target == "input"
                   else "the model has several outputs" if self.spec.losses is not None
                   else f"`{self.loss.name}` is a regression loss" if self.loss is not None and task == "regression"
                   else None)
            if why is not None:
                self.err("E325", f"a stratified split needs a class per example, but {why}", at, "stratify by what?",
                         help="remove `stratify`: only a classification target can be stratified")
                ok = False
            elif not split["val"] and not split["test"]:
                self.err("E325", "`stratify` with nothing to split off", at, "",
                         help="give the fractions to hold out, as in `split val=0.2 test=0.1 stratify`")
                ok = False
        return ok

    def check_targets(self, source: DataSource, d: ir.Directive, autoencoder: ir.Directive | None,
                      key: str = "source") -> bool:
        """A file's targets are named once: by the source (`csv(target=)`, `npz(y=)`), or
        by `target input` (an autoencoder's are its inputs). `key` says which of the
        `data` line's sources: `source` (the training data), `val` or `test`."""
        arg = next((a for a in d.args if (a.key in (None, "source", "train") if key == "source" else a.key == key)), None)
        call = arg.value if arg is not None else None
        seen: set[str] = set()
        while isinstance(call, ir.Ref) and call.name in self.lets and call.name not in seen:  # `let src = csv(...)`
            seen.add(call.name)
            call = self.lets[call.name].value
        if not isinstance(call, ir.Call):
            return True
        entry = SOURCES.get(source.kind)
        targets = entry.attrs.get("targets") if entry is not None else None  # not `key`, the parameter
        given = next((a for a in call.args if targets is not None and a.key == targets), None)
        if autoencoder is not None and given is not None:
            self.err("E105", "the targets are given twice", given.span, "the file's targets",
                     secondary=[(autoencoder.span, "and `target input` makes them the inputs")],
                     help=f"an autoencoder's targets are its inputs: remove `{given.key}=...`, or the `target input` line")
            return False
        return True

    def data_source(self, d: ir.Directive) -> dict[str, Any] | None:
        entry = TRAIN.get("data")
        assert entry is not None
        params = self.bind(entry, d.args, d.span, what="`data`")
        if params is None:
            return None
        fn: Fn = params["source"]
        if fn.name == "builtin":
            call = d.args[0].value
            assert isinstance(call, ir.Call)
            name_arg = call.args[0] if call.args and call.args[0].key is None else None
            ds = DATASETS.get(fn.params["name"])
            if ds is None:
                self.unknown("dataset", fn.params["name"], name_arg.span if name_arg else call.span, DATASETS.names())
                return None
            extra = fn.params.get("__extra__", {})
            ds_params = self.bind(ds, [a for a in extra.values()], call.span, what=f"dataset `{ds.name}`")
            if ds_params is None:
                return None
            source = DataSource("builtin", {"name": ds.name, **_public(ds_params)})
        else:
            source = DataSource(fn.name, _public(fn.params))
        self.bound_source = source  # for check_agreement, even when another train setting is wrong
        out: dict[str, Any] = {"source": source}
        for key in ("val", "test"):
            other: Fn | None = params.get(key)
            if other is None:
                continue
            if other.name == "builtin":  # generated from the same seed, it would be the training data again
                arg = next(a for a in d.args if a.key == key)
                self.err("E108", f"`{key}` names a built-in dataset; separate {_SPLIT[key]} data comes from a file",
                         arg.span, "not a file", help=f"hold out part of the built-in dataset with `split {key}=0.2`")
                return None
            out[key] = DataSource(other.name, _public(other.params))
        return out

    def monitored(self, what: str, monitor: str, span: Span | None, measured: Mapping[str, str],
                  has_val: bool) -> str | None:
        """Which way is better (`min`, `max`) for the metric `monitor` names (early
        stopping's, the plateau rule's), if an epoch measures it; `measured`: each history
        key (`loss`, `f1_macro`, `out_loss`) -> its direction."""
        base = monitor[4:] if monitor.startswith("val_") else monitor
        known = [m for name in measured for m in (name, f"val_{name}")]
        if base not in measured:
            hint = did_you_mean(monitor, known)
            if hint is None and base in METRICS:
                hint = (f"add `{base}` to an output's `metrics=[...]` in the `loss` block"
                        if self.spec.losses is not None else f"add `{base}` to the train block's `metrics` line")
            self.err("E306", f"{what} monitors `{monitor}`, which is not measured", span, "not a measured metric",
                     help=hint or f"monitor one of {one_of(known)}")
            return None
        if monitor.startswith("val_") and not has_val:
            self.err("E307", f"{what} monitors `{monitor}`, but there is no validation split", span, "",
                     help="hold out validation data with `split val=0.2`")
            return None
        if not monitor.startswith("val_"):
            split = "" if has_val else ", with a validation split such as `split val=0.2`"
            self.warn("W005", f"{what} watches the training `{monitor}`", span, "",
                      help=f"training metrics keep improving while the model overfits; monitor `val_{base}` instead{split}")
        return measured[base]

    def check_plateau(self, measured: Mapping[str, str], has_val: bool) -> bool:
        """`lr=reduce_on_plateau(...)` watches a metric that training measures every epoch;
        its `mode=auto` becomes that metric's direction."""
        lr = self.optimizer.params["lr"] if self.optimizer is not None else None
        if not (isinstance(lr, Fn) and lr.name == "reduce_on_plateau"):
            return True
        d = self.spec.optimizer
        assert d is not None and self.optimizer is not None
        call = next((a.value for a in d.args if a.key == "lr"), None)
        given = next((a for a in call.args if a.key == "monitor"), None) if isinstance(call, ir.Call) else None
        span = given.value.span if given is not None else (call.span if call is not None else d.span)
        metric = self.monitored("the learning rate's plateau rule", lr.params["monitor"], span, measured, has_val)
        if metric is None:
            return False
        if lr.params["mode"] == "auto":
            rule = Fn(lr.name, {**lr.params, "mode": metric})
            self.optimizer = dataclasses.replace(self.optimizer, params={**self.optimizer.params, "lr": rule})
        return True

    def early_stop(self, p: dict[str, Any], d: ir.Directive, measured: Mapping[str, str], has_val: bool,
                   seen: Mapping[str, ir.Directive]) -> EarlyStop | None:
        """`measured`: each history key (`loss`, `f1_macro`, `out_loss`) -> its direction."""
        monitor = p["monitor"]
        span = p["__given__"]["monitor"].value.span if "monitor" in p["__given__"] else d.span
        metric = self.monitored("early stopping", monitor, span, measured, has_val)
        if metric is None:
            return None
        mode = p["mode"]
        if mode == "auto":
            mode = metric
        return EarlyStop(monitor, mode, p["patience"], p["min_delta"], p["restore_best"])

    def check_metrics(self, metrics: tuple[MetricProgram, ...], d: ir.Directive | None, *,
                      autoencoder: bool = False) -> None:
        """The train block's `metrics` line, for the model's one output."""
        if self.loss is None or d is None:
            return
        model = self.model or self.outline
        self.metrics_fit(metrics, d.args, self.loss, model.layers[-1] if model is not None and model.layers else None,
                         autoencoder=autoencoder)

    def metrics_fit(self, metrics: tuple[MetricProgram, ...], args: Iterable[ir.Arg], loss: LossProgram,
                    output: Layer | None, *, autoencoder: bool = False) -> None:
        """Each metric of one output fits its loss (E305) and the output (its layer, when
        its shape is known): its class or `k` exists (E314), its averaging fits the number
        of classes (E315)."""
        out = tuple(output.out_shape) if output is not None else None
        # a softmax's classes are its units; 0/1 outputs are labels, or one output's 2 classes
        count, noun = None, "classes"
        if out is not None and loss.task == "multiclass" and len(out) == 1:
            count = out[0]
        elif out is not None and loss.task == "binary":
            count = math.prod(out)
            noun = "labels" if count > 1 else "classes"
        for arg, m in zip(args, metrics):
            tasks = METRICS.get(m.name).attrs["tasks"]  # type: ignore[union-attr]
            if autoencoder and "regression" not in tasks:
                self.err("E305", f"`{m.name}` does not apply when the targets are the inputs", arg.span, "",
                         help="an autoencoder's targets are numbers, not classes: measure `mse` or `mae`")
                continue
            if loss.task not in tasks:
                fits = [e.name for e in METRICS if loss.task in e.attrs["tasks"]]
                self.err("E305", f"`{m.name}` does not apply to a {_TASK[loss.task]} loss", arg.span, "",
                         help=f"`{m.name}` is for {_tasks(tasks)}; "
                              f"with `{loss.name}`, measure {one_of(fits)}")
                continue
            if count is None:
                continue
            assert output is not None
            if m.name == "top_k" and m.params["k"] >= count:
                self.err("E314", f"`top_k({m.params['k']})` of {count} classes is always 1",
                         _metric_arg(arg, "k") or arg.span, f"k = {m.params['k']}",
                         secondary=[(output.span, f"{count} classes")],
                         help=f"pick k below {count}, as in `top_k({max(1, count // 2)})`")
            one_unit = loss.task == "binary" and count == 1
            classes = 2 if one_unit else count
            cls = m.params.get("class")
            if cls is not None and cls >= classes:
                self.err("E314", f"`class={cls}` does not exist: the output has {classes} {noun}",
                         _metric_arg(arg, "class") or arg.span, "no such class",
                         secondary=[(output.span, f"{classes} {noun}")],
                         help=f"{noun} are numbered from 0 to {classes - 1}")
            if m.params.get("average") == "binary" and cls is None and not one_unit:
                self.err("E315", f"`{m.name}` of {count} {noun} needs to say how they are combined", arg.span,
                         "`binary` averaging is for one 0/1 output",
                         help=f"write `{m.name}(macro)`, `{m.name}(micro)`, `{m.name}(weighted)` "
                              f"or `{m.name}(class=0)` for one {noun[:-2] if noun == 'classes' else noun[:-1]}")

    def check_agreement(self) -> None:
        """Loss and output layer (each output's, with a `loss { }` block), builtin data and
        input/labels."""
        model = self.model or self.outline
        if model is None or not model.layers:
            return
        target = self.spec.train.get("target") if self.spec.train is not None else None
        autoencoder = target is not None and self.train is not None and self.train.target == "input"
        if not self.several_fit(model, target if autoencoder else None):
            return
        if self.spec.losses is not None:
            layers = {layer.name: layer for layer in model.layers}
            for name, loss, _, _, lspan in self.head_lines:
                if self.node_of(name) in layers:
                    self.head_agreement(model, layers[self.node_of(name)], loss, lspan, None, name)
        elif self.loss is not None:
            if not self.head_agreement(model, model.layers[-1], self.loss, self.spec.loss.span,  # type: ignore[union-attr]
                                       target if autoencoder else None):
                return
        self.check_data_fit(model)

    def several_fit(self, model: ModelProgram, autoencoder: ir.Directive | None) -> bool:
        """Several inputs or outputs train from data with one array per input and per
        output: an `.npz` archive (arrays named after them), not one table (E256)."""
        several_in = len(model.inputs) > 1
        several_out = self.spec.losses is not None
        if self.train is None or not (several_in or several_out):
            return True
        if several_out and autoencoder is not None:
            self.err("E311", "`target input` trains one output to give back the input, but the `loss` block names outputs",
                     autoencoder.span, "", secondary=[(self.spec.losses.keyword_span, "the outputs")],  # type: ignore[union-attr]
                     help="train an autoencoder with one `loss` line, or remove `target input`")
            return False
        kind = self.train.data.kind
        if kind == "npz":
            call = self.spec.train.get("data").args[0].value  # type: ignore[union-attr]
            named = {a.key: a for a in getattr(call, "args", ()) if a.key in ("x", "y")}
            for key, several, what in (("x", several_in, "inputs"), ("y", several_out, "outputs")):
                if several and key in named:
                    self.err("E256", f"the arrays of several {what} are named after them, so `{key}=` has nothing to name",
                             named[key].span, "", help=f"remove `{key}=...`: the archive holds one array per "
                                                       f"{what[:-1]}, named as the {what[:-1]} is")
                    return False
            separate = [(k, sp) for k, src, sp in (("val", self.train.val_data, self.train.val_span),
                                                    ("test", self.train.test_data, self.train.test_span)) if src is not None]
            if separate:
                key, span = separate[0]
                self.err("E256", f"a separate `{key}=` file is read for a model of one input and one output; this model has "
                                 f"several {'inputs' if several_in else 'outputs'}", span, "",
                         help=f"hold out the {_SPLIT[key]} examples of the archive with `split {key}=0.2`")
                return False
            std = self.spec.train.get("standardize")  # type: ignore[union-attr]
            if several_in and self.train.standardize and std is not None:
                self.err("E256", "`standardize` rescales the features of one input, but this model has several",
                         std.span, "", secondary=[(self.spec.model.inputs[1].span, "second input")],  # type: ignore[union-attr]
                         help="standardize the arrays before saving them, or remove `standardize`")
                return False
            return True
        what = ("several inputs and several outputs" if several_in and several_out
                else "several inputs" if several_in else "several outputs")
        have = {"builtin": f"dataset `{self.train.data.params.get('name')}` has one input and one target per example",
                "csv": "a CSV file is one table of features and targets"}.get(kind, f"`{kind}` data is one table")
        where = (self.spec.model.inputs[1].span if several_in and self.spec.model is not None
                 else self.spec.losses.keyword_span)  # type: ignore[union-attr]
        names = [n for n, _ in model.inputs] if several_in else ["x"]
        names += [name for name, *_ in self.head_lines] if several_out else ["y"]
        self.err("E256", f"a model with {what} trains from data with one array for each, but {have}",
                 self.train.data_span, "", secondary=[(where, "second input" if several_in else "the outputs")],
                 help=f"save the arrays in an `.npz` archive named after them ({', '.join(f'`{n}`' for n in names)}) "
                      "and read it with `npz(\"PATH\")`")
        return False

    def head_agreement(self, model: ModelProgram, last: Layer, loss: LossProgram, lspan: Span | None,
                       target: ir.Directive | None, head: str = "") -> bool:
        """One output's layer against its loss (and against the inputs, with `target input`);
        `head` names the output of a `loss { }` block's line."""
        out = last.out_shape
        span = last.span
        final_act = _activation_of(model, last)
        autoencoder = target is not None
        logits = loss.params.get("from_logits", False)
        out_kind = ACTIVATIONS.get(final_act).attrs["output"] if final_act else "linear"  # type: ignore[union-attr]
        if autoencoder and not self.autoencoder_agreement(model, target, lspan):  # type: ignore[arg-type]
            return False
        # a class at every step or pixel needs data that has one there: a one-output `.npz` file
        per_example = "an output of a `loss { }` block" if head else self.one_class_per_example(target)
        if loss.task == "multiclass" and len(out) != 1 and per_example is not None:
            act = "" if logits else " softmax"
            self.err("E304", f"`{loss.name}` needs a flat vector of class scores, but "
                             f"{f'output `{head}`' if head else 'the model' + chr(39) + 's output'} has shape {show_shape(out)}",
                     span, f"shape {show_shape(out)}", secondary=[(lspan, "the loss")],
                     notes=[f"{per_example} has one class per example; a class at every one of "
                            f"{show_shape(out[:-1])} positions needs targets of that shape, from an `.npz` file"
                            if not head else "a class per step is taken for a model with one output only"],
                     help=f"to classify each example, end the model with `flatten` and `dense {out[-1]}{act}`")
            return False
        weights = loss.params.get("class_weight")
        classes = out[0] if loss.task == "multiclass" else 2
        if weights is not None and weights != "balanced" and len(weights) != classes:
            line = self.spec.losses.heads if self.spec.losses is not None else ()
            args = next((h.args for h in line if h.name == head), None) if head else \
                (self.spec.loss.args if self.spec.loss is not None else ())
            arg = next((a for a in args or () if a.key == "class_weight"), None)
            what = f"{classes} classes" if loss.task == "multiclass" else "2 classes (0 and 1)"
            self.err("E316", f"{len(weights)} class weight{'s' if len(weights) != 1 else ''} for {what}",
                     arg.span if arg is not None else lspan, f"{len(weights)} weight{'s' if len(weights) != 1 else ''}",
                     secondary=[(span, what)] if loss.task == "multiclass" else [],
                     help=f"give one weight per class, in class order: `class_weight=[{', '.join(['1.0'] * classes)}]`")
        if loss.task == "binary":
            source = self.bound_source if target is None and self.spec.losses is None else None
            ds = DATASETS.get(source.params["name"]) if source is not None and source.kind == "builtin" else None
            if ds is not None and tuple(out) != (1,):
                # a built-in dataset has one 0/1 label per example; a file may hold K
                # columns of them (multi-label), checked when it is read
                flat = len(out) == 1
                self.err("E301", f"`{loss.name}` needs exactly one output unit, but the model has "
                                 + (f"{out[0]}" if flat else f"an output of shape {show_shape(out)}"),
                         span, f"{out[0]} units" if flat else f"shape {show_shape(out)}", secondary=[(lspan, "the loss")],
                         notes=[f"dataset `{ds.name}` has one 0/1 label per example; K sigmoid units are for "
                                "K 0/1 target columns (multi-label), from a CSV or `.npz` file"],
                         help="for two classes use `dense 1 sigmoid`; for more, use `categorical_crossentropy` with softmax"
                              if flat else f"for one label per example, end the model with `flatten` and `dense 1{'' if logits else ' sigmoid'}`")
                return False
            self.probability_agreement(loss.name, logits, out_kind, final_act, "sigmoid", "probability", span, lspan)
        elif loss.task == "multiclass":
            units = out[-1]
            if units < 2:
                self.err("E301", f"`{loss.name}` needs at least two output units (one per class), but "
                             f"{f'output `{head}`' if head else 'the model'} has {units}",
                         span, "1 unit", secondary=[(lspan, "the loss")],
                         help="for two classes with one unit use `binary_crossentropy`; otherwise one unit per class")
                return False
            self.probability_agreement(loss.name, logits, out_kind, final_act, "softmax", "distribution", span, lspan,
                                       head)
        # a regression output's activation is judged by the data (W003, prepare.py):
        # a sigmoid under pixels in [0, 1] is right, under house prices a mistake
        return True

    def one_class_per_example(self, target: ir.Directive | None) -> str | None:
        """What data the train block reads, where it has one class per example (a CSV
        file; a built-in dataset without a class per step); None where it may have more."""
        source = self.bound_source if target is None else None
        if source is None:
            return None
        if source.kind == "csv":
            return "a CSV file"
        if source.kind == "builtin":
            ds = DATASETS.get(source.params["name"])
            if ds is not None and not labels_of(ds, source.params):
                return f"dataset `{ds.name}`"
        return None

    def autoencoder_agreement(self, model: ModelProgram, target: ir.Directive, lspan: Span | None) -> bool:
        """With `target input`, the output must have the input's shape and the loss must
        compare numbers, not classes."""
        assert self.loss is not None and self.spec.model is not None
        last, out = model.layers[-1], tuple(model.output_shape)
        if len(model.inputs) != 1:
            self.err("E311", f"`target input` needs a model with one input, but this one has {len(model.inputs)}",
                     target.span, "", help="give the model one input, whose values it learns to give back")
            return False
        shape = tuple(model.input_shape)
        if out != shape:
            same = math.prod(out) == math.prod(shape)
            self.err("E311", f"`target input` makes the inputs the targets, but the model's output has shape "
                             f"{show_shape(out)} and its input {show_shape(shape)}",
                     last.span, f"shape {show_shape(out)}",
                     secondary=[(self.spec.model.inputs[0].span, "the input"), (target.span, "the targets")],
                     help=f"end the model with `reshape [{', '.join(map(str, shape))}]`" if same else
                          f"the decoder must give back the input's shape, {show_shape(shape)}")
            return False
        if self.loss.task == "multiclass":
            self.err("E311", f"`{self.loss.name}` needs class labels, but `target input` makes the targets the inputs, which are numbers",
                     lspan, "", secondary=[(target.span, "the targets")],
                     help="use `mse` (or, for inputs in [0, 1], `binary_crossentropy` with a `sigmoid` output)")
            return False
        return True

    def probability_agreement(self, loss: str, logits: bool, kind: str, act: str | None, want: str,
                              want_kind: str, span: Span | None, lspan: Span | None, head: str = "") -> None:
        """`head`: the output's name, for a line of a `loss { }` block."""
        layer = f"output `{head}`" if head else "the last layer"
        if logits and kind in ("probability", "distribution"):
            self.err("E303", f"`{act}` feeds a loss that expects logits", span, f"already applies `{act}`",
                     secondary=[(lspan, "`from_logits=true` here")],
                     help=f"remove `{act}` from {layer} (the loss applies it), or drop `from_logits=true`")
        elif not logits and kind != want_kind:
            shown = f"`{act}`" if act else "no activation"
            self.err("E302", f"`{loss}` expects {'probabilities' if want == 'sigmoid' else 'a probability distribution'}, "
                             f"but {layer} has {shown}",
                     span, f"not a {want_kind}", secondary=[(lspan, "the loss")],
                     help=f"end with `{want}`, or write `{f'{head}: ' if head else 'loss '}{loss} from_logits=true` "
                          "to pass raw scores")

    def check_data_fit(self, model: ModelProgram) -> None:
        if self.train is not None and self.train.columns is not None:
            self.check_columns_fit(model)
        if self.train is not None and self.train.data.kind == "images" and len(model.inputs) == 1:
            shape = tuple(model.input_shape)
            if len(shape) != 3 or shape[2] not in (1, 3, 4) or model.input_types[0].dtype == "int32":
                name = model.inputs[0][0]
                h, w = (shape[0], shape[1]) if len(shape) >= 2 else (32, 32)
                self.err("E311", f"a folder of images is read as (height, width, channels) with 1, 3 or 4 channels, "
                                 f"but the model's input is {show_shape(shape)}", self.train.data_span, "",
                         secondary=[(self.spec.model.inputs[0].span, "the input")],  # type: ignore[union-attr]
                         help=f"declare `input {name}[{h}, {w}, 3]` for colour images (1 channel: grayscale, "
                              f"4: with alpha); each image is resized to it")
        if self.train is None or self.train.data.kind != "builtin":
            return
        ds = DATASETS.get(self.train.data.params["name"])
        assert ds is not None
        params = self.train.data.params
        features = features_of(ds, params)
        if len(model.inputs) == len(self.spec.model.inputs) == 1:  # type: ignore[union-attr]
            self.check_input_fit(model, ds, params, tuple(features))
        if self.train.target == "input":
            return  # the targets are the inputs: the dataset's labels are not used
        if self.loss is not None and ds.attrs["task"] != self.loss.task:
            task = ds.attrs["task"]
            fits = [e.name for e in LOSSES if e.attrs["task"] == task]
            self.err("E311", f"dataset `{ds.name}` is a {_TASK[task]} problem, but `{self.loss.name}` is a {_TASK[self.loss.task]} loss",
                     self.train.data_span, "", secondary=[(self.spec.loss.span, "the loss")],  # type: ignore[union-attr]
                     help=f"use {one_of(fits)}, with {_output_for(task, classes_of(ds, params))}")
        classes = classes_of(ds, params)
        positions = labels_of(ds, params)
        want = (*positions, classes or 0)  # compared only when there are classes
        out = tuple(model.output_shape)
        if self.loss is not None and self.loss.task == "multiclass" and classes and out != want:
            if not positions:
                self.err("E311", f"dataset `{ds.name}` has {classes} classes, but the model has {out[0]} output units",
                         model.layers[-1].span, "", secondary=[(self.train.data_span, "the data")],
                         help=f"end the model with `dense {classes} softmax`")
            else:
                self.err("E311", f"dataset `{ds.name}` has one of {classes} classes at each of {positions[0]} steps, "
                                 f"but the model's output has shape {show_shape(out)}",
                         model.layers[-1].span, f"not {show_shape(want)}", secondary=[(self.train.data_span, "the data")],
                         help=f"end the model with a recurrent layer written with `sequences` and `dense {classes} softmax per_step`")

    def check_columns_fit(self, model: ModelProgram) -> None:
        """A table's encoded width, where the spec tells it (`features=[...]` and every
        categorical column's categories listed), against the one input."""
        assert self.train is not None and self.spec.model is not None and self.spec.train is not None
        cols, feats = self.train.columns, self.train.data.params.get("features")
        declared = dict(cols.vocab)
        if feats is None or len(model.inputs) != 1 or any(c not in declared for c in cols.categorical):
            return  # a learnt vocabulary's size is known when the data is read (E403)
        feats = (feats,) if isinstance(feats, str) else tuple(feats)
        widths = [len(declared[f]) + (cols.unknown == "slot") if f in declared else 1 for f in feats]
        if (sum(widths),) == tuple(model.input_shape):
            return
        cat = self.spec.train.get("categorical")
        self.err("E311", f"the feature columns encode to {sum(widths)} numbers, but the model's input is "
                         f"{show_shape(model.input_shape)}", self.train.data_span, f"{sum(widths)} features",
                 secondary=[(self.spec.model.inputs[0].span, "the input")]
                           + ([(cat.span, "the categories")] if cat is not None else []),
                 help=f"declare the input as `input {model.inputs[0][0]}[{sum(widths)}]`: "
                      + ", ".join(f"`{f}` gives {w}" for f, w in zip(feats, widths)))

    def check_input_fit(self, model: ModelProgram, ds: Entry, params: Mapping[str, Any],
                        features: tuple[int, ...]) -> None:
        """A built-in dataset's examples fit the one input: its shape, and token ids (the
        dataset's `vocab`) only in an `int` input with that many ids, numbers only in a float one."""
        assert self.train is not None and self.spec.model is not None
        name = model.inputs[0][0]
        kind = model.input_type(name)
        vocab = vocab_of(ds, params)
        fits = f"`input {input_of(ds, params, name)}`"
        where = dict(secondary=[(self.spec.model.inputs[0].span, "the input")])
        if vocab is not None and kind.dtype != "int32":
            if any(node.op == "embedding" and name in node.inputs for node in self.spec.model.nodes):
                return  # E254 said so where the embedding reads it
            self.err("E311", f"dataset `{ds.name}` holds token ids 0..{vocab - 1}, but input `{name}` holds numbers",
                     self.train.data_span, "", **where,
                     help=f"declare {fits}, then read it with `embedding DIM` and `flatten`")
        elif vocab is None and kind.dtype == "int32":
            self.err("E311", f"dataset `{ds.name}` holds numbers, but input `{name}` holds token ids",
                     self.train.data_span, "", **where,
                     help=f"declare {fits}, and read it with layers such as `dense` instead of `embedding`")
        elif features != model.input_shape:
            self.err("E311", f"dataset `{ds.name}` has examples of shape {show_shape(features)}, "
                             f"but the model's input is {show_shape(model.input_shape)}",
                     self.train.data_span, "", **where,
                     help=f"load the data so, `data {self.builtin_with(*option)}`, or declare {fits}"
                     if (option := _dataset_option(ds, params, model.input_shape)) else f"declare {fits}")
        elif vocab is not None:
            ids = kind.vocab or min((layer.params["vocab"] for layer in model.layers if name in layer.inputs),
                                    default=None)  # None: the embedding is wrong, and reported
            if ids is not None and ids < vocab:
                self.err("E311", f"dataset `{ds.name}` holds token ids up to {vocab - 1}, but input `{name}` "
                                 f"takes only 0..{ids - 1}", self.train.data_span, "", **where,
                         help=f"declare {fits}" if kind.vocab else f"give the embedding `vocab={vocab}`")

    def check_style(self) -> None:
        """Warnings: legal, but probably not what was meant."""
        for let in self.spec.lets:
            if let.name not in self.used_lets and self.lets.get(let.name) is let:
                self.warn("W004", f"constant `{let.name}` is never used", let.name_span, "", help="remove it, or use it")
        if self.model is None:
            return
        # the output layer is the last one that is not dropout
        last = max((i for i, layer in enumerate(self.model.layers) if layer.op != "dropout"), default=0)
        hidden = self.model.layers[:last]
        sig = [layer for layer in hidden if layer.op == "dense" and layer.activation == "sigmoid"]
        dense_hidden = [layer for layer in hidden if layer.op == "dense"]
        if len(sig) >= 3 and len(sig) == len(dense_hidden):
            self.warn("W002", f"all {len(sig)} hidden layers use `sigmoid`", sig[0].span,
                      "gradients shrink through each sigmoid", help="use `relu` in hidden layers; keep `sigmoid` for the output")
        if self.model.layers and self.model.layers[-1].op == "dropout":
            self.warn("W006", "dropout is the last layer", self.model.layers[-1].span, "",
                      help="dropout goes between hidden layers, not on the output")
        weighted = [layer for layer in self.model.layers if layer.param_shapes]
        if self.spec.train is not None and weighted and not any(layer.trainable for layer in weighted):
            self.warn("W008", f"every layer with weights is frozen: training changes none of the "
                              f"{self.model.n_params:,} parameters", weighted[-1].span, "frozen",
                      help="leave out `trainable=false` on the layers that should learn, such as the output")

    def check_budget(self) -> None:
        if self.model is None or self.budget is None:
            return
        n = self.model.n_params
        batch = self.batch_size()
        need = training_bytes(self.model, self.optimizer.name if self.optimizer else None, batch)
        what = (f"its parameters, gradients, optimizer state and a batch of {batch:,} examples" if batch
                else "its parameters, gradients and optimizer state")
        if need > self.budget:
            self.err("E310", f"the model needs about {show_bytes(need)} for {what}",
                     self.spec.model.span, f"{n:,} parameters" if n < 10**30 else f"{_power(n)} parameters", notes=[f"the memory budget is {show_bytes(self.budget)}"],  # type: ignore[union-attr]
                     help="use fewer or smaller layers" + (", or a smaller batch" if batch else ""))
        for (name, shape), inp in zip(self.model.inputs, self.spec.model.inputs):  # type: ignore[union-attr]
            values = 1
            for d in shape:
                values *= d
            if values * _BYTES > self.budget:  # a shape that cannot exist; nothing downstream can print it
                self.err("E310", f"one example of `{name}` needs about {show_bytes(values * _BYTES)}", inp.span,
                         f"{values:,} values" if values < 10**30 else f"{_power(values)} values",
                         notes=[f"the memory budget is {show_bytes(self.budget)}"], help="use a smaller input")

    def batch_size(self) -> int | None:
        """Examples in one training step, where the spec says (`batch all`: a built-in set's `n`)."""
        if self.train is None:
            return None
        if self.train.batch is not None:
            return self.train.batch
        n = self.train.data.params.get("n") if self.train.data.kind == "builtin" else None
        return int(n * (1 - self.train.val - self.train.test)) if isinstance(n, int) else None

    def run(self) -> Program:
        for step in PASSES:
            step(self)
        if self.expansion is not None:  # later passes' words on an output inside a block: at its use too
            self.diags = self.expansion.at_uses(self.diags)
        errors = [d for d in self.diags if d.is_error]
        if errors:
            raise NNSpecError(self.diags, self.source)
        assert self.model is not None
        return Program(self.spec, self.model, self.loss, self.optimizer, self.reg, self.train, self.source,
                       tuple(d for d in self.diags if not d.is_error), heads=self.outputs(self.model))

    def node_of(self, name: str) -> str:
        """The node that computes `name`: itself, or for a use of a block its last node."""
        return self.expansion.alias.get(name, name) if self.expansion is not None else name

    def outputs(self, model: ModelProgram) -> tuple[Head, ...]:
        """The outputs that train: each line of a `loss { }` block, or the last layer."""
        shapes = {layer.name: layer.out_shape for layer in model.layers}
        if self.spec.losses is not None:
            return tuple(Head(self.node_of(name), shapes[self.node_of(name)], loss, weight, metrics, name, span)
                         for name, loss, weight, metrics, span in self.head_lines)
        if self.loss is None:
            return ()
        return (Head(model.layers[-1].name if model.layers else model.inputs[0][0], model.output_shape, self.loss,
                     1.0, self.train.metrics if self.train else (), "", self.spec.loss.span),)  # type: ignore[union-attr]


# The pass order is data: each pass may rely on what the earlier ones found.
PASSES: tuple[Callable[[_Checker], None], ...] = (
    _Checker.check_lets, _Checker.check_model, _Checker.check_loss, _Checker.check_optimizer,
    _Checker.check_regularize, _Checker.check_train, _Checker.check_input_fixes, _Checker.check_agreement, _Checker.check_budget,
    _Checker.check_style,
)

_EXAMPLE = {"loss": "loss mse", "optimizer": "optimizer adam lr=1e-3"}
def _metric(fn: Fn) -> MetricProgram:
    entry = METRICS.get(fn.name)
    assert entry is not None
    return MetricProgram(fn.name, dict(fn.params), metric_key(fn.name, fn.params), entry.attrs["mode"])


def _metric_arg(arg: ir.Arg, name: str) -> Span | None:
    """The span of a metric call's argument `name`, given by keyword or as the (one) positional."""
    call = arg.value
    if not isinstance(call, ir.Call):
        return None
    entry = METRICS.get(call.name)
    positional = entry is not None and any(p.name == name and p.positional for p in entry.params)
    return next((a.span for a in call.args if a.key == name or (a.key is None and positional)), None)


_TASK = {"binary": "binary classification", "multiclass": "multiclass classification", "regression": "regression"}


def _divergence(bound: Mapping[str, dict[str, Any]]) -> float | None:
    """`divergence F` -> F, `divergence off` -> None; without the line, TrainProgram's default."""
    if "divergence" not in bound:
        return TrainProgram.divergence
    factor = bound["divergence"]["factor"]
    return None if factor == "off" else factor


def _written(entry: Entry, params: list[Any], call: bool, head: str) -> str:
    """`entry` as a spec writes it, with placeholders for `params`: `loss huber DELTA`,
    `csv("PATH", target=TARGET)`, `glorot_normal` (a call without arguments is a name)."""
    parts = []
    for p in params:
        value = f'"{p.name.upper()}"' if isinstance(p.type, Str) else p.name.upper()
        if isinstance(p.type, Choice) and len(p.type.options) == 1:
            value = p.type.options[0]  # the one word it takes: `target input`
        parts.append(value if p.positional else f"{p.name}={value}")
    if call:
        return f"`{entry.name}({', '.join(parts)})`" if parts else f"`{entry.name}`"
    return "`" + " ".join([*head.split(), entry.name, *parts]) + "`"


def _accepts_words(ptype: Any) -> bool:
    if isinstance(ptype, (Choice, _Word)):
        return True
    if isinstance(ptype, (Union,)):
        return any(_accepts_words(o) for o in ptype.options)
    if isinstance(ptype, ListOf):
        return _accepts_words(ptype.item)
    return False


def _tasks(tasks: Iterable[str]) -> str:
    """`classification` for both kinds of it, else the tasks by name."""
    tasks = tuple(tasks)
    if set(tasks) == {"binary", "multiclass"}:
        return "classification"
    return " and ".join(_TASK[t] for t in tasks)


def _output_for(task: str, classes: int | None) -> str:
    """The last layer a loss for `task` wants, for helps."""
    if task == "binary":
        return "`dense 1 sigmoid` as the last layer"
    if task == "multiclass":
        return f"`dense {classes or 'K'} softmax` as the last layer"
    return "a linear last layer, such as `dense 1`"


def _symbol_kind(ptype: Any) -> str | None:
    """The registry a parameter type names things from (`activation` for `Symbol("activation")`)."""
    if isinstance(ptype, Symbol):
        return ptype.kind
    if isinstance(ptype, Union):
        return next((o.kind for o in ptype.options if isinstance(o, Symbol)), None)
    return None


def _dataset_option(ds: Entry, params: Mapping[str, Any], want: tuple[int, ...]) -> tuple[str, Any] | None:
    """An argument of a built-in dataset that makes its examples of shape `want`
    (`image=true`, `steps=30`), as (name, value)."""
    for q in ds.params:
        values = [not params.get(q.name)] if isinstance(q.type, Bool) else list(want) if isinstance(q.type, Int) else []
        for v in values:
            try:
                q.type.convert(v)
            except ArgError:
                continue
            if tuple(features_of(ds, {**params, q.name: v})) == want:
                return q.name, v
    return None


def _fits(entry: Entry, params: Mapping[str, Any], in_shape: tuple[int, ...]) -> bool:
    """Whether a one-input layer takes an input of this shape."""
    try:
        param_shapes(entry.name, params, in_shape)
        entry.attrs["out_shape"](params, in_shape)
    except ShapeError:
        return False
    return True


def _within(inner: Span | None, outer: Span | None) -> bool:
    return inner is not None and outer is not None and outer.start <= inner.start and inner.end <= outer.end


def _overlap(a: Span | None, b: Span | None) -> bool:
    return a is not None and b is not None and a.start < b.end and b.start < a.end


def _refs(v: ir.Value) -> Iterable[ir.Ref]:
    """Every bare name inside a value."""
    if isinstance(v, ir.Ref):
        yield v
    elif isinstance(v, (ir.List, ir.Shaped)):
        for item in (v.items if isinstance(v, ir.List) else v.dims):
            yield from _refs(item)
    elif isinstance(v, ir.Call):
        for arg in v.args:
            yield from _refs(arg.value)


def _public(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if not k.startswith("__")}


def _written_line(h: ir.Node) -> str:
    """A `loss { }` line as one `loss` statement would say it: `mse`, `huber delta=2`."""
    from nnspec.format import _words
    return _words(h.op, h.args)


def _activation_of(model: ModelProgram, layer: Layer) -> str | None:
    """The activation that produces `layer`'s output, looking through dropout."""
    layers = {x.name: x for x in model.layers}
    while layer.op == "dropout" and layer.inputs and layer.inputs[0] in layers:
        layer = layers[layer.inputs[0]]
    return None if layer.op == "dropout" else layer.activation


def _final_activation(model: ModelProgram) -> str | None:
    """The activation that produces the model's output, looking through dropout."""
    for layer in reversed(model.layers):
        if layer.op == "dropout":
            continue
        return layer.activation
    return None


def _power(n: int) -> str:
    """`10^k` for a huge integer, without `str(n)` (refused past 4,300 digits)."""
    return f"10^{int((n.bit_length() - 1) * 0.30103)}"


def training_bytes(model: ModelProgram, optimizer: str | None, batch: int | None) -> int:
    """Bytes (float32) that training keeps: parameters, gradients, the optimizer's slots
    (none for a frozen layer's arrays), and with a batch size, that batch's activations
    and their gradients."""
    slots = OPTIMIZERS.get(optimizer).attrs["slots"] if optimizer else 0  # type: ignore[union-attr]
    held = sum(layer.n_params for layer in model.layers if layer.trainable)
    need = (model.n_params * 2 + held * slots) * _BYTES
    if batch:
        values = sum(math.prod(layer.out_shape) for layer in model.layers) + math.prod(model.input_shape)
        need += 2 * batch * values * _BYTES
    return need


def show_bytes(n: float) -> str:
    """A byte count for people: `52 B`, `1.5 GiB`, or `10^k B` when it is beyond a float."""
    if n >= 1024 ** 7:  # beyond what a float may hold (a 400-digit `dense` count): say its size
        return f"{_power(int(n))} B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def _first_line(source: Source | None) -> Span | None:
    return Span(0, len(source.line_text(1))) if source is not None else None


def check(spec: ir.Spec, *, source: Source | None = None, memory_budget: int | None = None) -> Program:
    """Check a parsed spec; raises NNSpecError with every error (warnings ride along).
    A spec with sweeps is checked once per model; the Program is the first model's,
    carrying them all in `.sweep`."""
    from nnspec import sweep
    budget = memory_budget if memory_budget is not None else physical_memory()
    try:
        found = sweep.axes(spec)
    except sweep.SweepError as exc:
        # the rest of the spec is still checked, as if each sweep were its first value
        try:
            _Checker(sweep.first_values(spec), source, budget).run()
            rest: list[Diagnostic] = []
        except NNSpecError as more:
            rest = [d for d in more.diagnostics if d.is_error and not any(
                _within(d.primary_span, s.primary_span) for s in exc.diagnostics)]
        raise NNSpecError(exc.diagnostics + rest, source) from None
    if not found:
        return _Checker(spec, source, budget).run()
    members = sweep.expand(spec, found)
    # Models equal in every untraced axis have the same shapes, data and loop: the first
    # of them is checked in full, the others re-run only the passes that read a traced
    # axis (a 4,096-model learning-rate sweep binds `optimizer` 4,096 times, not the spec).
    sections = {s for a, _ in found if a.traced for s in _SWEPT_PASSES if _within(a.span, _span_of(spec, s))}
    static = [a.name for a, _ in found if not a.traced]
    first_of: dict[tuple, Program] = {}
    programs = []
    warnings: dict[tuple, Diagnostic] = {}
    for member in members:
        key = tuple(member.setting[n] for n in static)
        try:
            if key not in first_of:
                program = first_of[key] = _Checker(member.spec, source, budget).run()
            else:
                program = _rebind(first_of[key], member.spec, sections, source, budget)
        except NNSpecError as exc:
            shown = ", ".join(f"{k}={sweep.show(v)}" for k, v in member.setting.items())
            notes = (f"in the model with {shown}",)
            raise NNSpecError([dataclasses.replace(d, notes=d.notes + notes) if d.is_error else d
                               for d in exc.diagnostics], source) from None
        programs.append(program)
        for w in program.warnings:
            if w.code == "W001" and any(_overlap(a.span, w.primary_span) for a, _ in found):
                continue  # a learning-rate sweep is meant to reach rates that are too large
            warnings.setdefault((w.code, w.message, w.primary_span), w)
    info = Sweep(tuple(a for a, _ in found), tuple(m.setting for m in members), tuple(programs))
    return dataclasses.replace(programs[0], spec=spec, warnings=tuple(warnings.values()), sweep=info)


# The passes that read each section, for `_rebind`; the loss has no traced parameters.
_SWEPT_PASSES: dict[str, tuple[Callable[[_Checker], None], ...]] = {
    "model": (_Checker.check_model,),
    "optimizer": (_Checker.check_optimizer,),
    "regularize": (_Checker.check_optimizer, _Checker.check_regularize),
    "train": (_Checker.check_loss, _Checker.check_train),
}


def _span_of(spec: ir.Spec, section: str) -> Span | None:
    node = getattr(spec, section)
    return node.span if node is not None else None


def _rebind(first: Program, spec: ir.Spec, sections: set[str], source: Source | None,
            budget: int | None) -> Program:
    """`first` with the sections that hold traced sweeps checked again for `spec`, which
    differs from `first.spec` only in those sweeps' numbers; raises NNSpecError."""
    checker = _Checker(spec, source, budget)
    checker.check_lets()
    for step in dict.fromkeys(p for s in sections for p in _SWEPT_PASSES[s]):
        step(checker)
    if any(d.is_error for d in checker.diags):
        raise NNSpecError(checker.diags, source)
    model = checker.model if "model" in sections else first.model
    assert model is not None
    return dataclasses.replace(
        first, spec=spec, model=model,
        optimizer=checker.optimizer if sections & {"optimizer", "regularize"} else first.optimizer,
        regularization=checker.reg if "regularize" in sections else first.regularization,
        train=checker.train if "train" in sections else first.train,
        heads=first.heads,  # traced sweeps change numbers, never an output, its loss or its metrics
        warnings=tuple(dict.fromkeys(first.warnings + tuple(checker.diags))))


def check_source(text: str, filename: str = "<string>", *, memory_budget: int | None = None
                 ) -> tuple[Program | None, list[Diagnostic], Source]:
    """Parse and check, collecting every diagnostic of both stages (the CLI's entry)."""
    from nnspec.parse import parse_collect
    spec, diags, src = parse_collect(text, filename)
    if spec is None:
        return None, diags, src
    try:
        program = check(spec, source=src, memory_budget=memory_budget)
    except NNSpecError as exc:
        return None, diags + [d for d in exc.diagnostics if not _follows_from(diags, d)], src
    if any(d.is_error for d in diags):
        return None, diags + [d for d in program.warnings if not _follows_from(diags, d)], src
    return program, list(program.warnings), src


def _follows_from(parse_diags: list[Diagnostic], d: Diagnostic) -> bool:
    """Whether checker diagnostic `d` only repeats a parse error: it is about a number the
    parser could not read (and replaced by 0), or about a section or input it dropped."""
    span = d.primary_span
    dropped: set[str] = set()  # sections the parser left out, as far as it can tell
    for p in parse_diags:
        bad = p.primary_span
        if p.is_error and span is not None and bad is not None and bad.start <= span.start and span.end <= bad.end:
            return True
        if p.code in ("E017", "E019"):
            dropped.update(re.findall(r"`(\w+)`", p.message)[:1])
        elif p.code == "E018":
            meant = re.findall(r"did you mean `(\w+)`", p.help or "")
            dropped.update(meant or ["model", "loss", "optimizer", "data"])
    if d.code == "E112" and dropped & set(re.findall(r"`(\w+)`", d.message)):
        return True
    return d.code == "E204" and any(p.code == "E022" for p in parse_diags)
