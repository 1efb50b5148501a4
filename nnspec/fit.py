"""fit(program) -> Result: one run, trained as a stack of one by trainer.py.

This module is the run's front: it applies the command line's overrides, reads the
data (prepare.py), resumes from and writes the run folder (runs.py), and turns a
divergence into E404 with its diagnosis. The training itself is trainer.Trainer's.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from nnspec import checkpoint, ir, runs
from nnspec import progress as bars
from nnspec.checked import Program
from nnspec.data import Standardizer
from nnspec.devices import Devices, for_run
from nnspec.diagnostics import NNSpecError
from nnspec.infer import evaluate
from nnspec.lower import Model, TrainState, lower
from nnspec.prepare import Splits, _spec_dir, fail, prepare, with_class_weights
from nnspec.start import start_params
from nnspec.show import format_value
from nnspec.split import record_of as split_record, recorded_differs
from nnspec.trainer import Divergence, Snapshot, Trainer, _batches, batch_rows, budget, member, replay, rows, stack

if TYPE_CHECKING:  # pragma: no cover
    from nnspec.predictor import Predictor


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
    steps: np.ndarray | None = None  # `history steps`: each step's training loss, epochs x steps per epoch

    def __repr__(self) -> str:
        """A few lines (the default would print every weight and the data)."""
        from nnspec.show import metrics_line
        p = self.program
        lines = [f"<nnspec.Result `{p.model.name}` ({p.model.n_params:,} parameters): {self.epochs_run} "
                 f"epoch{'s' * (self.epochs_run != 1)}" + (" (stopped early)" if self.stopped_early else "")
                 + (f", best epoch {self.best_epoch}" if self.best_epoch else "")]
        kept = self.kept or {}
        if kept.get("epoch"):
            lines[0] += f", weights of epoch {kept['epoch']} kept ({kept.get('why')})"
        for split, metrics in (kept.get("metrics") or {}).items():
            lines.append(f"  {split:<5}  {metrics_line(metrics)}")
        if not kept.get("metrics") and self.history:
            lines.append(f"  last epoch  {metrics_line(self.history[-1])}")
        if self.run_dir is not None:
            lines.append(f"  run folder  {self.run_dir}")
        return "\n".join(lines) + ">"

    def predict(self, x: Any) -> np.ndarray:
        """Outputs for a batch from the kept weights, as `nnspec.load(RUN).predict` and
        `nnspec predict` compute them: the input standardized (its `categorical` and
        `missing` columns encoded) as in training, probabilities for a classifier. (The
        pure function `self.model.apply` takes the input as the first layer sees it:
        standardized, encoded.)"""
        return self.predictor().predict(x)

    def predictor(self) -> Predictor:
        """The result as `nnspec.load` would give it: `.predict`, `.params`, `.classes`, ..."""
        from nnspec.format import format_spec
        from nnspec.predictor import Predictor
        meta = {**(runs.data_meta(self.splits) if self.splits is not None else
                   {"standardizer": self.standardizer.to_dict() if self.standardizer is not None else None}),
                "history": self.history}
        return Predictor(self.run_dir or Path("."), format_spec(self.program.spec), self.program, self.model,
                         self.params, self.standardizer, meta)

    def _repr_html_(self) -> str:
        """In a notebook: the summary, then the history table, the best epoch in bold."""
        import html
        from nnspec.plot import curve_html
        from nnspec.show import history_html
        return (f"<pre>{html.escape(repr(self))}</pre>" + curve_html(self.history, self.best_epoch)
                + history_html(self.history, best_epoch=self.best_epoch))


Progress = Callable[[int, int, dict[str, float], float], None]


@dataclass
class Started:
    """What a run is about to train, for the screen's header (before compiling)."""
    program: Program
    splits: Splits
    total: int
    start: int
    overrides: dict[str, Any]
    devices: Devices | None = None


