"""Reusable blocks (issue 9): `block NAME(PARAMS) { ... }` defined once, used like a layer,
repeated with `repeat=N`; expanded by nnspec/blocks.py into ordinary layers named after
the use (`r1.a`, `stack.2.a`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import nnspec
from nnspec import ir
from nnspec.check import check_source
from nnspec.diagnostics import NNSpecError
from nnspec.format import format_source
from nnspec.parse import parse
from nnspec.summary import summary

from cli_helpers import run_cli

UNIT = """
block unit(width, act=relu) {
    a: dense width act
    b: dense width
    r: add input b
}
"""


def spec(model: str, blocks: str = UNIT, tail: str = "loss mse\noptimizer adam\n") -> str:
    return f"{blocks}\nmodel m {{\n{model}\n}}\n{tail}"


def layers(text: str) -> list[tuple[str, str, tuple[str, ...]]]:
    program = nnspec.check(text)
    return [(layer.name, layer.op, layer.inputs) for layer in program.model.layers]


def codes(text: str) -> list[str]:
    program, diags, _ = check_source(text)
    assert program is None, "expected errors"
    return [d.code for d in diags if d.is_error]


def errors(text: str):
    _, diags, _ = check_source(text)
    return [d for d in diags if d.is_error]


# ------------------------------------------------------------------------ expansion

def test_a_use_expands_to_layers_named_after_it_and_later_lines_read_its_output() -> None:
    got = layers(spec("    input x[4]\n    r1: unit 4\n    dense 4 from r1\n    s: add r1 x\n    dense 1"))
    assert got == [
        ("r1.a", "dense", ("x",)), ("r1.b", "dense", ("r1.a",)), ("r1.r", "add", ("x", "r1.b")),
        ("dense_1", "dense", ("r1.r",)), ("s", "add", ("r1.r", "x")), ("dense_2", "dense", ("s",))]


def test_parameters_bind_by_position_and_name_and_are_substituted_with_defaults() -> None:
    program = nnspec.check(spec("    input x[4]\n    u: unit 4\n    v: unit width=4 act=tanh\n    dense 1"))
    by = {layer.name: layer for layer in program.model.layers}
    assert by["u.a"].params["units"] == 4 and by["u.a"].activation == "relu"
    assert by["v.a"].activation == "tanh" and by["v.b"].params["units"] == 4
    # a `let` constant passes through a parameter
    program = nnspec.check("let w = 4\n" + spec("    input x[4]\n    unit w\n    dense 1"))
    assert program.model.layers[0].name == "unit_1.a" and program.model.layers[0].params["units"] == 4


def test_repeat_chains_numbered_copies_each_reading_the_one_before() -> None:
    got = layers(spec("    input x[4]\n    s: unit 4 repeat=3\n    dense 1"))
    assert [n for n, _, _ in got][:9] == [f"s.{k}.{n}" for k in (1, 2, 3) for n in "abr"]
    assert got[3] == ("s.2.a", "dense", ("s.1.r",)) and got[5] == ("s.2.r", "add", ("s.1.r", "s.2.b"))
    assert got[-1] == ("dense_1", "dense", ("s.3.r",))


def test_a_block_may_use_another_block_and_the_names_nest() -> None:
    blocks = UNIT + "\nblock pair(w) {\n    first: unit w\n    unit w act=tanh\n}\n"
    got = layers(spec("    input x[4]\n    p: pair 4\n    dense 1", blocks))
    assert [n for n, _, _ in got] == ["p.first.a", "p.first.b", "p.first.r", "p.unit_1.a", "p.unit_1.b",
                                      "p.unit_1.r", "dense_1"]
    assert got[3][2] == ("p.first.r",)


def test_summary_shows_each_instance_as_a_row_with_its_layers_under_it() -> None:
    text = summary(nnspec.check(spec("    input x[4]\n    r1: unit 4\n    s: unit 4 repeat=2\n    dense 1")))
    lines = text.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("r1 (unit)"))
    assert lines[row].split()[2:] == ["(4,)"]  # no counts on the instance's own row: they are under it
    assert lines[row + 1].startswith("  r1.a (dense relu)") and lines[row + 3].startswith("  r1.r (add)")
    assert any(line.startswith("s (unit ×2)") for line in lines)
    assert any(line.startswith("  s.2.r (add)") for line in lines)
    assert "Total params: 125 " in text  # 3 instances × 2 dense 4→4 (20 each) + dense 4→1 (5)


def test_a_spec_with_a_block_lowers_exactly_as_the_same_spec_written_out() -> None:
    import jax
    from nnspec.lower import lower
    with_block = spec("    input x[4]\n    s: unit 4 repeat=2\n    dense 1 sigmoid")
    by_hand = """
