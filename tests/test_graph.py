"""Models as graphs: `from NAME`, merges (`add`, `concat`, `multiply`, `average`), several
inputs, token inputs and `embedding`; checked with located errors, lowered to JAX that
equals the same computation written by hand, printed back by `fmt`, kept by the IR's JSON."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnspec
from nnspec import ir
from nnspec.check import check_source
from nnspec.diagnostics import NNSpecError
from nnspec.format import format_source
from nnspec.lower import lower
from nnspec.summary import summary
from nnspec.nn.base import keep_mask

KEY = jax.random.key(0)

RESIDUAL = """model residual {
    input x[4]
    h: dense 4 relu
    r: add x h
    out: dense 2 from r
}
"""

BRANCHES = """model branches {
    input x[3]
    a: dense 5 tanh
    b: dense 2 relu from x
    c: concat a b
    m: multiply c c
    v: average c m
    out: dense 1 sigmoid
}
"""


def errors(text: str) -> list[tuple[str, str, str, str]]:
    """(code, message, the text under the primary span, help) of every diagnostic."""
    program, diags, src = check_source(text, "t.nn")
    assert program is None
    return [(d.code, d.message, text[d.primary_span.start:d.primary_span.end], d.help or "") for d in diags]


def x_batch(n: int, width: int, seed: int = 0) -> jax.Array:
    return jnp.asarray(np.random.default_rng(seed).normal(size=(n, width)).astype(np.float32))


# ------------------------------------------------------------------------- lowering

def test_residual_model_equals_the_computation_by_hand() -> None:
    program = nnspec.check_text(RESIDUAL)
    assert [(layer.name, layer.inputs) for layer in program.model.layers] == [
        ("h", ("x",)), ("r", ("x", "h")), ("out", ("r",))]
    model = lower(program)
    params = model.init(KEY)
    x = x_batch(6, 4)
    h = jax.nn.relu(x @ params["h"]["w"] + params["h"]["b"])
    want = (x + h) @ params["out"]["w"] + params["out"]["b"]
    np.testing.assert_allclose(np.asarray(model.apply(params, x)), np.asarray(want), rtol=1e-6, atol=1e-6)


def test_branches_merged_equal_the_computation_by_hand() -> None:
    program = nnspec.check_text(BRANCHES)
    shapes = {layer.name: layer.out_shape for layer in program.model.layers}
    assert shapes == {"a": (5,), "b": (2,), "c": (7,), "m": (7,), "v": (7,), "out": (1,)}
    model = lower(program)
    params = model.init(KEY)
    x = x_batch(5, 3)
    a = jnp.tanh(x @ params["a"]["w"] + params["a"]["b"])
    b = jax.nn.relu(x @ params["b"]["w"] + params["b"]["b"])
    c = jnp.concatenate([a, b], axis=-1)
    v = (c + c * c) / 2
    want = jax.nn.sigmoid(v @ params["out"]["w"] + params["out"]["b"])
    np.testing.assert_allclose(np.asarray(model.apply(params, x)), np.asarray(want), rtol=1e-6, atol=1e-6)
    # one example at a time, and under vmap, as every layer is written for one example
    one = model.apply(params, x[0])
    np.testing.assert_allclose(np.asarray(one), np.asarray(want[0]), rtol=1e-6, atol=1e-6)
    mapped = jax.vmap(lambda xi: model.apply(params, xi))(x)
    np.testing.assert_allclose(np.asarray(mapped), np.asarray(want), rtol=1e-6, atol=1e-6)


def test_concat_along_the_first_axis_of_an_example() -> None:
    model = lower(nnspec.check_text("model m {\n    input g[2, 3]\n    c: concat g g g axis=0\n}\n"))
    assert model.program.model.layers[0].out_shape == (6, 3)
    g = jnp.arange(2 * 2 * 3, dtype=jnp.float32).reshape(2, 2, 3)  # a batch of two examples
    got = model.apply({}, g)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(jnp.concatenate([g, g, g], axis=1)))


def test_trace_gives_every_node_in_order_and_apply_the_last() -> None:
    model = lower(nnspec.check_text(BRANCHES))
    params = model.init(KEY)
    x = x_batch(4, 3)
    values = model.trace(params, x)
    assert list(values) == ["x", "a", "b", "c", "m", "v", "out"]
    np.testing.assert_array_equal(np.asarray(values["c"]), np.asarray(jnp.concatenate([values["a"], values["b"]], -1)))
    np.testing.assert_array_equal(np.asarray(values["out"]), np.asarray(model.apply(params, x)))


def test_a_chain_draws_one_key_per_layer_in_order_as_before() -> None:
    """The dropout masks of a chain come from `split(key, layers)[i]`, as they always have."""
    model = lower(nnspec.check_text("model m {\n    input x[6]\n    dropout 0.5\n    d: dense 3\n    dropout 0.5\n}\n"))
    params = model.init(KEY)
    x = jnp.ones((2, 6))
    k0, _, k2 = jax.random.split(KEY, 3)
    keep0 = keep_mask(k0, x.shape, 0.5)
    h = jnp.where(keep0, x / 0.5, 0.0) @ params["d"]["w"] + params["d"]["b"]
    keep2 = keep_mask(k2, h.shape, 0.5)
    want = jnp.where(keep2, h / 0.5, 0.0)
    got = model.apply(params, x, key=KEY, train=True)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-6)


def test_several_inputs_take_a_dict_or_a_tuple_in_input_order() -> None:
    text = ("model m {\n    input a[2]\n    input b[3]\n    pa: dense 3 from a\n"
            "    s: add pa b\n    out: dense 1\n}\n")
    model = lower(nnspec.check_text(text))
    params = model.init(KEY)
    a, b = x_batch(4, 2), x_batch(4, 3, seed=1)
    pa = a @ params["pa"]["w"] + params["pa"]["b"]
    want = (pa + b) @ params["out"]["w"] + params["out"]["b"]
    np.testing.assert_allclose(np.asarray(model.apply(params, {"a": a, "b": b})), np.asarray(want), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(model.apply(params, (a, b))), np.asarray(want), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="no value for input `b`"):
        model.apply(params, {"a": a})


def test_several_inputs_train_from_one_array_each_not_from_a_builtin_dataset() -> None:
    text = ("model m {\n    input a[2]\n    input b[2]\n    c: concat a b\n    dense 1 sigmoid\n}\n"
            "loss binary_crossentropy\noptimizer adam\ntrain {\n    data builtin(\"moons\")\n}\n")
    assert errors(text) == [("E256", "a model with several inputs trains from data with one array for each, but "
                                     "dataset `moons` has one input and one target per example", 'data builtin("moons")',
                             'save the arrays in an `.npz` archive named after them (`a`, `b`, `y`) and read it '
                             'with `npz("PATH")`')]
    assert check_source(text.replace('builtin("moons")', 'npz("ab.npz")'), "t.nn")[0] is not None


# ---------------------------------------------------------------------- the checker

def test_a_name_read_before_its_line_is_an_error_with_help() -> None:
    text = "model m {\n    input x[4]\n    a: dense 8 from b\n    b: dense 8 from x\n    out: add a b\n}\n"
    assert errors(text) == [("E251", "`b` is read before it is defined", "b",
                             "move the line that defines `b` above this one: a model runs top to bottom")]
    program, diags, _ = check_source(text, "t.nn")
    assert diags[0].primary_span.start == text.index("from b") + 5
    assert [(text[lab.span.start:lab.span.end], lab.message) for lab in diags[0].labels if not lab.primary] == [
        ("b: dense 8 from x", "defined here, below")]


def test_a_layer_cannot_read_itself() -> None:
    text = "model m {\n    input x[4]\n    c: dense 8 from c\n}\n"
    assert errors(text) == [("E251", "`c` reads itself", "c",
                             "a layer reads an input or a layer above it: name one of those")]


def test_unknown_names_suggest_the_nearest() -> None:
    text = ("model m {\n    input x[4]\n    hidden: dense 8 relu\n    out: dense 1 from hiden\n}\n")
    assert errors(text) == [("E250", "unknown node `hiden`", "hiden", "did you mean `hidden`?")]
    text = "model m {\n    input x[4]\n    h: dense 4\n    r: add h zzz\n}\n"
    assert errors(text) == [("E250", "unknown node `zzz`", "zzz", "the model defines `x` and `h` above this line")]


def test_merged_shapes_that_disagree_point_at_the_input_and_show_both() -> None:
    text = "model m {\n    input x[4]\n    wide: dense 8\n    narrow: dense 4 from x\n    s: add wide narrow\n}\n"
    program, diags, _ = check_source(text, "t.nn")
    assert program is None and [d.code for d in diags] == ["E252"]
    d = diags[0]
    assert d.message == "`add` needs inputs of one shape, found (8,) and (4,)"
    assert text[d.primary_span.start:d.primary_span.end] == "narrow"
    assert d.primary_span.start == text.index("wide narrow") + 5
    assert [(text[lab.span.start:lab.span.end], lab.message) for lab in d.labels] == [
        ("narrow", "`narrow` has shape (4,)"), ("wide", "`wide` has shape (8,)")]
    text = "model m {\n    input g[2, 3]\n    input h[3, 3]\n    c: concat g h axis=1\n}\n"
    assert errors(text) == [("E252", "`concat` along axis 1 needs shapes equal in every other axis, found (2, 3) "
                             "and (3, 3)", "h", "only the joined axis may differ, but axis 0 is 2 in one and 3 in "
                             "the other: reshape or project an input first (`dense` to change a flat width, "
                             "`padding=same` to keep a convolution's size)")]


def test_merge_arity_and_from_mistakes() -> None:
    assert errors("model m {\n    input x[4]\n    b: add x\n}\n") == [
        ("E253", "`add` merges two or more nodes, but names only `x`", "b: add x",
         "name the nodes it merges, as in `add h1 h2`")]
    assert [e[:3] for e in errors("model m {\n    input x[4]\n    c: dense 8 from\n}\n")] == [
        ("E253", "expected a name after `from`", "from")]
    assert [e[:3] for e in errors("model m {\n    input x[4]\n    d: concat x from x\n}\n")] == [
        ("E253", "`concat` names its inputs; it does not take `from`", "from")]


def test_unused_nodes_warn_and_the_output_is_the_last_line() -> None:
    text = ("model m {\n    input x[4]\n    input extra[2]\n    h: dense 8 from x\n    side: dense 3 from x\n"
            "    out: dense 1 from h\n}\n")
    program, diags, _ = check_source(text, "t.nn")
    assert program is not None
    assert [(d.code, d.message, text[d.primary_span.start:d.primary_span.end]) for d in diags] == [
        ("W007", "input `extra` is never used", "input extra[2]"),
        ("W007", "`side` is computed but never used", "side: dense 3 from x")]
    assert program.model.output_shape == (1,)


def test_summary_says_what_a_graph_node_reads() -> None:
    table = summary(nnspec.check_text(RESIDUAL))
    lines = table.splitlines()
    assert lines[2].split() == ["Layer", "(type)", "Output", "shape", "Params", "FLOPs", "Reads"]
    # `out: dense 2 from r` reads the row above it: nothing to say
    assert next(line for line in lines if line.startswith("out (dense)")).split() == ["out", "(dense)", "(2,)", "10", "16"]
    row = next(line for line in lines if line.startswith("r (add)"))
    assert row.split() == ["r", "(add)", "(4,)", "0", "4", "x,", "h"]
    chain = summary(nnspec.check_text("model m {\n    input x[2]\n    dense 1\n}\n"))
    assert "Reads" not in chain


# ------------------------------------------------------------------ text and JSON

GRAPH_TEXT = """model m {
    input a[4]
    input words[3] int vocab=20
    h: dense 4 relu from a  # a branch
    r: add a h
    e: embedding 2 padding=0 from words
    flatten
    c: concat r flatten_1 axis=-1
    out: dense 1 sigmoid
}
"""


def test_fmt_prints_the_graph_back_and_is_idempotent() -> None:
    assert format_source(GRAPH_TEXT) == GRAPH_TEXT
    sloppy = GRAPH_TEXT.replace("add a h", "add  a   h").replace("from a  #", "from a #")
    assert format_source(sloppy) == GRAPH_TEXT
    spec = nnspec.parse(GRAPH_TEXT)
    nodes = {n.name: n for n in spec.model.nodes}
    assert (nodes["h"].inputs, nodes["r"].inputs, nodes["c"].inputs) == (("a",), ("a", "h"), ("r", "flatten_1"))
    assert nodes["c"].args == (ir.Arg("axis", ir.Number(-1)),)
    assert spec.model.inputs[1].args == (ir.Arg(None, ir.Ref("int")), ir.Arg("vocab", ir.Number(20)))


def test_fmt_of_ir_without_spans_says_from_where_needed() -> None:
    spec = ir.Spec(model=ir.Model("m", (ir.Input("x", (ir.Number(2),)),), (
        ir.Node("a", "dense", ("x",), (ir.Arg(None, ir.Number(3)),), True),
        ir.Node("b", "dense", ("x",), (ir.Arg(None, ir.Number(3)),), True),
        ir.Node("s", "add", ("a", "b"), (), True))))
    from nnspec.format import format_spec
    text = format_spec(spec)
    assert text == ("model m {\n    input x[2]\n    a: dense 3\n    b: dense 3 from x\n    s: add a b\n}\n")
    assert nnspec.parse(text) == spec


def test_ir_json_round_trip_keeps_edges_and_input_types() -> None:
    spec = nnspec.parse(GRAPH_TEXT)
    back = ir.from_json(ir.to_json(spec))
    assert back == spec
    assert ir.to_data(back) == ir.to_data(spec)  # spans of the names read, and the input types, too
    assert [n.input_spans for n in back.model.nodes] == [n.input_spans for n in spec.model.nodes]
    # JSON has no text to point at: a name read before its node is refused by its path
    data = ir.to_data(spec)
    data["model"]["nodes"][1]["inputs"] = ["a", "out"]
    with pytest.raises(ir.IRFormatError) as exc:
        ir.from_data(data)
    assert str(exc.value) == "`spec.model.nodes[1].inputs[1]` names `out`, which is not an input or a layer above it"
    # a layer reading two nodes is well-formed IR: the checker says only a merge may (E253)
    data = ir.to_data(spec)
    data["model"]["nodes"][0]["inputs"] = ["a", "words"]
    with pytest.raises(NNSpecError) as err:
        nnspec.check(ir.from_data(data))
    assert [(d.code, d.message) for d in err.value.diagnostics] == [("E253", "`dense` reads one node, but names 2")]


def test_a_plain_input_hashes_as_before_inputs_had_types() -> None:
    """Checkpoints record the spec's fingerprint: an input without a type must not change it."""
    spec = nnspec.parse("model m {\n    input x[2]\n    dense 1\n}\n")
    data = ir.to_data(spec)
    assert data["model"]["inputs"][0]["args"] == []
    typed = nnspec.parse("model m {\n    input x[2] float\n    dense 1\n}\n")
    assert ir.fingerprint(typed) != ir.fingerprint(spec)
    import hashlib
    import json
    old = json.loads(json.dumps(data))
    del old["model"]["inputs"][0]["args"]
    del old["blocks"]  # nor may the `blocks` a spec without any has (issue 9)

    def strip(d):
        if isinstance(d, dict):
            return {k: strip(v) for k, v in d.items() if k not in ir._NOT_MEANING}
        return [strip(x) for x in d] if isinstance(d, list) else d
    want = hashlib.sha256(json.dumps(strip(old), sort_keys=True).encode()).hexdigest()[:16]
    assert ir.fingerprint(spec) == want


