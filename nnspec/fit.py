"""fit(program) -> Result: fused epoch programs, validation, early stopping, checkpoints.

A whole epoch is one compiled program: the shuffle, every mini-batch's gradient step
(a `lax.scan`) and the metric sums, on the device, with no Python per step. The epoch
program is compiled once (its shapes never change) and reused every epoch. Keys derive
from the spec's seed and the epoch number, so a resumed run ends bit-identical to an
uninterrupted one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from nnspec import checkpoint, ir, runs
from nnspec.checked import Program
from nnspec.data import Dataset, Standardizer
from nnspec.diagnostics import NNSpecError
from nnspec.lower import Model, TrainState, lower
from nnspec.prepare import Splits, _labels, _spec_dir, fail, prepare
from nnspec.show import format_value
from nnspec.source import Span


@dataclass
class Result:
    """What a run produced: final parameters, per-epoch history, where it stopped."""
    program: Program
    model: Model
    params: Any
    history: list[dict[str, float]]
    epochs_run: int
    best_epoch: int | None = None
    stopped_early: bool = False
    run_dir: Path | None = None
    standardizer: Standardizer | None = None
    splits: Splits | None = None
    kept: dict[str, Any] | None = None  # kept_metrics(): the kept weights' metrics on every split
    already_finished: bool = False  # a `--resume` of a run that had finished: nothing was trained


# ------------------------------------------------------------------------------ programs

def epoch_program(model: Model, n: int, batch: int | None) -> Callable:
    """The epoch function below, compiled once.
    No buffer donation: the last good state must survive an epoch that diverges."""
    return jax.jit(epoch_fn(model, n, batch))


def shuffle(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order of the examples in one epoch, from the seed and the epoch number alone.

    Drawn on the host: on XLA:CPU a device permutation is a sort of threefry bits that
    cost 4x more than the whole W1 epoch it shuffles (docs/benchmarks.md), while NumPy's
    takes 0.03 ms for 4,096 examples and is just as reproducible (and so resumable)."""
    return np.random.default_rng((seed, epoch)).permutation(n).astype(np.int32)


def epoch_fn(model: Model, n: int, batch: int | None) -> Callable:
    """(state, x, y, order, base key, epoch, hparams) -> (state, metric sums, per-step
    losses). `order` is the epoch's permutation of the examples (`shuffle`); the dropout
    keys are folded from the base key and the epoch on the device. Pure: sweeps vmap it.

    Every example is used once per epoch: the last, partial batch is padded with
    repeated examples whose weight is 0, so all batches have one static shape."""
    b = n if batch is None else batch
    steps = math.ceil(n / b)
    pad = steps * b - n
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


def eval_program(model: Model) -> Callable:
    """(params, x, y, hparams) -> mean of the loss and every metric, compiled once per shape."""
    return jax.jit(eval_fn(model))


def eval_fn(model: Model) -> Callable:
    def run(params, x, y, hparams):
        pred = model.apply(params, x, train=False, hparams=hparams)
        return {k: jnp.mean(v) for k, v in model.metrics(pred, y).items()}
    return run


# ------------------------------------------------------------------------------ the loop

@dataclass
class _Stopper:
    monitor: str
    mode: str
    patience: int
    min_delta: float
    best: float = math.nan
    best_epoch: int = 0
    wait: int = 0

    def update(self, value: float, epoch: int) -> tuple[bool, bool]:
        """(improved, should stop)."""
        better = (math.isnan(self.best) or
                  (value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta))
        if better:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            return True, False
        self.wait += 1
        return False, self.wait >= self.patience  # as Keras: `patience` epochs without improvement


Progress = Callable[[int, int, dict[str, float], float], None]


def keys_for(seed: int) -> tuple[jax.Array, jax.Array]:
    base = jax.random.key(seed)
    return jax.random.fold_in(base, 0), jax.random.fold_in(base, 1)


@dataclass
class Started:
    """What a run is about to train, for the screen's header (before compiling)."""
    program: Program
    splits: Splits
    total: int
    start: int
    overrides: dict[str, Any]