model m {
    input x[4]
    a1: dense 4 relu
    b1: dense 4
    r1: add x b1
    a2: dense 4 relu
    b2: dense 4
    r2: add r1 b2
    dense 1 sigmoid
}
loss mse
optimizer adam
"""
    models = [lower(nnspec.check(t)) for t in (with_block, by_hand)]
    params = [m.init(jax.random.key(3)) for m in models]
    for la, lb in zip(models[0].layers, models[1].layers, strict=True):
        pa, pb = params[0].get(la.layer.name, {}), params[1].get(lb.layer.name, {})
        assert la.layer.op == lb.layer.op and pa.keys() == pb.keys()
        for k in pa:
            assert np.array_equal(pa[k], pb[k])
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    ya, yb = (m.apply(p, x) for m, p in zip(models, params))
    assert np.array_equal(np.asarray(ya), np.asarray(yb))


# -------------------------------------------------------------------------- errors

def test_unknown_block_suggests_the_nearest_block_or_layer() -> None:
    [d] = errors(spec("    input x[4]\n    unti 4\n    dense 1"))
    assert d.code == "E101" and d.help == "did you mean `unit`?"


def test_arguments_are_bound_as_strictly_as_a_layers() -> None:
    assert codes(spec("    input x[4]\n    unit\n    dense 1")) == ["E106"]
    assert codes(spec("    input x[4]\n    unit 4 widht=3\n    dense 1")) == ["E102"]
    assert errors(spec("    input x[4]\n    unit 4 widht=3\n    dense 1"))[0].help == "did you mean `width`?"
    assert codes(spec("    input x[4]\n    unit 4 width=4\n    dense 1")) == ["E105"]
    assert codes(spec("    input x[4]\n    unit 4 relu 4\n    dense 1")) == ["E107"]
    assert codes(spec("    input x[4]\n    unit 4 repeat=0\n    dense 1")) == ["E104"]
    assert codes(spec("    input x[4]\n    unit 4 repeat=1.5\n    dense 1")) == ["E103"]


def test_a_bad_value_passed_in_is_underlined_at_the_use_and_labelled_at_the_blocks_line() -> None:
    text = spec("    input x[4]\n    u: unit -4\n    dense 1")
    [d] = errors(text)
    assert d.code == "E104" and text[d.primary_span.start:d.primary_span.end] == "-4"
    # `width` reaches two lines of the block, which both take it: one error, both lines labelled
    assert [lab.message for lab in d.labels if not lab.primary] == ["given to this line of `unit`"] * 2


def test_an_error_inside_a_block_points_at_its_line_and_at_the_use_once_for_every_repeat() -> None:
    text = spec("    input x[4]\n    u: unit 4 repeat=3\n    dense 1", UNIT.replace("dense width\n", "dense width init=glorot\n"))
    [d] = errors(text)
    assert d.code == "E101" and text[d.primary_span.start:d.primary_span.end] == "glorot"
    [use] = [lab for lab in d.labels if not lab.primary]
    assert use.message == "in this use of `unit`" and text[use.span.start:use.span.end] == "u: unit 4 repeat=3"


def test_a_shape_error_inside_a_block_names_the_instance_nodes() -> None:
    [d] = errors(spec("    input x[4]\n    u: unit 8\n    dense 1"))
    assert d.code == "E252" and "(4,) and (8,)" in d.message
    assert "in this use of `unit`" in [lab.message for lab in d.labels]


def test_a_repeated_block_must_keep_its_shape() -> None:
    text = spec("    input x[4]\n    g: grow repeat=3\n    dense 1", "block grow {\n    dense 8 relu\n}\n")
    [d] = errors(text)
    assert d.code == "E263" and d.message == "`grow` turns (4,) into (8,), so it cannot be repeated"
    assert text[d.primary_span.start:d.primary_span.end] == "repeat=3"
    # once: not also for the later repeats, and used once it is fine
    assert nnspec.check(text.replace(" repeat=3", ""))


def test_definition_errors_are_reported_once_at_the_definition() -> None:
    def one(blocks: str) -> list[str]:
        return codes(spec("    input x[4]\n    dense 1", blocks))
    assert one("block dense(w) {\n    relu\n}\n") == ["E260"]
    assert one("block b {\n    relu\n}\nblock b {\n    relu\n}\n") == ["E260"]
    assert one("block b(w, w) {\n    relu\n}\n") == ["E262"]
    assert one("block b(repeat) {\n    relu\n}\n") == ["E262"]
    assert one("block b(3) {\n    relu\n}\n") == ["E262"]
    assert one("block b {\n}\n") == ["E262"]
    assert one("block b {\n    input y[2]\n    relu\n}\n") == ["E262"]
    assert one("block b {\n    dense 3 from h\n}\n") == ["E250"]
    assert one("block b {\n    dense 3 from h\n    h: relu\n}\n") == ["E251"]
    assert one("block b {\n    desne 3\n}\n") == ["E101"]
    assert one("block b {\n    dense sweep(2, 4)\n}\n") == ["E262"]  # a sweep is written at the use
    assert codes("model m(w) {\n    input x[4]\n    dense 1\n}\n") == ["E262"]  # only a block has parameters


def test_blocks_that_use_each_other_are_refused_and_their_uses_say_nothing_more() -> None:
    blocks = "block a(w) {\n    b w\n}\n\nblock b(w) {\n    dense w\n    a w\n}\n\nblock c {\n    c\n}\n"
    ds = errors(spec("    input x[4]\n    a 3\n    c\n    dense 1", blocks))
    assert [d.code for d in ds] == ["E261", "E261"]
    assert ds[0].message == "blocks `a` and `b` use each other in a cycle"
    assert ds[1].message == "block `c` uses itself"


def test_a_block_inside_a_block_carries_every_use_to_an_error() -> None:
    blocks = "block inner(w) {\n    dropout 1.5\n}\n\nblock outer(w) {\n    inner w\n}\n"
    [d] = errors(spec("    input x[4]\n    o: outer 4\n    p: outer 4\n    dense 1", blocks))
    assert d.code == "E104"
    assert [lab.message for lab in d.labels if not lab.primary] == [
        "in this use of `inner`", "in this use of `outer`", "in this use of `outer`"]


def test_the_model_graph_around_uses_is_checked_as_for_layers() -> None:
    assert codes(spec("    input x[4]\n    unit 4 from y\n    dense 1")) == ["E250"]
    assert codes(spec("    input x[4]\n    u: unit 4\n    u: unit 4\n    dense 1")) == ["E110"]
    assert codes(spec("    input x[4]\n    u: unit 4\n    u: dense 4\n    dense 1")) == ["E110"]
    assert codes(spec("    input x[4]\n    u: dense 4\n    u: unit 4\n    dense 1")) == ["E110"]
    _, diags, _ = check_source(spec("    input x[4]\n    u: unit 4\n    dense 1 from x"))
    assert [(d.code, d.message) for d in diags] == [("W007", "`u` is computed but never used")]


# ---------------------------------------------------------------- text, IR, checkpoints

def test_fmt_prints_blocks_canonically_idempotently_and_keeps_comments() -> None:
    messy = """# top
