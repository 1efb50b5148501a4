"""prepare(program) -> Splits: the data a run trains on, loaded, checked against the
model, split and standardized. One place for training, eval, predict and sweeps.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from typing import Any, Mapping, Sequence

from nnspec.checked import Head, LossProgram, Program
from nnspec import data as data_module
from nnspec.columns import Encoder
from nnspec.data import (DataError, Dataset, Standardizer, _excerpt, _listing, encode, fit_encoder, like_training, load,
                         load_inputs, load_named, load_split)
from nnspec.datasets import data_files
from nnspec.diagnostics import Diagnostic, NNSpecError, error, warning
from nnspec.layers import ACTIVATIONS, show_shape
from nnspec.source import Span
from nnspec.split import (Rows, SplitColumnError, class_labels, column_rows, random_rows, read_column, stratified_rows,
                          take)


@dataclass
class Splits:
    train: Dataset
    val: Dataset | None
    test: Dataset | None
    standardizer: Standardizer | None
    warnings: tuple[Diagnostic, ...] = ()  # what the data says about the spec (W003)
    rows: Rows | None = None  # which examples of the data source each part holds (split.json)
    encoder: Encoder | None = None  # the `categorical`/`missing` encoding (columns.py), fitted on `train`
    # `class_weight=balanced`: each such output's weights (by head name), counted on `train`
    class_weights: dict[str, tuple[float, ...]] = dataclasses.field(default_factory=dict)

    @property
    def dropped(self) -> int:
        """Rows `missing drop` left out of the training data."""
        return self.encoder.dropped if self.encoder is not None else 0


def fail(code: str, message: str, program: Program, span: Span | None, *, label: str = "",
         help: str | None = None, notes: tuple[str, ...] = (), secondary=()) -> NNSpecError:
    """A runtime problem as a located diagnostic (raised, rendered by the CLI)."""
    return NNSpecError([error(code, message, span, label, help=help, notes=notes, secondary=secondary)],
                       program.source, action="train")


def data_key(program: Program) -> str:
    """What decides the examples a model is trained and measured on (the seed aside): its
    sources, how they are split, encoded and scaled."""
    t = program.train
    assert t is not None
    return repr((t.data, t.val_data, t.test_data, t.val, t.test, t.stratify, t.split_column, t.sample_weight, t.columns,
                 t.standardize, t.target))


def preparation_key(program: Program) -> str:
    """Everything `prepare` reads: the data, and what it checks the data against (two
    programs of one key prepare the same splits, given the same seed)."""
    t = program.train
    assert t is not None
    return repr((data_key(program), t.batch, program.model.inputs, program.heads, t.stream))


def prepare(program: Program, base_dir: Path | None = None, *, standardizer: Standardizer | None = None,
            given: Any = None, encoder: Encoder | None = None) -> Splits:
    """Load, check against the model, split, encode and standardize the spec's data (with
    the statistics of the training split, or with `standardizer` and `encoder` from a
    finished run).
    `given` (a `given.Given`: arrays from `nnspec.train(data=...)`) takes the place of the
    spec's data line and of its separate files."""
    t = program.train
    assert t is not None and program.heads
    base = base_dir or _spec_dir(program)
    if given is not None:
        return _prepare_given(program, given, standardizer)
    token = data_module.STREAMING.set(t.stream is not None)  # `stream`: features stay in their file
    try:
        return _prepare_files(program, base, standardizer, encoder)
    finally:
        data_module.STREAMING.reset(token)


