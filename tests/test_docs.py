"""docs/language.md stays true: every example in it is checked, every table generated from
the registries is current, and every registry name is documented.

The doc's fenced blocks, by info string (the doc's last section says the same for readers):

  ```nn            a complete spec; it must check with no errors and no warnings, and be in
                   canonical `nnspec fmt` form.
  ```nn-warning    a complete spec whose first line is `# expect: W001` (codes separated by
                   commas); it must check with no errors and exactly those warnings.
  ```nn-error      a spec whose first line is `# expect: E101` (codes separated by commas);
                   checking it must report exactly those codes, errors and warnings alike.
  ```nn-fragment   a few statements, checked after `wrap_fragment` puts them into the
                   smallest spec that can hold them; the result must check with no errors
                   and no warnings. The wrapping rule is in `wrap_fragment`'s docstring.
  ```nn-output     what `nnspec check example.nn` prints on stderr for the `nn`,
                   `nn-warning` or `nn-error` block just above it, saved as `example.nn`.
  ```console       `$ nnspec ...` lines, run in-process from the repository root, each
                   followed by its expected output (stderr, then stdout); `$ echo $?`
                   is followed by the previous command's exit status.
  ```lark          the grammar, equal to grammar/nnspec.lark.

Any other fence fails the test, so nothing in the doc escapes checking.

docs/data.md, the guide to getting data in, has its `nn`, `nn-warning`, `nn-error` and
`nn-fragment` blocks checked here the same way, and its links too; its `python` and
`console` blocks run in a folder of data files, in tests/test_data_docs.py.

Generated regions sit between `<!-- generated: WHAT -->` and `<!-- end generated -->`;
the test regenerates each and compares. After changing a registry, rewrite them with

    python tests/test_docs.py --bless
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import pytest

from nnspec import codes, cli
from nnspec.check import REGULARIZE, TRAIN, check_source
from nnspec.datasets import DATASETS, SOURCES, classes_of, input_of
from nnspec.diagnostics import render_all
from nnspec.layers import ACTIVATIONS, INITIALIZERS, LAYERS
from nnspec.losses import LOSSES, METRICS
from nnspec.optim import OPTIMIZERS, SCHEDULES
from nnspec.params import Array, Bool, Choice, Entry, Float, Int, ListOf, Param, Registry, Str, Symbol, Union
from nnspec.parse import grammar_text

from cli_helpers import run_cli

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "language.md"
GUIDE = REPO / "docs" / "data.md"

KNOWN_FENCES = ("nn", "nn-warning", "nn-error", "nn-fragment", "nn-output", "console", "lark")
GUIDE_FENCES = ("nn", "nn-warning", "nn-error", "nn-fragment", "console", "python")
EXAMPLE_FILE = "example.nn"

REGISTRIES: dict[str, Registry] = {
    "layer": LAYERS, "activation": ACTIVATIONS, "initializer": INITIALIZERS, "loss": LOSSES,
    "optimizer": OPTIMIZERS, "schedule": SCHEDULES, "dataset": DATASETS, "metric": METRICS,
    "source": SOURCES, "train": TRAIN,
}


# --------------------------------------------------------------------------- the blocks

@dataclass(frozen=True)
class Block:
    info: str
    text: str
    line: int  # 1-based line of the opening fence
    doc: str = ""  # which doc, when it is not docs/language.md

    @property
    def id(self) -> str:
        return (f"{self.doc}:" if self.doc else "") + f"{self.info}@line{self.line}"


def fences(doc: str, name: str = "") -> list[Block]:
    """Every fenced block, in order."""
    blocks: list[Block] = []
    lines = doc.split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\S*)\s*$", lines[i])
        if m and m.group(1):
            start = i
            body = []
            i += 1
            while i < len(lines) and lines[i].rstrip() != "```":
                body.append(lines[i])
                i += 1
            assert i < len(lines), f"line {start + 1}: unclosed ``` fence"
            blocks.append(Block(m.group(1), "\n".join(body) + "\n", start + 1, name))
        elif m:
            raise AssertionError(f"line {i + 1}: a fence without an info string; say what it holds")
        i += 1
    return blocks


def expected_codes(block: Block) -> list[str]:
    first = block.text.split("\n", 1)[0]
    m = re.fullmatch(r"#\s*expect:\s*([A-Z]\d{3}(?:\s*,\s*[A-Z]\d{3})*)\s*", first)
    assert m, f"{block.id}: the first line must be `# expect: CODE`, found {first!r}"
    return sorted(c.strip() for c in m.group(1).split(","))


def diagnose(text: str) -> tuple[Any, list, Any]:
    return check_source(text, EXAMPLE_FILE)


def codes_of(diags: Iterable) -> list[str]:
    return sorted(d.code for d in diags)


# ------------------------------------------------------------------------ fragments

_TOP = ("let", "loss", "optimizer", "regularize")


def split_statements(text: str) -> list[str]:
    """Statements of a fragment, one per entry: a statement runs on while a `(` or `[`
    is open; comment and blank lines go with the statement after them."""
    out: list[str] = []
    pending: list[str] = []
    depth = 0
    for line in text.split("\n"):
        pending.append(line)
        in_string = False
        for ch in line:
            if ch == '"':
                in_string = not in_string
            elif in_string:
                continue
            elif ch == "#":
                break
            elif ch in "([":
                depth += 1
            elif ch in ")]":
                depth -= 1
        code = line.split("#", 1)[0].strip()
        if depth == 0 and code:
            out.append("\n".join(pending))
            pending = []
    assert depth == 0, f"unbalanced brackets in fragment:\n{text}"
    if any(p.strip() for p in pending):
        out.append("\n".join(pending))  # trailing comments
    return out


def _head(statement: str) -> str:
    code = next(line.split("#", 1)[0].strip() for line in statement.split("\n")
                if line.split("#", 1)[0].strip())
    return code.split()[0] if code else ""


def wrap_fragment(text: str) -> str:
    """The smallest spec that holds the fragment `text`.

    Each statement goes where its first word says: `let`, `loss`, `optimizer` and
    `regularize` to the top level; a train setting (`data`, `split`, `batch`, `epochs`,
    `seed`, `metrics`, `standardize`, `early_stop`) into `train { }`; anything else (an
    `input`, a layer, a labelled layer) into `model fragment { }`, in the order given.
    Then the gaps are filled: the model gets `input x[2]` if the fragment declares no
    input, and `dense 1 sigmoid` if it has no layer. If there is a train setting, the
    train block gets `data builtin("moons")` if it has no `data`, and the spec gets
    `loss binary_crossentropy` and `optimizer sgd` if the fragment has none.
    """
    top: list[str] = []
    model: list[str] = []
    train: list[str] = []
    for stmt in split_statements(text):
        head = _head(stmt)
        if head in _TOP:
            top.append(stmt)
        elif head in TRAIN:
            train.append(stmt)
        else:
            model.append(stmt)
    heads = {_head(s) for s in top + model + train}
    if "input" not in heads:
        model.insert(0, "input x[2]")
    if not any(_head(s) != "input" for s in model):
        model.append("dense 1 sigmoid")
    if train:
        if "data" not in heads:
            train.insert(0, 'data builtin("moons")')
        if "loss" not in heads:
            top.append("loss binary_crossentropy")
        if "optimizer" not in heads:
            top.append("optimizer sgd")

    def indent(stmts: list[str]) -> str:
        return "".join("\n".join("    " + line.strip() if line.strip() else "" for line in s.split("\n")) + "\n"
                       for s in stmts)

    out = "".join(s.strip() + "\n" for s in top)
    out += "model fragment {\n" + indent(model) + "}\n"
    if train:
        out += "train {\n" + indent(train) + "}\n"
    return out


# ---------------------------------------------------------------------- generation

def _num(x: float | int) -> str:
    if isinstance(x, int) or (isinstance(x, float) and x.is_integer() and abs(x) >= 1000):
        return f"{int(x):,}"
    text = repr(float(x))
    if "e" in text:
        mantissa, exp = text.split("e")
        text = f"{mantissa}e{int(exp)}"
    return text


def _range(bounds: Iterable[tuple[str, Any]]) -> str:
    parts = [f"{op} {_num(v)}" for op, v in bounds if v is not None]
    return (" " + " and ".join(parts)) if parts else ""


def allowed(t: Any) -> str:
    """What a parameter type accepts, in words."""
    if isinstance(t, Int):
        return "a whole number" + _range((("≥", t.min), ("≤", t.max)))
    if isinstance(t, Float):
        return "a number" + _range((("≥", t.ge), (">", t.gt), ("≤", t.le), ("<", t.lt)))
    if isinstance(t, Bool):
        return "`true` or `false`"
    if isinstance(t, Str):
        return "a string"
    if isinstance(t, Choice):
        return " or ".join(f"`{o}`" for o in t.options)
    if isinstance(t, Array):
        return "a list of numbers, or of such lists"
    if isinstance(t, ListOf):
        return f"{allowed(t.item)}, or a list of them"
    if isinstance(t, Union):
        return " or ".join(allowed(o) for o in t.options)
    if isinstance(t, Symbol):
        return t.describe()
    return t.describe()


def default(p: Param) -> str:
    if p.required:
        return "required"
    v = p.default
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "`true`" if v else "`false`"
    if isinstance(v, (int, float)):
        return f"`{_num(v) if isinstance(v, float) else v}`"
    if isinstance(v, str) and isinstance(p.type, (Str, ListOf)):
        return f'`"{v}"`'
    return f"`{v}`"


_ORDINAL = ("1st", "2nd", "3rd", "4th")


def params_table(params: Iterable[Param], positionals: tuple[Param, ...] = ()) -> str:
    params = list(params)
    positional = [p.name for p in positionals]
    head = "| Parameter | " + ("Position | " if positional else "") + "Default | Allowed | Meaning |\n"
    head += "|---|" + ("---|" if positional else "") + "---|---|---|\n"
    rows = []
    for p in params:
        cells = [f"`{p.name}`"]
        if positional:
            cells.append(_ORDINAL[positional.index(p.name)] if p.name in positional else "by name")
        cells += [default(p), allowed(p.type), _cell(p.doc) or "—"]
        rows.append("| " + " | ".join(cells) + " |\n")
    return head + "".join(rows) if rows else ""


def _cell(text: str) -> str:
    """Text for a Markdown table cell: a `|` would end the cell."""
    return text.replace("|", "\\|")


def common_optimizer_params() -> list[Param]:
    """Parameters every optimizer takes, except the learning rate."""
    shared = set.intersection(*({p.name for p in e.params} for e in OPTIMIZERS)) - {"lr"}
    first = next(iter(OPTIMIZERS))
    return [p for p in first.params if p.name in shared]


def _entry(kind: str, name: str) -> Entry:
    entry = REGISTRIES[kind].get(name)
    assert entry is not None, f"no {kind} `{name}`"
    return entry


def gen_params(kind: str, name: str | None = None) -> str:
    if kind == "regularize":
        return params_table(REGULARIZE.params)
    if kind == "optimizer-common":
        return params_table(common_optimizer_params())
    assert name is not None
    entry = _entry(kind, name)
    params = entry.params
    if kind == "optimizer":
        shared = {p.name for p in common_optimizer_params()}
        params = tuple(p for p in params if p.name not in shared)
    table = params_table(params, entry.positionals)
    if entry.variadic is not None:
        table += (("\n" if table else "") + f"`{entry.name}` takes any number of values by position "
                  f"(`{entry.variadic.name}`), each {allowed(entry.variadic.type)}.\n")
    return table


def gen_datasets() -> str:
    rows = ["| Dataset | Task | One example | Classes | What it is |\n", "|---|---|---|---|---|\n"]
    for e in DATASETS:
        classes = classes_of(e, {})
        if callable(e.attrs["classes"]):
            # the parameter the count comes from: `classes`, or (one class per token id) `vocab`
            name = next(p.name for p in sorted(e.params, key=lambda p: p.name != "classes") if p.name in ("classes", "vocab"))
            classes_text = f"`{name}` (default {classes})"
        else:
            classes_text = "—" if classes is None else str(classes)
        rows.append(f"| `{e.name}` | {e.attrs['task']} | `input {input_of(e, {})}` "
                    f"| {classes_text} | {_cell(e.doc)} |\n")
    return "".join(rows)


def gen_metrics() -> str:
    rows = ["| Metric | Arguments | For losses of these tasks | Better when | Meaning |\n", "|---|---|---|---|---|\n"]
    for e in METRICS:
        better = "higher" if e.attrs["mode"] == "max" else "lower"
        args = ", ".join(f"`{p.name}`" + (" (1st)" if p.positional else "") + (f" = `{p.default}`" if p.default is not None else "")
                         for p in e.params) or "—"
        name = f"`{e.name}`" + "".join(f", `{a}`" for a in e.aliases)
        rows.append(f"| {name} | {args} | {', '.join(e.attrs['tasks'])} | {better} | {_cell(e.doc)} |\n")
    return "".join(rows)


def gen_losses() -> str:
    rows = ["| Loss | Aliases | Task | Formula |\n", "|---|---|---|---|\n"]
    for e in LOSSES:
        aliases = ", ".join(f"`{a}`" for a in e.aliases) or "—"
        rows.append(f"| `{e.name}` | {aliases} | {e.attrs['task']} | {_cell(e.doc)} |\n")
    return "".join(rows)


def gen_initializers() -> str:
    rows = ["| Initializer | Aliases | Parameters | Draws |\n", "|---|---|---|---|\n"]
    for e in INITIALIZERS:
        aliases = ", ".join(f"`{a}`" for a in e.aliases) or "—"
        params = ", ".join(f"`{p.name}`" for p in e.params) or "—"
        rows.append(f"| `{e.name}` | {aliases} | {params} | {_cell(e.doc)} |\n")
    return "".join(rows)


def gen_optimizers() -> str:
    rows = ["| Optimizer | Default `lr` | W001 when `lr` is above | State arrays |\n", "|---|---|---|---|\n"]
    for e in OPTIMIZERS:
        lr = e.param("lr")
        assert lr is not None
        rows.append(f"| `{e.name}` | {default(lr)} | `{_num(float(e.attrs['lr_warn']))}` | {e.attrs['slots']} |\n")
    return "".join(rows)


def gen_codes() -> str:
    rows = ["| Code | What |\n", "|---|---|\n"]
    for code, (title, _) in codes.CODES.items():
        rows.append(f"| `{code}` | {_cell(title)} |\n")
    return "".join(rows)


def gen_train_defaults() -> str:
    """What the checker assumes for each train setting left out, read off a checked spec."""
    program, diags, _ = check_source('model m {\n    input x[2]\n    dense 1 sigmoid\n}\n'
                                     'loss binary_crossentropy\noptimizer sgd\n'
                                     'train {\n    data builtin("moons")\n}\n')
    assert program is not None and not diags, diags
    t = program.train
    shown = {
        "split": f"`split val={_num(t.val)} test={_num(t.test)}`: every example is for training",
        "batch": f"`batch {t.batch if t.batch is not None else 'all'}`",
        "epochs": f"`epochs {t.epochs}`",
        "steps": "`epochs` says how long" if t.steps is None else "?",
        "seed": f"`seed {t.seed}`",
        "start_from": "the initializers" if t.start_from is None else "?",
        "metrics": "only the loss is reported" if not t.metrics else ", ".join(f"`{m}`" for m in t.metrics),
        "standardize": "features are used as they are" if not t.standardize else "`standardize`",
        "early_stop": "every epoch runs" if t.early_stop is None else "?",
        "divergence": f"`divergence {_num(t.divergence)}`" if t.divergence is not None else "`divergence off`",
        "target": "the data's targets" if t.target == "data" else "?",
        "devices": "one device" if t.devices is None else f"`devices {t.devices}`",
        "precision": f"`precision {t.precision}`",
        "sample_weight": "every example weighs 1 in the loss" if t.sample_weight is None else "?",
        "stream": "the data is loaded whole" if t.stream is None else "?",
        "history": f"`history {t.history}`: one row an epoch",
        "categorical": "every feature column holds numbers" if t.columns is None else "?",
        "missing": "an empty cell is an error where it is (E401)" if t.columns is None else "?",
    }
    rows = ["| Setting | Without its line |\n", "|---|---|\n"]
    for e in TRAIN:
        if e.name == "data":
            rows.append("| `data` | required: error E112 |\n")
        else:
            rows.append(f"| `{e.name}` | {shown[e.name]} |\n")
    return "".join(rows)


def gen_cli(command: str) -> str:
    """The table of a command's arguments; `global`: the options every command takes (written
    before or after the command), which the commands' own tables leave out."""
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    glob = {a.dest for a in parser._actions if a.option_strings}
    p = parser if command == "global" else sub.choices[command]  # type: ignore[attr-defined]
    rows = ["| Argument | Meaning |\n", "|---|---|\n"]
    for action in p._actions:
        if action.dest == "help" or action is sub or (p is not parser and action.dest in glob):
            continue
        if action.option_strings:
            flag = ", ".join(action.option_strings)
            if action.nargs != 0:
                metavar = action.metavar or (("{" + ",".join(action.choices) + "}") if action.choices else action.dest.upper())
                flag += f" {metavar}"
        else:
            flag = action.metavar or action.dest
            if action.nargs in ("+", "*"):
                flag += " ..."
            elif action.nargs == "?":
                flag = f"[{flag}]"
        meaning = _cell(action.help or "")
        if action.option_strings and action.default not in (None, False) and action.nargs != 0:
            meaning += f"; default `{action.default}`"
        rows.append(f"| `{flag}` | {meaning or '—'} |\n")
    return "".join(rows)