model m {
    input x[4]
    r: unit  4   # the unit
    dense 1
}
block unit( width,act = relu ) {   # header
    # the first layer
    a: dense width act
    b: dense width
    r: add input b
    # before the brace
}
let k = 2
loss mse
optimizer adam
"""
    out = format_source(messy)
    assert out == """let k = 2

block unit(width, act=relu) {  # header
    # the first layer
    a: dense width act
    b: dense width
    r: add input b
    # before the brace
}

# top
model m {
    input x[4]
    r: unit 4  # the unit
    dense 1
}

loss mse
optimizer adam
"""
    assert format_source(out) == out and parse(out) == parse(messy)


def test_ir_json_round_trips_blocks_and_checks_what_they_read() -> None:
    s = parse(spec("    input x[4]\n    unit 4\n    dense 1"))
    assert ir.from_json(ir.to_json(s)) == s
    data = json.loads(ir.to_json(s))
    data["blocks"][0]["nodes"][0]["inputs"] = ["nowhere"]
    with pytest.raises(ir.IRFormatError, match=r"spec.blocks\[0\].nodes\[0\].inputs\[0\]"):
        ir.from_data(data)
    # a spec without blocks keeps its fingerprint: runs trained before blocks still resume
    plain = parse("model m {\n    input x[2]\n    dense 1\n}\n")
    assert ir.fingerprint(plain) == ir.fingerprint(ir.from_data({k: v for k, v in json.loads(ir.to_json(plain)).items()
                                                                 if k != "blocks"}))


SMALL = """
block unit(width) {
    h: dense width relu
    r: add input h
}