def _prepare_files(program: Program, base: Path, standardizer: Standardizer | None, encoder: Encoder | None) -> Splits:
    """`prepare` of the spec's own data files."""
    t = program.train
    assert t is not None
    several = len(program.model.inputs) > 1 or program.several_outputs
    ds, rows = load_source(program, base)
    train_ds, val_ds, test_ds = take(ds, rows)
    if ds.raw:  # `categorical`/`missing`: the encoding learnt from the training split's rows only
        assert t.columns is not None
        try:
            encoder = encoder or fit_encoder(train_ds, t.columns)
            ds, train_ds = encode(ds, encoder), encode(train_ds, encoder)
            val_ds, test_ds = encode(val_ds, encoder), encode(test_ds, encoder)
        except DataError as exc:
            raise fail("E401", f"cannot use the data: {exc.message}", program, t.data_span, label="this data",
                       notes=tuple(n for n in (_where(exc),) if n), help=exc.help) from None
    if rows.how == "column" and val_ds is None and watches_val(program):
        raise fail("E401", f"cannot use the split column: no row of `{t.split_column}` is `val`, "
                           f"but training watches a validation metric", program, t.split_span, label="no `val` rows",
                   help="mark the validation rows `val` in the split column")
    if several:
        check_named_fit(program, ds, t.data_span)
        tokens = False
        ints = [i.name for i in program.model.input_types if i.dtype == "int32"]
        if ints:  # token ids are fed as int32
            def as_ids(d):
                return dataclasses.replace(d, x={k: v.astype(np.int32) if k in ints else v for k, v in d.x.items()})
            ds, train_ds = as_ids(ds), as_ids(train_ds)
            val_ds, test_ds = (None if d is None else as_ids(d) for d in (val_ds, test_ds))
    else:
        check_fit(program, ds, t.data_span)
        # separate validation and test files (one input, one output: E256 otherwise), read as
        # the training data is and checked against it
        separate = [(name, source, span) for name, source, span in
                    (("validation", t.val_data, t.val_span), ("test", t.test_data, t.test_span)) if source is not None]
        for name, source, span in separate:
            try:
                other = load_split(source, like=ds, seed=t.seed, base_dir=base, task=program.loss.task,  # type: ignore[union-attr]
                                   inputs=t.target == "input", columns=t.columns)
                if other.raw:
                    assert encoder is not None
                    other = encode(other, encoder)
            except DataError as exc:
                raise fail("E401", f"cannot use the {name} data: {exc.message}", program, span, label=f"the {name} data",
                           notes=tuple(n for n in (_where(exc),) if n), help=exc.help) from None
            check_fit(program, other, span)
            check_tokens(program, other, span)
            if name == "validation":
                val_ds = other
            else:
                test_ds = other
        tokens = check_tokens(program, ds, t.data_span)
    return _finish(program, ds, train_ds, val_ds, test_ds, tokens=tokens, several=several, standardizer=standardizer,
                   rows=rows, encoder=encoder)


def _prepare_given(program: Program, given: Any, standardizer: Standardizer | None) -> Splits:
    """`prepare` for arrays given from Python: read as an archive's arrays, checked against
    the model as a file is (the errors name the argument, `data=`, not the spec's line)."""
    from nnspec import given as py
    t = program.train
    assert t is not None
    several = len(program.model.inputs) > 1 or program.several_outputs
    if t.columns is not None:
        line = "categorical" if program.spec.train is not None and program.spec.train.get("categorical") else "missing"
        raise fail("E401", f"`{line}` encodes the cells of the spec's data file, but the data is the arrays given as "
                           "`data=`", program, _stmt_span(program, line), label="reads the spec's file",
                   help=f"encode the arrays before passing them, and remove the `{line}` line, or train on the spec's file")
    if t.split_column is not None:
        raise fail("E108", "a split column is a column of the spec's data file, but the data is the arrays given as "
                           "`data=`", program, t.split_span, label="reads the spec's file",
                   help="give the parts as `data=`, `val_data=` and `test_data=`, or train on the spec's file")
    for role, key in (("val_data", "val"), ("test_data", "test")):
        if getattr(given, role) is not None and getattr(t, key) > 0:
            raise fail("E108", f"the {py.ROLES[role]} data is given twice: as `{role}=` and as a fraction to split off",
                       program, _stmt_span(program, "split"), label=f"`{key}={getattr(t, key):g}`",
                       help=f"remove `{key}=` from `split`, or do not pass `{role}=`")
    parts: dict[str, Dataset | None] = {}
    for role in ("data", "val_data", "test_data"):
        arrays = getattr(given, role)
        if arrays is None:
            parts[role] = None
            continue
        token = data_module._ONE_CLASS_OK.set(role != "data")  # a small test set may hold one class
        try:
            ds = py.dataset(program, role, arrays)
            if role == "data":
                rows = split_rows(program, ds)
                ds_train, val_ds, test_ds = take(ds, rows)
            if role != "data" and not several:
                ds = like_training(ds, parts["data"], f"{role}=")  # type: ignore[arg-type]
        except DataError as exc:
            raise fail("E401", f"cannot use the arrays given as `{role}=`: {exc.message}", program, None,
                       help=exc.help, notes=(_GIVEN_NOTE,)) from None
        finally:
            data_module._ONE_CLASS_OK.reset(token)
        try:
            if several:
                check_named_fit(program, ds, None)
            else:
                check_fit(program, ds, None)
        except NNSpecError as exc:  # "the data" is these arrays
            exc.diagnostics = tuple(dataclasses.replace(d, notes=d.notes + (_GIVEN_NOTE.replace("`data=`", f"`{role}=`"),))
                                    for d in exc.diagnostics)
            raise
        parts[role] = ds
    full = parts["data"]
    assert full is not None
    val_ds = parts["val_data"] if parts["val_data"] is not None else val_ds
    test_ds = parts["test_data"] if parts["test_data"] is not None else test_ds
    tokens = False
    if several:
        ints = [i.name for i in program.model.input_types if i.dtype == "int32"]
        if ints:
            def as_ids(d):
                return dataclasses.replace(d, x={k: v.astype(np.int32) if k in ints else v for k, v in d.x.items()})
            full, ds_train = as_ids(full), as_ids(ds_train)
            val_ds, test_ds = (None if d is None else as_ids(d) for d in (val_ds, test_ds))
    else:
        tokens = check_tokens(program, full, None)
        for other in (parts["val_data"], parts["test_data"]):
            if other is not None:
                check_tokens(program, other, None)
    return _finish(program, full, ds_train, val_ds, test_ds, tokens=tokens, several=several,
                   standardizer=standardizer, rows=rows)


