"""`nnspec compile --emit summary`: a Keras-style table of layers, shapes and parameter counts."""

from __future__ import annotations

from nnspec.check import show_bytes
from nnspec.checked import Program
from nnspec.layers import show_shape


def summary(program: Program) -> str:
    """The model as a table: one row per input and layer, then the totals. A layer that
    reads another node than the row above it (`from`, a merge) says what it reads, in a
    column that only a graph has."""
    model = program.model
    rows = [(f"{name} (input)", show_shape(shape), "0", "") for name, shape in model.inputs]
    previous = model.inputs[-1][0] if model.inputs else None
    for layer in model.layers:
        act = layer.activation if layer.op == "dense" else None
        kind = f"{layer.op} {act}" if act and act != "identity" else layer.op
        reads = ", ".join(layer.inputs) if layer.inputs != ((previous,) if previous else ()) else ""
        rows.append((f"{layer.name} ({kind})", show_shape(layer.out_shape), f"{layer.n_params:,}", reads))
        previous = layer.name
    graph = any(r[3] for r in rows)
    head = ("Layer (type)", "Output shape", "Params", "Reads")
    n = 4 if graph else 3
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(n)]
    rule = "─" * (sum(widths) + 3 * (n - 1))

    def line(r: tuple[str, str, str, str]) -> str:
        text = f"{r[0]:<{widths[0]}}   {r[1]:<{widths[1]}}   {r[2]:>{widths[2]}}"
        return f"{text}   {r[3]}".rstrip() if graph else text

    total = model.n_params
    out = [f"Model: {model.name or '(unnamed)'}", rule, line(head), rule, *map(line, rows), rule,
           f"Total params: {total:,} ({show_bytes(total * 4)} as float32)"]
    if program.optimizer is not None:
        out.append(f"Optimizer: {program.optimizer.name}")
    if program.loss is not None:
        out.append(f"Loss: {program.loss.name}")
    if program.sweep is not None:
        axes = ", ".join(f"{a.name} ({len(a.values)} values{'' if a.traced else ', own program'})"
                         for a in program.sweep.axes)
        out.append(f"Sweep: {len(program.sweep.programs)} models over {axes}; the table shows the first")
    return "\n".join(out) + "\n"

