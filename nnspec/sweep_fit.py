"""fit_sweep(program) -> SweepResult: every model of a sweep trained at once.

Models whose settings differ only in traced numbers (learning rate, momentum, drop
probability, penalties, schedule constants, seed) form one group, trained as one stack by
trainer.Trainer: ONE compiled epoch program, vmapped over the stacked models, so N models
cost one compilation and one pass over the data per epoch. Axes that change the program (units, batch size, ...), the data (a dataset's
parameters, the split) or the loop (epochs) give one such group per value, each trained
on its own data for its own epochs, one after the other; groups that read the same data
share one preparation of it. A group larger than the memory budget is split into
chunks. Early stopping and divergence are per model: a stopped or diverged model keeps
its last good parameters while the others go on.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np


from nnspec import checkpoint, ir, runs
from nnspec import progress as bars
from nnspec.check import physical_memory, training_bytes
from nnspec.checked import Program
from nnspec.devices import Devices, for_run
from nnspec.diagnostics import NNSpecError
from nnspec.lower import Model
from nnspec.prepare import Splits, _spec_dir, data_key, fail, preparation_key, prepare, with_class_weights
from nnspec.start import start_params
from nnspec.split import record_of as split_record, recorded_differs
from nnspec.trainer import Divergence, Snapshot, Track, Trainer, _batches, stack
from nnspec.trainer import budget as steps_budget
from nnspec.show import format_value


@dataclass
class MemberResult:
    setting: dict[str, Any]
    program: Program
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    best_value: float = math.nan
    diverged: tuple[int, int] | None = None  # (epoch, step)
    stopped_early: bool = False
    params: Any = None
    kept_value: float = math.nan  # the monitored value of the parameters kept (best or last epoch)
    how: str = ""  # why it diverged: "NaN", "infinite" or "exploded" (finite, but far above its start)
    start_loss: float = math.nan  # the initial weights' mean loss (validation split, else training split)
    splits: Splits | None = None  # the data this model was trained on
    steps: np.ndarray | None = None  # `history steps`: each step's training loss, epochs x steps per epoch


def _rank_key(m: MemberResult, mode: str) -> tuple[bool, float]:
    """Better models sort first: by the monitored value of the weights the model keeps;
    diverged models, and models without a finite value, last."""
    bad = m.diverged is not None or not math.isfinite(m.kept_value)
    return bad, 0.0 if bad else (m.kept_value if mode == "min" else -m.kept_value)


@dataclass
class SweepResult:
    program: Program
    members: list[MemberResult]
    monitor: str
    mode: str
    notes: list[str]
    run_dir: Path | None = None
    record: dict[str, Any] | None = None  # runs.record() of the best model, for eval

    def __repr__(self) -> str:
        """The ranked table (the default would print every model's weights and data)."""
        where = f", run folder {self.run_dir}" if self.run_dir is not None else ""
        return f"<nnspec.SweepResult of {len(self.members)} models, ranked by {self.monitor}{where}\n{self.table().rstrip()}>"

    def _repr_html_(self) -> str:
        """In a notebook: the ranked table, then the sweep's curve (`nnspec plot`'s picture
        of the sweep's folder) where matplotlib is installed."""
        import html
        from nnspec.plot import sweep_html
        records = [{"setting": m.setting, "history": m.history, "diverged": m.diverged} for m in self.members]
        return f"<pre>{html.escape(repr(self))}</pre>" + sweep_html(records)

    def ranking(self) -> list[int]:
        """Member indices, best first, by the monitored value of the weights each model ends
    with (its best epoch's with `restore_best`, else its last epoch's); diverged last."""
        return sorted(range(len(self.members)), key=lambda i: (*_rank_key(self.members[i], self.mode), i))

    @property
    def best(self) -> MemberResult:
        return self.members[self.ranking()[0]]

    @property
    def splits(self) -> Splits | None:
        """The best model's data (what its checkpoint's standardizer and classes describe)."""
        return self.best.splits

    def failure(self) -> NNSpecError | None:
        """E404 when every model diverged: the checkpoint then holds no trained model worth the name."""
        if any(m.diverged is None for m in self.members):
            return None
        lr = next((a.span for a in self.program.sweep.axes if a.name == "lr"), None)  # type: ignore[union-attr]
        opt = self.program.spec.optimizer
        return fail("E404", f"training diverged: all {len(self.members)} models of the sweep diverged",
                    self.program, lr or (opt.span if opt else None), label="these learning rates may be too large",
                    help="try learning rates 10 times smaller, or add `clip_norm=1.0` to the optimizer")

    def table(self) -> str:
        """The ranked table: setting, the kept weights' and the best monitored value, epochs, status."""
        axes = list(self.members[0].setting)
        head = ["rank", *axes, f"kept {self.monitor}", f"best {self.monitor}", "best epoch", "epochs", "status"]
        rows = []
        for rank, i in enumerate(self.ranking(), start=1):
            m = self.members[i]
            status = (f"diverged (epoch {m.diverged[0]}, step {m.diverged[1]}, {m.how})" if m.diverged
                      else "stopped early" if m.stopped_early else "ok")
            rows.append([str(rank), *(f"{m.setting[a]:g}" for a in axes),
                         format_value(m.kept_value) if math.isfinite(m.kept_value) else "—",
                         format_value(m.best_value) if math.isfinite(m.best_value) else "—",
                         str(m.best_epoch or "—"), str(len(m.history)), status])
        widths = [max(len(r[c]) for r in rows + [head]) for c in range(len(head))]
        line = lambda r: "  ".join(v.rjust(w) if k < len(head) - 1 else v for k, (v, w) in enumerate(zip(r, widths)))  # noqa: E731
        return "\n".join([line(head), *(line(r) for r in rows)]) + "\n"


def fit_sweep(program: Program, *, epochs: int | None = None, out: Path | None = None,
              progress: Callable[[str], None] | bool | None = None, base_dir: Path | None = None,
              chunk: int | None = None, resume: bool = False, checkpoint_every: float = 2.0,
              command: list[str] | None = None, seed: int | None = None,
              devices: int | str | None = None, data: Any = None) -> SweepResult:
    """Train every model of `program.sweep`; returns per-model histories and the ranking.
    `epochs` (the command line's `--epochs`) replaces every model's epochs. With `out`, the
    run folder holds a checkpoint of the sweep so far (at most every `checkpoint_every`
    seconds, after each stack of models, and on Ctrl-C), and `resume` goes on from it.
    `seed` (the command line's `--seed`) replaces every model's seed; a resumed sweep keeps
    the one it began with. `devices` (`--devices`) overrides the spec's `devices`: every
    stack's batches are split over them (nnspec/devices.py). `progress` gets one line of
    text an epoch, or is True for a tqdm bar over every stack's epochs (progress.py).
    `data` (a `given.Given`) is the arrays given from Python in place of the spec's data,
    for every model; a resumed sweep must be given the same ones."""
    if bars.wanted(progress):
        bars.require()  # before anything is trained
    if resume and out is None:
        raise ValueError("`resume=True` needs the run folder to resume: pass `out`")
    saved = _read_progress(out / "checkpoint.npz", program) if resume and out is not None else None
    if saved is not None:
        if seed is not None and seed != saved["seed"]:
            begun = f"`--seed {saved['seed']}`" if saved["seed"] is not None else "the spec's seed"
            raise runs.RunFolderError(f"`{out}` is a sweep begun with {begun}; resume it without `--seed`, "
                                      f"or train a new run")
        seed = saved["seed"]
        if epochs is not None and epochs != saved["epochs"]:
            begun = f"`--epochs {saved['epochs']}`" if saved["epochs"] else "the spec's epochs"
            raise runs.RunFolderError(f"`{out}` is a sweep begun with {begun}; resume it without `--epochs`, "
                                      f"or train a new run")
        epochs, base_dir = saved["epochs"], Path(saved["base_dir"])
    written_steps = program.train.steps if program.train is not None else None
    program = runs.with_overrides(program, {"seed": seed, "epochs": epochs})  # `--epochs` replaces `steps`
    sweep = program.sweep
    assert sweep is not None, "not a sweep"
    t = program.train
    if t is None or not program.heads or program.optimizer is None:
        raise fail("E112", "this spec cannot be trained: it needs a `loss`, an `optimizer` and a `train` block",
                   program, None, help="add the missing sections")
    swept_epochs = next((a for a in sweep.axes if a.name.split(".")[0] in ("epochs", "steps")), None)
    if epochs is not None and swept_epochs is not None:
        # The table and best.nn would list epoch counts that no model was trained for.
        raise fail("E108", f"`--epochs {epochs}` would replace the swept `{swept_epochs.name.split('.')[0]}`",
                   program, swept_epochs.span,
                   label="the epochs this sweep tries", help="leave out `--epochs`, or write one number in the spec")
    swept_seed = next((a for a in sweep.axes if a.name == "seed"), None)
    if swept_seed is not None and any(p.train.seed != s["seed"]  # type: ignore[union-attr]
                                      for s, p in zip(sweep.settings, sweep.programs)):
        # `--seed` gave every model one seed: the table would list seeds no model was trained with.
        raise fail("E108", f"`--seed {sweep.programs[0].train.seed}` would replace the swept `seed`",  # type: ignore[union-attr]
                   program, swept_seed.span, label="the seeds this sweep tries",
                   help="leave out `--seed`, or write one seed in the spec")
    members = [MemberResult(dict(s), p) for s, p in zip(sweep.settings, sweep.programs)]
    base = base_dir or _spec_dir(program)
    data_record = data.record() if data is not None else runs.data_record(program, base)
    if saved is not None and data_record != saved["data"]:
        raise fail("E401", "cannot resume: the sweep's data has changed since it was trained", program,
                   t.data_span, label="the run's data",
                   help="put the file back as it was, or train a new run on the new data")
    groups = sweep.groups()
    # Every model sees the data (its generation and split) of the first model's seed: a
    # swept seed varies the start, the shuffling and dropout, not the examples. Other
    # axes may change the data; groups that read the same data prepare it once.
    data_seed = sweep.programs[0].train.seed  # type: ignore[union-attr]
    prepared: dict[str, Splits] = {}
    for group in groups:
        first = sweep.programs[group[0]]
        key = preparation_key(first)
        if key not in prepared:
            prepared[key] = prepare(runs.with_overrides(first, {"seed": data_seed}), base_dir, given=data)
        for i in group:
            members[i].splits = prepared[key]
    es = t.early_stop
    every_val = all(m.splits.val is not None for m in members)  # type: ignore[union-attr]
    monitor = es.monitor if es else ("val_loss" if every_val else "loss")
    mode = es.mode if es else "min"
    notes = []
    if len(groups) > 1:
        static = [a.name for a in sweep.axes if not a.traced]
        notes.append(f"{_names(static)} {_verb(static)} the compiled program, the data or the loop: "
                     f"{len(groups)} programs, trained one after another")
    data_axes = [a.name for a in sweep.axes if len({data_key(p) for p in _varying(sweep, a)}) > 1]
    if data_axes:
        notes.append(f"{_names(data_axes)} {_verb(data_axes)} the data: the models were trained and "
                     f"measured on different examples, so their `{monitor}` values are not strictly comparable")
    if epochs is not None:
        was = f"steps {written_steps}" if written_steps is not None else f"epochs {t.epochs}"
        notes.append(f"`--epochs {epochs}` replaces the spec's `{was}` for every model")
    budget = (physical_memory() or 8 << 30) // 4
    chunks: list[tuple[int, list[int]]] = []  # (program, the models trained as one stack)
    for g, group in enumerate(groups):
        first = sweep.programs[group[0]]
        splits = members[group[0]].splits
        assert splits is not None and first.train is not None
        per = training_bytes(first.model, first.optimizer.name if first.optimizer else None,
                             first.train.batch or len(splits.train))
        size = chunk or max(1, min(len(group), budget // max(per, 1)))
        if size < len(group) and chunk is None:
            notes.append(f"{len(group)} models do not fit in memory at once: trained in chunks of {size}")
        chunks += [(g, group[start:start + size]) for start in range(0, len(group), size)]
    if saved is not None:
        # the stacks the sweep began with (the memory budget may differ on this machine)
        chunks = [(g, list(part)) for g, part in saved["chunks"]]
        if sorted(i for _, part in chunks for i in part) != list(range(len(members))):
            raise fail("E405", f"`{out}/checkpoint.npz` does not describe this sweep's models", program, None,
                       help="train a new run")
        if len(prepared) == 1 and out is not None:  # its one split, recorded in split.json: still the same rows?
            moved = recorded_differs(next(iter(prepared.values())).rows, out)
            if moved is not None:
                raise fail("E407", f"cannot resume: the split rebuilt from the data is not the sweep's: {moved}",
                           program, t.split_span or t.data_span, label="the sweep's split",
                           help="resume with the data and the NumPy the sweep was trained with, or train a new run")
    ckpt = out / "checkpoint.npz" if out is not None else None
    if out is not None and saved is None:
        runs.claim(out)  # a new or empty folder: never mix two runs
        runs.remove_stale_temporaries(out)
        runs.start(out, program, {**runs.versions(), "sweep": True, "models": len(members), "command": command,
                                  "started": runs.now(), "ended": None, "status": "running",
                                  "spec_fingerprint": ir.fingerprint(program.spec)},
                   # one split for every model, when they all read the same data
                   split=split_record(next(iter(prepared.values())).rows,
                                      runs.with_overrides(program, {"seed": data_seed}).train)
                   if len(prepared) == 1 else None)
    elif out is not None:
        runs.remove_stale_temporaries(out)
    progress_base = {"chunks": [[g, part] for g, part in chunks], "epochs": epochs, "seed": seed, "base_dir": str(base),
                     "data": data_record}
    first_chunk = 0
    if saved is not None:
        first_chunk = saved["chunk"]
        _restore_done(out / "checkpoint.npz", program, members, saved)  # type: ignore[operator]

    def save(ci: int, trainer: Trainer | None = None, snap: Snapshot | None = None) -> None:
        if ckpt is not None:
            done = [i for _, part in chunks[:ci] for i in part]
            _save_progress(ckpt, program, members, done, {**progress_base, "chunk": ci}, trainer, snap)

    # the bar counts every stack's epochs; a stack that ends early (every model stopped)
    # moves it on to the next stack's start
    ends = list(np.cumsum([_epochs(members[part[0]], epochs, devices) for _, part in chunks]))
    pbar: Any = None
    if progress is True:
        current = saved.get("current") if saved is not None else None
        name = (program.spec.model.name if program.spec.model is not None else None) or "training"
        pbar = bars.bar(int(ends[-1]), f"{name} sweep",
                        initial=int(([0] + ends)[first_chunk]) + (current["epoch"] if current else 0))

    def update_bar(line: str) -> None:
        pbar.set_postfix_str(line, refresh=False)
        pbar.update(1)
    callback = update_bar if pbar is not None else progress if callable(progress) else None

    try:
        for ci, (g, part) in enumerate(chunks):
            if ci < first_chunk:
                continue
            first = sweep.programs[part[0]]
            _train_group([members[i] for i in part], members[part[0]].splits,  # type: ignore[arg-type]
                         _epochs(members[part[0]], epochs, devices), monitor, mode,
                         callback, label=f"program {g + 1}/{len(groups)}, " if len(groups) > 1 else "",
                         everyone=members, save=functools.partial(save, ci),
                         every=checkpoint_every,
                         resumed=saved["current"] if saved is not None and ci == first_chunk else None,
                         ckpt=ckpt, devices=for_run(first, devices), base_dir=base)
            save(ci + 1)
            if pbar is not None and pbar.n < ends[ci]:
                pbar.update(int(ends[ci]) - pbar.n)
    except KeyboardInterrupt:
        if out is not None:
            runs.update_info(out, status="interrupted", ended=runs.now())
        raise
    finally:
        if pbar is not None:
            pbar.close()
    result = SweepResult(program, members, monitor, mode, notes, out)
    if out is not None:
        # what eval rebuilds: the best model's data, made with the sweep's data seed
        best = result.best.program
        result.record = runs.record(runs.with_overrides(best, {"seed": data_seed}), base_dir or _spec_dir(program),
                                    epochs=_epochs(result.best, epochs, devices),
                                    overrides={k: v for k, v in (("epochs", epochs), ("seed", seed)) if v is not None},
                                    given=data)
        _write_run(out, result)
    return result


def _epochs(m: MemberResult, epochs: int | None, devices: int | str | None) -> int:
    """The epochs model `m` trains for: `--epochs`, else those of its `steps N` over its
    training split, else its `epochs`."""
    t = m.program.train
    assert t is not None
    if epochs is not None:
        return epochs
    if t.steps is None or m.splits is None:
        return t.epochs
    return steps_budget(t.steps, len(m.splits.train), t.batch, for_run(m.program, devices).count)[0]


def _names(names: list[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _verb(names: list[str]) -> str:
    return "changes" if len(names) == 1 else "change"


def _varying(sweep: Any, axis: Any) -> list[Program]:
    """The programs of the sweep's models whose other axes hold the first model's values."""
    first = sweep.settings[0]
    return [p for s, p in zip(sweep.settings, sweep.programs)
            if all(s[n] == first[n] for n in s if n != axis.name)]


def _train_group(members: list[MemberResult], splits: Splits, epochs: int, monitor: str,
                 mode: str, progress, label: str, everyone: list[MemberResult],
                 save: Callable[[Trainer, Snapshot], None] | None = None, every: float = 2.0,
                 resumed: dict[str, Any] | None = None, ckpt: Path | None = None,
                 devices: Devices | None = None, base_dir: Path | None = None) -> None:
    """Train these models as one stack, filling in their results epoch by epoch (the
    progress line ranks the whole sweep as it stands). `save` writes the sweep's checkpoint
    (at most every `every` seconds, and on Ctrl-C); `resumed` is the stack's saved progress."""
    trainer = Trainer([with_class_weights(m.program, splits.class_weights) for m in members], splits,
                      monitor=monitor, mode=mode, devices=devices)
    if resumed is None:
        start, start_opt, _ = start_params([m.program for m in members], trainer,
                                           base_dir or _spec_dir(members[0].program))  # `start_from`
        snap = trainer.fresh(start, start_opt)
        starts = trainer.measure_start(snap)
    else:
        snap = _resumed_stack(trainer, resumed, ckpt)  # type: ignore[arg-type]
        starts = trainer.start_loss = np.asarray(resumed["start_loss"], float)
    for m, loss in zip(members, starts):
        m.start_loss = float(loss)
    _fill(members, trainer, snap)
    started = last_save = time.perf_counter()

    def on_epoch(s: Snapshot) -> None:
        nonlocal last_save
        _fill(members, trainer, s, histories=False)
        if save is not None and time.perf_counter() - last_save >= every:
            save(trainer, s)
            last_save = time.perf_counter()
        if progress is not None:
            progress(f"{label}epoch {s.epoch}/{epochs}  {_progress_summary(members, everyone, monitor, mode)}"
                     f"  [{time.perf_counter() - started:.1f}s]")

    try:
        snap = trainer.run(snap, epochs, on_epoch=on_epoch)
    except KeyboardInterrupt:
        if save is not None:
            save(trainer, trainer.snapshot or snap)  # the last finished epoch of every model
        raise
    _fill(members, trainer, snap)
    for i, m in enumerate(members):
        m.params = trainer.kept(snap, i)


def _fill(members: list[MemberResult], trainer: Trainer, snap: Snapshot, *, histories: bool = True) -> None:
    """Each model's result as the snapshot has it; without `histories`, all but the
    history (what the progress line needs, every epoch: copying every history each epoch
    made a 16-model sweep's epochs twice as long)."""
    for i, (m, tr) in enumerate(zip(members, snap.tracks)):
        if histories:
            m.history = [{k: v for k, v in row.items() if k != "time"} for row in tr.history]
            if trainer.record_steps:
                m.steps = _steps_array(tr.steps, trainer.steps_per_epoch)
        m.best_epoch = tr.stopper.best_epoch or None
        m.best_value = tr.stopper.best
        m.kept_value = trainer.kept_value(snap, i)
        m.stopped_early = tr.stopped is not None
        if tr.diverged is not None:
            m.diverged, m.how = (tr.diverged.epoch, tr.diverged.step), tr.diverged.how


def _steps_array(steps: Any, per_epoch: int) -> np.ndarray:
    return np.asarray(steps, np.float32).reshape(len(steps), per_epoch)


def _steps_per_epoch(m: MemberResult) -> int:
    assert m.splits is not None and m.program.train is not None
    return _batches(len(m.splits.train), m.program.train.batch)[1]


# ------------------------------------------------------------------- the sweep so far

def _member_record(m: MemberResult) -> dict[str, Any]:
    return {"history": m.history, "best_epoch": m.best_epoch, "best_value": m.best_value,
            "kept_value": m.kept_value, "diverged": list(m.diverged) if m.diverged else None,
            "how": m.how, "stopped_early": m.stopped_early, "start_loss": m.start_loss}


def _save_progress(path: Path, program: Program, members: list[MemberResult], done: list[int],
                   progress: dict[str, Any], trainer: Trainer | None, snap: Snapshot | None) -> None:
    """The checkpoint of a sweep in progress: the kept weights and results of every model
    trained so far, and the state of the stack in training, if any."""
    trees: dict[str, Any] = {f"member_{i}": members[i].params for i in done}
    trees.update({f"steps_{i}": members[i].steps for i in done if members[i].steps is not None})
    current = None
    if trainer is not None and snap is not None:
        trees["stack_state"] = snap.state
        if trainer.record_steps:
            trees["stack_steps"] = {str(j): _steps_array(tr.steps, trainer.steps_per_epoch)
                                    for j, tr in enumerate(snap.tracks)}
        if snap.best is not None:
            trees["stack_best"] = snap.best
        current = {"epoch": snap.epoch, "start_loss": [float(v) for v in trainer.start_loss],
                   "tracks": [{"history": list(tr.history), "stopper": tr.stopper.record(), "stopped": tr.stopped,
                               "diverged": None if tr.diverged is None else
                               [tr.diverged.epoch, tr.diverged.step, tr.diverged.how, tr.diverged.loss]}
                              for tr in snap.tracks]}
    t = program.train
    assert t is not None
    meta = {"spec_fingerprint": ir.fingerprint(program.spec), "model_fingerprint": runs.model_fingerprint(program),
            "epoch": 0, "history": [], "seed": t.seed, "sweep": True,
            "sweep_progress": {**progress, "done": {str(i): _member_record(members[i]) for i in done},
                               "current": current}}
    checkpoint.save(path, trees, meta)


def _read_progress(path: Path, program: Program) -> dict[str, Any]:
    """The saved progress of the sweep in `path`, checked against `program`."""
    try:
        meta = runs.resume_meta(path, program)
    except checkpoint.CheckpointError as exc:
        raise fail("E405", exc.message, program, None, help=exc.help) from None
    saved = meta.get("sweep_progress")
    if saved is None:
        if meta.get("best_setting") is not None:
            raise runs.RunFolderError(f"the sweep in `{path.parent}` has finished: its table is "
                                      f"`{path.parent / 'sweep.txt'}`; train a new run to train it again")
        raise runs.RunFolderError(f"`{path.parent}` holds a single run, not a sweep; resume it with its own spec")
    if not checkpoint.sweep_progress_ok(saved, len(program.sweep.programs)):  # type: ignore[union-attr]
        raise fail("E405", f"`{path}`: `sweep_progress` is not a record of this sweep's progress", program, None,
                   help="train a new run")
    return saved


def _restore_done(path: Path, program: Program, members: list[MemberResult], saved: dict[str, Any]) -> None:
    """The results and kept weights of the models a resumed sweep had already trained."""
    done = {int(i): rec for i, rec in saved["done"].items()}
    templates: dict[str, Any] = {f"member_{i}": jax.eval_shape(Model(members[i].program).init, jax.random.key(0))
                                 for i in done}
    steps = [i for i in done if members[i].program.train.history == "steps"]  # type: ignore[union-attr]
    templates.update({f"steps_{i}": np.zeros((len(done[i]["history"]), _steps_per_epoch(members[i])), np.float32)
                      for i in steps})
    try:
        trees, _ = checkpoint.load(path, templates)
    except checkpoint.CheckpointError as exc:
        raise fail("E405", exc.message, program, None, help=exc.help) from None
    for i, rec in done.items():
        m = members[i]
        m.history, m.best_epoch, m.best_value, m.kept_value = (rec["history"], rec["best_epoch"], rec["best_value"],
                                                               rec["kept_value"])
        m.diverged = tuple(rec["diverged"]) if rec["diverged"] else None
        m.how, m.stopped_early, m.start_loss = rec["how"], rec["stopped_early"], rec["start_loss"]
        m.params = trees[f"member_{i}"]
        if i in steps:
            m.steps = np.asarray(trees[f"steps_{i}"])


def _resumed_stack(trainer: Trainer, current: dict[str, Any], path: Path) -> Snapshot:
    """The snapshot of the stack a sweep was training when its checkpoint was written."""
    fresh = trainer.fresh()
    templates: dict[str, Any] = {"stack_state": fresh.state}
    if fresh.best is not None:
        templates["stack_best"] = fresh.best
    if trainer.record_steps:
        templates["stack_steps"] = {str(j): np.zeros((len(tr["history"]), trainer.steps_per_epoch), np.float32)
                                    for j, tr in enumerate(current["tracks"])}
    try:
        if len(current["tracks"]) != trainer.count:
            raise checkpoint.CheckpointError(f"`{path}` saved {len(current['tracks'])} models of this stack, "
                                             f"the sweep has {trainer.count}", "train a new run")
        trees, _ = checkpoint.load(path, templates)
    except checkpoint.CheckpointError as exc:
        raise fail("E405", exc.message, trainer.programs[0], None, help=exc.help) from None
    tracks = []
    for j, tr in enumerate(current["tracks"]):
        d = tr["diverged"]
        steps = tuple(np.asarray(trees["stack_steps"][str(j)])) if trainer.record_steps else ()
        tracks.append(Track(replace(trainer.new_stopper(), **tr["stopper"]), tuple(tr["history"]), tr["stopped"],
                            None if d is None else Divergence(d[0], d[1], d[2], d[3], np.zeros(0)), steps))
    return Snapshot(current["epoch"], trees["stack_state"], trees.get("stack_best"), tuple(tracks))


def _progress_summary(group: list[MemberResult], everyone: list[MemberResult], monitor: str, mode: str) -> str:
    """How the group stands, and the best model so far of the whole sweep by the ranking's rule."""
    stopped = sum(m.stopped_early for m in group)
    diverged = sum(m.diverged is not None for m in group)
    text = f"{len(group)} models ({stopped} stopped, {diverged} diverged)"
    lead = min(everyone, key=lambda m: _rank_key(m, mode))
    if _rank_key(lead, mode)[0]:  # no model has a kept value yet
        return text
    return (f"{text}  best {monitor} {format_value(lead.kept_value)} "
            f"({', '.join(f'{k}={v:g}' for k, v in lead.setting.items())})")


# ----------------------------------------------------------------------------- run files

def _write_run(out: Path, result: SweepResult) -> None:
    """The ranked table, every model's history, and the best model as the run's result."""
    from nnspec.format import format_spec
    out.mkdir(parents=True, exist_ok=True)
    best = result.best
    checkpoint.write_bytes_atomic(out / "best.nn", format_spec(best.program.spec).encode())
    checkpoint.write_bytes_atomic(out / "sweep.txt", result.table().encode())
    lines = [json.dumps({"setting": m.setting, "best_epoch": m.best_epoch, "best_value": m.best_value,
                         "kept_value": m.kept_value, "examples": runs.examples(m.splits),
                         "diverged": m.diverged, "divergence": m.how or None, "start_loss": m.start_loss,
                         "stopped_early": m.stopped_early, "history": m.history})
             for m in result.members]
    checkpoint.write_bytes_atomic(out / "sweep.jsonl", ("\n".join(lines) + "\n").encode())
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    axes = list(best.setting)
    w.writerow(["rank", *axes, f"kept_{result.monitor}", f"best_{result.monitor}", "best_epoch", "epochs", "diverged"])
    for rank, i in enumerate(result.ranking(), start=1):
        m = result.members[i]
        w.writerow([rank, *(m.setting[a] for a in axes), m.kept_value, m.best_value, m.best_epoch, len(m.history),
                    m.diverged is not None])
    checkpoint.write_bytes_atomic(out / "sweep.csv", buf.getvalue().encode())
    if all(m.steps is not None for m in result.members):
        runs.write_steps(out, [m.steps for m in result.members], [m.setting for m in result.members])
    splits = best.splits  # the standardizer, classes and names of the data the kept model saw
    assert splits is not None
    trees: dict[str, Any] = {"final_params": best.params}
    ensemble = [a.name for a in result.program.sweep.axes] == ["seed"]  # type: ignore[union-attr]
    if ensemble:
        trees["members"] = stack([m.params for m in result.members])
    meta = {"run": result.record, "model_fingerprint": runs.model_fingerprint(best.program), "epoch": len(best.history),
            "seed": best.program.train.seed, "history": best.history, "sweep": True,  # type: ignore[union-attr]
            "best_setting": best.setting, "ensemble": len(result.members) if ensemble else 0,
            **runs.data_meta(splits), "spec_fingerprint": ir.fingerprint(result.program.spec)}
    checkpoint.save(out / "checkpoint.npz", trees, meta)
    runs.update_info(out, status="finished", ended=runs.now(), best_setting=best.setting, run=result.record)