# --------------------------------------------------------------- tokens, embedding

EMBED = """model m {
    input t[4] int vocab=6
    e: embedding 3 padding=0
    flatten
    dense 1
}
"""


def test_embedding_looks_up_rows_and_zeroes_the_padding_id() -> None:
    model = lower(nnspec.check_text(EMBED))
    layer = model.program.model.layers[0]
    assert (layer.params["vocab"], layer.out_shape, dict(layer.param_shapes)) == (6, (4, 3), {"w": (6, 3)})
    params = model.init(KEY)
    table = params["e"]["w"]
    np.testing.assert_array_equal(np.asarray(table[0]), np.zeros(3, np.float32))  # the padding row starts at 0
    ids = jnp.array([[0, 2, 5, 0], [1, 1, 3, 4]])
    values = model.trace(params, ids)
    np.testing.assert_array_equal(np.asarray(values["e"][1]), np.asarray(table[jnp.array([1, 1, 3, 4])]))
    np.testing.assert_array_equal(np.asarray(values["e"][0, 1:3]), np.asarray(table[jnp.array([2, 5])]))
    # the padding id reads zeros even when its row is not zero, and its row gets no gradient
    moved = {**params, "e": {"w": table.at[0].set(7.0)}}
    np.testing.assert_array_equal(np.asarray(model.trace(moved, ids)["e"][0, 0]), np.zeros(3, np.float32))
    grad = jax.grad(lambda p: jnp.sum(model.apply(p, ids) ** 2))(moved)["e"]["w"]
    np.testing.assert_array_equal(np.asarray(grad[0]), np.zeros(3, np.float32))
    assert np.all(np.asarray(grad[jnp.array([1, 2, 3, 4, 5])]) != 0)


