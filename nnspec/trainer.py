"""The one trainer: a stack of N >= 1 models of one structure, trained together.

A single run is a stack of one; a sweep trains each group of its models as one stack.
Every model of a stack shares ONE compiled epoch program: the fused epoch below (the
shuffled mini-batches as a `lax.scan` of gradient steps, with the metric sums), mapped
over the models' stacked parameters, optimizer states, hyperparameters and keys with
`jax.vmap` (for one model, without: the program is then the plain epoch). Early stopping
and divergence are per model: a stopped or diverged model keeps its last good weights
while the others go on. Keys derive from each model's seed and the epoch number, so a
resumed run ends bit-identical to an uninterrupted one.

The trainer only trains. Its callers, fit.py (one run) and sweep_fit.py (a sweep), read
the data (prepare.py), write the run folder (runs.py) and talk to the screen.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nnspec import metrics as metric_lib
from nnspec.checked import Fn, Program
from nnspec.devices import Devices
from nnspec.lower import PLATEAU, Model, TrainState, plateau_update, with_hparams
from nnspec.prepare import Splits, _labels
from nnspec.stream import Rows, windows as stream_windows
from nnspec.xla_options import compile_options, jit as xla_jit

# ------------------------------------------------------------------------------ programs


def shuffle(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order of the examples in one epoch, from the seed and the epoch number alone.

    Drawn on the host: on XLA:CPU a device permutation is a sort of threefry bits that
    cost 4x more than the whole W1 epoch it shuffles (docs/benchmarks.md), while NumPy's
    takes 0.03 ms for 4,096 examples and is just as reproducible (and so resumable)."""
    return np.random.default_rng((seed, epoch)).permutation(n).astype(np.int32)


def keys_for(seed: int) -> tuple[jax.Array, jax.Array]:
    """(initialization key, base of the epochs' dropout keys) of a model's seed."""
    base = jax.random.key(seed)
    return jax.random.fold_in(base, 0), jax.random.fold_in(base, 1)


def _batches(n: int, batch: int | None, devices: int = 1) -> tuple[int, int, int, np.ndarray | None]:
    """(batch size, steps, padding, each step's example weights) of an epoch over n
    examples. Without padding every weight would be 1: the weights are then None, and left
    out of the program entirely. On several devices the one batch of `batch all` grows to
    a multiple of their number (a given batch size already is one: E320/E406)."""
    b = batch if batch is not None else -(-n // devices) * devices
    steps = math.ceil(n / b)
    pad = steps * b - n
    # NumPy: a constant of the programs that use it (eager jnp operations compile)
    weights = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)]).reshape(steps, b) if pad else None
    return b, steps, pad, weights


def budget(steps: int, n: int, batch: int | None, devices: int = 1) -> tuple[int, int | None]:
    """`steps N` over n examples: (the epochs it takes, the steps of the last one where that
    is short of a whole epoch, else None)."""
    per = _batches(n, batch, devices)[1]
    epochs = -(-steps // per)
    last = steps - (epochs - 1) * per
    return epochs, (last if last < per else None)


def epoch_fn(model: Model, n: int, batch: int | None, split: Callable | None = None, devices: int = 1,
             limit: int | None = None) -> Callable:
    """(state, x, y, order, base key, epoch, hparams, sample weights or None) -> (state,
    metric sums, per-step losses). `order` is the epoch's permutation of the examples
    (`shuffle`); the dropout keys are folded from the base key and the epoch on the device.
    Pure: stacks vmap it. With `sample_weight`, the loss is each batch's weighted mean
    (Σ w·loss / Σ w), and the epoch's Σ w·loss / Σ w; the metrics are not weighted.

    Every example is used once per epoch: the last, partial batch is padded with
    repeated examples whose weight is 0, so all batches have one static shape.
    `split` (devices.Devices.split_batch) spreads each step's batch over `devices`.
    `limit` (the last epoch of `steps N`): only the epoch's first `limit` steps, the same
    batches and keys as the whole epoch's; its sums are over the examples they saw."""
    b, steps, pad, weights = _batches(n, batch, devices)
    take = steps if limit is None else limit
    if take < steps:  # the padded batch is the last: the steps taken have none
        weights, seen = None, take * b
    else:
        seen = n

    def run(state: TrainState, x, y, order, base_key, epoch, hparams, sw=None):
        key = jax.random.fold_in(base_key, epoch)
        idx = jnp.concatenate([order, order[:pad]]).reshape(steps, b)[:take]
        keys = jax.random.split(key, steps)[:take]
        body = _step_body(model, split, hparams, lambda i: (rows(x, i), rows(y, i), None if sw is None else sw[i]))
        (state, stats, total), (losses, mass) = jax.lax.scan(body, (state, _zero_stats(model, b, y), _NO_LOSS),
                                                             (idx, weights, keys))
        per_step = losses / _step_mass(mass, weights, b)
        return state, {"loss": total[0] / (total[1] if sw is not None else seen), **model.finalize(stats)}, per_step

    return run


def _step_body(model: Model, split: Callable | None, hparams: Any, batch_of: Callable) -> Callable:
    """One gradient step as a `lax.scan` body over (what `batch_of` makes the batch of:
    (x, y, sample weights or None), its examples' padding weights or None, its dropout
    key); the carry is (state, metric statistics, (Σ loss, Σ loss weight) so far); each
    step gives (its loss sum, its examples' total loss weight). The epoch's sums are added
    in the carry one step at a time, so a streamed epoch, whose windows continue the same
    carry, adds the same numbers in the same order and gets the same float32 result (a sum
    of the per-step losses, window by window, differed in the last bits)."""
    def body(carry, inp):
        state, acc, total = carry
        what, w, k = inp
        xb, yb, swb = batch_of(what)
        lw = swb if w is None or swb is None else swb * w  # each example's weight in the loss
        if split is not None:
            xb, yb, w, lw = split((xb, yb, w, lw))
        state, sums = model.step(state, xb, yb, key=k, hparams=hparams, weights=w, loss_weights=lw)
        mass = jnp.sum(lw) if lw is not None else jnp.zeros((), jnp.float32)
        total = total + jnp.stack([sums["loss"], mass])
        return (state, model.merge_stats(acc, sums["metrics"]), total), (sums["loss"], mass)
    return body


_NO_LOSS = np.zeros((2,), np.float32)  # (Σ loss, Σ loss weight) before an epoch's first step


def _step_mass(mass: jax.Array, weights: Any, b: int) -> Any:
    """What each step's loss sum is divided by for its mean: its total sample weight
    (with `sample_weight`: `mass` is nonzero then), else its real examples."""
    count = jnp.sum(weights, axis=1) if weights is not None else b
    return jnp.where(mass > 0, mass, count)


def _zero_stats(model: Model, b: int, y: Any) -> Any:
    """The metrics' statistics before an epoch's first step (merged in the scan's carry:
    an AUC's histograms per step would not fit)."""
    return model.zero_stats(model.output_struct(b),
                            jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct((b, *a.shape[1:]), a.dtype), y))


