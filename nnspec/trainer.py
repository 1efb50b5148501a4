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

import math
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nnspec.checked import Program
from nnspec.lower import Model, TrainState, with_hparams
from nnspec.prepare import Splits, _labels

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


def _batches(n: int, batch: int | None) -> tuple[int, int, int]:
    """(batch size, steps, padding) of an epoch over n examples."""
    b = n if batch is None else batch
    steps = math.ceil(n / b)
    return b, steps, steps * b - n


def epoch_fn(model: Model, n: int, batch: int | None) -> Callable:
    """(state, x, y, order, base key, epoch, hparams) -> (state, metric sums, per-step
    losses). `order` is the epoch's permutation of the examples (`shuffle`); the dropout
    keys are folded from the base key and the epoch on the device. Pure: stacks vmap it.

    Every example is used once per epoch: the last, partial batch is padded with
    repeated examples whose weight is 0, so all batches have one static shape."""
    b, steps, pad = _batches(n, batch)
    # Without padding every weight would be 1: leave them out of the program entirely.
    weights = jnp.concatenate([jnp.ones(n), jnp.zeros(pad)]).reshape(steps, b) if pad else None

    def run(state: TrainState, x, y, order, base_key, epoch, hparams):
        key = jax.random.fold_in(base_key, epoch)
        idx = jnp.concatenate([order, order[:pad]]).reshape(steps, b)
        keys = jax.random.split(key, steps)

        def body(state, inp):
            i, w, k = inp
            state, sums = model.step(state, x[i], y[i], key=k, hparams=hparams, weights=w)
            return state, sums

        state, sums = jax.lax.scan(body, state, (idx, weights, keys))
        per_step = sums["loss"] / (jnp.sum(weights, axis=1) if weights is not None else b)
        return state, {k: jnp.sum(v) / n for k, v in sums.items()}, per_step

    return run


def epoch_program(model: Model, n: int, batch: int | None) -> Callable:
    """`epoch_fn` of one model, compiled once.
    No buffer donation: the last good state must survive an epoch that diverges."""
    return jax.jit(epoch_fn(model, n, batch))


def eval_fn(model: Model) -> Callable:
    """(params, x, y, hparams) -> the mean of the loss and of every metric."""
    def run(params, x, y, hparams):
        pred = model.apply(params, x, train=False, hparams=hparams)
        return {k: jnp.mean(v) for k, v in model.metrics(pred, y).items()}
    return run


def eval_program(model: Model) -> Callable:
    """`eval_fn`, compiled once per shape."""
    return jax.jit(eval_fn(model))


def over_models(fn: Callable, count: int, in_axes: Sequence[int | None]) -> Callable:
    """`fn` mapped over a leading model axis of the arguments whose axis is 0: `jax.vmap`
    for several models; for one, the plain function between a squeeze and an expand, so a
    single run compiles exactly the program it would without the stack."""
    if count > 1:
        return jax.vmap(fn, in_axes=tuple(in_axes))

    def one(*args):
        args = tuple(a if ax is None else jax.tree_util.tree_map(lambda v: v[0], a) for a, ax in zip(args, in_axes))
        return jax.tree_util.tree_map(lambda v: v[None], fn(*args))
    return one


def replay(model: Model, state: TrainState, x, y, order, base_key, epoch: int, hparams, batch: int | None,
           steps_done: int):
    """The state after the first `steps_done` steps of an epoch, one step at a time, with
    the batches and keys of `epoch_fn` (a test holds the two together); and the epoch's
    (batch indices, weights or None, step keys)."""
    n = int(x.shape[0])
    b, steps, pad = _batches(n, batch)
    weights = jnp.concatenate([jnp.ones(n), jnp.zeros(pad)]).reshape(steps, b) if pad else None
    idx = jnp.concatenate([jnp.asarray(order), jnp.asarray(order)[:pad]]).reshape(steps, b)
    keys = jax.random.split(jax.random.fold_in(base_key, epoch), steps)
    one = jax.jit(lambda s, i, w, k: model.step(s, x[i], y[i], key=k, hparams=hparams, weights=w)[0])
    for j in range(steps_done):
        state = one(state, idx[j], None if weights is None else weights[j], keys[j])
    return state, (idx, weights, keys)


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
    """Trees of one structure, stacked on a new leading (model) axis."""
    return jax.tree_util.tree_map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *trees)


