"""nnspec: a declarative model-spec compiler for neural networks.

    spec = nnspec.parse(text, filename="model.nn")   # -> ir.Spec (plain data)
    program = nnspec.check(spec)                     # -> checked.Program (shapes, defaults)
    model = nnspec.compile(program)                  # -> lower.Model: pure JAX functions
    result = nnspec.train("specs/pass_class.nn", out="runs/p")  # -> fit.Result: params, history
    model = nnspec.load("runs/p")                    # -> predictor.Predictor: predict, evaluate

Errors raise `nnspec.NNSpecError`, whose `.diagnostics` hold every problem found.
The front end (this module, parse, check) never imports JAX.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable

from nnspec import ir
from nnspec.check import check as _check
from nnspec.checked import Program
from nnspec.diagnostics import Diagnostic, NNSpecError, Severity
from nnspec.parse import parse

if TYPE_CHECKING:  # pragma: no cover
    from nnspec.lower import Model
    from nnspec.fit import Result
    from nnspec.predictor import Predictor
    from nnspec.sweep_fit import SweepResult

__all__ = ["parse", "check", "check_text", "compile", "train", "load", "ir", "Program", "Diagnostic",
           "NNSpecError", "Severity"]
__version__ = "0.1.0"


def check(spec: ir.Spec | str, *, filename: str = "<string>", memory_budget: int | None = None) -> Program:
    """Check IR (or source text, parsed first); raises NNSpecError with every diagnostic."""
    if isinstance(spec, str):
        return check_text(spec, filename=filename, memory_budget=memory_budget)
    return _check(spec, memory_budget=memory_budget)


def check_text(text: str, *, filename: str = "<string>", memory_budget: int | None = None) -> Program:
    """Parse and check source text, reporting the errors of both stages together."""
    from nnspec.check import check_source
    program, diags, src = check_source(text, filename, memory_budget=memory_budget)
    if program is None:
        raise NNSpecError(diags, src)
    return program


def _program(spec: Any, filename: str = "<string>") -> Program:
    """A Program from a Program, IR, source text, or a path to a `.nn` file."""
    if isinstance(spec, Program):
        return spec
    if isinstance(spec, ir.Spec):
        return _check(spec)
    if isinstance(spec, os.PathLike) or (isinstance(spec, str) and "\n" not in spec
                                         and spec.endswith(".nn") and os.path.exists(spec)):
        path = os.fspath(spec)
        with open(path, encoding="utf-8") as f:
            return check_text(f.read(), filename=path)
    if isinstance(spec, str):
        return check_text(spec, filename=filename)
    raise TypeError(f"expected a Program, an ir.Spec, spec text or a path, not {type(spec).__name__}")


def compile(spec: Any) -> Model:  # noqa: A001 - the verb of the pipeline
    """Lower a spec (Program, IR, text or path) to pure JAX functions. Imports JAX."""
    from nnspec.lower import lower
    return lower(_program(spec))


def train(spec: Any, *, data: Any = None, val_data: Any = None, test_data: Any = None, epochs: int | None = None,
          seed: int | None = None, out: str | os.PathLike | None = None, resume: bool = False,
          progress: bool | Callable[..., None] | None = None) -> Result | SweepResult:
    """Train a spec (Program, IR, text or path); returns parameters and history. Imports JAX.
    With `out`, writes a run folder (checkpoint, history); `resume=True` continues it.
    `data=(x, y)` (NumPy arrays, or dicts of them by input and output name for a model of
    several; a pandas or polars DataFrame by the columns the spec's data line names) trains
    on those instead of the spec's data, split as the spec says; `val_data=` and
    `test_data=` give the validation and test examples alike (nnspec/given.py).
    `progress=True` shows a tqdm bar (`pip install 'nnspec[notebook]'`), one step an epoch;
    a callable gets each epoch as `(epoch, total, row, seconds)`. A spec with sweeps
    returns a `sweep_fit.SweepResult` (every model, ranked), and takes `resume` and
    `progress` alike; its callable gets one line of text an epoch."""
    from pathlib import Path
    from nnspec.fit import fit
    program = _program(spec)
    given = _given(program, data, val_data, test_data)
    if program.sweep is not None:
        from nnspec.sweep_fit import fit_sweep
        return fit_sweep(program, epochs=epochs, seed=seed, out=Path(out) if out is not None else None,
                         resume=resume, progress=progress, data=given)
    return fit(program, epochs=epochs, out=Path(out) if out is not None else None, resume=resume,
               progress=progress, overrides={"seed": seed}, data=given)


def _given(program: Program, data: Any, val_data: Any, test_data: Any) -> Any:
    """The arrays given from Python (`given.Given`), or None to read the spec's data."""
    if data is None:
        if val_data is not None or test_data is not None:
            raise TypeError("`val_data=` and `test_data=` go with `data=`: without it the spec's data line, "
                            "and its `val=`/`test=` files, are read")
        return None
    if program.train is None:
        raise TypeError("`data=` takes the place of the spec's data line, but this spec has no `train` block")
    from nnspec.given import from_python
    return from_python(program, data, val_data, test_data)


def load(run: str | os.PathLike) -> Predictor:
    """The finished run in folder `run` (`nnspec train --out RUN`): `.predict(x)`,
    `.evaluate()`, `.params`, `.spec`, `.history`, as the CLI computes them. Imports JAX."""
    from nnspec.predictor import load as load_run
    return load_run(run)