_GIVEN_NOTE = "the data is the arrays given as `data=`, in place of the spec's `data` line"


def _finish(program: Program, ds: Any, train_ds: Dataset, val_ds: Dataset | None, test_ds: Dataset | None, *,
            tokens: bool, several: bool, standardizer: Standardizer | None, rows: Rows | None,
            encoder: Encoder | None = None) -> Splits:
    """The splits as ids or standardized, the batch checked against the training split."""
    t = program.train
    assert t is not None
    if tokens:  # token ids are fed as int32, and never standardized
        ds, train_ds = (dataclasses.replace(d, x=d.x.astype(np.int32)) for d in (ds, train_ds))
        val_ds, test_ds = (None if d is None else dataclasses.replace(d, x=d.x.astype(np.int32))
                           for d in (val_ds, test_ds))
    if t.batch is not None and t.batch > len(train_ds):
        raise fail("E402", f"batch size {t.batch} is larger than the training split ({len(train_ds)} examples)",
                   program, _stmt_span(program, "batch") or t.data_span, label="too large",
                   help="use a smaller batch, or `batch all` for full-batch gradient descent")
    if train_ds.weight is not None and not (train_ds.weight > 0).any():
        raise fail("E401", f"every training example has weight 0 in `{t.sample_weight}`: the loss would weigh nothing",
                   program, t.sample_weight_span, label="the weight column",
                   help="give some training examples a weight above 0")
    std = standardizer if not tokens else None
    if t.standardize and std is None and not tokens:
        std = Standardizer.fit(train_ds.x)
        if encoder is not None:  # a category's 0/1 columns are fed as they are
            hot = np.asarray(encoder.onehot())
            std = Standardizer(np.where(hot, 0, std.mean).astype(np.float32), np.where(hot, 1, std.std).astype(np.float32))
    if std is not None:
        train_ds, val_ds, test_ds = (std.apply_to(d) for d in (train_ds, val_ds, test_ds))  # type: ignore[assignment]
    return Splits(train_ds, val_ds, test_ds, std, warnings=() if several else _range_warnings(program, train_ds),
                  rows=rows, encoder=encoder, class_weights=balanced_weights(program, train_ds))


def balanced_weights(program: Program, train: Dataset) -> dict[str, tuple[float, ...]]:
    """`class_weight=balanced` of each output that asks for it: n / (k · n_c) for each of its
    k classes (0 and 1 of a sigmoid output), counted over the training split's labels, as
    scikit-learn's `compute_class_weight("balanced")`. A class with no training example
    has no such weight: refused (E401) at the loss."""
    out: dict[str, tuple[float, ...]] = {}
    for h in program.heads:
        if h.loss.params.get("class_weight") != "balanced":
            continue
        y = np.asarray(train.y[h.name] if isinstance(train.y, dict) else train.y)
        span = h.span if h.span is not None else program.spec.loss.span if program.spec.loss is not None else None
        if h.loss.task == "binary":
            if not np.isin(y, (0, 1)).all():
                raise fail("E401", "`class_weight=balanced` counts the 0/1 labels, but the training targets hold "
                                   "values between 0 and 1", program, span, label="balanced",
                           help="give the weights as numbers: `class_weight=[w0, w1]`")
            k, labels = 2, y.astype(np.int64).ravel()
        else:
            k = h.shape[-1]
            onehot = h.loss.params.get("labels") == "onehot" and y.ndim >= 2 and y.shape[-1] == k
            labels = (y.argmax(axis=-1) if onehot else y).astype(np.int64).ravel()
        counts = np.bincount(labels, minlength=k)[:k]
        if (counts == 0).any():
            c = int(np.argmin(counts))
            names = train.classes[h.name] if isinstance(train.classes, dict) else train.classes
            shown = f"`{names[c]}`" if names and c < len(names) else str(c)
            raise fail("E401", f"`class_weight=balanced` divides by each class's count, but class {shown} has no "
                               f"example in the training split", program, span, label="balanced",
                       help="give the weights as numbers, or training data with every class")
        out[h.name] = tuple(float(labels.size / (k * n)) for n in counts)
    return out