def member(tree: Any, i: int) -> Any:
    """Model `i`'s slice of a stacked tree."""
    return jax.tree_util.tree_map(lambda a: a[i], tree)


# ------------------------------------------------------------------------------ the loop

class Trainer:
    """N >= 1 programs that share one structure (a sweep group, or one run), trained on one
    split of the data. The first program decides the structure, the batch size, early
    stopping's rule and the data's labels; each program brings its own numbers (learning
    rate, momentum, drop probabilities, penalties, schedule constants), seed and
    `divergence` factor."""

    def __init__(self, programs: Sequence[Program], splits: Splits, *, monitor: str | None = None,
                 mode: str | None = None) -> None:
        assert programs, "a stack needs a model"
        first = programs[0]
        t = first.train
        assert t is not None and first.optimizer is not None and first.loss is not None
        self.programs, self.splits, self.count = list(programs), splits, len(programs)
        alone = [Model(p) for p in programs]  # each program's own numbers
        self.model = Model(first, with_decay=any(p.regularization.weight_decay > 0 for p in programs),
                           with_penalty=any(m.has_penalty for m in alone))
        self.hparams = stack([m.hparams() for m in alone])
        self.seeds = [p.train.seed for p in programs]  # type: ignore[union-attr]
        keys = [keys_for(s) for s in self.seeds]
        self.init_keys = jnp.stack([k[0] for k in keys])
        self.epoch_keys = jnp.stack([k[1] for k in keys])
        es = t.early_stop
        self.early_stop, self.batch = es, t.batch
        self.restore_best = bool(es and es.restore_best)
        self.monitor = monitor or (es.monitor if es else ("val_loss" if splits.val is not None else "loss"))
        self.mode = mode or (es.mode if es else "min")
        # each model's factor over its initial loss beyond which it has diverged (inf: never)
        self.limits = np.array([p.train.divergence or math.inf for p in programs])  # type: ignore[union-attr]
        self.x = jnp.asarray(splits.train.x)
        self.y = jnp.asarray(_labels(first, splits.train.y))
        self.val = None
        if splits.val is not None:
            self.val = (jnp.asarray(splits.val.x), jnp.asarray(_labels(first, splits.val.y)))
        self.n = len(splits.train)
        # Models with the same seed see the examples in the same order: one shared permutation.
        self.shared = len(set(self.seeds)) == 1
        self._epoch = jax.jit(over_models(epoch_fn(self.model, self.n, t.batch), self.count,
                                          (0, None, None, None if self.shared else 0, 0, None, 0)))
        self._evaluate = jax.jit(over_models(eval_fn(self.model), self.count, (0, None, None, 0)))
        self._select = jax.jit(_select)
        self.start_loss = np.full(self.count, math.nan)
        self.snapshot: Snapshot | None = None

    # -- the start
    def template(self) -> TrainState:
        """The shapes of ONE model's state (what a checkpoint of a single run holds)."""
        return jax.eval_shape(self.model.init_state, jax.random.key(0))

    def fresh(self) -> Snapshot:
        """Every model's initial weights and optimizer state."""
        params = jax.jit(over_models(self.model.init, self.count, (0,)))(self.init_keys)
        assert self.model.optimizer is not None
        template = jax.jit(self.model.optimizer.init)(member(params, 0))
        opt = stack([with_hparams(template, p.optimizer, p.regularization) for p in self.programs])  # type: ignore[arg-type]
        state = TrainState(params, opt)
        return Snapshot(0, state, params if self.restore_best else None,
                        tuple(Track(self.new_stopper()) for _ in self.programs))

    def resumed(self, state: TrainState, best: Any | None, histories: Sequence[Sequence[dict[str, float]]],
                stoppers: Sequence[dict[str, Any] | None], stopped: Sequence[dict[str, Any] | None]) -> Snapshot:
        """A snapshot from saved per-model states (a checkpoint's)."""
        tracks = []
        for hist, st, stop in zip(histories, stoppers, stopped):
            stopper = self.new_stopper()
            if st:
                stopper = replace(stopper, best=st["best"], best_epoch=st["best_epoch"], wait=st["wait"])
            tracks.append(Track(stopper, tuple(hist), stop))
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
        data = self.val if self.val is not None else (self.x, self.y)
        self.start_loss = np.asarray(self._evaluate(snap.state.params, *data, self.hparams)["loss"], float)
        return self.start_loss

    # -- the epochs
    def order(self, epoch: int) -> np.ndarray:
        """The examples' order in `epoch`: one shared permutation, or one per model."""
        if self.batch is None:  # full batch: the order does not matter
            one = np.arange(self.n, dtype=np.int32)
            return one if self.shared else np.tile(one, (self.count, 1))
        if self.shared:
            return shuffle(self.seeds[0], epoch, self.n)
        return np.stack([shuffle(s, epoch, self.n) for s in self.seeds])

    def evaluate(self, params: Any, x: jax.Array, y: jax.Array) -> dict[str, np.ndarray]:
        """Every model's mean loss and metrics on (x, y), one transfer."""
        return {k: np.asarray(v) for k, v in self._evaluate(params, x, y, self.hparams).items()}

    def run(self, snap: Snapshot, epochs: int, *, stop_after: int | None = None,
            on_epoch: Callable[[Snapshot], None] | None = None) -> Snapshot:
        """Train from `snap` to `epochs` epochs, or until every model has stopped or diverged
        (or after `stop_after` epochs of this call). `on_epoch` sees every new snapshot;
        `self.snapshot` is always the last one, for a caller interrupted mid-epoch."""
        self.snapshot = snap
        done = 0
        for epoch in range(snap.epoch, epochs):
            active = np.array([tr.active for tr in snap.tracks])
            if not active.any() or (stop_after is not None and done >= stop_after):
                break
            t0 = time.perf_counter()
            new, sums, per_step = self._epoch(snap.state, self.x, self.y, self.order(epoch), self.epoch_keys,
                                              np.int32(epoch), self.hparams)
            sums = {k: np.asarray(v) for k, v in sums.items()}  # one transfer, not one per model
            losses = sums["loss"]
            with np.errstate(invalid="ignore"):
                exploded = np.isfinite(losses) & (losses > self.limits * self.start_loss)
            good = np.isfinite(losses) & ~exploded
            keep = active & good
            state = new if keep.all() else self._select(jnp.asarray(keep), new, snap.state)
            vals = self.evaluate(state.params, *self.val) if self.val is not None and keep.any() else {}
            elapsed = time.perf_counter() - t0
            tracks = list(snap.tracks)
            improved = np.zeros(self.count, bool)
            for i in np.flatnonzero(active & ~good):
                tracks[i] = replace(tracks[i], diverged=self._divergence(i, epoch, losses[i], np.asarray(per_step[i]),
                                                                         bool(exploded[i])))
            for i in np.flatnonzero(keep):
                tr = tracks[i]
                row = {"epoch": epoch + 1, **{k: float(v[i]) for k, v in sums.items()},
                       **{f"val_{k}": float(v[i]) for k, v in vals.items()}, "time": elapsed}
                stopper, stopped = tr.stopper, None
                value = row.get(self.monitor)
                if value is not None and math.isfinite(value):
                    stopper, improved[i], stop = stopper.update(value, epoch + 1)
                    if stop and self.early_stop is not None:
                        # recorded in the same atomic write as the state that stopped
                        stopped = {"reason": "early_stop", "epoch": epoch + 1, "monitor": stopper.monitor,
                                   "patience": stopper.patience}
                tracks[i] = replace(tr, stopper=stopper, history=tr.history + (row,), stopped=stopped)
            best = snap.best
            if best is not None and improved.any():
                best = state.params if improved.all() else self._select(jnp.asarray(improved), state.params, best)
            snap = Snapshot(epoch + 1, state, best, tuple(tracks))
            self.snapshot = snap
            done += 1
            if on_epoch is not None:
                on_epoch(snap)
        return snap

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
