"""`embedding ... weights="glove.npy"`: a layer's arrays read from NumPy `.npy` files.

A file's path is relative to the spec's folder (where the data's is). `read` loads every
such file of a program and checks it against the array it fills (shape, floating point,
every value finite), each problem a located diagnostic: E329 for a file that cannot be
read, E330 for one that does not fit. `nnspec check` runs it (nnspec/cli.py), and
training does before the first step (nnspec/start.py), where the arrays replace the
initializer's draws in every model of a stack. The run's checkpoint holds the values, so
a finished run does not need the file again. NumPy only, no JAX: part of the front end.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from nnspec import ir
from nnspec.checked import Layer, Program
from nnspec.diagnostics import Diagnostic, NNSpecError, error
from nnspec.layers import show_shape
from nnspec.source import Span
from nnspec.suggest import did_you_mean

_MAGIC = b"\x93NUMPY"  # how every `.npy` file begins (numpy.lib.format)

# The parameter that names a file, and the array it fills (`embedding`'s table is `w`).
FILE_PARAMS = {"weights": "w"}


@dataclass(frozen=True)
class WeightsFile:
    layer: Layer
    param: str       # the argument as written: `weights`
    array: str       # the array it fills: `w`
    path: str        # as written
    span: Span | None


def files(program: Program) -> Iterator[WeightsFile]:
    """Every array of the model that a file gives, in layer order."""
    for layer in program.model.layers:
        for param, array in FILE_PARAMS.items():
            path = layer.params.get(param)
            if isinstance(path, str) and array in layer.param_shapes:
                yield WeightsFile(layer, param, array, path, _arg_span(program.spec, layer, param))


def resolve(path: str, base_dir: Path) -> Path:
    return Path(path) if os.path.isabs(path) else base_dir / path


def read(program: Program, base_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    """The arrays the files give, by layer and array name (float32), or NNSpecError with
    every problem found."""
    arrays: dict[str, dict[str, np.ndarray]] = {}
    diags: list[Diagnostic] = []
    for f in files(program):
        got = _read_one(f, base_dir, diags)
        if got is not None:
            arrays.setdefault(f.layer.name, {})[f.array] = got
    if diags:
        raise NNSpecError(diags, program.source, action="train")
    return arrays


def check(program: Program, base_dir: Path) -> list[Diagnostic]:
    """`read`'s problems as diagnostics (for `nnspec check`); a sweep's models each."""
    programs = list(program.sweep.programs) if program.sweep is not None else [program]
    diags: list[Diagnostic] = []
    seen: set[tuple[str, str, tuple[int, ...]]] = set()
    for p in programs:
        for f in files(p):
            key = (f.layer.name, f.path, tuple(f.layer.param_shapes[f.array]))
            if key not in seen:
                seen.add(key)
                _read_one(f, base_dir, diags)
    return diags


def _read_one(f: WeightsFile, base_dir: Path, diags: list[Diagnostic]) -> np.ndarray | None:
    full = resolve(f.path, base_dir)
    want = tuple(f.layer.param_shapes[f.array])
    what = f"`{f.param}` of `{f.layer.name}`"

    def unreadable(message: str, help: str) -> None:
        diags.append(error("E329", f"cannot read the {what}: {message}", f.span, "this file", help=help))

    def unfit(message: str, label: str, help: str) -> None:
        diags.append(error("E330", f"the {what} does not fit: {message}", f.span, label, help=help))

    shown = _shown(full)
    if not full.is_file():
        where = "is a folder" if full.is_dir() else "does not exist"
        siblings: list[str] = []
        if full.parent.is_dir() and _inside(full.parent, base_dir):  # never hint at files elsewhere
            siblings = sorted(p.name for p in full.parent.iterdir() if p.is_file() and p.suffix.lower() == ".npy")
        hint = did_you_mean(full.name, siblings)
        unreadable(f"`{shown}` {where}",
                   f"{hint} (a relative path is read from the spec's folder)" if hint else
                   "name a `.npy` file (written by `numpy.save`), relative to the spec's folder")
        return None
    try:
        with open(full, "rb") as fh:
            magic = fh.read(len(_MAGIC))
        if magic != _MAGIC:
            unreadable(f"`{shown}` is not a NumPy `.npy` file (it does not start with NumPy's header)",
                       "write it with `numpy.save(path, array)`")
            return None
        a = np.load(full, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        text = str(exc).lower()
        why = ("it holds Python objects" if "object" in text or "pickle" in text else
               "it is shorter than its header says: cut off?" if "length is greater" in text else _reason(exc))
        unreadable(f"`{shown}` is not a NumPy `.npy` file of numbers ({why})",
                   "write an array of numbers with `numpy.save(path, array)`")
        return None
    if not isinstance(a, np.ndarray):  # pragma: no cover - np.load of a .npy file gives an array
        unreadable(f"`{full}` holds no single array", "write one array with `numpy.save(path, array)`")
        return None
    if not np.issubdtype(a.dtype, np.floating):
        unfit(f"`{f.path}` holds {a.dtype} values, not floating-point numbers", f"{a.dtype} values",
              "save the array as floating point: `numpy.save(path, array.astype(\"float32\"))`")
        return None
    if tuple(a.shape) != want:
        unfit(f"`{f.path}` has shape {show_shape(tuple(a.shape))}, but `{f.layer.name}` needs {show_shape(want)}",
              f"expected {show_shape(want)}, found {show_shape(tuple(a.shape))}", _shape_help(f, tuple(a.shape), want))
        return None
    n, first = _not_finite(a)
    if n:
        unfit(f"`{f.path}` holds {n:,} value{'s' if n != 1 else ''} that {'are' if n != 1 else 'is'} NaN or infinite, "
              f"the first at {first}", "not finite",
              "replace them (with `numpy.nan_to_num`, or a vector of their own) and save the file again")
        return None
    return np.array(a, dtype=np.float32)


def _not_finite(a: np.ndarray, chunk: int = 1 << 22) -> tuple[int, list[int]]:
    """How many values are NaN or ±inf, and the index of the first; read a chunk at a
    time, so a large memory-mapped file is never held whole as a mask."""
    flat = a.reshape(-1)
    count, first = 0, -1
    for start in range(0, flat.size, chunk):
        bad = ~np.isfinite(flat[start:start + chunk])
        k = int(bad.sum())
        if k and first < 0:
            first = start + int(np.argmax(bad))
        count += k
    return count, ([int(i) for i in np.unravel_index(first, a.shape)] if count else [])


def _shape_help(f: WeightsFile, got: tuple[int, ...], want: tuple[int, ...]) -> str:
    if f.layer.op == "embedding" and len(got) == 2 and len(want) == 2:
        if got[0] == want[0]:
            return f"the file's vectors have {got[1]} numbers each: write `embedding {got[1]}`, or save vectors of {want[1]}"
        return (f"the file has a vector for each of {got[0]:,} token ids and the layer {want[0]:,}: "
                f"give the input (or the layer) `vocab={got[0]}`, or save one row per token id")
    return f"save an array of shape {show_shape(want)}"


def _shown(full: Path) -> str:
    """The path from the working folder where it is inside it (as a user would type it), else whole."""
    try:
        return str(full.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(full)


def _inside(folder: Path, base_dir: Path) -> bool:
    try:
        folder.resolve().relative_to(base_dir.resolve())
    except (ValueError, OSError):
        return False
    return True


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().rstrip(".")
    return text.splitlines()[0] if text else type(exc).__name__


def _arg_span(spec: ir.Spec, layer: Layer, param: str) -> Span | None:
    """Where `param=` is written on the layer's line (in the model, or in a block's body)."""
    nodes = list(spec.model.nodes) if spec.model is not None else []
    for block in spec.blocks:
        nodes += block.nodes
    for node in nodes:
        if node.span == layer.span:
            arg = next((a for a in node.args if a.key == param), None)
            if arg is not None:
                return arg.span
    return layer.span