def with_class_weights(program: Program, weights: Mapping[str, Sequence[float]] | None) -> Program:
    """`program` with each `class_weight=balanced` replaced by its numbers (`balanced_weights`,
    or as a run recorded them): what is lowered and trained."""
    if not weights:
        return program

    def resolve(h: Head) -> Head:
        if h.name not in weights or h.loss.params.get("class_weight") != "balanced":
            return h
        params = {**h.loss.params, "class_weight": tuple(float(w) for w in weights[h.name])}
        return dataclasses.replace(h, loss=dataclasses.replace(h.loss, params=params))
    heads = tuple(resolve(h) for h in program.heads)
    return dataclasses.replace(program, heads=heads, loss=heads[0].loss if program.loss is not None else None)




def load_source(program: Program, base: Path) -> tuple[Dataset, Rows]:
    """The spec's data source as read (before standardizing) and how its examples are
    split (nnspec/split.py); a problem with either raises E401 at the `data` line."""
    t = program.train
    assert t is not None and program.heads
    try:
        source, column = t.data, None
        weights = _weight_column(program, base)  # read as a weight, never as a feature
        if weights is not None:
            source = weights[0]
        if t.split_column is not None:  # read as a split, never as a feature
            source, values, lines = read_column(t.data, base, t.split_column,
                                                also=(t.sample_weight,) if t.sample_weight else ())
            column = (values, lines)
        # an autoencoder's targets are its inputs as read: `standardize` rescales what the
        # model is fed, never a target, so outputs (and predictions) are in the data's units
        several = len(program.model.inputs) > 1 or program.several_outputs
        if several:  # one array per input and per output (checked: E256)
            ds = load_named(source, base_dir=base, inputs=tuple(n for n, _ in program.model.inputs),
                            outputs=tuple((h.name, h.loss.task) for h in program.heads))
        else:
            shape = tuple(program.model.input_shape)  # a folder of images is resized to it
            ds = (load_inputs(source, seed=t.seed, base_dir=base, shape=shape) if t.target == "input"
                  else load(source, seed=t.seed, base_dir=base, task=program.loss.task,  # type: ignore[union-attr]
                            positions=class_positions(program), columns=t.columns, shape=shape))
        if weights is not None:
            ds = _weighted(program, ds, weights[1], weights[2])
        if column is not None:
            values, lines = column
            if ds.dropped and ds.lines is not None:  # `missing drop` left rows out: so does the split column
                kept = set(ds.lines.tolist())
                pairs = [(v, n) for v, n in zip(values, lines) if n in kept]
                values, lines = [v for v, _ in pairs], [n for _, n in pairs]
            if ds.lines is not None and (len(lines) != len(ds) or not np.array_equal(ds.lines, lines)):
                raise SplitColumnError("the split column's rows are not the examples read",
                                       path=t.data.params["path"], column=t.split_column)
            rows = column_rows(values, lines, path=t.data.params["path"], column=t.split_column or "")
        else:
            rows = split_rows(program, ds)
    except SplitColumnError as exc:
        raise _split_column_error(program, exc) from None
    except DataError as exc:
        raise fail("E401", f"cannot use the data: {exc.message}", program, t.data_span, label="this data",
                   notes=tuple(n for n in (_where(exc),) if n), help=exc.help) from None
    return ds, rows


def _weight_column(program: Program, base: Path) -> tuple[Any, list[str], list[int]] | None:
    """`sample_weight "COLUMN"`: (the source without that column among its features, the
    column's cells, their lines); a problem with the column is E401 at the `sample_weight` line."""
    t = program.train
    assert t is not None
    if t.sample_weight is None:
        return None
    try:
        return read_column(t.data, base, t.sample_weight, role="weight column",
                           also=(t.split_column,) if t.split_column else ())
    except DataError as exc:  # (a SplitColumnError too: the column's own problem)
        raise _weight_error(program, exc) from None


