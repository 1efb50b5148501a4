"""A finished run loaded back in Python: `nnspec.load(RUN) -> Predictor`.

    model = nnspec.load("runs/pass_class")
    model.predict(x)                  # NumPy (n, *inputs) in, NumPy out, as `nnspec predict`
    model.predict({"x1": ..., ...})   # or columns by the training data's feature names
    model.evaluate()                  # the numbers `nnspec eval --run RUN` prints

It is the CLI's path, not a second one: the weights come from `infer.load_trained`,
evaluation is `evaluate_run` (which `nnspec eval` calls), and a prediction is
`outputs` (scaling, the model, probabilities) as `nnspec predict` computes it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from nnspec import runs
from nnspec.checked import Program
from nnspec.diagnostics import NNSpecError

if TYPE_CHECKING:  # pragma: no cover: both import JAX or the data readers
    from nnspec.data import Standardizer
    from nnspec.lower import Model


@dataclass
class Evaluation:
    """The metrics of a run on one split, and what the screen should note about them."""
    split: str            # "test", "validation" or "training"
    examples: int
    metrics: dict[str, float]
    notes: list[str] = field(default_factory=list)
    # a classifier's confusion counts `[label, true, predicted]` (metrics.confusion), else None
    confusion: np.ndarray | None = None
    # the class names of one softmax or 0/1 output, as the training data named them, else None
    classes: tuple[str, ...] | None = None


def evaluate_run(program: Program, run: Path, spec_path: Path, *, own_copy: bool,
                 split: str | None = None, given: Any = None) -> Evaluation:
    """A run's metrics on its test split (else validation, else training; or `split`),
    the data rebuilt as the run recorded it. `program` is the spec at `spec_path`;
    `own_copy` says it is the run folder's own `spec.nn` (whose data path is relative to
    the user's folder, so it is not compared by path). Raises NNSpecError."""
    from nnspec.infer import evaluate_report, load_run
    trained = load_run(program, run, spec_path.resolve().parent, own_copy=own_copy, given=given)
    program, model, params, meta, splits = trained.program, trained.model, trained.params, trained.meta, trained.splits
    notes = list(trained.notes)
    chosen = {"test": (splits.test, "test"), "val": (splits.val, "validation"),
              "train": (splits.train, "training")}
    if split is not None:
        ds, name = chosen[split]
        if ds is None:
            raise ValueError(f"the run holds out no {name} split")
    else:
        ds, name = (splits.test, "test") if splits.test is not None else (splits.val, "validation")
        if ds is None:
            ds, name = splits.train, "training"
            notes.append("the spec holds out no test or validation data; reporting the training split")
    ensemble = bool(meta.get("ensemble"))
    metrics, counts = evaluate_report(model, params, ds, program, ensemble=ensemble, confusion=True)
    if ensemble:
        notes.append(f"the mean prediction of an ensemble of {meta['ensemble']} models")
    classes = meta.get("classes")
    names = tuple(str(c) for c in classes) if isinstance(classes, list) else None
    return Evaluation(name, len(ds), metrics, notes, counts, names)


def inference_fn(model: Model, params: Any, std: Standardizer | None, *, ensemble: bool) -> Callable[[Any], Any]:
    """x (a batch of the model's input, unscaled) -> what `nnspec predict` prints as
    numbers: the input standardized as in training, the model in inference mode (no
    dropout, batch norm's running statistics), an ensemble's mean, then probabilities
    for a classifier trained on logits. Pure JAX: `jax.jit` and `jax.export` take it."""
    import jax.numpy as jnp
    from nnspec import nn
    from nnspec.infer import predict
    loss = model.program.loss
    mean = None if std is None else jnp.asarray(std.mean)
    scale = None if std is None else jnp.asarray(std.std)

    def fn(x):
        if mean is not None and scale is not None:
            x = (jnp.asarray(x, jnp.float32) - mean) / scale  # Standardizer.apply, in float32
        pred = predict(model, params, x, ensemble=ensemble)
        if loss is not None:
            pred = nn.probabilities(pred, loss.name, bool(loss.params.get("from_logits", False)))
        return pred
    return fn


