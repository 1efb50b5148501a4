"""`nnspec compile --emit summary`: a Keras-style table of layers, shapes, parameter counts
and estimated FLOPs per example."""

from __future__ import annotations

from nnspec import ir
from nnspec.check import show_bytes
from nnspec.checked import Layer, Program, is_bias, is_state
from nnspec.layers import show_shape


def show_flops(n: int) -> str:
    """A FLOP count for people: `96`, `4.4 K`, `1.2 M`, ... `3.0 Y`, then `10^k`."""
    if n < 1000:
        return str(n)
    for k, unit in enumerate("KMGTPEZY", 1):
        # integer division first: a count past a float's range still shows
        value = round(n // 1000 ** (k - 1) / 1000, 1)
        if value < 1000:
            return f"{value:.1f} {unit}"
    return _magnitude(n)


def _magnitude(n: int) -> str:
    """`10^k`, k the number of digits less one, without `str(n)` (refused past 4,300 digits)."""
    k = int((n.bit_length() - 1) * 0.30103)  # at most one short: log10(2) rounded down
    return f"10^{k + 1 if 10 ** (k + 1) <= n else k}"


def _count(n: int) -> str:
    return f"{n:,}" if n < 10**30 else _magnitude(n)


def _uses(program: Program) -> dict[str, ir.Node]:
    """The model's lines that use a block, by name: their layers are named `NAME.…`."""
    spec = program.spec
    if spec.model is None or not spec.blocks:
        return {}
    defined = {b.name for b in spec.blocks}
    return {n.name: n for n in spec.model.nodes if n.op in defined}


def _block_kind(use: ir.Node, names: list[str]) -> str:
    """`res_unit`, or `res_unit ×3` for a use with `repeat=3` (its layers `NAME.1.…` to `NAME.3.…`)."""
    count = max((int(parts[1]) for parts in (n.split(".") for n in names)
                 if parts[0] == use.name and len(parts) > 2 and parts[1].isdigit()), default=1)
    return f"{use.op} ×{count}" if count != 1 else use.op


def _lr_mults(layer: Layer) -> str:
    """`, lr ×2` (every array), `, bias lr ×2` (the biases alone), or both: what
    `lr_mult=` and `bias_lr_mult=` multiply the learning rate by, where it is not 1."""
    names = [n for n in layer.param_shapes if not is_state(n)]
    biases = {layer.lr_mult(n) for n in names if is_bias(n)}
    weights = {layer.lr_mult(n) for n in names if not is_bias(n)}
    if not names or biases | weights == {1.0}:
        return ""
    if biases == weights or not biases:
        return f", lr ×{weights.pop():g}"
    whole = f", lr ×{weights.pop():g}" if weights and weights != {1.0} else ""
    return f"{whole}, bias lr ×{biases.pop():g}"


def summary(program: Program) -> str:
    """The model as a table: one row per input and layer, then the totals. A use of a
    block has a row of its own, its output's, with the layers it stands for indented
    under it (their parameters and FLOPs are counted there, once). A layer that
    reads another node than the row above it (`from`, a merge) says what it reads, in a
    column that only a graph has; a frozen layer (`trainable=false`) says so by its type, and a layer whose learning rate is
    multiplied (`lr_mult=`, `bias_lr_mult=`) by how much.
    Non-trainable parameters are frozen layers' and running statistics, as Keras counts them. FLOPs are the layer rules' estimates for one example
    (docs/language.md, "FLOPs")."""
    model = program.model
    rows = [(f"{name} (input)", show_shape(shape), "0", "0", "") for name, shape in model.inputs]
    previous = model.inputs[-1][0] if model.inputs else None
    uses = _uses(program)
    group = None
    for layer in model.layers:
        act = layer.activation if layer.op == "dense" else None
        kind = f"{layer.op} {act}" if act and act != "identity" else layer.op
        kind += "" if layer.trainable else ", frozen"
        kind += _lr_mults(layer)
        reads = ", ".join(layer.inputs) if layer.inputs != ((previous,) if previous else ()) else ""
        use = uses.get(layer.name.split(".")[0]) if "." in layer.name else None
        if use is not None and use is not group:  # a block's instance: a row of its own, its layers under it
            group = use
            last = next(x for x in reversed(model.layers) if x.name.split(".")[0] == use.name)
            rows.append((f"{use.name} ({_block_kind(use, [x.name for x in model.layers])})", show_shape(last.out_shape), "", "", reads))
            reads = ""
        elif use is None:
            group = None
        indent = "  " if use is not None else ""
        rows.append((f"{indent}{layer.name} ({kind})", show_shape(layer.out_shape), f"{layer.n_params:,}",
                     show_flops(layer.flops), reads))
        previous = layer.name
    graph = any(r[4] for r in rows)
    head = ("Layer (type)", "Output shape", "Params", "FLOPs", "Reads")
    n = 5 if graph else 4
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(n)]
    rule = "─" * (sum(widths) + 3 * (n - 1))

    def line(r: tuple[str, str, str, str, str]) -> str:
        text = f"{r[0]:<{widths[0]}}   {r[1]:<{widths[1]}}   {r[2]:>{widths[2]}}   {r[3]:>{widths[3]}}"
        return f"{text}   {r[4]}".rstrip() if graph else text.rstrip()  # a block's row has no counts

    total, flops = model.n_params, model.flops
    out = [f"Model: {model.name or '(unnamed)'}", rule, line(head), rule, *map(line, rows), rule,
           f"Total params: {total:,} ({show_bytes(total * 4)} as float32)",
           f"Trainable params: {model.n_trainable:,}",
           f"Non-trainable params: {total - model.n_trainable:,}",
           f"Total FLOPs per example: {_count(flops)}" + (f" ({show_flops(flops)})" if flops >= 1000 else "")]
    if program.optimizer is not None:
        out.append(f"Optimizer: {program.optimizer.name}")
    # the terms layers add (a `sample` layer's KL, times its `beta`), after the outputs' losses
    added = "".join(f" + {layer.params['beta']:g} × KL of `{layer.name}`" for _, layer in program.added_losses)
    if program.loss is not None:
        summed = " (summed over an example's elements)" if program.loss.params.get("reduction") == "sum" else ""
        out.append(f"Loss: {program.loss.name}{summed}{added}")
    elif program.heads:  # a `loss { }` block: each output, its loss and its weight in the total
        out.append("Loss: " + " + ".join(f"{h.weight:g} × {h.loss.name}"
                                         f"{' (summed)' if h.loss.params.get('reduction') == 'sum' else ''} on `{h.name}`"
                                         for h in program.heads) + added)
    if program.sweep is not None:
        axes = ", ".join(f"{a.name} ({len(a.values)} values{'' if a.traced else ', own program'})"
                         for a in program.sweep.axes)
        out.append(f"Sweep: {len(program.sweep.programs)} models over {axes}; the table shows the first")
    return "\n".join(out) + "\n"

