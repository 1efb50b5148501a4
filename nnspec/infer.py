"""What a trained run is used for: its weights loaded back, predictions, evaluation."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nnspec import checkpoint, columns, runs
from nnspec import metrics as metric_lib
from nnspec.checked import Program
from nnspec.data import Dataset, Standardizer
from nnspec.lower import Model, lower
from nnspec.prepare import Splits, _labels, fail, prepare, with_class_weights
from nnspec.split import recorded_differs
from nnspec.trainer import chunks, compiled, eval_chunk, eval_sums_fn, mean_over


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
        # `class_weight=balanced`: the numbers the run counted on its training split
        program = with_class_weights(program, meta.get("class_weights"))
        model = lower(program)
        if meta.get("model_fingerprint") != runs.model_fingerprint(program):
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
    try:
        encoder = columns.from_meta(meta)
    except ValueError as exc:
        raise fail("E405", f"`{path}` cannot be used: {exc}", program, None, help="train again") from None
    if encoder is not None and encoder.width != math.prod(program.model.input_shape):
        raise fail("E405", f"`{path}` encodes its columns to {encoder.width} features, but the model's input has "
                           f"{math.prod(program.model.input_shape)}", program, None,
                   help="it was written for a different model; train again")
    if std is not None and (std.mean.shape != tuple(program.model.input_shape) or std.std.shape != std.mean.shape):
        raise fail("E405", f"`{path}` standardizes {std.mean.size} features, but the model's input has "
                           f"{math.prod(program.model.input_shape)}", program, None,
                   help="it was written for a different model; train again")
    return model, trees.get("members", trees.get("final_params")), std, meta


def predict(model: Model, params, x: jax.Array, *, ensemble: bool = False) -> jax.Array:
    """The model's outputs; an ensemble's are the mean of its members'."""
    if ensemble:
        return jax.tree_util.tree_map(lambda v: jnp.mean(v, axis=0), jax.vmap(lambda p: model.apply(p, x))(params))
    return model.apply(params, x)


def evaluate(model: Model, params, ds: Dataset, program: Program, *, ensemble: bool = False) -> dict[str, float]:
    """Mean loss and metrics on `ds` (of the averaged outputs, for an ensemble)."""
    return evaluate_report(model, params, ds, program, ensemble=ensemble)[0]


def evaluate_report(model: Model, params, ds: Dataset, program: Program, *, ensemble: bool = False,
                    confusion: bool = False) -> tuple[dict[str, float], np.ndarray | None]:
    """(mean loss and metrics on `ds`, and with `confusion` for a classifier its confusion
    counts `[label, true, predicted]` (metrics.confusion), from the same pass over the data)."""
    assert program.heads
    y = jax.tree_util.tree_map(jnp.asarray, _labels(program, ds.y))
    extra = None
    # one output's confusion counts (a model of several outputs gets none: eval says so)
    if confusion and program.loss is not None and program.loss.task != "regression":
        extra = {"confusion": metric_lib.confusion(program.loss, tuple(program.model.output_shape))}
    every = {**model._metrics, **(extra or {})}
    if ensemble:
        # the members' mean outputs, and the mean of what their layers add to the loss (KL)
        x = jax.tree_util.tree_map(jnp.asarray, ds.x)
        def member(p):
            values = model.trace(p, x)
            return model.result(values), model.added(values)
        pred, added = jax.tree_util.tree_map(lambda v: jnp.mean(v, axis=0), jax.vmap(member)(params))
        stats = {**model.metric_stats(pred, y, None, added), **metric_lib.stats_of(extra or {}, pred, y)}
        host = jax.tree_util.tree_map(lambda v: np.asarray(v, np.float64), stats)
        per = np.asarray(model.per_example_loss(pred, y, added), np.float64)
        got = {"loss": np.average(per, weights=ds.weight) if ds.weight is not None and ds.weight.sum() > 0 else np.mean(per),
               **metric_lib.finalize(every, host, np)}
    else:
        data = chunks(ds.x, y, eval_chunk([len(ds)]), ds.weight)
        got = mean_over(compiled(eval_sums_fn(model, extra=extra)), params, data, model.hparams(), model, extra)
    counts = got.pop("confusion", None)
    return ({k: float(v) for k, v in got.items()},
            None if counts is None else np.rint(np.asarray(counts)).astype(np.int64))


@dataclass
class TrainedRun:
    """A finished run loaded back with the data it was trained on, split as it was:
    what `nnspec eval` (and `nnspec plot`'s boundary and confusion matrix) work from."""
    program: Program  # the model's program (a sweep's best, as `load_trained` chose)
    model: Model
    params: Any
    standardizer: Standardizer | None
    meta: dict
    splits: Splits
    notes: list[str] = field(default_factory=list)  # for the screen: how the split was rebuilt

    @property
    def ensemble(self) -> bool:
        return bool(self.meta.get("ensemble"))


def load_run(program: Program, run_dir: Path, spec_dir: Path, *, own_copy: bool, given: Any = None) -> TrainedRun:
    """The run in `run_dir`, its weights loaded and its split rebuilt from what the run
    recorded (the seed, the data file, checked unchanged), refusing (located, NNSpecError)
    a spec that does not describe the run. `own_copy`: `program` was read from the run's
    own `spec.nn`, whose data path is relative to the user's folder, not the run's.
    `given`: the arrays a run trained from Python was given (`given.Given`), again."""
    model, params, std, meta = load_trained(program, run_dir)
    program = model.program
    notes = []
    rec = meta.get("run")
    if isinstance(rec, dict):
        from nnspec.given import KIND
        python = (rec.get("data") or {}).get("kind") == KIND or given is not None
        for what, message in runs.differences(program, rec, spec_dir, by_path=not own_copy, given=given):
            d = program.spec.train.get(what) if program.spec.train is not None else None
            raise fail("E405", f"this spec does not describe the run in `{run_dir}`: {message}", program,
                       None if python else d.span if d is not None else None, label=f"differs from the run's `{what}`",
                       help=f"evaluate it from Python with the arrays it was trained on: "
                            f"`nnspec.load({str(run_dir)!r}).evaluate(data=...)`" if python else
                            f"evaluate with the spec the run was trained with: `nnspec eval --run {run_dir}`")
        # the split is rebuilt with the seed the run's data was made with
        program = runs.with_overrides(program, {"seed": rec.get("seed")})
        if (rec.get("overrides") or {}).get("seed") is not None:
            notes.append(f"the run was trained with `--seed {rec['overrides']['seed']}`: "
                         f"its split is rebuilt with that seed")
        program, problem = runs.relocate(program, rec)
        if problem is not None:
            raise fail("E401", f"cannot evaluate: {problem}", program, program.train.data_span,  # type: ignore[union-attr]
                       label="the run's data", help="put the file back as it was when the run was trained")
    else:
        notes.append("this run predates run records: its split is rebuilt from the spec as it is now")
    splits = prepare(program, spec_dir, standardizer=std, given=given, encoder=columns.from_meta(meta))
    # measured only on the rows the run set aside: the rebuilt split must be the recorded one
    differs = recorded_differs(splits.rows, run_dir)
    if differs is not None:
        t = program.train
        raise fail("E407", f"the split rebuilt from the data is not the run's: {differs}", program,
                   (t.split_span or t.data_span) if t is not None else None, label="the run's split",
                   help=f"evaluate with the data and the NumPy the run was trained with (`{run_dir}/split.json` "
                        f"holds its rows)")
    return TrainedRun(program, model, params, std, meta, splits, notes)