def gen_split(seed: str, n: str, val: str, test: str) -> str:
    """Which rows go where, for the doc's worked example: `n` examples, row i of class `a`
    when i is a multiple of 3 and `b` otherwise, split by the seed as nnspec splits them."""
    import numpy as np
    from nnspec.split import random_rows, stratified_rows
    k, v, t = int(n), float(val), float(test)
    labels = np.array([0 if i % 3 == 0 else 1 for i in range(k)])
    rounded = lambda m, f: int(np.floor(m * f + 0.5))  # noqa: E731
    plain = random_rows(k, val=v, test=t, seed=int(seed))
    strat = stratified_rows(labels, val=v, test=t, seed=int(seed))
    rows = lambda a: ", ".join(map(str, a)) or "none"  # noqa: E731
    counts = {c: int((labels == i).sum()) for i, c in enumerate("ab")}
    out = [f"`seed {seed}`, {k} examples (rows {rows(np.flatnonzero(labels == 0))} of class `a`, the others `b`), "
           f"`split val={val} test={test}`:\n\n", "| | rows, in order |\n", "|---|---|\n",
           f"| `default_rng({seed}).permutation({k})` | {rows(np.random.default_rng(int(seed)).permutation(k))} |\n"]
    for part, f in (("test", t), ("val", v)):
        out.append(f"| random, `{part}`: round({k}·{f:g}) = {rounded(k, f)} | {rows(plain.part(part))} |\n")
    out.append(f"| random, `train`: the rest | {rows(plain.train)} |\n")
    for part, f in (("test", t), ("val", v)):
        each = ", ".join(f"`{c}` round({m}·{f:g}) = {rounded(m, f)}" for c, m in counts.items())
        out.append(f"| `stratify`, `{part}`: {each} | {rows(strat.part(part))} |\n")
    out.append(f"| `stratify`, `train`: the rest | {rows(strat.train)} |\n")
    return "".join(out)