def test_an_embeddings_penalty_reaches_its_vectors() -> None:
    model = lower(nnspec.check_text(EMBED.replace("padding=0", "padding=0 l2=0.5")))
    params = model.init(KEY)
    table = params["e"]["w"]
    want = 0.5 * jnp.sum(table * table)
    np.testing.assert_allclose(float(model.penalty(params)), float(want), rtol=1e-6)


def test_embedding_takes_its_vocabulary_from_the_line_or_the_input() -> None:
    program = nnspec.check_text("model m {\n    input t[2] int\n    embedding 3 vocab=9\n}\n")
    assert program.model.layers[0].param_shapes == {"w": (9, 3)}
    assert program.model.input_types[0].dtype == "int32"
    assert errors("model m {\n    input t[2] int\n    embedding 3\n}\n") == [
        ("E255", "`embedding` needs the vocabulary size", "embedding 3",
         "give it on the input, `input t[...] int vocab=N`, or here, `embedding DIM vocab=N`")]


def test_token_ids_flow_only_into_embedding() -> None:
    text = "model m {\n    input t[4] int vocab=5\n    dense 2\n}\n"
    program, diags, _ = check_source(text, "t.nn")
    assert [(d.code, d.message) for d in diags] == [("E254", "`dense` cannot read the token ids of `t`")]
    assert [(text[lab.span.start:lab.span.end], lab.message) for lab in diags[0].labels if not lab.primary] == [
        ("input t[4] int vocab=5", "an `int` input")]
    assert errors("model m {\n    input x[4]\n    embedding 2\n}\n")[0][:2] == (
        "E254", "`embedding` reads token ids, but `x` is an input of numbers")


