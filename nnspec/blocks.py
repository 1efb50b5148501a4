"""Reusable blocks: `block NAME(PARAMS) { LAYERS }`, defined once at the top level and
used in a model like a layer (`r1: res_unit 8`, `stack: res_unit 8 repeat=3`).

Before any shape is inferred, `expand` checks the definitions (once each, whether used
or not) and replaces every use by ordinary IR nodes:

- a use's arguments bind to the block's parameters as a layer's do (by position, then
  by name; unknown, missing, doubled: E102, E106, E105, E107), and each parameter is then
  substituted where the block's lines name it, as a `let` constant is: a value passed at
  the use keeps its span there, so a bad value is underlined where it was written;
- the block reads `input`, the node its use reads; its output is its last line;
- its nodes are named after the use, `r1.a`, `r1.batch_norm_1`, and for `repeat=N` the
  repeats are numbered, `stack.1.a` ... `stack.N.a`; a block used in a block nests the
  names (`r1.inner.a`). Such names cannot clash with a written name (those have no `.`),
  and they name the parameters in checkpoints;
- a later line that reads `r1` (`from r1`, `add r1 x`) reads the instance's output.

`Expansion.each` then walks the expanded nodes for the checker, so that a diagnostic
about a node inside a block gains labels at the use (`in this use of `res_unit``), the
same diagnostic from every repeat is reported once, and a repeated block whose output
shape is not its input shape stops with E263 before its next repeat. Pure Python, no JAX.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterator

from nnspec import ir
from nnspec.diagnostics import Diagnostic, Label, error, warning
from nnspec.layers import LAYERS, show_shape
from nnspec.params import ArgError, Int, P
from nnspec.parse import BLOCK, BLOCK_INPUT, FROM
from nnspec.source import Span
from nnspec.suggest import did_you_mean, one_of
from nnspec.sweep import sweep_calls

INPUT = BLOCK_INPUT  # inside a block, the node its use reads
REPEAT = "repeat"  # `res_unit 8 repeat=3`: three in a row, each reading the one before
RESERVED = (INPUT, REPEAT, FROM)
_REPEAT = P(REPEAT, Int(min=1), 1, "how many times the block runs in a row, each reading the one before")


@dataclass(frozen=True)
class Frame:
    """One use on the way to an expanded node: the block and the line that uses it."""
    block: ir.Block
    use: ir.Node


@dataclass
class _Repeat:
    """A use with `repeat=N`: per repeat, what it reads, its output and its nodes."""
    use: ir.Node
    block: ir.Block
    runs: list[tuple[str | None, str, list[str]]] = field(default_factory=list)


@dataclass
class Expansion:
    model: ir.Model
    origin: dict[str, tuple[Frame, ...]] = field(default_factory=dict)  # node -> its uses, outermost first
    written: dict[str, ir.Node] = field(default_factory=dict)  # node -> its line in the block
    repeats: list[_Repeat] = field(default_factory=list)
    alias: dict[str, str] = field(default_factory=dict)  # a use's name -> its output node's

    def each(self, diags: list[Diagnostic], shapes: dict[str, Any]) -> Iterator[ir.Node]:
        """The expanded nodes, for the checker's loop over them (which fills `shapes` and
        appends to `diags`): what a node inside a block adds gains labels at its uses."""
        start = len(diags)
        first = {run[2][0]: (rep, k) for rep in self.repeats for k, run in enumerate(rep.runs) if k and run[2]}
        skipped: set[str] = set()
        for node in self.model.nodes:
            if node.name in first:
                rep, k = first[node.name]
                read, out, _ = rep.runs[k - 1]
                before, after = shapes.get(read) if read is not None else None, shapes.get(out)
                if before is not None and after is not None and before != after:
                    n = len(diags)
                    diags.append(_changes_shape(rep, before, after))
                    diags[n:] = [self.locate(d, rep.use.name) for d in diags[n:]]
                    skipped.update(name for run in rep.runs[k:] for name in run[2])
            if node.name in skipped:
                continue
            n = len(diags)
            yield node
            diags[n:] = [self.locate(d, node.name) for d in diags[n:]]
        diags[start:] = _merged(diags[start:])

    def at_uses(self, diags: list[Diagnostic]) -> list[Diagnostic]:
        """`diags` with labels at the uses for those that later passes (the loss's) made
        about the model's output, when that is the last line of a block."""
        output = self.model.nodes[-1].name if self.model.nodes else None
        if output not in self.written:
            return diags
        span = self.written[output].span
        located = {f.use.span for f in self.origin[output]}
        return [self.locate(d, output) if d.primary_span == span and not any(lab.span in located for lab in d.labels)
                else d for d in diags]

    def locate(self, d: Diagnostic, name: str) -> Diagnostic:
        """`d`, about node `name`, with a label at each use it was expanded from (and at
        the block's line, when `d` points at a value written at a use)."""
        frames = self.origin.get(name, ())
        if not frames:
            return d
        primary = d.primary_span
        node_span = self.written[name].span if name in self.written else None
        added: list[Label] = []
        if primary is not None and node_span is not None and not _within(primary, frames[-1].block.span):
            added.append(Label(node_span, f"given to this line of `{frames[-1].block.name}`", False))
        for f in reversed(frames):
            if f.use.span is not None and not _within(primary, f.use.span):
                added.append(Label(f.use.span, f"in this use of `{f.block.name}`", False))
        return dataclasses.replace(d, labels=d.labels + tuple(added))


def _merged(diags: list[Diagnostic]) -> list[Diagnostic]:
    """The same diagnostic from several repeats or uses of a block, once: with the labels
    of every use it arose in."""
    out: dict[tuple, Diagnostic] = {}
    for d in diags:
        key = (d.severity, d.code, d.message, tuple(lab for lab in d.labels if lab.primary), d.help, d.notes)
        if key in out:
            d = dataclasses.replace(d, labels=tuple(dict.fromkeys(out[key].labels + d.labels)))
        out[key] = d
    return list(out.values())


def _changes_shape(rep: _Repeat, before: tuple, after: tuple) -> Diagnostic:
    arg = next((a for a in rep.use.args if a.key == REPEAT), None)
    return error("E263", f"`{rep.block.name}` turns {show_shape(before)} into {show_shape(after)}, "
                         "so it cannot be repeated", arg.span if arg is not None else rep.use.span,
                 "each repeat reads the one before", secondary=[(rep.block.name_span, "defined here")],
                 help=f"a repeated block must keep its input's shape; use `{rep.block.name}` without "
                      f"`{REPEAT}`, or change it to keep the shape {show_shape(before)}")


def _within(inner: Span | None, outer: Span | None) -> bool:
    return inner is not None and outer is not None and outer.start <= inner.start and inner.end <= outer.end


# ------------------------------------------------------------------------ definitions

def _params(block: ir.Block, diags: list[Diagnostic]) -> list[tuple[str, ir.Value | None, ir.Arg]] | None:
    """The parameters as (name, default or None, as written); None after an error."""
    out: list[tuple[str, ir.Value | None, ir.Arg]] = []
    ok = True
    for arg in block.params:
        if arg.key is None and isinstance(arg.value, ir.Ref):
            name, default = arg.value.name, None
        elif arg.key is not None:
            name, default = arg.key, arg.value
        else:
            diags.append(error("E262", f"a parameter of `{block.name}` must be a name", arg.span, "not a name",
                               help=f"write a name, or a name with a default: `{BLOCK} {block.name}(units, act=relu)`"))
            ok = False
            continue
        if name in RESERVED:
            diags.append(error("E262", f"`{name}` cannot be a parameter's name", arg.key_span or arg.span, "",
                               help=f"`{INPUT}` is what a block reads, `{REPEAT}=` and `{FROM}` are written at "
                                    "its use; call the parameter something else"))
            ok = False
            continue
        first = next((a for n, _, a in out if n == name), None)
        if first is not None:
            diags.append(error("E262", f"parameter `{name}` is declared twice", arg.span, "declared again here",
                               secondary=[(first.span, "first declared here")], help="remove one of them"))
            ok = False
            continue
        out.append((name, default, arg))
    return out if ok else None


def definitions(spec: ir.Spec, checker: Any) -> tuple[dict[str, ir.Block], dict[str, list]]:
    """Check every definition once; returns the usable blocks by name, and the parameters
    of each. A block with an error, or one that uses such a block, is left out: its uses
    are then skipped without more errors."""
    diags: list[Diagnostic] = []
    seen: dict[str, ir.Block] = {}
    params: dict[str, list] = {}
    bad: set[str] = set()
    for block in spec.blocks:
        if block.name in seen:
            diags.append(error("E260", f"block `{block.name}` is defined twice", block.name_span, "defined again here",
                               secondary=[(seen[block.name].name_span, "first defined here")],
                               help="give the second one another name"))
            continue
        if block.name in LAYERS or block.name in RESERVED:
            what = "a layer" if block.name in LAYERS else "a word of the language"
            diags.append(error("E260", f"block `{block.name}` has the name of {what}", block.name_span, "",
                               help=f"a use of `{block.name}` would be ambiguous: give the block another name, "
                                    f"such as `{block.name}_block`"))
            continue  # its name means the layer (or the word), in its own body too
        seen[block.name] = block
        found = _params(block, diags)
        if found is None:
            bad.add(block.name)
        else:
            params[block.name] = found
    for block in seen.values():
        if not _body(block, seen, checker, diags):
            bad.add(block.name)
    bad |= _cycles(seen, diags)
    # a block that uses a bad block is bad too, silently: the error is reported in that one
    changed = True
    while changed:
        changed = False
        for block in seen.values():
            if block.name not in bad and any(n.op in bad for n in block.nodes):
                bad.add(block.name)
                changed = True
    checker.diags += diags
    return {n: b for n, b in seen.items() if n not in bad}, params


def _body(block: ir.Block, blocks: dict[str, ir.Block], checker: Any, diags: list[Diagnostic]) -> bool:
    """A block's own lines: some layers, known ops, reads of `input` or a layer above."""
    if not block.nodes:
        diags.append(error("E262", f"block `{block.name}` has no layers", block.name_span, "",
                           help=f"write its layers between `{{` and `}}`; the first reads `{INPUT}`"))
        return False
    ok = True
    defined: dict[str, Span | None] = {}
    where = {n.name: n.span for n in block.nodes}
    for node in block.nodes:
        if node.name == INPUT:
            diags.append(error("E262", f"a layer in a block cannot be named `{INPUT}`", node.span, "",
                               help=f"`{INPUT}` names what the block reads; give this layer another name"))
            ok = False
        elif node.name in defined:
            diags.append(error("E110", f"`{node.name}` is defined twice", node.span, "",
                               secondary=[(defined[node.name], "first defined here")],
                               help="give each layer of a block its own name"))
            ok = False
        if node.op not in LAYERS and node.op not in blocks:
            n = len(checker.diags)
            checker.unknown_layer(node)
            diags += checker.diags[n:]
            del checker.diags[n:]
            ok = False
        for call in (c for a in node.args for c in sweep_calls(a.value)):
            diags.append(error("E262", f"`{call.name}` cannot stand inside a block", call.span, "",
                               help=f"make the value a parameter of `{block.name}` and write the sweep at "
                                    f"its use, as in `{block.name} {call.name}(...)`"))
            ok = False
        for i, name in enumerate(node.inputs):
            if name == INPUT or name in defined:
                continue
            ok = False
            span = node.input_spans[i] if i < len(node.input_spans) else node.span
            if name in where:
                diags.append(error("E251", f"`{name}` is read before it is defined", span, "not defined yet",
                                   secondary=[(where[name], "defined here, below")],
                                   help=f"move the line that defines `{name}` above this one: a block runs top to bottom"))
            else:
                diags.append(error("E250", f"unknown node `{name}` in block `{block.name}`", span,
                                   "not `input` or a layer of this block",
                                   help=did_you_mean(name, [INPUT, *defined], fallback=(
                                       f"a block reads `{INPUT}`, what its use reads, and its own layers above "
                                       "the line; pass anything else as a parameter"))))
        defined.setdefault(node.name, node.span)
    if ok:
        read = {n for node in block.nodes for n in node.inputs}
        for node in block.nodes[:-1]:
            if node.name not in read:
                diags.append(warning("W007", f"`{node.name}` is computed but never used", node.span,
                                     "nothing reads this layer, and it is not the block's output (its last line)",
                                     help=f"read it with `from {node.name}` or a merge, or remove it"))
    return ok


def _cycles(blocks: dict[str, ir.Block], diags: list[Diagnostic]) -> set[str]:
    """E261 for each cycle of blocks using blocks; the names of the blocks on one."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    on_cycle: set[str] = set()
    path: list[tuple[str, ir.Node]] = []  # each block on the way, with its line that uses the next

    def visit(name: str) -> None:
        state[name] = 1
        for node in blocks[name].nodes:
            if node.op not in blocks:
                continue
            if state.get(node.op) == 1:
                names = [n for n, _ in path] + [name]
                loop = names[names.index(node.op):]
                on_cycle.update(loop)
                uses = [u for _, u in path[names.index(node.op):]]
                if len(loop) == 1:
                    message, label = f"block `{name}` uses itself", "a block cannot contain itself"
                else:
                    shown = [f"`{n}`" for n in loop]
                    message = f"blocks {', '.join(shown[:-1])} and {shown[-1]} use each other in a cycle"
                    label = " → ".join(f"`{n}`" for n in loop + [node.op])
                diags.append(error("E261", message, node.span, label,
                                   secondary=[(u.span, f"`{u.op}` used here") for u in uses],
                                   help="a block may use other blocks, but not itself, even through another: "
                                        "write the repeated part as a block of its own and use it with `repeat=`"))
            elif node.op not in state:
                path.append((name, node))
                visit(node.op)
                path.pop()
        state[name] = 2

    for name in blocks:
        if name not in state:
            visit(name)
    return on_cycle


# ---------------------------------------------------------------------------- expansion

def _substitute(v: ir.Value, env: dict[str, ir.Value]) -> ir.Value:
    """`v` with each parameter's name replaced by its value."""
    if isinstance(v, ir.Ref):
        return env.get(v.name, v)
    if isinstance(v, ir.List):
        return dataclasses.replace(v, items=tuple(_substitute(x, env) for x in v.items))
    if isinstance(v, ir.Shaped):
        return dataclasses.replace(v, dims=tuple(_substitute(x, env) for x in v.dims))
    if isinstance(v, ir.Call):
        return dataclasses.replace(v, args=tuple(dataclasses.replace(a, value=_substitute(a.value, env))
                                                 for a in v.args))
    return v


class _Expander:
    def __init__(self, checker: Any, blocks: dict[str, ir.Block], params: dict[str, list]) -> None:
        self.checker = checker
        self.blocks = blocks
        self.params = params
        self.nodes: list[ir.Node] = []
        self.out = Expansion(ir.Model(None, (), ()))

    def bind(self, block: ir.Block, use: ir.Node) -> tuple[dict[str, ir.Value], int] | None:
        """A use's arguments -> each parameter's value, and the repeat count; None after an error."""
        checker = self.checker
        params = self.params[block.name]
        names = [n for n, _, _ in params]
        what = f"`{block.name}`"
        values: dict[str, ir.Value] = {}
        given: dict[str, ir.Arg] = {}
        positional = list(names)
        repeat = 1
        ok = True
        for arg in use.args:
            if arg.key == REPEAT:
                name = REPEAT
            elif arg.key is None:
                while positional and positional[0] in given:
                    positional.pop(0)
                if not positional:
                    n = len(names)
                    takes = f"takes {n} positional argument{'s' if n != 1 else ''}" if n else "takes no arguments"
                    checker.err("E107", f"unexpected argument to {what}", arg.span, f"{what} {takes}",
                                help=f"write {self.usage(block, every=True)}")
                    ok = False
                    continue
                name = positional.pop(0)
            else:
                name = arg.key
                if name not in names:
                    checker.err("E102", f"unknown argument `{name}` for {what}", arg.key_span or arg.span,
                                "not an argument here",
                                help=did_you_mean(name, names + [REPEAT], fallback=(
                                    f"{what} takes {one_of(names)}, and `{REPEAT}=N`" if names else
                                    f"{what} takes no arguments but `{REPEAT}=N`")))
                    ok = False
                    continue
            if name in given:
                checker.err("E105", f"`{name}` given twice", arg.span, "given again here",
                            secondary=[(given[name].span, "first given here")], help="remove one of them")
                ok = False
                continue
            given[name] = arg
            if name == REPEAT:
                try:
                    repeat = checker.convert(_REPEAT.type, arg.value)
                except ArgError as exc:
                    checker.arg_error(exc, arg, _REPEAT)
                    ok = False
                continue
            values[name] = arg.value
        for name, default, _ in params:
            if name in values:
                continue
            if default is None:
                if ok:
                    checker.err("E106", f"missing `{name}` for {what}", use.span, f"needs `{name}`",
                                secondary=[(block.name_span, f"`{block.name}` defined here")],
                                help=f"write {self.usage(block)}")
                ok = False
            else:
                values[name] = default
        return (values, repeat) if ok else None

    def usage(self, block: ir.Block, every: bool = False) -> str:
        """`res_unit FILTERS`: the block and its required parameters (`every`: all of them)."""
        params = self.params[block.name]
        return "`" + " ".join([block.name] + [n.upper() for n, d, _ in params if every or d is None]) + "`"

    def use(self, use: ir.Node, frames: tuple[Frame, ...]) -> str | None:
        """Expand one use, reading `use.inputs`; returns the name of its output."""
        block = self.blocks[use.op]
        bound = self.bind(block, use)
        if bound is None:
            return None
        env, count = bound
        if not use.inputs:
            if self.checker.spec.model is not None and self.checker.spec.model.inputs and not frames:
                self.checker.err("E204", f"`{use.op}` comes before the model's input", use.op_span,
                                 "nothing flows into it yet", help="declare `input NAME[SHAPE]` as the model's first line")
            return None
        self.out.origin[use.name] = frames
        frames = frames + (Frame(block, use),)
        rep = _Repeat(use, block) if count > 1 else None
        read: str = use.inputs[0]
        for k in range(1, count + 1):
            prefix = use.name if count == 1 else f"{use.name}.{k}"
            start = len(self.nodes)
            out = self.body(block, env, prefix, read, frames)
            if out is None:
                return None
            if rep is not None:
                rep.runs.append((read, out, [n.name for n in self.nodes[start:]]))
            read = out
        if rep is not None:
            self.out.repeats.append(rep)
        return read

    def body(self, block: ir.Block, env: dict[str, ir.Value], prefix: str, read: str,
             frames: tuple[Frame, ...]) -> str | None:
        local: dict[str, str] = {INPUT: read}
        for node in block.nodes:
            args = tuple(dataclasses.replace(a, value=_substitute(a.value, env)) for a in node.args)
            inputs = tuple(local[n] for n in node.inputs)
            name = f"{prefix}.{node.name}"
            if node.op in self.blocks:
                out = self.use(dataclasses.replace(node, name=name, args=args, inputs=inputs), frames)
                if out is None:
                    return None
                local[node.name] = out
                continue
            self.nodes.append(dataclasses.replace(node, name=name, inputs=inputs, args=args))
            self.out.origin[name] = frames
            self.out.written[name] = node
            local[node.name] = name
        return local[block.nodes[-1].name]


def expand(checker: Any, model: ir.Model, broken: set[str]) -> Expansion:
    """`model` with every use of a block replaced by the block's nodes (see the module's
    docstring); errors go to `checker.diags`. A use whose reads failed (`broken`) or whose
    block has an error is left out, and what reads it goes unchecked."""
    blocks, params = definitions(checker.spec, checker)
    expander = _Expander(checker, blocks, params)
    alias: dict[str, str] = {}
    names: dict[str, Span | None] = {i.name: i.span for i in model.inputs}
    defined = {b.name for b in checker.spec.blocks}
    uses: set[str] = set()
    for node in model.nodes:
        node = dataclasses.replace(node, inputs=tuple(alias.get(n, n) for n in node.inputs))
        if node.op not in defined:
            if node.name in uses:  # (two layers with one name: the checker's loop says so)
                checker.err("E110", f"`{node.name}` is defined twice", node.span, "",
                            secondary=[(names[node.name], "first defined here")],
                            help="give each input and layer its own name")
                continue
            expander.nodes.append(node)
            names.setdefault(node.name, node.span)
            continue
        uses.add(node.name)
        if node.name in names:
            checker.err("E110", f"`{node.name}` is defined twice", node.span, "",
                        secondary=[(names[node.name], "first defined here")],
                        help="give each input and layer its own name")
            continue
        names[node.name] = node.span
        if node.op not in blocks or node.name in broken:
            continue
        out = expander.use(node, ())
        if out is not None:
            alias[node.name] = out
    expander.out.model = dataclasses.replace(model, nodes=tuple(expander.nodes))
    expander.out.alias = alias
    return expander.out