def gen_split_record(seed: str, n: str, val: str, test: str) -> str:
    """The `split.json` of `gen_split`'s stratified example."""
    import json
    import numpy as np
    from nnspec.split import stratified_rows
    labels = np.array([0 if i % 3 == 0 else 1 for i in range(int(n))])
    rows = stratified_rows(labels, val=float(val), test=float(test), seed=int(seed))
    return "\n    " + json.dumps(rows.record(seed=int(seed))) + "\n\n"


def gen_grammar() -> str:
    return "```lark\n" + grammar_text().rstrip("\n") + "\n```\n"


GENERATORS: dict[str, Callable[..., str]] = {
    "params": gen_params, "datasets": gen_datasets, "metrics": gen_metrics, "losses": gen_losses,
    "initializers": gen_initializers, "optimizers": gen_optimizers, "codes": gen_codes,
    "train-defaults": gen_train_defaults, "cli": gen_cli, "grammar": gen_grammar, "split": gen_split,
    "split-record": gen_split_record,
}

_REGION = re.compile(r"(<!-- generated: (?P<what>[^>]*?) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)


def generate(what: str) -> str:
    kind, *args = what.split()
    assert kind in GENERATORS, f"unknown generated region `{what}`"
    return GENERATORS[kind](*args)


def regions(doc: str) -> list[tuple[str, str]]:
    return [(m.group("what"), m.group("body")) for m in _REGION.finditer(doc)]


def bless(path: Path = DOC) -> None:
    doc = path.read_text(encoding="utf-8")
    path.write_text(_REGION.sub(lambda m: m.group(1) + generate(m.group("what")) + m.group(4), doc),
                    encoding="utf-8")


# -------------------------------------------------------------------------- fixtures

DOC_TEXT = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
BLOCKS = fences(DOC_TEXT) if DOC_TEXT else []
GUIDE_TEXT = GUIDE.read_text(encoding="utf-8") if GUIDE.exists() else ""
GUIDE_BLOCKS = fences(GUIDE_TEXT, "data.md") if GUIDE_TEXT else []


def _blocks(*infos: str) -> list[Block]:
    return [b for b in BLOCKS if b.info in infos]


def _spec_blocks(*infos: str) -> list[Block]:
    """The blocks of these kinds in docs/language.md and in docs/data.md."""
    return _blocks(*infos) + [b for b in GUIDE_BLOCKS if b.info in infos]


def _ids(blocks: list[Block]) -> list[str]:
    return [b.id for b in blocks]


def _formatter() -> Callable[[str], str] | None:
    try:
        from nnspec.format import format_source
    except ImportError:
        return None
    return format_source


def test_doc_exists_and_has_examples() -> None:
    assert DOC.exists(), "docs/language.md is missing"
    assert len(_blocks("nn")) >= 5
    assert _blocks("nn-error") and _blocks("nn-warning") and _blocks("nn-fragment")


def test_every_fence_is_a_checked_kind() -> None:
    unknown = [b.id for b in BLOCKS if b.info not in KNOWN_FENCES]
    assert not unknown, f"fences nothing checks: {unknown}; use one of {KNOWN_FENCES}"


def test_every_fence_of_the_data_guide_is_a_checked_kind() -> None:
    assert GUIDE.exists(), "docs/data.md is missing"
    unknown = [b.id for b in GUIDE_BLOCKS if b.info not in GUIDE_FENCES]
    assert not unknown, f"fences nothing checks: {unknown}; use one of {GUIDE_FENCES}"
    assert {"nn", "nn-error", "nn-fragment", "console", "python"} <= {b.info for b in GUIDE_BLOCKS}


# ----------------------------------------------------------------------------- tests

@pytest.mark.parametrize("block", _spec_blocks("nn"), ids=_ids(_spec_blocks("nn")))
def test_nn_blocks_check_clean(block: Block) -> None:
    program, diags, src = diagnose(block.text)
    assert program is not None and not diags, f"{block.id}:\n{render_all(diags, src)}"


@pytest.mark.parametrize("block", _spec_blocks("nn", "nn-warning"), ids=_ids(_spec_blocks("nn", "nn-warning")))
def test_nn_blocks_are_canonical(block: Block) -> None:
    fmt = _formatter()
    if fmt is None:
        pytest.skip("nnspec.format is not there yet, so canonical form cannot be checked")
    assert fmt(block.text) == block.text, f"{block.id} is not in `nnspec fmt` form"


@pytest.mark.parametrize("block", _spec_blocks("nn-warning"), ids=_ids(_spec_blocks("nn-warning")))
def test_nn_warning_blocks(block: Block) -> None:
    program, diags, src = diagnose(block.text)
    assert program is not None, f"{block.id} has errors:\n{render_all(diags, src)}"
    assert codes_of(diags) == expected_codes(block), f"{block.id}:\n{render_all(diags, src)}"
    assert all(c.startswith("W") for c in expected_codes(block))


@pytest.mark.parametrize("block", _spec_blocks("nn-error"), ids=_ids(_spec_blocks("nn-error")))
def test_nn_error_blocks(block: Block) -> None:
    program, diags, src = diagnose(block.text)
    assert program is None, f"{block.id} checks clean, but it should fail"
    assert codes_of(diags) == expected_codes(block), f"{block.id}:\n{render_all(diags, src)}"


@pytest.mark.parametrize("block", _spec_blocks("nn-fragment"), ids=_ids(_spec_blocks("nn-fragment")))
def test_nn_fragments_check_clean(block: Block) -> None:
    spec = wrap_fragment(block.text)
    program, diags, src = diagnose(spec)
    assert program is not None and not diags, f"{block.id}, wrapped as\n{spec}\n{render_all(diags, src)}"


def _output_pairs() -> list[tuple[Block, Block]]:
    pairs = []
    for before, block in zip(BLOCKS, BLOCKS[1:]):
        if block.info == "nn-output":
            assert before.info in ("nn", "nn-warning", "nn-error"), \
                f"{block.id} must follow an `nn`, `nn-warning` or `nn-error` block, not {before.id}"
            pairs.append((before, block))
    return pairs


@pytest.mark.parametrize("pair", _output_pairs(), ids=[p[1].id for p in _output_pairs()])
def test_nn_output_blocks(pair: tuple[Block, Block]) -> None:
    spec, shown = pair
    _, diags, src = diagnose(spec.text)
    assert render_all(diags, src) == shown.text


def test_every_output_block_has_its_spec() -> None:
    assert len(_output_pairs()) == len(_blocks("nn-output"))


@pytest.mark.parametrize("block", _blocks("console"), ids=_ids(_blocks("console")))
def test_console_blocks(block: Block, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = block.text.rstrip("\n").split("\n")
    assert lines and lines[0].startswith("$ "), f"{block.id} must start with a `$ ` command"
    status = None
    i = 0
    while i < len(lines):
        command = lines[i][2:]
        i += 1
        expected = []
        while i < len(lines) and not lines[i].startswith("$ "):
            expected.append(lines[i])
            i += 1
        want = "\n".join(expected) + ("\n" if expected else "")
        if command == "echo $?":
            assert status is not None, f"{block.id}: `echo $?` before any command"
            assert f"{status}\n" == want, f"{block.id}: exit status {status}, doc says {want!r}"
            continue
        argv = shlex.split(command)
        assert argv[0] == "nnspec", f"{block.id}: only `nnspec` commands can be checked, found {command!r}"
        status, out, err = run_cli(*argv[1:], cwd=REPO)
        got = err + out
        assert got == want, f"{block.id}: `{command}` printed\n{got}"


@pytest.mark.parametrize("block", _blocks("lark"), ids=_ids(_blocks("lark")))
def test_grammar_block_is_the_grammar(block: Block) -> None:
    assert block.text == grammar_text().rstrip("\n") + "\n"


@pytest.mark.parametrize("what", [w for w, _ in regions(DOC_TEXT)])
def test_generated_regions_are_current(what: str) -> None:
    body = dict(regions(DOC_TEXT))[what]
    assert body == generate(what), f"region `{what}` is stale: run `python tests/test_docs.py --bless`"


def test_generated_regions_are_unique() -> None:
    names = [w for w, _ in regions(DOC_TEXT)]
    assert len(names) == len(set(names))
    opened = re.findall(r"^<!-- generated: ", DOC_TEXT, re.M)
    assert len(opened) == len(names), "a generated region is not closed"


# ------------------------------------------------------------------------- coverage

def _code_spans(doc: str) -> set[str]:
    return set(re.findall(r"`([^`\n]+)`", doc))


SPANS = _code_spans(DOC_TEXT)


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_every_registry_name_is_documented(kind: str) -> None:
    names = REGISTRIES[kind].names()  # with aliases
    missing = [n for n in names if n not in SPANS]
    assert not missing, f"docs/language.md never names these {kind} entries in backticks: {missing}"


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_every_parameter_is_documented(kind: str) -> None:
    missing = sorted({f"{e.name}.{p.name}" for e in REGISTRIES[kind] for p in e.params if p.name not in SPANS})
    assert not missing, f"docs/language.md never names these parameters in backticks: {missing}"


def test_regularize_is_documented() -> None:
    missing = [p.name for p in REGULARIZE.params if p.name not in SPANS]
    assert "regularize" in SPANS and not missing, missing


def test_every_diagnostic_code_is_documented() -> None:
    missing = [c for c in codes.CODES if c not in SPANS]
    assert not missing, missing


def test_every_warning_has_an_example() -> None:
    shown = {c for b in _blocks("nn-warning") for c in expected_codes(b)}
    data_time = {"W003"}  # needs the training targets: given by `nnspec train`, not by `check`
    missing = sorted(c for c in codes.CODES if c.startswith("W") and c not in shown | data_time)
    assert not missing, f"warnings without an `nn-warning` example: {missing}"


def test_every_command_is_documented() -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    missing = [name for name in sub.choices if f"nnspec {name}" not in DOC_TEXT]  # type: ignore[attr-defined]
    assert not missing, missing


def test_every_spec_file_is_mentioned() -> None:
    missing = [p.name for p in sorted((REPO / "specs").glob("*.nn")) if p.name not in DOC_TEXT]
    assert not missing, f"specs/ files the doc does not point to: {missing}"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(doc: str) -> set[str]:
    prose = re.sub(r"^```.*?^```$", "", doc, flags=re.M | re.S)  # `#` in code is a comment
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", prose, re.M)}


def test_internal_links_resolve() -> None:
    slugs = _anchors(DOC_TEXT)
    links = re.findall(r"\]\(#([^)]+)\)", DOC_TEXT)
    broken = sorted({link for link in links if link not in slugs})
    assert links and not broken, broken


def test_the_data_guides_links_resolve() -> None:
    """docs/data.md's links: to its own headings, and to other docs' files and headings."""
    links = re.findall(r"\]\(([\w.-]*\.md)?(?:#([^)]+))?\)", GUIDE_TEXT)
    assert links
    broken = []
    for file, anchor in links:
        target = GUIDE.parent / file if file else GUIDE
        if not target.exists() or (anchor and anchor not in _anchors(target.read_text(encoding="utf-8"))):
            broken.append(f"{file}#{anchor}")
    assert not broken, broken
    assert "(data.md)" in DOC_TEXT, "docs/language.md's `data` section links to docs/data.md"


# ------------------------------------------------------------------ the harness itself

def test_wrap_fragment_rule() -> None:
    assert wrap_fragment("dense 64 relu\n") == "model fragment {\n    input x[2]\n    dense 64 relu\n}\n"
    assert wrap_fragment("optimizer adam lr=0.01\n") == (
        "optimizer adam lr=0.01\nmodel fragment {\n    input x[2]\n    dense 1 sigmoid\n}\n")
    assert wrap_fragment("let h = 8\nh1: dense h relu\nbatch all\n") == (
        "let h = 8\nloss binary_crossentropy\noptimizer sgd\n"
        "model fragment {\n    input x[2]\n    h1: dense h relu\n}\n"
        'train {\n    data builtin("moons")\n    batch all\n}\n')
    assert split_statements("# w\ndense 1 weights=[\n  [3],  # ]\n  [-2],\n]\nflatten\n") == [
        "# w\ndense 1 weights=[\n  [3],  # ]\n  [-2],\n]", "flatten"]


def test_expected_codes_syntax() -> None:
    assert expected_codes(Block("nn-error", "# expect: E106, E102\nx\n", 1)) == ["E102", "E106"]
    with pytest.raises(AssertionError):
        expected_codes(Block("nn-error", "model m {\n", 1))


if __name__ == "__main__":
    if sys.argv[1:] == ["--bless"]:
        bless()
        print(f"rewrote the generated regions of {DOC.relative_to(REPO)}")
    else:
        sys.exit("usage: python tests/test_docs.py --bless")
