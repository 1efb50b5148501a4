"""What a trained run is used for: its weights loaded back, predictions, evaluation."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nnspec import checkpoint, runs
from nnspec import metrics as metric_lib
from nnspec.checked import Program
from nnspec.data import Dataset, Standardizer
from nnspec.lower import Model, lower
from nnspec.prepare import _labels, fail
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
    return evaluate_report(model, params, ds, program, ensemble=ensemble)[0]


def evaluate_report(model: Model, params, ds: Dataset, program: Program, *, ensemble: bool = False,
                    confusion: bool = False) -> tuple[dict[str, float], np.ndarray | None]:
    """(mean loss and metrics on `ds`, and with `confusion` for a classifier its confusion
    counts `[label, true, predicted]` (metrics.confusion), from the same pass over the data)."""
    assert program.loss is not None
    y = jnp.asarray(_labels(program, ds.y))
    extra = None
    if confusion and program.loss.task != "regression":
        extra = {"confusion": metric_lib.confusion(program.loss, tuple(program.model.output_shape))}
    every = {**model._metrics, **(extra or {})}
    if ensemble:
        pred = predict(model, params, jnp.asarray(ds.x), ensemble=True)
        stats = metric_lib.stats_of(every, pred, y)
        host = jax.tree_util.tree_map(lambda v: np.asarray(v, np.float64), stats)
        got = {"loss": np.mean(np.asarray(model.per_example_loss(pred, y), np.float64)),
               **metric_lib.finalize(every, host, np)}
    else:
        data = chunks(ds.x, np.asarray(y), eval_chunk([len(ds)]))
        got = mean_over(compiled(eval_sums_fn(model, extra=extra)), params, data, model.hparams(), model, extra)
    counts = got.pop("confusion", None)
    return ({k: float(v) for k, v in got.items()},
            None if counts is None else np.rint(np.asarray(counts)).astype(np.int64))
