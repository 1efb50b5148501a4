"""`nnspec export RUN --format F -o FILE`: a trained model in a form other tools read.

- `stablehlo`: the inference function (`predictor.inference_fn`: the input scaling folded
  in, dropout off, batch norm on its running statistics, probabilities for a classifier
  on logits) serialized by `jax.export`, for CPU and CUDA, batch size symbolic. Read it
  back with `jax.export.deserialize(data).call(x)`: only JAX is needed, not nnspec.
- `safetensors`: the final weights, one tensor per array named by layer path
  (`dense_1.w`); the metadata holds the input's scaling, names and classes as JSON.
- `onnx`: the same inference function converted by jax2onnx (the optional `onnx`
  extra); a layer kind the converter cannot express is refused by name.

Each returns the bytes to write; `export_run` writes them (atomically, never over an
existing file unless asked) and says what it wrote.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from nnspec.predictor import Predictor, inference_fn

FORMATS = ("stablehlo", "safetensors", "onnx")
# jax.export lowers for these platforms; the artifact runs on whichever is present
PLATFORMS = ("cpu", "cuda")


class ExportError(Exception):
    """A run that cannot be exported as asked; `help` says what to do instead."""

    def __init__(self, message: str, help: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.help = help


def _need(module: str, extra: str) -> Any:
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExportError(f"this format needs the `{module.split('.')[0]}` package, which is not installed",
                          f"install it with `pip install 'nnspec[{extra}]'`") from None


def input_spec(p: Predictor, batch: Any) -> Any:
    """The abstract input of the model, batch size `batch` (a number or a symbol)."""
    import jax
    import jax.numpy as jnp
    prog = p.program
    if len(prog.model.inputs) != 1:
        raise ExportError(f"model `{prog.model.name}` has {len(prog.model.inputs)} inputs; "
                          "export takes models of one input")
    if prog.several_outputs:
        raise ExportError(f"model `{prog.model.name}` has {len(prog.heads)} outputs (a `loss {{ }}` block); "
                          "export takes models of one output")
    tokens = bool(prog.model.input_types) and prog.model.input_types[0].dtype == "int32"
    return jax.ShapeDtypeStruct((batch, *prog.model.input_shape), jnp.int32 if tokens else jnp.float32)


def _fn(p: Predictor) -> Callable[[Any], Any]:
    return inference_fn(p.model, p.params, p.standardizer, ensemble=bool(p.meta.get("ensemble")))


def stablehlo(p: Predictor) -> tuple[bytes, str]:
    """(the serialized `jax.export.Exported`, a description of its signature)."""
    import jax
    from jax import export
    batch, = export.symbolic_shape("batch")
    exported = export.export(jax.jit(_fn(p)), platforms=PLATFORMS)(input_spec(p, batch))
    (a,), out = exported.in_avals, exported.out_avals[0]
    return bytes(exported.serialize()), (f"{a.dtype}[{', '.join(map(str, a.shape))}] -> "
                                         f"{out.dtype}[{', '.join(map(str, out.shape))}], "
                                         f"for {' and '.join(exported.platforms)}")


def tensors(p: Predictor) -> dict[str, np.ndarray]:
    """The final weights by layer path: `{"dense_1.w": array, ...}` (an ensemble's members
    stacked on a leading axis)."""
    return {f"{layer}.{name}": np.ascontiguousarray(np.asarray(v))
            for layer, arrays in p.params.items() for name, v in arrays.items()}


def safetensors(p: Predictor) -> tuple[bytes, str]:
    st = _need("safetensors.numpy", "export")
    std = p.standardizer
    meta = {"format": "nnspec-weights", "model": p.program.model.name,
            "ensemble": str(int(p.meta.get("ensemble") or 0)),
            "input_shape": json.dumps(list(p.program.model.input_shape)),
            "standardize": json.dumps(None if std is None else {"mean": std.mean.tolist(), "std": std.std.tolist()}),
            "feature_names": json.dumps(list(p.feature_names) if p.feature_names else None),
            "classes": json.dumps(list(p.classes) if p.classes else None),
            # `categorical`/`missing` (columns.py): how the raw feature columns become the input
            "columns": json.dumps(p.meta.get("columns"))}
    arrays = tensors(p)
    return st.save(arrays, metadata=meta), f"{len(arrays)} tensors"


# (what the layer is, why jax2onnx cannot express it): refused by name before converting.
# None today: a bidirectional layer's backward scan is lowered as a forward scan between
# two flips (nn/recurrent.py `_scan`), which jax2onnx converts.
ONNX_REFUSED: tuple[tuple[Callable[[Any], bool], str, str], ...] = ()


def onnx(p: Predictor) -> tuple[bytes, str]:
    """The inference function as an ONNX model (jax2onnx), batch size symbolic."""
    import logging
    jax2onnx = _need("jax2onnx", "onnx")
    _need("onnx", "onnx")
    for layer in p.program.model.layers:
        for matches, what, why in ONNX_REFUSED:
            if matches(layer):
                raise ExportError(f"cannot export layer `{layer.name}` (`{layer.op}` {what}) to ONNX: {why}",
                                  "export `--format stablehlo` instead")
    spec = input_spec(p, "batch")
    quiet = logging.getLogger("onnx_ir")  # warns of every constant whose type it infers later
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        # a shape of a symbolic batch is float32; token ids keep their int32 spec
        model = jax2onnx.to_onnx(_fn(p), [tuple(spec.shape)] if spec.dtype == np.float32 else [spec],
                                 model_name=p.program.model.name, input_names=["x"], output_names=["y"])
    except Exception as exc:  # the converter has no rule for some primitive: find the layer
        layer = _first_unconvertible(jax2onnx, p, spec)
        what = f"layer `{layer.name}` (`{layer.op}`)" if layer is not None else f"model `{p.program.model.name}`"
        raise ExportError(f"jax2onnx cannot convert {what}: {_first_line(exc)}",
                          "export `--format stablehlo` instead") from None
    finally:
        quiet.setLevel(level)
    return model.SerializeToString(), f"ONNX opset {model.opset_import[0].version}"


def _first_unconvertible(jax2onnx: Any, p: Predictor, spec: Any) -> Any:
    """The first layer whose output (the model up to it) jax2onnx cannot convert, or None.
    Only on the way to an error: it converts one growing prefix of the model a layer."""
    import jax
    params = p.params
    if p.meta.get("ensemble"):  # the first member stands for all: they share their layers
        params = jax.tree_util.tree_map(lambda a: a[0], params)
    inputs = [tuple(spec.shape)] if spec.dtype == np.float32 else [spec]
    for layer in p.program.model.layers:
        def upto(x, name=layer.name):
            if p.standardizer is not None:
                x = (x - p.standardizer.mean) / p.standardizer.std
            return p.model.trace(params, x)[name]
        try:
            jax2onnx.to_onnx(upto, inputs)
        except Exception:
            return layer
    return None


def _first_line(exc: BaseException) -> str:
    from nnspec.show import excerpt
    text = str(exc).strip().splitlines()
    return excerpt(text[0] if text else type(exc).__name__)


WRITERS: dict[str, Callable[[Predictor], tuple[bytes, str]]] = {
    "stablehlo": stablehlo, "safetensors": safetensors, "onnx": onnx}


def export_run(p: Predictor, fmt: str, out: Path, *, overwrite: bool = False) -> str:
    """Write run `p` in format `fmt` to `out`; returns the line saying what was written.
    Raises ExportError (and OSError where `out` cannot be written)."""
    from nnspec.files import write_atomic
    if fmt not in WRITERS:
        raise ExportError(f"no export format `{fmt}`", f"choose one of {', '.join(f'`{f}`' for f in FORMATS)}")
    if out.is_dir():
        raise ExportError(f"cannot write `{out}`: it is a directory")
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise ExportError(f"`{out}` already exists", "choose another file, or pass `--overwrite` to replace it")
    data, what = WRITERS[fmt](p)
    write_atomic(out, data)
    return f"wrote {fmt} of `{p.program.model.name}` from `{p.run_dir}` ({what}) to `{out}`"