def _weight_error(program: Program, exc: DataError) -> NNSpecError:
    t = program.train
    assert t is not None
    return fail("E401", f"cannot use the weight column: {exc.message}", program, t.sample_weight_span,
                label="the weight column", notes=tuple(n for n in (_where(exc),) if n), help=exc.help,
                secondary=[(t.data_span, "in this data")])


def _weighted(program: Program, ds: Dataset, values: list[str], lines: list[int]) -> Dataset:
    """`ds` with each example's sample weight: a number ≥ 0 in its row of the column."""
    t = program.train
    assert t is not None and t.sample_weight is not None
    path, name = t.data.params["path"], t.sample_weight
    if ds.lines is not None:  # `missing drop` left rows out: their weights go too
        at = {n: i for i, n in enumerate(lines)}
        if any(n not in at for n in ds.lines.tolist()):
            raise _weight_error(program, DataError("the weight column's rows are not the examples read", path=path,
                                                   column=name))
        values = [values[at[n]] for n in ds.lines.tolist()]
        lines = ds.lines.tolist()
    out = np.empty(len(values), np.float32)
    for i, (cell, line) in enumerate(zip(values, lines)):
        try:
            w = data_module._number(cell)
        except data_module._CellError as exc:
            raise _weight_error(program, DataError(exc.message, path=path, row=line, column=name,
                                                   help="each row needs its weight, a number ≥ 0")) from None
        if w < 0:
            raise _weight_error(program, DataError(f"the weight `{cell.strip()}` is negative", path=path, row=line,
                                                   column=name, help="a sample weight is a number ≥ 0 (0 leaves the "
                                                                     "example out of the loss)"))
        out[i] = w
    return dataclasses.replace(ds, weight=out)


def split_rows(program: Program, ds: Dataset) -> Rows:
    """The examples of `ds` each part holds, by the spec's fractions (stratified or not)."""
    t = program.train
    assert t is not None
    if t.stratify:
        return stratified_rows(class_labels(ds), val=t.val, test=t.test, seed=t.seed,
                               names=ds.classes if isinstance(ds.classes, tuple) else None)
    return random_rows(len(ds), val=t.val, test=t.test, seed=t.seed)


def _split_column_error(program: Program, exc: DataError) -> NNSpecError:
    t = program.train
    assert t is not None
    return fail("E401", f"cannot use the split column: {exc.message}", program, t.split_span, label="the split column",
                notes=tuple(n for n in (_where(exc),) if n), help=exc.help, secondary=[(t.data_span, "in this data")])


def watches_val(program: Program) -> bool:
    """Whether training reads a validation metric: early stopping's, or the plateau rule's."""
    t = program.train
    watched = [t.early_stop.monitor] if t is not None and t.early_stop is not None else []
    lr = program.optimizer.params.get("lr") if program.optimizer is not None else None
    if getattr(lr, "name", None) == "reduce_on_plateau":
        watched.append(lr.params["monitor"])  # type: ignore[union-attr]
    return any(str(m).startswith("val_") for m in watched)


# What each kind of output activation can produce: (low, high, as written).
_RANGES = {"probability": (0.0, 1.0, "[0, 1]"), "distribution": (0.0, 1.0, "[0, 1]"),
           "bounded": (-1.0, 1.0, "[-1, 1]"), "nonnegative": (0.0, math.inf, "[0, ∞)"),
           "log_distribution": (-math.inf, 0.0, "(-∞, 0]")}


def _range_warnings(program: Program, train: Dataset) -> tuple[Diagnostic, ...]:
    """W003 where a regression model's last activation cannot reach a training target:
    a sigmoid under pixels in [0, 1] is right, under house prices probably a mistake."""
    assert program.loss is not None and program.train is not None
    last = next((layer for layer in reversed(program.model.layers) if layer.op != "dropout"), None)
    act = last.activation if last is not None else None
    entry = ACTIVATIONS.get(act) if act else None
    if program.loss.task != "regression" or entry is None or entry.attrs["output"] not in _RANGES or not train.y.size:
        return ()
    assert last is not None  # `entry` is its activation
    low, high, shown = _RANGES[entry.attrs["output"]]
    y = np.asarray(train.y, dtype=np.float64)
    outside = y[(y < low) | (y > high)]
    if not outside.size:
        return ()
    worst = float(outside[np.argmax(np.abs(outside))])
    return (warning("W003", f"the last layer's `{act}` keeps predictions in {shown}, but training targets reach {worst:g}",
                    program.train.data_span, "these targets",
                    secondary=[(last.span, f"limits the predictions to {shown}")],
                    help=f"a regression output is usually linear: remove `{act}`"),)