def window_fns(model: Model, n: int, batch: int, y: Any, split: Callable | None = None,
               devices: int = 1, weighted: bool = False) -> tuple[Callable, ...]:
    """The epoch of `epoch_fn` cut into windows of steps whose examples come from the host
    (`stream`: nnspec/stream.py): (begin, window, end, keys).
    begin(hparams) -> (metric statistics, loss sum) before the first step;
    window(state, stats, total, x window (steps, b, ...), y, its examples' indices into y
    (steps, b), their weights (steps, b) or None, the steps' keys, hparams) -> (state,
    stats, total, per-step losses): the same steps as `epoch_fn` takes at those positions
    (`y`: the labels, whose shapes the statistics take);
    end(stats, total) -> the epoch's sums as `epoch_fn` returns them;
    keys(base key, epoch) -> every step's dropout key, as `epoch_fn` draws them."""
    b, steps, _, _ = _batches(n, batch, devices)

    def begin(hparams):
        return _zero_stats(model, b, y), jnp.asarray(_NO_LOSS)

    def window(state, stats, total, xw, y, sw, idx, w, keys, hparams):
        body = _step_body(model, split, hparams,
                          lambda p: (p[0], rows(y, p[1]), None if sw is None else sw[p[1]]))
        (state, stats, total), (losses, mass) = jax.lax.scan(body, (state, stats, total), ((xw, idx), w, keys))
        return state, stats, total, losses / _step_mass(mass, w, b)

    def end(stats, total):
        return {"loss": total[0] / (total[1] if weighted else n), **model.finalize(stats)}

    def keys(base_key, epoch):
        return jax.random.split(jax.random.fold_in(base_key, epoch), steps)

    return begin, window, end, keys


def epoch_program(model: Model, n: int, batch: int | None) -> Callable:
    """`epoch_fn` of one model, compiled once.
    No buffer donation: the last good state must survive an epoch that diverges."""
    return compiled(epoch_fn(model, n, batch))


# Evaluation runs over fixed-size chunks, the last padded with examples of weight 0: one
# compiled program serves the initial loss, every epoch's validation and the kept
# weights' metrics on each split, whatever their sizes (three sizes used to be three
# compilations, the largest part of a small spec's start-up).
EVAL_CHUNK = 8192


