"""The model block as a graph: which node each layer reads, checked before any shape.

A model is read top to bottom. Inputs are defined before every layer; a layer may read
an input or a layer above it, by `from NAME`, by a merge's names (`add h1 h2`) or,
written plainly, the line above. So the file order is an order of evaluation, and a
cycle cannot be written: a name read before its line is an error (E251), not a loop.
The model's output is its last node; a node nothing reads is a warning (W007).

`edges(model)` returns the diagnostics and the layers whose reads failed (which the
shape pass then skips quietly); `unused(model)` the warnings. Pure Python, no JAX.
"""

from __future__ import annotations

from nnspec import ir
from nnspec.diagnostics import Diagnostic, error, warning
from nnspec.source import Span
from nnspec.suggest import did_you_mean


def _span(node: ir.Node, i: int) -> Span | None:
    return node.input_spans[i] if i < len(node.input_spans) else node.span


def edges(model: ir.Model) -> tuple[list[Diagnostic], set[str]]:
    """E250 for a name defined nowhere in the model, E251 for one defined only below (or
    by the line itself); with the names of the layers that read such a name."""
    diags: list[Diagnostic] = []
    broken: set[str] = set()
    where: dict[str, Span | None] = {}
    reads: dict[str, tuple[str, ...]] = {}
    for node in model.nodes:
        where.setdefault(node.name, node.span)
        reads.setdefault(node.name, node.inputs)
    defined: list[str] = list(dict.fromkeys(i.name for i in model.inputs))
    known = set(defined)
    for node in model.nodes:
        for i, name in enumerate(node.inputs):
            if name in known:
                continue
            broken.add(node.name)
            span = _span(node, i)
            if name == node.name:
                diags.append(error("E251", f"`{name}` reads itself", span, "the layer's own name",
                                   help="a layer reads an input or a layer above it: name one of those"))
            elif name in where and _reaches(reads, name, node.name):
                diags.append(error("E251", f"`{name}` is read before it is defined", span, "not defined yet",
                                   secondary=[(where[name], f"defined here, below, and it reads `{node.name}`")],
                                   help=f"`{node.name}` and `{name}` would each need the other first, a cycle: "
                                        + (f"read a node above this line instead, such as `{defined[-1]}`" if defined
                                         else "read an input instead, declared above as `input NAME[SHAPE]`")))
            elif name in where:
                diags.append(error("E251", f"`{name}` is read before it is defined", span, "not defined yet",
                                   secondary=[(where[name], "defined here, below")],
                                   help=f"move the line that defines `{name}` above this one: "
                                        "a model runs top to bottom"))
            else:
                hint = did_you_mean(name, defined, fallback=(
                    f"the model defines {_listing(defined)} above this line" if defined else
                    "label a layer to read it, as in `h1: dense 8`"))
                diags.append(error("E250", f"unknown node `{name}`", span, "not an input or a layer of this model",
                                   help=hint))
        if node.name not in known:
            known.add(node.name)
            defined.append(node.name)
    return diags, broken


def _reaches(reads: dict[str, tuple[str, ...]], start: str, goal: str) -> bool:
    """Whether node `start` reads `goal`, directly or through other nodes."""
    seen, todo = {start}, [start]
    while todo:
        for name in reads.get(todo.pop(), ()):
            if name == goal:
                return True
            if name not in seen:
                seen.add(name)
                todo.append(name)
    return False


def unused(model: ir.Model, outputs: tuple[str, ...] = ()) -> list[Diagnostic]:
    """W007 for each input or layer that nothing reads and that is not an output (the
    last line, or with a `loss { }` block the nodes it names)."""
    read = {name for node in model.nodes for name in node.inputs} | set(outputs)
    output = model.output
    out = []
    for inp in model.inputs:
        if inp.name not in read and inp.name != output:
            out.append(warning("W007", f"input `{inp.name}` is never used", inp.span, "nothing reads it",
                               help=f"read it with `from {inp.name}` or a merge, or remove it"))
    for node in model.nodes:
        if node.name not in read and node.name != output and node.inputs:  # no input: E204 says so
            out.append(warning("W007", f"`{node.name}` is computed but never used", node.span,
                               "nothing reads this layer, and it is not an output" if outputs else
                               "nothing reads this layer, and it is not the output (the last line)",
                               help=f"read it with `from {node.name}` or a merge such as `add {node.name} ...`, "
                                    "or remove it"))
    return out


def _listing(names: list[str]) -> str:
    shown = [f"`{n}`" for n in names[-6:]]
    more = "..., " if len(names) > 6 else ""
    return more + (", ".join(shown[:-1]) + " and " + shown[-1] if len(shown) > 1 else shown[0])