def _where(exc: DataError) -> str | None:
    if exc.path is None:
        return None
    where = exc.path + (f", line {exc.row}" if exc.row is not None else "")
    return where + (f", column `{exc.column}`" if exc.column else "")


def check_fit(program: Program, ds: Dataset, span: Span | None) -> None:
    """The data's example shape and labels must fit the model's input and output."""
    want = program.model.input_shape
    in_span = program.spec.model.inputs[0].span if program.spec.model else None
    if tuple(ds.features) != tuple(want):
        raise fail("E403", f"the data has examples of shape {show_shape(ds.features)}, but the model's input is {show_shape(want)}",
                   program, span, label="this data", secondary=[(in_span, "the input")], notes=_columns_note(program, ds),
                   help=f"declare the input as `input {program.model.inputs[0][0]}[{', '.join(map(str, ds.features))}]`"
                        if len(ds.features) else "give each example at least one feature")
    loss = program.loss
    assert loss is not None and program.train is not None
    out = program.model.output_shape
    positions = class_positions(program)
    if loss.task == "multiclass" and tuple(ds.y.shape[1:]) != positions and positions:
        # a class per example read for a model that gives one per step (a CSV, a built-in
        # dataset): the model's output, not the data, is what to change
        raise fail("E403", f"the data has one class per example, but the model gives a class at each of "
                           f"{show_shape(positions)} positions", program, span, label="this data",
                   secondary=[(program.model.layers[-1].span, f"shape {show_shape(out)}")],
                   help=f"to classify each example, end the model with `flatten` and `dense {out[-1]} softmax`")
    if loss.task == "multiclass" and tuple(ds.y.shape[1:]) != positions:
        raise fail("E403", f"the data has a class at each of {show_shape(tuple(ds.y.shape[1:]))} positions, but the "
                           f"model gives one class per example", program, span, label="this data",
                   secondary=[(program.model.layers[-1].span, f"shape {show_shape(out)}")],
                   help="give the model an output with a class axis last at each position, such as "
                        "`dense K softmax per_step` after `lstm N sequences`")
    classes = out[-1]
    if loss.task == "multiclass" and ds.y.size and int(ds.y.max()) >= classes:
        first = int(np.argmax(ds.y.reshape(len(ds.y), -1).max(axis=1) >= classes))
        raise fail("E403", f"the data has a label {int(ds.y.max())}, but the model has only {classes} output units (classes 0..{classes - 1})",
                   program, span, label="this data", help=f"give the last layer {int(ds.y.max()) + 1} units",
                   notes=_label_note(program, ds, first) if ds.y.ndim == 1 else ())
    if loss.task == "multiclass" and ds.classes is not None and len(ds.classes) > classes:
        # one-hot rows say how many classes there are even when some never occur
        raise fail("E403", f"the data has {len(ds.classes)} classes, but the model has only {classes} output units",
                   program, span, label="this data", help=f"give the last layer {len(ds.classes)} units")
    if loss.task in ("regression", "binary") and tuple(ds.y.shape[1:]) != tuple(out):
        # one target per output element: K columns for K units (multi-label: K 0/1
        # columns), or an array of the output's shape per example (per pixel, per step)
        got = tuple(ds.y.shape[1:])
        if len(got) == 1 and len(out) == 1:
            raise fail("E403", f"the data has {got[0]} target column(s), but the model has {out[0]} output unit(s)",
                       program, span, label="this data", secondary=[(program.model.layers[-1].span, f"{out[0]} unit(s)")],
                       notes=_targets_note(program, ds), help=f"give the last layer {got[0]} unit(s)")
        raise fail("E403", f"the data's targets have shape {show_shape(got)} per example, but the model's output is {show_shape(out)}",
                   program, span, label="this data", secondary=[(program.model.layers[-1].span, f"shape {show_shape(out)}")],
                   help="the output needs one value per target: give the model's output the targets' shape")
    if loss.name == "binary_crossentropy" and program.train.target == "input":
        low, high = float(ds.y.min()), float(ds.y.max())
        if low < 0 or high > 1:
            raise fail("E403", f"`binary_crossentropy` compares the outputs with targets in [0, 1], but the inputs "
                               f"reach {high if high > 1 else low:g}", program, span, label="these inputs",
                       secondary=[(program.spec.train.get("target").span, "the targets")],  # type: ignore[union-attr]
                       help="scale the inputs to [0, 1] in the data, or use `mse`")


