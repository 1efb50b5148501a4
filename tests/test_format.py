"""`nnspec fmt`: messy input -> exact canonical text, idempotence, no comment lost."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pytest

from nnspec import ir
from nnspec.diagnostics import NNSpecError
from nnspec.format import format_source, format_spec
from nnspec.parse import parse
from nnspec.source import Span

PASS_CLASS = """\
# Will I pass this class?
let hidden = 3
model pass_class {
    input x[2]
    h1: dense hidden relu init=normal(stddev=0.1)
    dropout 0.5
    dense 1 sigmoid weights=[[3], [-2]] bias=[1]
}
loss binary_crossentropy
optimizer adam lr=1e-3
regularize l2=1e-4
train {
    data builtin("pass_class", n=1000)
    split val=0.2 test=0.1
    batch 32
    epochs 200
    early_stop monitor=val_loss patience=10 restore_best
    seed 0
}
"""

# (messy input, canonical output)
CASES = {
    "realistic": (PASS_CLASS, """\
# Will I pass this class?
let hidden = 3

model pass_class {
    input x[2]
    h1: dense hidden relu init=normal(stddev=0.1)
    dropout 0.5
    dense 1 sigmoid weights=[[3], [-2]] bias=[1]
}

loss binary_crossentropy
optimizer adam lr=1e-3
regularize l2=1e-4

train {
    data builtin("pass_class", n=1000)
    split val=0.2 test=0.1
    batch 32
    epochs 200
    early_stop monitor=val_loss patience=10 restore_best
    seed 0
}
"""),
    "odd spacing": ("""\


let   hidden=64
model   m{
input   img [ 8 ,8 ]
\tconv:conv2d   16   kernel = [3,3]   init = normal( mean = 0 , stddev = 0.1 , )
  dense  10   softmax
}
loss     categorical_crossentropy\r
optimizer sgd lr = 0.01   momentum=.9\t
""", """\
let hidden = 64

model m {
    input img[8, 8]
    conv: conv2d 16 kernel=[3, 3] init=normal(mean=0, stddev=0.1)
    dense 10 softmax
}

loss categorical_crossentropy
optimizer sgd lr=0.01 momentum=.9
"""),
    "sections out of order": ("""\
train {
    epochs 5
}
regularize l2=1e-4
optimizer adam
let b = 2
model {
    input x[1]
}
loss mse
let a = 1
""", """\
let b = 2
let a = 1

model {
    input x[1]
}

loss mse
optimizer adam
regularize l2=1e-4

train {
    epochs 5
}
"""),
    "multi-line lists": ("""\
model m {
    input x[2]
    dense 2 weights=[
        [1, 2],
        [3, 4],
    ] bias=[0,
            0]
    dense 1 init=constant(
        value=[1,
               2],
    )
}
""", """\
model m {
    input x[2]
    dense 2 weights=[[1, 2], [3, 4]] bias=[0, 0]
    dense 1 init=constant(value=[1, 2])
}
"""),
    "comments everywhere": ("""\
#!shebang stays as written
#no space after the hash
# file header, leads the model
model m {   # the model
#   indented comment
  input x[2]  # two features
  h: dense 3  # hidden
  dense 1 weights=[[1],   # first row
                   [2]]   # second row
  #
  # end of model
}
train {  # how to train
    batch 8
    # end of train
}
# leads loss, which moves ahead of train
loss mse  # squared error
## double hash
""", """\
#!shebang stays as written
# no space after the hash
# file header, leads the model
model m {  # the model
    #   indented comment
    input x[2]  # two features
    h: dense 3  # hidden
    # first row
    dense 1 weights=[[1], [2]]  # second row
    #
    # end of model
}

# leads loss, which moves ahead of train
loss mse  # squared error

train {  # how to train
    batch 8
    # end of train
}

## double hash
"""),
    "values": ("""\
let s = "tab\\there \\"quoted\\" back\\\\slash\\nnewline \\q"
let n = [1e-3, 1E+3, +3, -2, .5, 5., 0, -0.0, 1e999, 99999999999999999999]
let b = [true, false, [], [[]], f(), g(1, k=x[2])]
""", """\
let s = "tab\\there \\"quoted\\" back\\\\slash\\nnewline q"
let n = [1e-3, 1E+3, +3, -2, .5, 5., 0, -0.0, 1e999, 99999999999999999999]
let b = [true, false, [], [[]], f(), g(1, k=x[2])]
"""),
    "hash inside a string": ("""\
