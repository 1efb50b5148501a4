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
import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


from nnspec import checkpoint, ir, runs
from nnspec.check import physical_memory, training_bytes
from nnspec.checked import Program
from nnspec.diagnostics import NNSpecError
from nnspec.prepare import Splits, _spec_dir, fail, prepare
from nnspec.trainer import Snapshot, Trainer, stack
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
        line = lambda r: "  ".join(v.rjust(w) if k < len(head) - 1 else v for k, (v, w) in enumerate(zip(r, widths)))
        return "\n".join([line(head), *(line(r) for r in rows)]) + "\n"


def fit_sweep(program: Program, *, epochs: int | None = None, out: Path | None = None,
              progress: Callable[[str], None] | None = None, base_dir: Path | None = None,
              chunk: int | None = None) -> SweepResult:
    """Train every model of `program.sweep`; returns per-model histories and the ranking.
    `epochs` (the command line's `--epochs`) replaces every model's epochs."""
    sweep = program.sweep
    assert sweep is not None, "not a sweep"
    t = program.train
    if t is None or program.loss is None or program.optimizer is None:
        raise fail("E112", "this spec cannot be trained: it needs a `loss`, an `optimizer` and a `train` block",
                   program, None, help="add the missing sections")
    swept_epochs = next((a for a in sweep.axes if a.name.split(".")[0] == "epochs"), None)
    if epochs is not None and swept_epochs is not None:
        # The table and best.nn would list epoch counts that no model was trained for.
        raise fail("E108", f"`--epochs {epochs}` would replace the swept `epochs`", program, swept_epochs.span,
                   label="the epochs this sweep tries", help="leave out `--epochs`, or write one number in the spec")
    swept_seed = next((a for a in sweep.axes if a.name == "seed"), None)
    if swept_seed is not None and any(p.train.seed != s["seed"]  # type: ignore[union-attr]
                                      for s, p in zip(sweep.settings, sweep.programs)):
        # `--seed` gave every model one seed: the table would list seeds no model was trained with.
        raise fail("E108", f"`--seed {sweep.programs[0].train.seed}` would replace the swept `seed`",  # type: ignore[union-attr]
                   program, swept_seed.span, label="the seeds this sweep tries",
                   help="leave out `--seed`, or write one seed in the spec")
    if out is not None:
        runs.remove_stale_temporaries(out)
    members = [MemberResult(dict(s), p) for s, p in zip(sweep.settings, sweep.programs)]
    groups = sweep.groups()
    # Every model sees the data (its generation and split) of the first model's seed: a
    # swept seed varies the start, the shuffling and dropout, not the examples. Other
    # axes may change the data; groups that read the same data prepare it once.
    data_seed = sweep.programs[0].train.seed  # type: ignore[union-attr]
    prepared: dict[str, Splits] = {}
    for group in groups:
        first = sweep.programs[group[0]]
        key = _preparation_key(first)
        if key not in prepared:
            prepared[key] = prepare(runs.with_overrides(first, {"seed": data_seed}), base_dir)
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
    data_axes = [a.name for a in sweep.axes if len({_data_key(p) for p in _varying(sweep, a)}) > 1]
    if data_axes:
        notes.append(f"{_names(data_axes)} {_verb(data_axes)} the data: the models were trained and "
                     f"measured on different examples, so their `{monitor}` values are not strictly comparable")
    if epochs is not None:
        notes.append(f"`--epochs {epochs}` replaces the spec's `epochs {t.epochs}` for every model")
    budget = (physical_memory() or 8 << 30) // 4
    for g, group in enumerate(groups):
        first = sweep.programs[group[0]]
        splits = members[group[0]].splits
        assert splits is not None and first.train is not None
        per = training_bytes(first.model, first.optimizer.name if first.optimizer else None,
                             first.train.batch or len(splits.train))
        size = chunk or max(1, min(len(group), budget // max(per, 1)))
        if size < len(group) and chunk is None:
            notes.append(f"{len(group)} models do not fit in memory at once: trained in chunks of {size}")
        for start in range(0, len(group), size):
            part = group[start:start + size]
            _train_group([members[i] for i in part], first, splits, epochs or first.train.epochs, monitor, mode,
                         progress, label=f"program {g + 1}/{len(groups)}, " if len(groups) > 1 else "",
                         everyone=members)
    result = SweepResult(program, members, monitor, mode, notes, out)
    if out is not None:
        # what eval rebuilds: the best model's data, made with the sweep's data seed
        best = result.best.program
        result.record = runs.record(runs.with_overrides(best, {"seed": data_seed}), base_dir or _spec_dir(program),
                                    epochs=epochs or best.train.epochs,  # type: ignore[union-attr]
                                    overrides={"epochs": epochs} if epochs is not None else {})
        _write_run(out, result)
    return result


def _names(names: list[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _verb(names: list[str]) -> str:
    return "changes" if len(names) == 1 else "change"


def _data_key(program: Program) -> str:
    """What decides the examples a model is trained and measured on (the seed aside)."""
    t = program.train
    assert t is not None
    return repr((t.data, t.val, t.test, t.standardize))


def _preparation_key(program: Program) -> str:
    """Everything `prepare` reads: the data, and what it checks the data against."""
    t = program.train
    assert t is not None
    return repr((_data_key(program), t.batch, program.model.input_shape, program.model.output_shape, program.loss))


def _varying(sweep: Any, axis: Any) -> list[Program]:
    """The programs of the sweep's models whose other axes hold the first model's values."""
    first = sweep.settings[0]
    return [p for s, p in zip(sweep.settings, sweep.programs)
            if all(s[n] == first[n] for n in s if n != axis.name)]


def _train_group(members: list[MemberResult], first: Program, splits: Splits, epochs: int, monitor: str,
                 mode: str, progress, label: str, everyone: list[MemberResult]) -> None:
    """Train these models as one stack, filling in their results epoch by epoch (the
    progress line ranks the whole sweep as it stands)."""
    trainer = Trainer([m.program for m in members], splits, monitor=monitor, mode=mode)
    snap = trainer.fresh()
    for m, loss in zip(members, trainer.measure_start(snap)):
        m.start_loss = float(loss)
    started = time.perf_counter()

    def on_epoch(s: Snapshot) -> None:
        _fill(members, trainer, s)
        if progress is not None:
            progress(f"{label}epoch {s.epoch}/{epochs}  {_progress_summary(members, everyone, monitor, mode)}"
                     f"  [{time.perf_counter() - started:.1f}s]")

    snap = trainer.run(snap, epochs, on_epoch=on_epoch)
    _fill(members, trainer, snap)
    for i, m in enumerate(members):
        m.params = trainer.kept(snap, i)


def _fill(members: list[MemberResult], trainer: Trainer, snap: Snapshot) -> None:
    """Each model's result as the snapshot has it."""
    for i, (m, tr) in enumerate(zip(members, snap.tracks)):
        m.history = [{k: v for k, v in row.items() if k != "time"} for row in tr.history]
        m.best_epoch = tr.stopper.best_epoch or None
        m.best_value = tr.stopper.best
        m.kept_value = trainer.kept_value(snap, i)
        m.stopped_early = tr.stopped is not None
        if tr.diverged is not None:
            m.diverged, m.how = (tr.diverged.epoch, tr.diverged.step), tr.diverged.how


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
    checkpoint.write_bytes_atomic(out / "spec.nn", format_spec(result.program.spec).encode())
    checkpoint.write_bytes_atomic(out / "best.nn", format_spec(best.program.spec).encode())
    checkpoint.write_bytes_atomic(out / "sweep.txt", result.table().encode())
    # run.json marks the folder as nnspec's (a later run into it is refused or numbered)
    info = {"format": runs.FORMAT, "version": runs.VERSION, **runs.versions(), "sweep": True,
            "models": len(result.members), "best_setting": best.setting, "ended": runs.now(), "run": result.record}
    checkpoint.write_bytes_atomic(out / "run.json", json.dumps(info, indent=2).encode())
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


def plot_lr_curve(result: SweepResult, path: Path) -> None:
    """The monitored value of the weights each model keeps against its learning rate
    (log scale), as a PNG; diverged models leave gaps."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("plotting needs matplotlib: pip install 'nnspec[plot]'") from None
    lr_axes = [a for a in result.program.sweep.axes if a.name == "lr"]  # type: ignore[union-attr]
    if not lr_axes:
        raise ValueError("the sweep has no `lr` axis to plot")
    fig, ax = plt.subplots(figsize=(6, 4))
    others = [a.name for a in result.program.sweep.axes if a.name != "lr"]  # type: ignore[union-attr]
    series: dict[tuple, list[tuple[float, float]]] = {}
    for m in result.members:
        key = tuple((n, m.setting[n]) for n in others)
        value = m.kept_value if m.diverged is None else math.nan
        series.setdefault(key, []).append((m.setting["lr"], value))
    for key, points in series.items():
        points.sort()
        label = ", ".join(f"{n}={v:g}" for n, v in key) or None
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel(f"kept {result.monitor}")  # the kept weights' value, as the ranking uses
    ax.set_title("learning-rate sweep (gaps: diverged)")
    if others:
        ax.legend(fontsize="small")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    checkpoint.write_bytes_atomic(path, buf.getvalue())