model m {
    input x[2]
    dense 8 relu
    s: unit 8 repeat=2
    dense 3 softmax
}

loss categorical_crossentropy
optimizer adam lr=0.05

train {
    data builtin("blobs", n=120, classes=3, spread=2.5)
    split val=0.25 test=0.25
    batch 16
    epochs 4
    metrics accuracy
    seed 0
}
"""


@pytest.mark.slow
def test_a_spec_with_blocks_trains_resumes_evaluates_and_predicts(tmp_path: Path, monkeypatch) -> None:
    from nnspec import checkpoint
    from nnspec.fit import fit
    monkeypatch.setenv("NO_COLOR", "1")
    path = tmp_path / "m.nn"
    path.write_text(SMALL)
    run = tmp_path / "run"
    code, _, err = run_cli("train", path, "--out", run, "-q", "--checkpoint-every", "0")
    assert code == 0, err
    meta = checkpoint.read_meta(run / "checkpoint.npz")
    assert meta["epoch"] == 4
    # interrupted after 2 epochs, then resumed: the same weights as the straight run
    part = tmp_path / "part"
    fit(nnspec.check(SMALL), out=part, stop_after=2)
    code, _, err = run_cli("train", "--resume", part, "-q")
    assert code == 0, err
    a, b = np.load(run / "checkpoint.npz"), np.load(part / "checkpoint.npz")
    finals = [k for k in a.files if k.startswith("final_params/")]
    assert finals and all(np.array_equal(a[k], b[k]) for k in finals)
    code, out, err = run_cli("eval", path, "--run", run)
    assert code == 0 and "accuracy" in out, err
    rows = tmp_path / "x.csv"
    rows.write_text("0.5,1.0\n-2,3\n")
    code, out, err = run_cli("predict", path, "--run", run, "--input", rows, "--no-header")
    assert code == 0, err
    assert len([line for line in out.splitlines() if line.strip()]) >= 2
    # a changed block is another model: eval refuses the run
    other = tmp_path / "other.nn"
    other.write_text(SMALL.replace("dense width relu", "dense width tanh"))
    code, _, err = run_cli("eval", other, "--run", run)
    assert code != 0 and "E405" in err


def test_unknown_names_raise_a_located_error_not_a_traceback() -> None:
    with pytest.raises(NNSpecError):
        nnspec.check(spec("    input x[4]\n    unit 4 repeat=k\n    dense 1"))


def test_a_sweep_passed_to_a_block_is_an_axis_named_after_its_parameter() -> None:
    program = nnspec.check(spec("    input x[4]\n    u: wide sweep(4, 8)\n    dense 1", "block wide(width) {\n    dense width relu\n}\n"))
    assert [a.name for a in program.sweep.axes] == ["u.width"]
    assert [p.model.layers[0].params["units"] for p in program.sweep.programs] == [4, 8]


def test_a_loss_error_about_an_output_inside_a_block_is_labelled_at_the_use() -> None:
    text = spec("    input x[4]\n    dense 8 relu\n    h: head 3", "block head(k) {\n    dense k sigmoid\n}\n",
                "loss categorical_crossentropy\noptimizer adam\n")
    [d] = errors(text)
    assert d.code == "E302" and text[d.primary_span.start:d.primary_span.end] == "dense k sigmoid"
    assert ("h: head 3", "in this use of `head`") in [(text[lab.span.start:lab.span.end], lab.message)
                                                      for lab in d.labels]