train {
    data csv("runs#1.csv", label="#")  # the file
}
""", """\
train {
    data csv("runs#1.csv", label="#")  # the file
}
"""),
    "comment after a closing brace": ("""\
model m {
    input x[1]
}  # after the model
loss mse
""", """\
model m {
    input x[1]
}

# after the model
loss mse
"""),
    "divergence settings": ("train {\n  divergence   factor=100\n divergence off\n}\n",
                            "train {\n    divergence factor=100\n    divergence off\n}\n"),
    "empty blocks": ("model {\n}\ntrain {\n}\n", "model {\n}\n\ntrain {\n}\n"),
    "only comments": ("\n\n#   one\n\n#two\n\n", "#   one\n# two\n"),
    "empty": ("", ""),
    "blank": ("\n\n  \n", ""),
    "no final newline": ("loss mse", "loss mse\n"),
}


@pytest.mark.parametrize("name", CASES)
def test_canonical_text(name: str) -> None:
    messy, expected = CASES[name]
    assert format_source(messy) == expected


@pytest.mark.parametrize("name", CASES)
def test_canonical_text_is_a_fixed_point(name: str) -> None:
    messy, expected = CASES[name]
    assert format_source(expected) == expected
    assert parse(expected) == parse(messy)


def comments_of(obj: object) -> list[str]:
    """Every comment in the IR, in field order, without its leading space."""
    out: list[str] = []
    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if f.name in ("comments", "end_comments"):
                out += [c.strip() for c in value]
            elif f.name == "trailing":
                out += [] if value is None else [value.strip()]
            else:
                out += comments_of(value)
    elif isinstance(obj, tuple):
        for x in obj:
            out += comments_of(x)
    return out


@pytest.mark.parametrize("name", CASES)
def test_no_comment_is_lost(name: str) -> None:
    messy, expected = CASES[name]
    before = sorted(comments_of(parse(messy)))
    assert sorted(comments_of(parse(expected))) == before
    lines = [re.sub(r'"([^"\\\n]|\\.)*"', '""', line) for line in expected.splitlines()]
    assert before == sorted(line.split("#", 1)[1].strip() for line in lines if "#" in line)


def test_comments_keep_their_places() -> None:
    spec = parse(CASES["comments everywhere"][1])
    model = spec.model
    assert model.comments == ("!shebang stays as written", " no space after the hash", " file header, leads the model")
    assert model.trailing == " the model"
    assert model.inputs[0].comments == ("   indented comment",)
    assert model.inputs[0].trailing == " two features"
    assert [n.trailing for n in model.nodes] == [" hidden", " second row"]
    assert model.nodes[1].comments == (" first row",)
    assert model.end_comments == ("", " end of model")
    assert spec.loss.trailing == " squared error"
    assert spec.train.trailing == " how to train"
    assert spec.train.end_comments == (" end of train",)
    assert spec.end_comments == ("# double hash",)


SPECS = sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.nn"))


@pytest.mark.parametrize("path", SPECS, ids=[p.name for p in SPECS])
def test_shipped_specs_are_canonical(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert format_source(text, str(path)) == text, f"run `nnspec fmt {path.name}`"
    assert comments_of(parse(text)) == comments_of(parse(format_source(text)))


# ------------------------------------------------------------------- parser comment spans

def test_statement_span_stops_before_its_comment() -> None:
    text = "loss mse  # squared error\n"
    spec = parse(text)
    assert text[spec.loss.span.start:spec.loss.span.end] == "loss mse"
    assert spec.loss.trailing == " squared error"


def test_trailing_comment_after_a_multi_line_value() -> None:
    text = "model m {\n    dense 1 w=[1,  # a\n        2]  # b\n    dense 2\n}\n"
    spec = parse(text)
    first, second = spec.model.nodes
    assert text[first.span.start:first.span.end] == "dense 1 w=[1,  # a\n        2]"
    assert (first.comments, first.trailing) == ((" a",), " b")
    assert (second.comments, second.trailing) == ((), None)


def test_statement_span_stops_before_a_brace_on_its_line() -> None:
    text = "train { batch 8 }  # one line\n"
    spec = parse(text)
    batch = spec.train.statements[0]
    assert text[batch.span.start:batch.span.end] == "batch 8"
    assert spec.train.trailing == " one line"  # the first comment on the header's line
    assert format_spec(spec) == "train {  # one line\n    batch 8\n}\n"


def test_comment_after_a_hash_in_a_string_is_kept() -> None:
    spec = parse('loss f("#")  # real\n')
    assert spec.loss.trailing == " real"


def test_block_span_stops_at_its_brace() -> None:
    text = "train {\n    batch 8\n}  # done\n"
    spec = parse(text)
    assert text[spec.train.span.start:spec.train.span.end] == "train {\n    batch 8\n}"
    assert spec.end_comments == (" done",)


# ------------------------------------------------------------------------ model wiring

def test_inputs_between_layers_keep_their_wiring() -> None:
    text = "model m {\n    input a[1]\n    dense 2\n    input b[3]\n    dense 4\n    input c[5]\n}\n"
    assert format_source(text) == text
    spec = parse(text)
    assert [n.inputs for n in spec.model.nodes] == [("a",), ("b",)]
    assert parse(format_spec(spec)) == spec


def test_unlabelled_layers_print_without_their_auto_names() -> None:
    spec = parse("model m {\n    dense 2\n    dense_1: dense 3\n    dense 4\n}\n")
    assert [(n.name, n.labelled) for n in spec.model.nodes] == [
        ("dense_2", False), ("dense_1", True), ("dense_3", False)]  # auto names skip written ones
    assert format_spec(spec) == "model m {\n    dense 2\n    dense_1: dense 3\n    dense 4\n}\n"


# ----------------------------------------------------------------------- IR built by hand

def _let(value: ir.Value) -> ir.Spec:
    return ir.Spec(lets=(ir.Let("x", value),))


@pytest.mark.parametrize("value, text", [
    (0.1, "0.1"), (1e-05, "1e-05"), (1e16, "1e+16"), (-2.5, "-2.5"), (3.0, "3.0"),
    (math.inf, "1e999"), (-math.inf, "-1e999"), (7, "7"), (-7, "-7"), (10**25, str(10**25)),
])
def test_numbers_without_text_read_back_exactly(value: float, text: str) -> None:
    spec = _let(ir.Number(value))
    assert format_spec(spec) == f"let x = {text}\n"
    back = parse(format_spec(spec)).lets[0].value
    assert type(back.value) is type(value) and back.value == value


def test_number_text_that_disagrees_with_the_value_is_not_printed() -> None:
    assert format_spec(_let(ir.Number(0.5, "1e-3"))) == "let x = 0.5\n"
    assert format_spec(_let(ir.Number(2, "2.0"))) == "let x = 2\n"  # int stays int
    assert format_spec(_let(ir.Number(2.0, "2"))) == "let x = 2.0\n"


@pytest.mark.parametrize("value", ['say "hi"', "back\\slash", "two\nlines", "a\tb", "cr\r", "ünï ☃", "#not a comment", ""])
def test_strings_read_back_exactly(value: str) -> None:
    spec = _let(ir.String(value))
    assert parse(format_spec(spec)) == spec


def test_comments_built_by_hand() -> None:
    spec = ir.Spec(loss=ir.Directive("loss", (ir.Arg(None, ir.Ref("mse")),), comments=("lead", "two\nlines  "),
                                     trailing="after"),
                   end_comments=("",))
    assert format_spec(spec) == "# lead\n# two\n# lines\nloss mse  # after\n\n#\n"


@pytest.mark.parametrize("spec, message", [
    (_let(ir.Number(math.nan)), "NaN"),
    (_let(ir.Ref("true")), "`true`"),
    (_let(ir.Ref("not a name")), "`not a name`"),
    (_let(ir.Call("f", (ir.Arg("false", ir.Number(1)),))), "`false`"),
    (ir.Spec(loss=ir.Directive("loss", (ir.Arg(None, ir.Ref("a")), ir.Arg(None, ir.List((ir.Number(1),)))))),
     "would read as `a[...]`"),
])
def test_ir_without_a_text_form_is_refused(spec: ir.Spec, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        format_spec(spec)


def test_spans_are_ignored_when_printing() -> None:
    spec = _let(ir.Number(1, "1", Span(100, 200)))
    assert format_spec(spec) == "let x = 1\n"


def test_bad_input_raises_the_parse_error() -> None:
    with pytest.raises(NNSpecError) as info:
        format_source("loss mse\n}\n", "bad.nn")
    assert info.value.diagnostics[0].code == "E007"
    assert info.value.source.filename == "bad.nn"