def _token_spec(tmp_path: Path, rows: list[str]) -> Path:
    (tmp_path / "tokens.csv").write_text("t1,t2,t3,y\n" + "".join(r + "\n" for r in rows), encoding="utf-8")
    spec = tmp_path / "tokens.nn"
    spec.write_text("model m {\n    input t[3] int vocab=10\n    embedding 2\n    flatten\n    dense 1 sigmoid\n}\n"
                    "loss binary_crossentropy\noptimizer adam\n"
                    "train {\n    data csv(\"tokens.csv\", target=\"y\")\n    batch 2\n    epochs 1\n}\n",
                    encoding="utf-8")
    return spec


@pytest.mark.parametrize("bad,shown", [("10", "10"), ("2.5", "2.5"), ("-1", "-1")])
def test_token_data_outside_the_vocabulary_is_refused_with_its_place(tmp_path: Path, bad: str, shown: str) -> None:
    from nnspec.prepare import prepare
    spec = _token_spec(tmp_path, ["1,2,3,1", f"4,5,{bad},0", "7,8,9,1"])
    program = nnspec.check_text(spec.read_text(encoding="utf-8"), filename=str(spec))
    with pytest.raises(NNSpecError) as exc:
        prepare(program)
    [d] = exc.value.diagnostics
    assert (d.code, d.message) == ("E403", f"input `t` holds token ids 0..9, but the data has the value {shown}")
    assert d.notes == (f"tokens.csv, line 3, column `t3`: `{shown}` is the first such value",)