def fit(program: Program, *, epochs: int | None = None, out: Path | None = None, resume: bool = False,
        progress: Progress | None = None, base_dir: Path | None = None,
        stop_after: int | None = None, checkpoint_every: float = 2.0,
        overrides: dict[str, Any] | None = None, on_start: Callable[[Started], None] | None = None,
        command: list[str] | None = None) -> Result:
    """Train a checked program. With `out`, write the run directory (and resume from it):
    a checkpoint at most every `checkpoint_every` seconds, at the end, and on Ctrl-C.
    `overrides` are the command line's (`seed`, `epochs`); they are recorded with the run
    and reapplied on resume, where a contradicting one is refused (`runs.RunFolderError`).
    `stop_after` ends this call's work after that many epochs (for tests of resuming)."""
    if program.train is None or program.loss is None or program.optimizer is None:
        raise fail("E112", "this spec cannot be trained: it needs a `loss`, an `optimizer` and a `train` block",
                   program, None, help="add the missing sections")
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    if epochs is not None:
        given["epochs"] = epochs
    ckpt = out / "checkpoint.npz" if out is not None else None
    if out is not None and not resume:
        runs.claim(out)  # a new or empty folder: never mix two runs
    meta: dict[str, Any] = {}
    if resume:
        assert ckpt is not None, "resuming needs the run folder"
        try:
            meta = checkpoint.read_meta(ckpt)
        except checkpoint.CheckpointError as exc:
            raise fail("E405", exc.message, program, None, help=exc.help) from None
        if meta.get("spec_fingerprint") != ir.fingerprint(program.spec):
            raise fail("E405", f"`{ckpt}` was written by a different spec", program, None,
                       help="resume with the spec that started the run (its copy is `spec.nn` in the run folder)")
    recorded = meta["run"] if isinstance(meta.get("run"), dict) else None  # runs before records have none
    if recorded is not None:
        given = runs.merge_overrides(recorded.get("overrides") or {}, given, out)  # type: ignore[arg-type]
    program = runs.with_overrides(program, given)
    t = program.train
    assert t is not None
    total = given.get("epochs", t.epochs)
    base = base_dir or _spec_dir(program)
    if recorded is not None:
        program, problem = runs.relocate(program, recorded)
        if problem is not None:
            raise fail("E401", f"cannot resume: {problem}", program, t.data_span, label="the run's data",
                       help="put the file back as it was, or train a new run on the new data")
        t = program.train
        assert t is not None
    splits = prepare(program, base)
    if recorded is not None:
        rec = {**recorded, "epochs": total, "overrides": given}
    else:
        rec = runs.record(program, base, epochs=total, overrides=given)
    if resume and total < len(meta.get("history", [])):
        raise runs.RunFolderError(f"`{out}` has already trained {len(meta['history'])} epochs; "
                                  f"`--epochs {total}` cannot end it earlier")
    model = lower(program)
    # How the run ended, if it did; a completed run that `--epochs` extends goes on.
    prior = meta.get("stopped") if resume else None
    if isinstance(prior, dict) and prior.get("reason") == "completed" and total > len(meta.get("history", [])):
        prior = None
    if prior and "final_params" in meta.get("trees", {}):
        return _finished(program, model, ckpt, splits, meta)  # type: ignore[arg-type]
    if on_start is not None:
        on_start(Started(program, splits, total, len(meta.get("history", [])), given))
    hp = model.hparams()
    init_key, epoch_base = keys_for(t.seed)
    state = jax.jit(model.init_state)(init_key)  # one compiled program, not dozens of eager ops
    x, y = jnp.asarray(splits.train.x), jnp.asarray(_labels(program, splits.train.y))
    val = None
    if splits.val is not None:
        val = (jnp.asarray(splits.val.x), jnp.asarray(_labels(program, splits.val.y)))
    run_epoch = epoch_program(model, len(splits.train), t.batch)
    evaluate_ = eval_program(model)
    es = t.early_stop
    stopper = _Stopper(es.monitor, es.mode, es.patience, es.min_delta) if es else None
    best_params = None
    history: list[dict[str, float]] = []
    initial_loss: float | None = None
    start = 0
    written: list[Path] = []
    created = False
    if out is not None:
        runs.remove_stale_temporaries(out)
        if resume:
            state, best_params, history, stopper_state = _restore(program, model, ckpt, state)  # type: ignore[arg-type]
            start = len(history)
            initial_loss = meta.get("initial_loss")
            if stopper is not None and stopper_state:
                stopper.best, stopper.best_epoch, stopper.wait = (stopper_state["best"], stopper_state["best_epoch"],
                                                                  stopper_state["wait"])
        else:
            created = not out.exists()
            info = {**runs.versions(), "backend": jax.default_backend(), "devices": jax.device_count(),
                    "command": command, "started": runs.now(), "ended": None, "status": "running",
                    "seed": t.seed, "spec_fingerprint": ir.fingerprint(program.spec),
                    "model_fingerprint": _model_fingerprint(program), "examples": _examples(splits), "run": rec}
            try:
                written = runs.start(out, program, info)
            except OSError:
                runs.take_back(out, written, created)
                raise
    # A run killed after the save of the epoch that stopped it, before its final save,
    # has stopped all the same: resuming it trains nothing more.
    stopped: dict[str, Any] | None = prior
    done_here = 0
    last_save = time.perf_counter()

    def save(final=None):
        if ckpt is not None:
            _save(ckpt, program, state, best_params, history, stopper, splits, final=final,
                  extra={"run": rec, "initial_loss": initial_loss, "stopped": stopped})
            runs.write_history(out, history)  # type: ignore[arg-type]

    if initial_loss is None and t.divergence is not None:
        # the yardstick of a divergence that stays finite: the initial weights' mean loss on
        # the validation split (its program is compiled anyway), else on the training split
        initial_loss = float(evaluate_(state.params, *(val if val is not None else (x, y)), hp)["loss"])
    try:
        try:
            save()  # the first checkpoint: from here on the run can always be resumed
        except OSError:
            if written:  # nothing of this run can be used yet: leave nothing behind
                runs.take_back(out, written + [ckpt], created)  # type: ignore[list-item,operator]
            raise
        for epoch in range(start, total):
            if stopped is not None or (stop_after is not None and done_here >= stop_after):
                break
            t0 = time.perf_counter()
            order = shuffle(t.seed, epoch, len(splits.train)) if t.batch is not None else np.arange(
                len(splits.train), dtype=np.int32)  # full batch: the order does not matter
            new_state, sums, per_step = run_epoch(state, x, y, order, epoch_base, np.int32(epoch), hp)
            row = {"epoch": epoch + 1, **{k: float(v) for k, v in sums.items()}}
            if not math.isfinite(row["loss"]):
                save()
                _diverged(program, epoch, np.asarray(per_step), history, ckpt, culprit=lambda step: _first_nonfinite(
                    model, state, x, y, order, epoch_base, epoch, hp, t.batch, step))
            if (t.divergence is not None and initial_loss is not None and math.isfinite(initial_loss)
                    and row["loss"] > t.divergence * initial_loss):
                save()
                _exploded(program, epoch, row["loss"], initial_loss, t.divergence, ckpt)
            if val is not None:
                row.update({f"val_{k}": float(v) for k, v in evaluate_(new_state.params, *val, hp).items()})
            row["time"] = time.perf_counter() - t0
            # One statement without calls: Ctrl-C cannot land between the two stores,
            # so the state saved on interrupt always matches the history.
            state, history = new_state, history + [row]
            stop = False
            if stopper is not None:
                value = row.get(stopper.monitor)
                if value is not None:
                    improved, stop = stopper.update(value, epoch + 1)
                    if improved and es is not None and es.restore_best:
                        best_params = jax.tree_util.tree_map(jnp.copy, state.params)
            if stop:
                # recorded in the same atomic write as the state that stopped
                stopped = {"reason": "early_stop", "epoch": epoch + 1, "monitor": stopper.monitor,  # type: ignore[union-attr]
                           "patience": stopper.patience}  # type: ignore[union-attr]
            if ckpt is not None and (stop or time.perf_counter() - last_save >= checkpoint_every):
                save()
                last_save = time.perf_counter()
            if progress is not None:
                progress(epoch + 1, total, row, row["time"])
            done_here += 1
            if stop:
                break
    except KeyboardInterrupt:
        save()  # the last finished epoch, so `--resume` can go on from there
        if out is not None:
            runs.update_info(out, status="interrupted", ended=runs.now(), epochs_run=len(history))
        raise
    params = state.params
    if es is not None and es.restore_best and best_params is not None:
        params = best_params
    finished = stopped is not None or stop_after is None or done_here < stop_after or len(history) >= total
    if finished and stopped is None:
        stopped = {"reason": "completed", "epoch": len(history)}
    result = Result(program, model, params, history, len(history),
                    stopper.best_epoch if stopper else None, bool(stopped and stopped["reason"] == "early_stop"),
                    out, splits.standardizer, splits)
    if finished:
        result.kept = kept_metrics(result)
    save(final=params if finished else None)
    if out is not None and finished:
        runs.update_info(out, status="stopped early" if result.stopped_early else "finished", ended=runs.now(),
                         epochs_run=len(history), kept=result.kept, run=rec,
                         last_epoch={k: v for k, v in history[-1].items() if k != "time"} if history else None)
    return result