def fit(program: Program, *, epochs: int | None = None, out: Path | None = None, resume: bool = False,
        progress: Progress | bool | None = None, base_dir: Path | None = None,
        stop_after: int | None = None, checkpoint_every: float = 2.0,
        overrides: dict[str, Any] | None = None, on_start: Callable[[Started], None] | None = None,
        command: list[str] | None = None, devices: int | str | None = None, writes: bool = True,
        data: Any = None) -> Result:
    """Train a checked program. With `out`, write the run directory (and resume from it):
    a checkpoint at most every `checkpoint_every` seconds, at the end, and on Ctrl-C.
    `overrides` are the command line's (`seed`, `epochs`); they are recorded with the run
    and reapplied on resume, where a contradicting one is refused (`runs.RunFolderError`).
    `stop_after` ends this call's work after that many epochs (for tests of resuming).
    `devices` (the command line's `--devices`: a number or `all`) overrides the spec's
    `devices`; it is not recorded with the run, which may resume on any number.
    `writes=False` (the processes other than 0 of a run over several hosts) reads `out` to
    resume but writes nothing there. `progress` is the per-epoch callback, or True for a
    tqdm bar (progress.py). `data` (a `given.Given`) is the arrays given from Python in place
    of the spec's data; a resumed run must be given the same ones."""
    if bars.wanted(progress):
        bars.require()  # before anything is trained
    if resume and out is None:
        raise ValueError("`resume=True` needs the run folder to resume: pass `out`")
    if program.train is None or not program.heads or program.optimizer is None:
        raise fail("E112", "this spec cannot be trained: it needs a `loss`, an `optimizer` and a `train` block",
                   program, None, help="add the missing sections")
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    if epochs is not None:
        given["epochs"] = epochs
    ckpt = out / "checkpoint.npz" if out is not None else None
    if out is not None and not resume and writes:
        runs.claim(out)  # a new or empty folder: never mix two runs
    meta: dict[str, Any] = {}
    if resume:
        assert ckpt is not None, "resuming needs the run folder"
        try:
            meta = runs.resume_meta(ckpt, program)
        except checkpoint.CheckpointError as exc:
            raise fail("E405", exc.message, program, None, help=exc.help) from None
    recorded = meta["run"] if isinstance(meta.get("run"), dict) else None  # runs before records have none
    if recorded is not None:
        given = runs.merge_overrides(recorded.get("overrides") or {}, given, out)  # type: ignore[arg-type]
    program = runs.with_overrides(program, given)
    t = program.train
    assert t is not None
    total = given.get("epochs", t.epochs)
    base = base_dir or _spec_dir(program)
    if recorded is not None:
        from nnspec.given import differs
        problem = differs(data, recorded.get("data"))
        if problem is not None:
            raise fail("E401", f"cannot resume: {problem}", program, None if data is not None else t.data_span,
                       label="the run's data", help="resume with the data the run was started with")
        program, problem = runs.relocate(program, recorded)
        if problem is not None:
            raise fail("E401", f"cannot resume: {problem}", program, t.data_span, label="the run's data",
                       help="put the file back as it was, or train a new run on the new data")
        t = program.train
        assert t is not None
    splits = prepare(program, base, given=data)
    program = with_class_weights(program, splits.class_weights)  # `class_weight=balanced`'s numbers
    if t.steps is not None:  # `steps N`: the epochs it takes over this training split
        total = budget(t.steps, len(splits.train), t.batch, for_run(program, devices).count)[0]
    if resume and out is not None:
        moved = recorded_differs(splits.rows, out)  # (not `differs`: given.differs, above)
        if moved is not None:
            raise fail("E407", f"cannot resume: the split rebuilt from the data is not the run's: {moved}", program,
                       t.split_span or t.data_span, label="the run's split",
                       help="resume with the data and the NumPy the run was trained with, or train a new run")
    if recorded is not None:
        rec = {**recorded, "epochs": total, "overrides": given}
    else:
        rec = runs.record(program, base, epochs=total, overrides=given, given=data)
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
    devs = for_run(program, devices)
    if on_start is not None:
        on_start(Started(program, splits, total, len(meta.get("history", [])), given, devs))
    trainer = Trainer([program], splits, devices=devs)
    es = t.early_stop
    written: list[Path] = []
    created = False
    initial_loss: float | None = None
    if resume:
        assert out is not None and ckpt is not None
        if writes:
            runs.remove_stale_temporaries(out)
        state, best, history, stopper = runs.restore_checkpoint(program, ckpt, trainer.template())
        steps = None
        if trainer.record_steps:
            try:
                steps = [runs.restore_steps(ckpt, len(history), trainer.steps_per_epoch)]
            except checkpoint.CheckpointError as exc:
                raise fail("E405", exc.message, program, None, help=exc.help) from None
        # A run killed after the save of the epoch that stopped it, before its final save,
        # has stopped all the same: resuming it trains nothing more.
        snap = trainer.resumed(stack([state]), None if best is None else stack([best]), [history],
                               [stopper], [prior if isinstance(prior, dict) and prior.get("reason") != "completed"
                                           else None], steps=steps)
        initial_loss = meta.get("initial_loss")
        trainer.start_loss = np.array([math.nan if initial_loss is None else initial_loss])
    else:
        start, start_opt, started_from = start_params([program], trainer, base)  # `start_from`
        snap = trainer.fresh(start, start_opt)
        if started_from is not None:
            rec = {**rec, "start_from": started_from}
        if t.divergence is not None:
            initial_loss = float(trainer.measure_start(snap)[0])
        if out is not None and writes:
            runs.remove_stale_temporaries(out)
            created = not out.exists()
            info = {**runs.versions(), "backend": jax.default_backend(), "devices": jax.device_count(),
                    "trained_on_devices": devs.count,
                    "command": command, "started": runs.now(), "ended": None, "status": "running",
                    "seed": t.seed, "spec_fingerprint": ir.fingerprint(program.spec),
                    "model_fingerprint": runs.model_fingerprint(program), "examples": runs.examples(splits),
                    "run": rec}
            try:
                written = runs.start(out, program, info, split=split_record(splits.rows, t))
            except OSError:
                runs.take_back(out, written, created)
                raise
    if initial_loss is not None and not math.isfinite(initial_loss):
        trainer.start_loss = np.array([math.nan])  # no yardstick: only NaN and infinity count

    # steps.csv grows with the run and is rewritten whole: between the periodic checkpoints
    # it is rewritten only once 50 times its last writing time has passed (the checkpoint
    # holds every step regardless, and a resume rewrites the file from it), so it never
    # costs more than 2% of a run; every save that ends or pauses the run writes it.
    steps_due = 0.0

    def save(s: Snapshot, final=None, *, steps_now: bool = True) -> None:
        nonlocal steps_due
        if ckpt is None or not writes:
            return
        tr = s.tracks[0]
        runs.save_checkpoint(ckpt, program, member(s.state, 0, host=True),
                             member(s.best, 0, host=True) if s.best is not None and tr.stopper.best_epoch else None,
                             list(tr.history), tr.stopper.record() if es else None, splits, final=final,
                             extra={"run": rec, "initial_loss": initial_loss, "stopped": _stopped(s, total)},
                             epoch_key=np.asarray(trainer.epoch_key_data)[0], steps=_steps(trainer, tr))
        runs.write_history(out, list(tr.history))  # type: ignore[arg-type]
        if trainer.record_steps and (steps_now or time.perf_counter() >= steps_due):
            t0 = time.perf_counter()
            runs.write_steps(out, _steps(trainer, tr))  # type: ignore[arg-type]
            steps_due = time.perf_counter() + 50 * (time.perf_counter() - t0)

    last_save = time.perf_counter()
    name = (program.spec.model.name if program.spec.model is not None else None) or "training"
    pbar: Any = bars.bar(total, name, initial=snap.epoch) if progress is True else None

    def update_bar(epoch: int, total: int, row: dict[str, float], seconds: float) -> None:
        pbar.set_postfix({k: format_value(v) for k, v in row.items() if k not in ("epoch", "time")}, refresh=False)
        pbar.update(1)
    callback: Progress | None = update_bar if pbar is not None else progress if callable(progress) else None

    def on_epoch(s: Snapshot) -> None:
        nonlocal last_save
        tr = s.tracks[0]
        if tr.diverged is not None:
            save(s)
            raise _diverged_error(program, trainer, s, tr.diverged, ckpt)
        if ckpt is not None and (tr.stopped or time.perf_counter() - last_save >= checkpoint_every):
            save(s, steps_now=bool(tr.stopped))
            last_save = time.perf_counter()
        if callback is not None:
            row = tr.history[-1]
            callback(s.epoch, total, row, row["time"])

    try:
        try:
            save(snap)  # the first checkpoint: from here on the run can always be resumed
        except OSError:
            if written:  # nothing of this run can be used yet: leave nothing behind
                assert out is not None and ckpt is not None  # written: the run has a folder
                runs.take_back(out, written + [ckpt], created)
            raise
        snap = trainer.run(snap, total, stop_after=stop_after, on_epoch=on_epoch)
    except KeyboardInterrupt:
        last = trainer.snapshot or snap
        save(last)  # the last finished epoch, so `--resume` can go on from there
        if out is not None and writes:
            runs.update_info(out, status="interrupted", ended=runs.now(), epochs_run=len(last.tracks[0].history))
        raise
    finally:
        if pbar is not None:
            pbar.close()
    tr = snap.tracks[0]
    history = list(tr.history)
    stopped = _stopped(snap, total)
    finished = stopped is not None
    params = trainer.kept(snap, 0)
    result = Result(program, model, params, history, len(history),
                    tr.stopper.best_epoch if es else None, bool(tr.stopped), out, splits.standardizer, splits,
                    steps=_steps(trainer, tr))
    if finished:
        result.kept = kept_metrics(result, trainer)
    save(snap, final=params if finished else None)
    if out is not None and finished and writes:
        runs.update_info(out, status="stopped early" if result.stopped_early else "finished", ended=runs.now(),
                         epochs_run=len(history), kept=result.kept, run=rec,
                         last_epoch={k: v for k, v in history[-1].items() if k != "time"} if history else None)
    return result