def eval_chunk(sizes: Sequence[int], devices: int = 1) -> int:
    """The chunk size for datasets of these sizes: the smallest power of two that holds the
    largest in one chunk, at most EVAL_CHUNK; on several devices, rounded up to a multiple
    of their number."""
    largest = max([1, *sizes])
    size = min(EVAL_CHUNK, 1 << (largest - 1).bit_length())
    return -(-size // devices) * devices


def eval_sums_fn(model: Model, split: Callable | None = None, extra: Mapping[str, Any] | None = None) -> Callable:
    """(params, x, y, weights, hparams) -> {"loss": the weighted sum of the loss, "metrics":
    every metric's statistics}; with `split`, each chunk's examples spread over the devices.
    `extra` (key -> metrics.Metric) adds statistics of its own, as `eval`'s confusion counts."""
    def run(params, x, y, w, lw, hparams):
        if split is not None:
            x, y, w, lw = split((x, y, w, lw))
        pred, per, added = model.scored(params, x, y, hparams=hparams)
        stats = model.metric_stats(pred, y, w, added)
        if extra:
            stats.update(metric_lib.stats_of(extra, pred, y, w))
        lw = w if lw is None else lw  # `sample_weight`: the loss weighted, the metrics not
        return {"loss": jnp.sum(jnp.where(w > 0, per, 0.0) * lw), "mass": jnp.sum(lw), "metrics": stats}
    return run


@dataclass(frozen=True)
class Chunks:
    """A dataset as equal pieces on the device (x, y, weights); `n` real examples. The
    parts are a tuple, or (for streamed data) `_Pieces` that reads each as it is reached."""
    parts: Sequence[tuple[jax.Array, jax.Array, jax.Array, jax.Array | None]] | _Pieces
    n: int
    weighted: bool = False  # the fourth of each part: the examples' sample weights (else None)


class _Pieces:
    """The chunks of streamed features (stream.Rows), read from their file one at a time."""

    def __init__(self, x: Rows, y: Any, size: int, sw: np.ndarray | None = None) -> None:
        self.x, self.y, self.size, self.sw = x, y, size, sw

    def __len__(self) -> int:
        return -(-len(self.x) // self.size)

    def __iter__(self):
        for start in range(0, len(self.x), self.size):
            yield _piece(self.x, self.y, start, self.size, self.sw)


def rows(tree: Any, index: Any) -> Any:
    """The examples at `index` of every array of `tree` (an array, or a dict of them for
    several inputs or outputs)."""
    return jax.tree_util.tree_map(lambda a: a[index], tree)


def n_examples(tree: Any) -> int:
    return int(jax.tree_util.tree_leaves(tree)[0].shape[0])


def chunks(x: Any, y: Any, size: int, sw: np.ndarray | None = None) -> Chunks:
    """`x`, `y` (arrays, or dicts of them) cut into pieces of `size` examples, the last
    padded with its first examples at weight 0 (so they are real, finite inputs that count
    for nothing); `sw`: each example's sample weight, in the loss."""
    y = jax.tree_util.tree_map(np.asarray, y)
    if isinstance(x, Rows):  # streamed: each chunk read from the file when its turn comes
        return Chunks(_Pieces(x, y, size, sw), len(x), sw is not None)
    x = jax.tree_util.tree_map(np.asarray, x)
    n = n_examples(x)
    return Chunks(tuple(_piece(x, y, start, size, sw) for start in range(0, n, size)), n, sw is not None)


def _piece(x: Any, y: Any, start: int, size: int, sw: np.ndarray | None = None) -> tuple[Any, Any, jax.Array, Any]:
    """The chunk of `size` examples from `start`, padded with its first examples at weight 0."""
    n = len(x) if isinstance(x, Rows) else n_examples(x)
    piece = slice(start, start + size)
    xs = x.read(piece) if isinstance(x, Rows) else rows(x, piece)
    ys = rows(y, piece)
    m = min(size, n - start)
    w = np.zeros(size, np.float32)
    w[:m] = 1.0
    lw = None
    if sw is not None:
        lw = np.zeros(size, np.float32)
        lw[:m] = sw[piece]
    if m < size:
        fill = np.concatenate([np.arange(m), np.resize(np.arange(m), size - m)])
        xs, ys = rows(xs, fill), rows(ys, fill)
    return jax.device_put((xs, ys, w, lw))  # as jnp.asarray would, without its compiled copy


def mean_over(run: Callable, params: Any, data: Chunks, hparams: Any, model: Model,
              extra: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
    """The mean loss and every metric of `model` over `data`, by `run` (an `eval_sums_fn`;
    with `extra`, the same `extra`'s values too): the chunks' statistics are merged on the
    device, then finalized on the host in float64."""
    return finish_mean(sums_over(run, params, data, hparams, model, extra), data, model, extra)


def sums_over(run: Callable, params: Any, data: Chunks, hparams: Any, model: Model,
              extra: Mapping[str, Any] | None = None) -> tuple[Any, Any, Any] | None:
    """`mean_over`'s device half: (loss sum, loss weight, merged statistics) over `data`, as
    device arrays still being computed (None without data): the host may go on meanwhile."""
    if not data.parts:
        return None
    loss, stats = None, None
    metrics = {**model._metrics, **(extra or {})}
    streamed = isinstance(data.parts, _Pieces)
    mass = None
    for x, y, w, lw in data.parts:
        if streamed and loss is not None:  # a chunk read from the file at a time, not all queued
            jax.block_until_ready(loss)
        got = run(params, x, y, w, lw, hparams)
        loss = got["loss"] if loss is None else loss + got["loss"]
        mass = got["mass"] if mass is None else mass + got["mass"]
        stats = got["metrics"] if stats is None else metric_lib.merge(metrics, stats, got["metrics"])
    return loss, mass, stats


def finish_mean(sums: tuple[Any, Any, Any] | None, data: Chunks, model: Model,
                extra: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
    """`mean_over`'s host half: `sums_over`'s sums as the mean loss and every metric."""
    if sums is None:
        return {}
    loss, mass, stats = sums
    metrics = {**model._metrics, **(extra or {})}
    # the mean loss: over the examples, or (`sample_weight`) weighted by theirs
    total = np.asarray(mass, np.float64) if data.weighted else max(data.n, 1)
    out = {"loss": np.asarray(loss, np.float64) / np.where(total > 0, total, 1.0)}
    host = jax.tree_util.tree_map(lambda v: np.asarray(v, np.float64), stats)
    out.update({k: np.asarray(v) for k, v in metric_lib.finalize(metrics, host, np).items()})
    return out


class _Compiled:
    """`jax.jit(fn)`, but compiled once per distinct program in the process. jax.jit's own
    cache keys on the Python function, and every Model makes its functions anew, so two
    `fit` calls of one model (another learning rate or seed: traced numbers, not constants
    of the program) would compile twice. Here the first call looks the program up by its
    StableHLO text, which holds every constant: the same text is the same computation, so
    the jitted function that already compiled it serves this one too (when the trees in and
    out, names included, are the same too), at jax.jit's own speed from then on."""

    def __init__(self, fn: Callable, options: dict[str, Any] | None = None) -> None:
        self.base = compile_options()  # nnspec's own, for every program (xla_options.py)
        self.jitted = jax.jit(fn, compiler_options=self.base or None)
        self.options = options
        self.fast: Callable | None = None

    def __call__(self, *args):
        if self.fast is None:
            lowered = self.jitted.lower(*args)
            # the text, and the names in and out: two models that differ only in their layers'
            # names compile to one text, but each must get its own names back
            key = hashlib.sha256("\n".join([lowered.as_text(), str(lowered.in_tree), str(lowered.out_tree),
                                             repr(self.options), repr(self.base)]).encode()).hexdigest()
            self.fast = _PROGRAMS.get(key)
            if self.fast is None:
                if len(_PROGRAMS) >= _MAX_PROGRAMS:
                    _PROGRAMS.pop(next(iter(_PROGRAMS)))  # the oldest: a bounded cache
                # with options, the compiled program itself (for programs that run once:
                # its slower call does not matter)
                self.fast = self.jitted if self.options is None else lowered.compile({**self.base, **self.options})
                _PROGRAMS[key] = self.fast
        return self.fast(*args)


_PROGRAMS: dict[str, Callable] = {}
_MAX_PROGRAMS = 64


# For a program that runs once (the initialization): XLA's backend optimizations cost
# most of its compile time (4.9 s against 1.4 s for the digits MLP's, measured) and buy
# nothing. Its numbers may differ from an optimized build's in the last bit (6e-8 in 4% of
# a glorot draw), the same on every run.
RUN_ONCE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


# An epoch shorter than this (seconds, the last one measured) has the next one dispatched
# before its results are read (`Trainer.run`): on small models the host's work per epoch
# is a large part of it. Longer epochs gain nothing from it, and an early stop would waste
# the one trained ahead.
RUN_AHEAD_SECONDS = 0.05


def compiled(fn: Callable, options: dict[str, Any] | None = None) -> Callable:
    """`fn` compiled, sharing compiled programs across calls of the process (`_Compiled`);
    `options` are XLA compile options (`RUN_ONCE`)."""
    return _Compiled(fn, options)


def _start(model: Model, count: int) -> Callable:
    """seeds -> (every model's initial parameters, epoch base keys, their key data):
    `keys_for` and `Model.init` of each seed, in one program."""
    def start(seeds):
        def one(seed):
            init_key, epoch_key = keys_for(seed)
            return model.init(init_key), epoch_key, jax.random.key_data(epoch_key)
        return over_models(one, count, (0,))(seeds)
    return start


def over_models(fn: Callable, count: int, in_axes: Sequence[int | None], spmd_axis: str | None = None) -> Callable:
    """`fn` mapped over a leading model axis of the arguments whose axis is 0: `jax.vmap`
    for several models; for one, the plain function between a squeeze and an expand, so a
    single run compiles exactly the program it would without the stack. `spmd_axis` names
    the mesh axis the models are split over (devices.Devices.spmd_axis)."""
    if count > 1:
        return jax.vmap(fn, in_axes=tuple(in_axes), spmd_axis_name=spmd_axis)

    def one(*args):
        args = tuple(a if ax is None else jax.tree_util.tree_map(lambda v: v[0], a) for a, ax in zip(args, in_axes))
        return jax.tree_util.tree_map(lambda v: v[None], fn(*args))
    return one


def replay(model: Model, state: TrainState, x, y, order, base_key, epoch: int, hparams, batch: int | None,
           steps_done: int, devices: int = 1, sw: Any = None):
    """The state after the first `steps_done` steps of an epoch, one step at a time, with
    the batches and keys of `epoch_fn` (a test holds the two together); and the epoch's
    (batch indices, weights or None, step keys)."""
    n = len(x) if isinstance(x, Rows) else n_examples(x)
    b, steps, pad, weights = _batches(n, batch, devices)
    idx = jnp.concatenate([jnp.asarray(order), jnp.asarray(order)[:pad]]).reshape(steps, b)
    keys = jax.random.split(jax.random.fold_in(base_key, epoch), steps)
    def one_step(s, xb, i, w, k):
        lw = None if sw is None else (sw[i] if w is None else sw[i] * w)
        return model.step(s, xb, rows(y, i), key=k, hparams=hparams, weights=w, loss_weights=lw)[0]
    one = xla_jit(one_step)
    for j in range(steps_done):
        state = one(state, batch_rows(x, idx[j]), idx[j], None if weights is None else weights[j], keys[j])
    return state, (idx, weights, keys)


def batch_rows(x: Any, index: Any) -> Any:
    """The examples of `x` at `index`: on the device, or read from the file (stream.Rows)."""
    return x.read(np.asarray(index)) if isinstance(x, Rows) else rows(x, index)


# ------------------------------------------------------------------------ per-model state

@dataclass(frozen=True)
class Stopper:
    """Early stopping's bookkeeping, as Keras's: `patience` epochs without an improvement of
    more than `min_delta` stop the model. `patience` None never stops (it tracks the best)."""
    monitor: str
    mode: str
    patience: int | None
    min_delta: float
    best: float = math.nan
    best_epoch: int = 0
    wait: int = 0

    def update(self, value: float, epoch: int) -> tuple[Stopper, bool, bool]:
        """(the stopper after this epoch, improved, should stop)."""
        better = (math.isnan(self.best) or
                  (value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta))
        if better:
            return replace(self, best=value, best_epoch=epoch, wait=0), True, False
        wait = self.wait + 1
        return replace(self, wait=wait), False, self.patience is not None and wait >= self.patience

    def record(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}


@dataclass(frozen=True)
class Divergence:
    """Where a model diverged: epoch and step (1-based), and how: `NaN`, `infinite`, or
    `exploded` (finite, but beyond its `divergence` factor times its initial loss)."""
    epoch: int
    step: int
    how: str
    loss: float               # the epoch's mean loss
    per_step: np.ndarray      # the epoch's per-step losses, for the diagnosis


@dataclass(frozen=True)
class Track:
    """One model's progress. Replaced, never changed, so that a snapshot is consistent."""
    stopper: Stopper
    history: tuple[dict[str, float], ...] = ()
    stopped: dict[str, Any] | None = None   # {"reason": "early_stop", ...} once stopped
    diverged: Divergence | None = None
    steps: tuple[np.ndarray, ...] = ()      # with `history steps`: each epoch's per-step losses

    @property
    def active(self) -> bool:
        return self.stopped is None and self.diverged is None


@dataclass(frozen=True)
class Snapshot:
    """Everything the trainer has after `epoch` epochs: the stacked state, the best weights
    (with `restore_best`) and each model's track. One object, stored in one statement, so a
    Ctrl-C never lands between a state and the history that describes it."""
    epoch: int
    state: TrainState
    best: Any | None
    tracks: tuple[Track, ...]


def _select(mask: jax.Array, new: Any, old: Any) -> Any:
    def pick(n, o):
        m = mask.reshape(mask.shape + (1,) * (n.ndim - 1))
        return jnp.where(m, n, o)
    return jax.tree_util.tree_map(pick, new, old)


def stack(trees: Sequence[Any]) -> Any:
    """Trees of one structure, stacked on a new leading (model) axis. Stacked on the host
    and put on the device: an eager `jnp.stack` compiles a program for each leaf's shape,
    and with the slices of `member` they were a tenth of a small spec's start-up."""
    def one(*xs):
        if all(_on_host(x) for x in xs):
            return jax.device_put(np.stack([np.asarray(x) for x in xs]))
        return jnp.stack([jnp.asarray(x) for x in xs])
    return jax.tree_util.tree_map(one, *trees)


def member(tree: Any, i: int, *, host: bool = False) -> Any:
    """Model `i`'s slice of a stacked tree (sliced on the host where it can be read there,
    as `stack`; a NumPy copy of a device array is kept by the array, so slicing each model
    in turn reads it once). `host`: NumPy slices, not put back on the device (for a file)."""
    def one(a):
        if not _on_host(a):
            return a[i]
        piece = np.asarray(a)[i]
        return piece if host else jax.device_put(piece)
    return jax.tree_util.tree_map(one, tree)


def _on_host(a: Any) -> bool:
    """Whether `a` can be read as a NumPy array here: not a typed key, not split over
    other processes' devices."""
    if isinstance(a, jax.Array):
        return not jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key) and (a.is_fully_addressable
                                                                             or a.is_fully_replicated)
    return not isinstance(a, jax.core.Tracer)


# ------------------------------------------------------------------------------ the loop

class Trainer:
    """N >= 1 programs that share one structure (a sweep group, or one run), trained on one
    split of the data. The first program decides the structure, the batch size, early
    stopping's rule and the data's labels; each program brings its own numbers (learning
    rate, momentum, drop probabilities, penalties, schedule constants), seed and
    `divergence` factor."""

    def __init__(self, programs: Sequence[Program], splits: Splits, *, monitor: str | None = None,
                 mode: str | None = None, devices: Devices | None = None) -> None:
        assert programs, "a stack needs a model"
        first = programs[0]
        t = first.train
        assert t is not None and first.optimizer is not None and first.heads
        self.programs, self.splits, self.count = list(programs), splits, len(programs)
        self.devices = (devices or Devices(1)).for_stack(self.count)
        split = self.devices.split_batch()
        spmd = self.devices.spmd_axis
        alone = [Model(p) for p in programs]  # each program's own numbers
        self.model = Model(first, with_decay=any(p.regularization.weight_decay > 0 for p in programs),
                           with_penalty=any(m.has_penalty for m in alone))
        self.hparams = self.devices.per_model(stack([m.hparams() for m in alone]))
        self.seeds = [p.train.seed for p in programs]  # type: ignore[union-attr]
        # every model's first weights and epoch keys from its seed, in one program (eager
        # key derivations were compilations of their own, a fifth of a small spec's start-up)
        self._params0, self.epoch_keys, self.epoch_key_data = compiled(_start(self.model, self.count), RUN_ONCE)(
            np.asarray(self.seeds, np.int32))
        es = t.early_stop
        self.early_stop, self.batch = es, t.batch
        self.restore_best = bool(es and es.restore_best)
        self.monitor = monitor or (es.monitor if es else ("val_loss" if splits.val is not None else "loss"))
        self.mode = mode or (es.mode if es else "min")
        # each model's factor over its initial loss beyond which it has diverged (inf: never)
        self.limits = np.array([p.train.divergence or math.inf for p in programs])  # type: ignore[union-attr]
        # `stream`: the features stay in their file (stream.Rows), read a window at a time
        self.streamed = isinstance(splits.train.x, Rows)
        self.x = splits.train.x if self.streamed else self.devices.replicated(splits.train.x)
        self.y = self.devices.replicated(_labels(first, splits.train.y))
        # `sample_weight`: each training example's weight in the loss (None: every example 1)
        w = splits.train.weight
        self.sw = None if w is None else self.devices.replicated(np.asarray(w, np.float32))
        self.chunk = eval_chunk([len(d) for d in (splits.train, splits.val, splits.test) if d is not None],
                                self.devices.count)
        self.val = None
        if splits.val is not None:
            self.val = chunks(splits.val.x, _labels(first, splits.val.y), self.chunk, splits.val.weight)
        self.n = len(splits.train)
        # Models with the same seed see the examples in the same order: one shared permutation.
        self.shared = len(set(self.seeds)) == 1
        axes = (0, None, None, None if self.shared else 0, 0, None, 0, None)  # the last: sample weights
        if self.streamed:
            self._windows(t.batch, t.stream, split, spmd)
        else:
            self._epoch = compiled(over_models(epoch_fn(self.model, self.n, t.batch, split, self.devices.count),
                                               self.count, axes, spmd))
        # `steps N`: the epochs it takes, and a program of its own for a last epoch that
        # ends part way (`stream` and `history steps` have none: E119)
        self.epochs, self.last_steps = (t.epochs, None) if t.steps is None else budget(
            t.steps, self.n, t.batch, self.devices.count)
        if self.last_steps is not None:
            self._last_epoch = compiled(over_models(epoch_fn(self.model, self.n, t.batch, split, self.devices.count,
                                                             self.last_steps), self.count, axes, spmd))
        self._evaluate = compiled(over_models(eval_sums_fn(self.model, split), self.count, (0, None, None, None, None, 0),
                                              spmd))
        self._select = jax.jit(_select)
        self.names = ("loss", *self.model.metric_names)  # a history row's order
        # `lr=reduce_on_plateau(...)`: its state lives in each model's optimizer state (so a
        # checkpoint resumes it exactly and a stack's models each have their own), moved on
        # after every epoch by the monitored value
        lr = first.optimizer.params["lr"]
        self.plateau: Fn | None = lr if isinstance(lr, Fn) and lr.name == PLATEAU else None
        if self.plateau is not None:
            rule = self.plateau
            self._plateau = compiled(over_models(
                lambda st, v: st._replace(opt_state=plateau_update(st.opt_state, v, rule)), self.count, (0, 0), spmd))
        self.start_loss = np.full(self.count, math.nan)
        self.snapshot: Snapshot | None = None
        # `history steps`: the epoch program returns its per-step losses anyway; keeping
        # them costs one small transfer an epoch
        self.record_steps = t.history == "steps"
        self.steps_per_epoch = _batches(self.n, t.batch, self.devices.count)[1]

    def _windows(self, batch: int | None, asked: int | str | None, split: Callable | None, spmd: str | None) -> None:
        """The programs of a streamed epoch (`window_fns`), and its windows: (first step,
        end step, the steps' example weights or None)."""
        assert batch is not None and isinstance(self.x, Rows)  # `stream` needs mini-batches (E327)
        per = None if self.shared else 0  # one shared order's examples, or each model's own
        begin, window, end, keys = window_fns(self.model, self.n, batch, self.y, split, self.devices.count,
                                              weighted=self.sw is not None)
        self._begin = compiled(over_models(begin, self.count, (0,), spmd))
        self._window = compiled(over_models(window, self.count, (0, 0, 0, per, None, None, per, None, 0, 0), spmd))
        self._end = compiled(over_models(end, self.count, (0, 0), spmd))
        self._keys = compiled(over_models(keys, self.count, (0, None), spmd))
        b, steps, self.pad, weights = _batches(self.n, batch, self.devices.count)
        example = int(np.prod(self.x.shape[1:])) * self.x.dtype.itemsize
        bounds = stream_windows(b, steps, example, asked if isinstance(asked, int) else None)
        self.windows = [(s0, s1, None if weights is None else weights[s0:s1]) for s0, s1 in bounds]
        self.window_examples, self.stream_batch = max(s1 - s0 for s0, s1 in bounds) * b, b

    def _streamed_epoch(self, state: TrainState, order: np.ndarray, epoch: int) -> tuple[TrainState, Any, Any]:
        """`_epoch` of streamed data: each window's examples read from the file (while the
        device runs the window before: the calls return before they finish) and trained on."""
        assert isinstance(self.x, Rows)
        b = self.stream_batch
        idx = np.concatenate([order, order[..., :self.pad]], axis=-1).reshape(*order.shape[:-1], -1, b)
        keys = self._keys(self.epoch_keys, np.int32(epoch))
        stats, total = self._begin(self.hparams)
        losses: list[jax.Array] = []
        x = self.x

        def read(s0: int, s1: int) -> Any:
            part = idx[..., s0:s1, :]
            if self.devices.mesh is not None:  # each device's share of each batch, and only this process's devices'
                return self.devices.gathered(part, x.shape[1:],
                                             lambda rows: x.read(rows.reshape(-1)).reshape(*rows.shape, *x.shape[1:]))
            got = np.stack([x.read(p.reshape(-1)) for p in part]) if part.ndim == 3 else x.read(part.reshape(-1))
            return got.reshape(*part.shape, *x.shape[1:])

        ahead = read(*self.windows[0][:2])
        for j, (s0, s1, w) in enumerate(self.windows):
            xw = ahead
            state, stats, total, per_step = self._window(state, stats, total, xw, self.y, self.sw, idx[..., s0:s1, :], w,
                                                         keys[:, s0:s1], self.hparams)
            if losses:  # at most two windows in flight: the one running and the one being read
                losses[-1].block_until_ready()
            losses.append(per_step)
            if j + 1 < len(self.windows):
                ahead = read(*self.windows[j + 1][:2])
        return state, self._end(stats, total), jnp.concatenate(losses, axis=-1)

    # -- the start
    def template(self) -> TrainState:
        """The shapes of ONE model's state (what a checkpoint of a single run holds)."""
        return jax.eval_shape(self.model.init_state, jax.random.key(0))

    @property
    def params0(self) -> Any:
        """Every model's initial weights, stacked (what `fresh` starts from)."""
        return self._params0

    def fresh_opt_state(self, params: Any = None) -> Any:
        """Every model's initial optimizer state (for `params`, stacked; default `_params0`)."""
        params = self._params0 if params is None else params
        assert self.model.optimizer is not None
        template = compiled(self.model.optimizer.init)(member(params, 0))
        return stack([with_hparams(template, p.optimizer, p.regularization) for p in self.programs])  # type: ignore[arg-type]

    def fresh(self, params: Any = None, opt_state: Any = None) -> Snapshot:
        """Every model's initial weights and optimizer state; `params` and `opt_state`
        (stacked, as `_params0`) replace the initial ones (`start_from`)."""
        params = self._params0 if params is None else params
        opt = self.fresh_opt_state(params) if opt_state is None else opt_state
        state = self.devices.state(TrainState(params, opt))
        params = state.params
        return Snapshot(0, state, params if self.restore_best else None,
                        tuple(Track(self.new_stopper()) for _ in self.programs))

    def resumed(self, state: TrainState, best: Any | None, histories: Sequence[Sequence[dict[str, float]]],
                stoppers: Sequence[dict[str, Any] | None], stopped: Sequence[dict[str, Any] | None],
                steps: Sequence[np.ndarray] | None = None) -> Snapshot:
        """A snapshot from saved per-model states (a checkpoint's); `steps`: each model's
        per-step losses so far (epochs x steps), with `history steps`."""
        tracks = []
        for k, (hist, st, stop) in enumerate(zip(histories, stoppers, stopped)):
            stopper = self.new_stopper()
            if st:
                stopper = replace(stopper, best=st["best"], best_epoch=st["best_epoch"], wait=st["wait"])
            tracks.append(Track(stopper, tuple(hist), stop, steps=tuple(steps[k]) if steps is not None else ()))
        state = self.devices.state(state)
        best = self.devices.state(best)
        if self.restore_best and best is None:
            best = state.params
        return Snapshot(max((len(h) for h in histories), default=0), state, best, tuple(tracks))

    def new_stopper(self) -> Stopper:
        """Early stopping's rule for one model, before its first epoch."""
        es = self.early_stop
        return Stopper(self.monitor, self.mode, es.patience if es else None, es.min_delta if es else 0.0)

    def measure_start(self, snap: Snapshot) -> np.ndarray:
        """The yardstick of a divergence that stays finite: the initial weights' mean loss
        on the validation split (its program is compiled anyway), else on the training split."""
        data = self.val if self.val is not None else self.chunks_of(self.splits.train)
        self.start_loss = self.evaluate(snap.state.params, data)["loss"]
        return self.start_loss

    def chunks_of(self, ds: Any) -> Chunks:
        """A split of the data, ready for `evaluate`."""
        return chunks(ds.x, _labels(self.programs[0], ds.y), self.chunk, ds.weight)

    # -- the epochs
    def order(self, epoch: int) -> np.ndarray:
        """The examples' order in `epoch`: one shared permutation, or one per model."""
        if self.batch is None:  # full batch: the order does not matter
            one = np.arange(self.n, dtype=np.int32)
            return one if self.shared else np.tile(one, (self.count, 1))
        if self.shared:
            return shuffle(self.seeds[0], epoch, self.n)
        return np.stack([shuffle(s, epoch, self.n) for s in self.seeds])

    def evaluate(self, params: Any, data: Chunks) -> dict[str, np.ndarray]:
        """Every model's mean loss and metrics on `data` (stacked `params`)."""
        return mean_over(self._evaluate, params, data, self.hparams, self.model)

    def run(self, snap: Snapshot, epochs: int, *, stop_after: int | None = None,
            on_epoch: Callable[[Snapshot], None] | None = None) -> Snapshot:
        """Train from `snap` to `epochs` epochs, or until every model has stopped or diverged
        (or after `stop_after` epochs of this call). `on_epoch` sees every new snapshot;
        `self.snapshot` is always the last one, for a caller interrupted mid-epoch."""
        self.snapshot = snap
        done = 0
        # A short epoch's next epoch (and its validation) is dispatched before this one's
        # results are read, from this one's new state, so the device trains while the host
        # reads the sums, writes the history and saves: the same programs on the same
        # inputs, so the same numbers. It is used only if that state is the one kept (no
        # model stopped, diverged or had its rate changed), else dropped.
        ahead: tuple[Any, ...] | None = None
        last_seconds = math.inf
        for epoch in range(snap.epoch, epochs):
            active = np.array([tr.active for tr in snap.tracks])
            if not active.any() or (stop_after is not None and done >= stop_after):
                break
            t0 = time.perf_counter()
            if ahead is not None and ahead[0] == epoch and ahead[1] is snap.state:
                new, sums, per_step, val_sums = ahead[2:]
            else:
                new, sums, per_step = self._epoch_of(snap.state, epoch)
                val_sums = self._val_sums(new.params)
            ahead = None
            if (active.all() and not self.streamed and self.plateau is None and last_seconds < RUN_AHEAD_SECONDS
                    and epoch + 1 < epochs and (stop_after is None or done + 1 < stop_after)):
                following = self._epoch_of(new, epoch + 1)
                ahead = (epoch + 1, new, *following, self._val_sums(following[0].params))
            sums = {k: np.asarray(v) for k, v in sums.items()}  # one transfer, not one per model
            kept_steps = np.asarray(per_step, np.float32) if self.record_steps else None
            losses = sums["loss"]
            with np.errstate(invalid="ignore"):
                exploded = np.isfinite(losses) & (losses > self.limits * self.start_loss)
            good = np.isfinite(losses) & ~exploded
            keep = active & good
            state = new if keep.all() else self._placed(self._select(keep, new, snap.state))
            vals: dict[str, np.ndarray] = {}
            if self.val is not None and keep.any():  # the validation dispatched with the epoch, if its state is kept
                vals = finish_mean(val_sums if state is new else self._val_sums(state.params), self.val, self.model)
            elapsed = last_seconds = time.perf_counter() - t0
            tracks = list(snap.tracks)
            improved = np.zeros(self.count, bool)
            # the rate the plateau rule had set for this epoch
            lrs = np.asarray(state.opt_state.plateau["lr"]) if self.plateau is not None else None
            for i in np.flatnonzero(active & ~good):
                tracks[i] = replace(tracks[i], diverged=self._divergence(int(i), epoch, losses[i], np.asarray(per_step[i]),
                                                                         bool(exploded[i])))
            for i in np.flatnonzero(keep):
                tr = tracks[i]
                row = {"epoch": epoch + 1, **{k: float(sums[k][i]) for k in self.names},
                       **{f"val_{k}": float(vals[k][i]) for k in self.names if k in vals}, "time": elapsed}
                if lrs is not None:
                    row["lr"] = float(lrs[i])
                stopper, stopped = tr.stopper, None
                value = row.get(self.monitor)
                if value is not None and math.isfinite(value):
                    stopper, improved[i], stop = stopper.update(value, epoch + 1)
                    if stop and self.early_stop is not None:
                        # recorded in the same atomic write as the state that stopped
                        stopped = {"reason": "early_stop", "epoch": epoch + 1, "monitor": stopper.monitor,
                                   "patience": stopper.patience}
                tracks[i] = replace(tr, stopper=stopper, history=tr.history + (row,), stopped=stopped,
                                    steps=tr.steps if kept_steps is None else tr.steps + (kept_steps[i],))
            if self.plateau is not None and keep.any():
                watched = self.plateau.params["monitor"]
                values = np.array([tracks[i].history[-1].get(watched, math.nan) if keep[i] else math.nan
                                   for i in range(self.count)], np.float32)
                state = self._placed(self._plateau(state, values))
            best = snap.best
            if best is not None and improved.any():
                best = state.params if improved.all() else self._placed(self._select(improved,
                                                                                     state.params, best))
            snap = Snapshot(epoch + 1, state, best, tuple(tracks))
            self.snapshot = snap
            done += 1
            if on_epoch is not None:
                on_epoch(snap)
        return snap

    def _epoch_of(self, state: TrainState, epoch: int) -> tuple[TrainState, Any, Any]:
        """Every model's `epoch` from `state`: (new state, metric sums, per-step losses), as
        device arrays still being computed (but a streamed epoch's, which reads its file)."""
        if self.streamed:
            got = self._streamed_epoch(state, self.order(epoch), epoch)
        else:
            short = self.last_steps is not None and epoch == self.epochs - 1
            got = (self._last_epoch if short else self._epoch)(
                state, self.x, self.y, self.order(epoch), self.epoch_keys, np.int32(epoch), self.hparams, self.sw)
        return (self._placed(got[0]), *got[1:])

    def _placed(self, state: Any) -> Any:
        """A state (or weights) tree that a program returned, placed as the programs' inputs
        are. With `shard=params` XLA writes a split array's sharding its own way (the same
        split, spelled P('models', 'data') where the input was P('models', 'data', None)),
        and the next call would compile again for it; otherwise it is already in place."""
        return self.devices.state(state) if self.devices.shard else state

    def _val_sums(self, params: Any) -> Any:
        """The validation split's sums for every model's `params`, dispatched (None without
        a validation split)."""
        if self.val is None:
            return None
        return sums_over(self._evaluate, params, self.val, self.hparams, self.model)

    def _divergence(self, i: int, epoch: int, loss: float, steps: np.ndarray, exploded: bool) -> Divergence:
        with np.errstate(invalid="ignore"):
            bad = np.flatnonzero(~np.isfinite(steps) | (steps > self.limits[i] * self.start_loss[i]))
        step = int(bad[0]) if bad.size else 0
        how = "exploded" if exploded else ("NaN" if np.isnan(steps[step]) else "infinite")
        return Divergence(epoch + 1, step + 1, how, float(loss), steps)

    # -- the end
    def kept(self, snap: Snapshot, i: int) -> Any:
        """The weights model `i` keeps: its best epoch's with `restore_best` (once it has
        one), else its last."""
        if snap.best is not None and snap.tracks[i].stopper.best_epoch:
            return member(snap.best, i)
        return member(snap.state.params, i)

    def kept_value(self, snap: Snapshot, i: int) -> float:
        """The monitored value of the weights model `i` keeps (what a sweep ranks by)."""
        tr = snap.tracks[i]
        if self.restore_best:
            return tr.stopper.best
        return tr.history[-1].get(self.monitor, math.nan) if tr.history else math.nan