class Predictor:
    """A finished run: `.predict`, `.evaluate`, and what it was trained from.

    `.spec` is the source text of the run's own `spec.nn`; `.program` is that spec
    checked (for a sweep, the best model's program). `.params` are the final weights,
    `{layer: {name: array}}` (an ensemble's stacked on a leading axis), `.history` the
    per-epoch records of `history.jsonl`."""

    def __init__(self, run_dir: Path, spec: str, program: Program, model: Model, params: Any,
                 standardizer: Standardizer | None, meta: dict[str, Any]) -> None:
        self.run_dir = run_dir
        self.spec = spec
        self.program = program
        self.model = model
        self.params = params
        self.standardizer = standardizer
        self.meta = meta
        self.history: list[dict[str, float]] = list(meta.get("history") or [])
        self.feature_names: tuple[str, ...] | None = tuple(meta["feature_names"]) if meta.get("feature_names") else None
        # the class names of the one output (several outputs: a dict of them by output)
        classes = meta.get("classes")
        self.classes: Any = ({k: tuple(v) if v else None for k, v in classes.items()} if isinstance(classes, dict)
                             else tuple(classes) if classes else None)
        # `categorical`/`missing`: how raw columns become the input (columns.Encoder), else None
        from nnspec.columns import from_meta
        self.encoder = from_meta(meta)
        self._fn: Any = None

    # -- what it computes
    def predict(self, x: Any) -> np.ndarray:
        """Outputs for a batch, as the numbers `nnspec predict` prints: probabilities for a
        classifier. `x` is an array `(n, *input_shape)` (or `(n, features)`), or a mapping
        or DataFrame whose columns are matched by the run's feature names (others ignored).
        A run with `categorical` or `missing` columns takes them as read (text, numbers,
        None for missing), by name or as an array `(n, columns)`, and encodes them as
        training did."""
        import jax.numpy as jnp
        x = self._as_array(x)
        if self._fn is None:
            from nnspec.xla_options import jit
            self._fn = jit(inference_fn(self.model, self.params, self.standardizer,
                                        ensemble=bool(self.meta.get("ensemble"))))
        return np.asarray(self._fn(jnp.asarray(x)))

    def evaluate(self, split: str | None = None, *, data: Any = None, val_data: Any = None,
                 test_data: Any = None) -> dict[str, float]:
        """Mean loss and metrics on the run's test split (else validation, else training),
        rebuilt from the data the run recorded: the numbers of `nnspec eval --run RUN`.
        `split` ("train", "val" or "test") picks one. A run trained on arrays given from
        Python (`nnspec.train(data=...)`) is given the same arrays again, checked by digest."""
        if split not in (None, "train", "val", "test"):
            raise ValueError(f"no split `{split}`: choose `train`, `val` or `test`")
        from nnspec import _given
        program = self._spec_program()
        return evaluate_run(program, self.run_dir, self.run_dir / "spec.nn", own_copy=True,
                            split=split, given=_given(program, data, val_data, test_data)).metrics

    def _spec_program(self) -> Program:
        from nnspec import check_text
        return check_text(self.spec, filename=str(self.run_dir / "spec.nn"))

    def _as_array(self, x: Any) -> np.ndarray:
        prog = self.program
        if len(prog.model.inputs) != 1:
            raise ValueError(f"this model has {len(prog.model.inputs)} inputs; predict takes models of one input")
        if prog.several_outputs:
            raise ValueError(f"this model has {len(prog.heads)} outputs; `.predict` takes models of one output: "
                             "use `nnspec predict`, which writes a column per output")
        shape = tuple(prog.model.input_shape)
        width = math.prod(shape)
        if self.encoder is not None:  # `categorical`/`missing`: raw columns, encoded as in training
            from nnspec.columns import encode_columns
            return encode_columns(self.encoder, x).reshape((-1, *shape))
        dtype = np.int32 if prog.model.input_types and prog.model.input_types[0].dtype == "int32" else np.float32
        if isinstance(x, Mapping) or hasattr(x, "columns"):  # a dict of columns, or a DataFrame
            if self.feature_names is None:
                raise ValueError("the run's training data named no columns: give an array, "
                                 f"one row of {width} inputs an example")
            keys = list(x.keys())
            missing = [n for n in self.feature_names if n not in keys]
            if missing:
                more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
                raise ValueError(f"no column `{missing[0]}`{more}: the model's features are "
                                 + ", ".join(f"`{n}`" for n in self.feature_names))
            x = np.stack([np.asarray(x[n], dtype=np.float64).reshape(-1) for n in self.feature_names], axis=-1)
        arr = np.asarray(x)
        if arr.ndim >= 1 and arr.shape[1:] == shape:
            pass
        elif arr.ndim == 2 and arr.shape[1] == width:
            arr = arr.reshape((-1, *shape))
        elif arr.shape == shape:
            raise ValueError(f"`x` has the shape of one example {shape}: give a batch, shape (n, {', '.join(map(str, shape))})")
        else:
            raise ValueError(f"`x` has shape {arr.shape}; the model takes (n, {', '.join(map(str, shape))})")
        if not np.isfinite(arr.astype(np.float64)).all():
            raise ValueError("`x` holds NaN or infinite values")
        if dtype == np.int32 and not (arr == np.round(arr)).all():
            raise ValueError(f"input `{prog.model.inputs[0][0]}` takes whole numbers (token ids)")
        return arr.astype(dtype)

    def __repr__(self) -> str:
        p = self.program
        best = self.meta.get("stopper") or {}
        epochs = len(self.history)
        return (f"<nnspec.Predictor `{p.model.name}` ({p.model.n_params:,} parameters) from `{self.run_dir}`: "
                f"{epochs} epoch{'s' * (epochs != 1)}"
                + (f", best epoch {best['best_epoch']}" if best.get("best_epoch") else "") + ">")


def load(run: str | os.PathLike[str]) -> Predictor:
    """The finished run in folder `run` (written by `nnspec train --out RUN`), read with
    its own copy of the spec. Raises `runs.RunFolderError` for a folder that holds no
    run, `NNSpecError` for a checkpoint that cannot be used (E405)."""
    from nnspec import check_text
    from nnspec.infer import load_trained
    run = Path(run)
    if not run.is_dir():
        raise runs.RunFolderError(f"no run folder `{run}`" if not run.exists() else f"`{run}` is not a folder")
    if not (run / "checkpoint.npz").is_file():
        raise runs.RunFolderError(f"`{run}` holds no trained run (no `checkpoint.npz`); "
                                  f"train one with `nnspec train SPEC --out {run}`")
    try:
        text = (run / "spec.nn").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise runs.RunFolderError(f"cannot read the run's spec `{run / 'spec.nn'}`: "
                                  f"{getattr(exc, 'strerror', None) or exc}") from None
    program = check_text(text, filename=str(run / "spec.nn"))
    try:
        model, params, std, meta = load_trained(program, run)
    except NNSpecError as exc:
        exc.action = "load"
        raise
    return Predictor(run, text, model.program, model, params, std, meta)