def _steps(trainer: Trainer, track: Any) -> np.ndarray | None:
    """A model's per-step losses so far (epochs x steps per epoch), with `history steps`."""
    if not trainer.record_steps:
        return None
    return np.asarray(track.steps, np.float32).reshape(len(track.steps), trainer.steps_per_epoch)


def _stopped(snap: Snapshot, total: int) -> dict[str, Any] | None:
    """How the run ended, if it has: stopped early, or all its epochs done."""
    tr = snap.tracks[0]
    if tr.stopped is not None:
        return tr.stopped
    if len(tr.history) >= total:
        return {"reason": "completed", "epoch": len(tr.history)}
    return None


def kept_metrics(result: Result, trainer: Trainer | None = None) -> dict[str, Any]:
    """The metrics of the weights the run keeps (the best epoch's with `restore_best`),
    measured again on each split: what `training finished` and run.json report. With the
    run's trainer, by its evaluation program (compiled already)."""
    t = result.program.train
    assert t is not None and result.splits is not None
    restored = bool(t.early_stop and t.early_stop.restore_best and result.best_epoch)
    epoch = result.best_epoch if restored else result.epochs_run
    why = f"best {t.early_stop.monitor}" if restored else "last epoch"  # type: ignore[union-attr]
    metrics = {}
    for name, ds in (("train", result.splits.train), ("val", result.splits.val), ("test", result.splits.test)):
        if ds is not None and len(ds):
            if trainer is not None:
                got = trainer.evaluate(stack([result.params]), trainer.chunks_of(ds))
                metrics[name] = {k: float(v[0]) for k, v in got.items()}
            else:
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
    steps = None
    if program.train is not None and program.train.history == "steps":
        try:
            steps = runs.restore_steps(ckpt, len(history), _batches(len(splits.train), program.train.batch)[1])
        except checkpoint.CheckpointError as exc:
            raise fail("E405", exc.message, program, None, help=exc.help) from None
    result = Result(program, model, trees["final_params"], history, len(history),
                    stopper.get("best_epoch") or None, meta["stopped"].get("reason") == "early_stop",
                    ckpt.parent, splits.standardizer, splits, already_finished=True, steps=steps)
    result.kept = kept_metrics(result)
    return result