def check_named_fit(program: Program, ds: Dataset, span: Span | None) -> None:
    """A model with several inputs or outputs against its arrays: each input's examples
    have the input's shape (token inputs hold ids below their vocabulary), and each
    output's targets fit the output as its loss reads them."""
    model = program.model
    spans = {i.name: i.span for i in program.spec.model.inputs} if program.spec.model else {}
    xs = ds.x if isinstance(ds.x, dict) else {model.inputs[0][0]: ds.x}
    for name, want in model.inputs:
        got = tuple(xs[name].shape[1:])
        array = name if len(model.inputs) > 1 else program.train.data.params.get("x", "x")  # type: ignore[union-attr]
        if got != tuple(want):
            raise fail("E403", f"array `{array}` has examples of shape {show_shape(got)}, but input `{name}` is {show_shape(want)}",
                       program, span, label="this data", secondary=[(spans.get(name), "the input")],
                       help=f"declare the input as `input {name}[{', '.join(map(str, got))}]`" if got
                            else "give each example at least one feature")
        kind = model.input_type(name)
        if kind.dtype == "int32":
            vocab = kind.vocab or min((layer.params["vocab"] for layer in model.layers if name in layer.inputs),
                                      default=2 ** 31 - 1)
            found = first_bad_token(xs[name], vocab)
            if found is not None:
                row, col, value = found
                raise fail("E403", f"input `{name}` holds token ids 0..{vocab - 1}, but array `{array}` has the value {value:g}",
                           program, span, label="this data", secondary=[(spans.get(name), "the input")],
                           notes=(f"{_data_path(program)}, array `{array}`, example {row}, position {col}",),
                           help="token ids are whole numbers below `vocab`: fix the data, or raise `vocab`")
    ys = ds.y if isinstance(ds.y, dict) else {"": ds.y}
    layers = {layer.name: layer for layer in model.layers}
    for h in program.heads:
        y, out, what = ys[h.name], h.shape, f"array `{h.name or program.train.data.params.get('y', 'y')}`"  # type: ignore[union-attr]
        at = [(layers[h.node].span, f"output `{h.node}`")]
        if h.loss.task == "multiclass" and y.ndim == 1 and y.size and int(y.max()) >= out[0]:
            raise fail("E403", f"{what} has a label {int(y.max())}, but output `{h.node}` has only {out[0]} units "
                               f"(classes 0..{out[0] - 1})", program, span, label="this data", secondary=at,
                       help=f"give `{h.node}` {int(y.max()) + 1} units")
        classes = ds.classes.get(h.name) if isinstance(ds.classes, dict) else ds.classes
        if h.loss.task == "multiclass" and classes is not None and len(classes) > out[0]:
            raise fail("E403", f"{what} has {len(classes)} classes, but output `{h.node}` has only {out[0]} units",
                       program, span, label="this data", secondary=at, help=f"give `{h.node}` {len(classes)} units")
        if h.loss.task in ("regression", "binary") and tuple(y.shape[1:]) != tuple(out):
            raise fail("E403", f"{what} has targets of shape {show_shape(tuple(y.shape[1:]))} per example, but output "
                               f"`{h.node}` is {show_shape(out)}", program, span, label="this data", secondary=at,
                       help="the output needs one value per target: give it the targets' shape")


def _targets_note(program: Program, ds: Dataset) -> tuple[str, ...]:
    path = _data_path(program)
    if path is None or not ds.target_names:
        return ()
    return (f"{path}: the targets are {_listing(ds.target_names)}",)


def token_vocab(program: Program) -> int | None:
    """The vocabulary of a model whose one input holds token ids (the input's, or the
    smallest of the `embedding`s reading it); None for a model of numbers."""
    model = program.model
    if len(model.inputs) != 1 or model.input_type(model.inputs[0][0]).dtype != "int32":
        return None
    kind = model.input_type(model.inputs[0][0])
    return kind.vocab or min((layer.params["vocab"] for layer in model.layers if kind.name in layer.inputs),
                             default=2 ** 31 - 1)


def first_bad_token(x: np.ndarray, vocab: int) -> tuple[int, int, float] | None:
    """(example, feature, value) of the first value of `x` that is not a token id below
    `vocab` (a whole number, 0 or more); None if every value is one."""
    x = np.asarray(x, dtype=np.float64)
    bad = ~np.isfinite(x) | (x != np.round(x)) | (x < 0) | (x >= vocab)
    if not bad.any():
        return None
    flat = int(np.argmax(bad.reshape(-1)))
    row, col = divmod(flat, max(1, math.prod(x.shape[1:])))
    return row, col, float(x.reshape(-1)[flat])