def _examples(splits: Splits) -> dict[str, int]:
    return {"train": len(splits.train), "val": len(splits.val) if splits.val else 0,
            "test": len(splits.test) if splits.test else 0}


def kept_metrics(result: Result) -> dict[str, Any]:
    """The metrics of the weights the run keeps (the best epoch's with `restore_best`),
    measured again on each split: what `training finished` and run.json report."""
    t = result.program.train
    assert t is not None and result.splits is not None
    restored = bool(t.early_stop and t.early_stop.restore_best and result.best_epoch)
    epoch = result.best_epoch if restored else result.epochs_run
    why = f"best {t.early_stop.monitor}" if restored else "last epoch"  # type: ignore[union-attr]
    metrics = {}
    for name, ds in (("train", result.splits.train), ("val", result.splits.val), ("test", result.splits.test)):
        if ds is not None and len(ds):
            metrics[name] = evaluate(result.model, result.params, ds, result.program)
    return {"epoch": epoch, "why": why, "metrics": metrics}


def _finished(program: Program, model: Model, ckpt: Path, splits: Splits, meta: dict) -> Result:
    """A resumed run that had already finished: its kept weights, untouched."""
    params = jax.eval_shape(model.init, jax.random.key(0))
    try:
        trees, meta = checkpoint.load(ckpt, {"final_params": params})
    except checkpoint.CheckpointError as exc:
        raise fail("E405", exc.message, program, None, help=exc.help) from None
    stopper = meta.get("stopper") or {}
    history = meta["history"]
    result = Result(program, model, trees["final_params"], history, len(history),
                    stopper.get("best_epoch") or None, meta["stopped"].get("reason") == "early_stop",
                    ckpt.parent, splits.standardizer, splits, already_finished=True)
    result.kept = kept_metrics(result)
    return result