def test_token_data_is_fed_as_int32_and_never_standardized(tmp_path: Path) -> None:
    from nnspec.prepare import prepare
    spec = _token_spec(tmp_path, ["1,2,3,1", "4,5,6,0", "7,8,9,1"])
    splits = prepare(nnspec.check_text(spec.read_text(encoding="utf-8"), filename=str(spec)))
    assert splits.standardizer is None and splits.train.x.dtype == np.int32
    assert sorted(splits.train.x.reshape(-1).tolist()) == list(range(1, 10))



@pytest.mark.parametrize("bad", ["2.5", "10", "-1"])
def test_predict_refuses_what_is_not_a_token_id(tmp_path: Path, capsys, bad: str) -> None:
    """predict reads token ids by training's rule: `2.5` is refused, never read as 2."""
    from nnspec.cli import main
    spec = _token_spec(tmp_path, ["1,2,3,1", "4,5,6,0", "7,8,9,1", "1,5,9,0"])
    assert main(["train", str(spec), "--out", str(tmp_path / "run"), "-q"]) == 0
    (tmp_path / "new.csv").write_text(f"t1,t2,t3\n1,2,3\n4,{bad},6\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["predict", str(spec), "--run", str(tmp_path / "run"), "--input", str(tmp_path / "new.csv")]) == 2
    err = capsys.readouterr().err
    assert f"example 2, column `t2`: `{bad}` is not a token id; input `t` takes whole numbers 0 to 9" in err
    (tmp_path / "ok.csv").write_text("t1,t2,t3\n1,2,3\n", encoding="utf-8")
    assert main(["predict", str(spec), "--run", str(tmp_path / "run"), "--input", str(tmp_path / "ok.csv")]) == 0