# --------------------------------------------------------------------------- divergence

def _diverged_error(program: Program, trainer: Trainer, snap: Snapshot, d: Divergence, ckpt: Path | None
                    ) -> NNSpecError:
    """E404 for the one model of a run, with where and why it diverged."""
    epoch = d.epoch - 1
    t = program.train
    assert t is not None
    if d.how == "exploded":
        initial = float(trainer.start_loss[0])
        return _divergence(program, f"the mean loss of epoch {d.epoch} ({format_value(d.loss)}) is "
                                    f"{d.loss / initial:.3g} times the initial weights' loss ({format_value(initial)})",
                           [f"a loss above {t.divergence:g} times the initial one counts as diverged "
                            f"(`divergence` in the `train` block; `divergence off` turns this check off)",
                            _kept_note(epoch, ckpt)])
    history = snap.tracks[0].history
    finite = d.per_step[:d.step - 1]
    last = (f"{finite[-1]:.6g} at step {d.step - 1} of epoch {d.epoch}" if finite.size else
            (f"{history[-1]['loss']:.6g} (mean of epoch {epoch})" if history else "none"))
    notes = [f"last finite loss: {last}", _kept_note(epoch, ckpt)]
    secondary = []
    found = None
    try:  # the diagnosis is a courtesy: never let it hide the divergence itself
        order = trainer.order(epoch)
        found = _first_nonfinite(trainer.model, member(snap.state, 0), trainer.x, trainer.y, order,
                                 trainer.epoch_keys[0], epoch, member(trainer.hparams, 0), t.batch, d.step,
                                 devices=trainer.devices.count, sw=trainer.sw)
    except Exception:
        found = None
    if found is not None:
        note, span, label = found
        notes.insert(0, note)
        secondary.append((span, label))
    return _divergence(program, f"the loss became {'NaN' if d.how == 'NaN' else 'infinite'} "
                                f"at step {d.step} of epoch {d.epoch}", notes, secondary)


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