def check_tokens(program: Program, ds: Dataset, span: Span | None) -> bool:
    """Whether the model's input holds token ids; if so, every value must be a whole number
    in [0, vocab), the vocabulary of the input (or of the smallest `embedding` reading it)."""
    vocab = token_vocab(program)
    if vocab is None:
        return False
    found = first_bad_token(ds.x, vocab)
    if found is None:
        return True
    row, col, value = found
    kind = program.model.input_type(program.model.inputs[0][0])
    shown = f"{value:g}"
    notes: tuple[str, ...] = ()
    path = _data_path(program)
    if path is not None and ds.lines is not None and ds.feature_names:
        notes = (f"{path}, line {int(ds.lines[row])}, column `{_excerpt(ds.feature_names[col])}`: "
                 f"`{shown}` is the first such value",)
    elif path is not None:
        notes = (f"{path}, example {row}, feature {col}: `{shown}` is the first such value",)
    in_span = program.spec.model.inputs[0].span if program.spec.model else None
    raise fail("E403", f"input `{kind.name}` holds token ids 0..{vocab - 1}, but the data has the value {shown}",
               program, span, label="this data", secondary=[(in_span, "the input")], notes=notes,
               help="token ids are whole numbers below `vocab`: fix the data, or raise `vocab`")


def _data_path(program: Program) -> str | None:
    t = program.train
    if t is None:
        return None
    files = data_files(t.data)
    return files.get("path") or files.get("x") or files.get("images")


def _label_note(program: Program, ds: Dataset, i: int) -> tuple[str, ...]:
    """Where the first label that does not fit is: file, line and column (or array index)."""
    path = _data_path(program)
    if path is None:
        return ()
    shown = _excerpt(ds.classes[int(ds.y[i])]) if ds.classes is not None and int(ds.y[i]) < len(ds.classes) else str(int(ds.y[i]))
    column = _excerpt(ds.target_names[0]) if ds.target_names else "y"
    if ds.lines is not None:
        return (f"{path}, line {int(ds.lines[i])}, column `{column}`: `{shown}` is the first such label",)
    return (f"{path}, array `{column}`, index {i}: `{shown}` is the first such label",)


def _columns_note(program: Program, ds: Dataset) -> tuple[str, ...]:
    path = _data_path(program)
    if path is None:
        return ()
    if ds.encoder is not None:
        return (f"{path}: the feature columns {_listing(ds.feature_names)} encode to {ds.encoder.describe()}",)
    if ds.lines is not None and ds.feature_names:
        names = _listing(ds.feature_names)
        return (f"{path}: the header names {len(ds.feature_names)} feature column(s): {names}",)
    return (f"{path}: the features have shape {show_shape(ds.x.shape)}",)


def class_positions(program: Program) -> tuple[int, ...]:
    """Where a (one-output) multiclass model gives a class in one example: its output's
    axes before the class axis (() for a flat vector of class scores, (steps,) for a class
    per step)."""
    head = program.heads[0] if program.heads else None
    if head is None or head.loss.task != "multiclass":
        return ()
    return tuple(head.shape[:-1])


def _labels(program: Program, y: Any) -> Any:
    """Labels in the layout each output's loss reads (one-hot for `labels=onehot`): an
    array, or with several outputs a dict of them by output name."""
    assert program.heads
    if program.several_outputs:
        return {h.name: _head_labels(h.loss, h.shape, y[h.name]) for h in program.heads}
    return _head_labels(program.heads[0].loss, program.heads[0].shape, y)


def _head_labels(loss: LossProgram, shape: tuple[int, ...], y: np.ndarray) -> np.ndarray:
    # class indices have one axis fewer than the output: its class axis (a class per step:
    # (examples, steps) against a (steps, K) output)
    if loss.name == "categorical_crossentropy" and loss.params["labels"] == "onehot" and y.ndim == len(shape):
        return np.eye(shape[-1], dtype=np.float32)[y]
    return y


def _stmt_span(program: Program, keyword: str) -> Span | None:
    if program.spec.train is None:
        return None
    d = program.spec.train.get(keyword)
    return d.span if d else None


def _spec_dir(program: Program) -> Path:
    if program.source is not None and program.source.filename not in ("<string>", "<stdin>"):
        return Path(program.source.filename).resolve().parent
    return Path.cwd()