def _exploded(program: Program, epoch: int, loss: float, initial: float, factor: float, ckpt) -> None:
    """A divergence that stays finite (a clipped cross-entropy): E404 as for NaN."""
    raise _divergence(program, f"the mean loss of epoch {epoch + 1} ({format_value(loss)}) is "
                               f"{loss / initial:.3g} times the initial weights' loss ({format_value(initial)})",
                      [f"a loss above {factor:g} times the initial one counts as diverged "
                       f"(`divergence` in the `train` block; `divergence off` turns this check off)",
                       _kept_note(epoch, ckpt)])


def _diverged(program: Program, epoch: int, per_step: np.ndarray, history, ckpt,
              culprit: Callable[[int], tuple[str, Span | None, str] | None] | None = None) -> None:
    bad = np.flatnonzero(~np.isfinite(per_step))
    step = int(bad[0]) + 1 if bad.size else 1
    finite = per_step[:step - 1]
    last = (f"{finite[-1]:.6g} at step {step - 1} of epoch {epoch + 1}" if finite.size else
            (f"{history[-1]['loss']:.6g} (mean of epoch {epoch})" if history else "none"))
    notes = [f"last finite loss: {last}", _kept_note(epoch, ckpt)]
    secondary = []
    found = None
    try:
        found = culprit(step) if culprit is not None else None
    except Exception:  # the diagnosis is a courtesy: never let it hide the divergence itself
        found = None
    if found is not None:
        note, span, label = found
        notes.insert(0, note)
        secondary.append((span, label))
    raise _divergence(program, f"the loss became {'NaN' if np.isnan(per_step[step - 1]) else 'infinite'} "
                               f"at step {step} of epoch {epoch + 1}", notes, secondary)


def _divergence(program: Program, what: str, notes: list[str], secondary=()) -> NNSpecError:
    """E404, pointing at the learning rate (or the optimizer line)."""
    lr_span = None
    if program.spec.optimizer is not None:
        lr_span = next((a.span for a in program.spec.optimizer.args if a.key == "lr"), program.spec.optimizer.span)
    return fail("E404", f"training diverged: {what}", program, lr_span, label="this learning rate may be too large",
                notes=tuple(notes), secondary=list(secondary),
                help="try a learning rate 10 times smaller, or add `clip_norm=1.0` to the optimizer")