def _first_nonfinite(model: Model, state: TrainState, x, y, order, base_key, epoch: int, hparams,
                     batch: int | None, step: int, max_steps: int = 10_000, devices: int = 1, sw: Any = None):
    """(note, span, label): the layer whose weights or outputs went non-finite first in the
    diverged epoch, found by replaying it step by step from the last good state; None
    where the replay does not reproduce the divergence. The batches and keys mirror `epoch_fn`."""
    if step - 1 > max_steps:
        return None
    state, (idx, weights, keys) = replay(model, state, x, y, order, base_key, epoch, hparams, batch, step - 1,
                                         devices, sw)

    def finite(tree) -> bool:
        return all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree_util.tree_leaves(tree))

    def named(layer, what: str):
        return (f"the first non-finite values were the {what} of layer `{layer.name}`", layer.span,
                f"its {what} went non-finite first")

    for impl in model.layers:
        if not finite(state.params.get(impl.layer.name, {})):
            return named(impl.layer, "weights")
    # every node's output, with the keys Model.apply draws; the first in file order to go
    # non-finite is named (a graph's order of evaluation)
    values = model.trace(state.params, batch_rows(x, idx[step - 1]), key=keys[step - 1], train=True, hparams=hparams)
    for impl in model.layers:
        if not finite(values[impl.layer.name]):
            return named(impl.layer, "output")
    h = model.result(values)
    last = model.layers[-1].layer if model.layers else None
    per = model.per_example_loss(h, rows(y, idx[step - 1]), model.added(values), hparams)
    w = jnp.ones(idx.shape[1]) if weights is None else weights[step - 1]
    if last is None or finite(jnp.sum(per * w)):  # the batch's sum, as the epoch adds it
        return None
    return (f"every layer's values were finite, but the loss overflowed: the largest output was "
            f"{max(float(jnp.max(jnp.abs(v))) for v in jax.tree_util.tree_leaves(h)):.3g}", last.span, "its outputs grew too large for the loss")