def _kept_note(epoch: int, ckpt: Path | None) -> str:
    """What the run folder holds after a divergence in `epoch` (0-based)."""
    if ckpt is None:
        return "nothing was saved"
    if epoch > 0:
        return f"the checkpoint of epoch {epoch} is kept in `{ckpt}`"
    return f"no epoch finished: the checkpoint in `{ckpt}` holds the initial weights"


def replay(model: Model, state: TrainState, x, y, order, base_key, epoch: int, hparams, batch: int | None,
           steps_done: int):
    """The state after the first `steps_done` steps of an epoch, one step at a time, with
    the batches and keys of `epoch_fn` (a test holds the two together); and the epoch's
    (batch indices, weights or None, step keys)."""
    n = int(x.shape[0])
    b = n if batch is None else batch
    steps = math.ceil(n / b)
    pad = steps * b - n
    weights = jnp.concatenate([jnp.ones(n), jnp.zeros(pad)]).reshape(steps, b) if pad else None
    idx = jnp.concatenate([jnp.asarray(order), jnp.asarray(order)[:pad]]).reshape(steps, b)
    keys = jax.random.split(jax.random.fold_in(base_key, epoch), steps)
    one = jax.jit(lambda s, i, w, k: model.step(s, x[i], y[i], key=k, hparams=hparams, weights=w)[0])
    for j in range(steps_done):
        state = one(state, idx[j], None if weights is None else weights[j], keys[j])
    return state, (idx, weights, keys)


def _first_nonfinite(model: Model, state: TrainState, x, y, order, base_key, epoch: int, hparams,
                     batch: int | None, step: int, max_steps: int = 10_000):
    """(note, span, label): the layer whose weights or outputs went non-finite first in the
    diverged epoch, found by replaying it step by step from the last good state; None
    where the replay does not reproduce the divergence. The batches and keys mirror `epoch_fn`."""
    if step - 1 > max_steps:
        return None
    state, (idx, weights, keys) = replay(model, state, x, y, order, base_key, epoch, hparams, batch, step - 1)

    def finite(tree) -> bool:
        return all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree_util.tree_leaves(tree))

    def named(layer, what: str):
        return (f"the first non-finite values were the {what} of layer `{layer.name}`", layer.span,
                f"its {what} went non-finite first")

    for impl in model.layers:
        if not finite(state.params.get(impl.layer.name, {})):
            return named(impl.layer, "weights")
    h = x[idx[step - 1]]
    layer_keys = jax.random.split(keys[step - 1], len(model.layers))  # as Model.apply splits it
    for k, impl in zip(layer_keys, model.layers):
        h = impl.apply(state.params.get(impl.layer.name, {}), h, hparams[impl.layer.name], key=k, train=True)
        if not finite(h):
            return named(impl.layer, "output")
    last = model.layers[-1].layer if model.layers else None
    per = model.per_example_loss(h, y[idx[step - 1]])
    w = jnp.ones(idx.shape[1]) if weights is None else weights[step - 1]
    if last is None or finite(jnp.sum(per * w)):  # the batch's sum, as the epoch adds it
        return None
    return (f"every layer's values were finite, but the loss overflowed: the largest output was "
            f"{float(jnp.max(jnp.abs(h))):.3g}", last.span, "its outputs grew too large for the loss")


# ----------------------------------------------------------------------------- run files

# `sweep_fit` removes stale temporaries through this name
_remove_stale_temporaries = runs.remove_stale_temporaries


def _model_fingerprint(program: Program) -> str:
    return ir.fingerprint((program.spec.model, program.spec.loss))


def _save(path: Path, program: Program, state: TrainState, best_params, history, stopper,
          splits: Splits, final=None, extra: dict[str, Any] | None = None) -> None:
    trees: dict[str, Any] = {"params": state.params, "opt_state": state.opt_state}
    if best_params is not None:
        trees["best_params"] = best_params
    if final is not None:
        trees["final_params"] = final
    t = program.train
    assert t is not None
    meta = {"spec_fingerprint": ir.fingerprint(program.spec), "model_fingerprint": _model_fingerprint(program),
            "epoch": len(history), "seed": t.seed, "history": history,
            "rng": {"seed": t.seed, "next_epoch_key": np.asarray(jax.random.key_data(
                jax.random.fold_in(keys_for(t.seed)[1], len(history)))).tolist()},
            "stopper": None if stopper is None else {"best": stopper.best, "best_epoch": stopper.best_epoch,
                                                      "wait": stopper.wait},
            # what eval and predict need without the training data
            "standardizer": splits.standardizer.to_dict() if splits.standardizer is not None else None,
            "classes": list(splits.train.classes) if splits.train.classes is not None else None,
            "feature_names": list(splits.train.feature_names) if splits.train.feature_names else None,
            "target_names": list(splits.train.target_names) if splits.train.target_names else None}
    checkpoint.save(path, trees, {**meta, **(extra or {})})


def _restore(program: Program, model: Model, path: Path, template: TrainState):
    try:
        meta = checkpoint.read_meta(path)
        if meta.get("spec_fingerprint") != ir.fingerprint(program.spec):
            raise checkpoint.CheckpointError(f"`{path}` was written by a different spec",
                                             "resume with the spec that started the run (its copy is `spec.nn` in the run folder)")
        templates: dict[str, Any] = {"params": template.params, "opt_state": template.opt_state}
        if "best_params" in meta["trees"]:
            templates["best_params"] = template.params
        trees, meta = checkpoint.load(path, templates)
    except checkpoint.CheckpointError as exc:
        raise fail("E405", exc.message, program, None, help=exc.help) from None
    return TrainState(trees["params"], trees["opt_state"]), trees.get("best_params"), meta["history"], meta["stopper"]


def load_trained(program: Program, run_dir: Path) -> tuple[Model, Any, Standardizer | None, dict]:
    """The final parameters of a finished run, refusing a run of a different model.
    For a sweep, the best model's; for an ensemble (a sweep over `seed` only), every
    member's, stacked on a leading axis (`meta["ensemble"]` members)."""
    path = run_dir / "checkpoint.npz"
    try:
        meta = checkpoint.read_meta(path)
        if program.sweep is not None and meta.get("best_setting") is not None:
            settings = [dict(s) for s in program.sweep.settings]
            if meta["best_setting"] in settings:
                program = program.sweep.programs[settings.index(meta["best_setting"])]
        model = lower(program)
        if meta.get("model_fingerprint") != _model_fingerprint(program):
            raise checkpoint.CheckpointError(f"`{path}` was written for a different model",
                                             f"use the spec it was trained with: `{run_dir / 'spec.nn'}`")
        if "final_params" not in meta["trees"]:
            raise checkpoint.CheckpointError(f"the run in `{run_dir}` did not finish",
                                             f"resume it with `nnspec train --resume {run_dir}`")
        params = jax.eval_shape(model.init, jax.random.key(0))
        templates: dict[str, Any] = {"final_params": params}
        if meta.get("ensemble"):
            k = meta["ensemble"]
            templates = {"members": jax.tree_util.tree_map(lambda a: np.zeros((k, *a.shape), a.dtype), params)}
        trees, meta = checkpoint.load(path, templates)
    except checkpoint.CheckpointError as exc:
        raise fail("E405", exc.message, program, None, help=exc.help) from None
    std = Standardizer.from_dict(meta["standardizer"]) if meta.get("standardizer") else None
    if std is not None and (std.mean.shape != tuple(program.model.input_shape) or std.std.shape != std.mean.shape):
        raise fail("E405", f"`{path}` standardizes {std.mean.size} features, but the model's input has "
                           f"{math.prod(program.model.input_shape)}", program, None,
                   help="it was written for a different model; train again")
    return model, trees.get("members", trees.get("final_params")), std, meta


def predict(model: Model, params, x: jax.Array, *, ensemble: bool = False) -> jax.Array:
    """The model's outputs; an ensemble's are the mean of its members'."""
    if ensemble:
        return jnp.mean(jax.vmap(lambda p: model.apply(p, x))(params), axis=0)
    return model.apply(params, x)


def evaluate(model: Model, params, ds: Dataset, program: Program, *, ensemble: bool = False) -> dict[str, float]:
    """Mean loss and metrics on `ds` (of the averaged outputs, for an ensemble)."""
    y = jnp.asarray(_labels(program, ds.y))
    if ensemble:
        pred = predict(model, params, jnp.asarray(ds.x), ensemble=True)
        return {k: float(jnp.mean(v)) for k, v in model.metrics(pred, y).items()}
    out = eval_program(model)(params, jnp.asarray(ds.x), y, model.hparams())
    return {k: float(v) for k, v in out.items()}


def __getattr__(name: str) -> Any:
    # `nnspec.fit.fit_sweep` lives in sweep_fit.py, which builds on this module
    if name == "fit_sweep":
        from nnspec.sweep_fit import fit_sweep
        return fit_sweep
    raise AttributeError(name)
