"""Estimated FLOPs per example (the summary's `FLOPs` column): each layer family's rule
against its hand formula, every registry row's rule on its own examples, the summary's
column and total, and dense and conv2d against XLA's own cost analysis."""

from __future__ import annotations

import math

import pytest

import nnspec
from nnspec.layers import LAYERS, flops
from nnspec.summary import show_flops, summary

CASES = [(e.name, c) for e in LAYERS for c in e.attrs.get("examples", ())]


def layer_of(in_shape: tuple[int, ...], line: str, kind: str = ""):
    dims = ", ".join(map(str, in_shape))
    return nnspec.check_text(f"model m {{\n    input x[{dims}] {kind}\n    l: {line}\n}}\n").model.layers[0]


@pytest.mark.parametrize("op,case", CASES, ids=[f"{c[1]}@{c[0]}" for _, c in CASES])
def test_every_row_counts_its_examples(op: str, case: tuple) -> None:
    layer = layer_of(*case)
    n = flops(op, layer.params, layer.in_shape, layer.out_shape)
    assert type(n) is int and n > 0
    assert layer.flops == n


@pytest.mark.parametrize("in_shape,line,want", [
    ((5,), "dense 3", 2 * 5 * 3),
    ((5,), "dense 4 relu bias=false", 2 * 5 * 4),
    ((4, 6), "dense 3 relu per_step", 2 * 4 * 6 * 3),          # the same product at each of 4 steps
    ((2, 3, 5), "dense 2 per_step", 2 * 2 * 3 * 5 * 2),
])
def test_dense_is_two_per_multiply_add(in_shape, line, want) -> None:
    assert layer_of(in_shape, line).flops == want


@pytest.mark.parametrize("in_shape,line,out_positions", [
    ((8, 8, 1), "conv2d 4 3 relu", 6 * 6),                      # valid: 8 - 3 + 1 per axis
    ((7, 9, 2), "conv2d 3 [2, 3] stride=[2, 1] padding=same", 4 * 9),
    ((9, 9, 3), "conv2d 2 3 dilation=2 bias=false", 5 * 5),
])
def test_conv2d_is_kernel_times_channels_times_positions(in_shape, line, out_positions) -> None:
    layer = layer_of(in_shape, line)
    kh, kw, cin, cout = layer.param_shapes["w"]
    assert math.prod(layer.out_shape[:2]) == out_positions
    assert layer.flops == 2 * kh * kw * cin * cout * out_positions


def test_other_families_follow_their_documented_rules() -> None:
    # depthwise: conv2d's count over cin groups; 6 × 6 positions, 3 channels in and out
    assert layer_of((8, 8, 3), "depthwise_conv2d 3").flops == 2 * 3 * 3 * 3 * 3 * 36 // 3
    assert layer_of((8, 8, 2), "max_pool2d").flops == 4 * (4 * 4 * 2)      # window 2 × 2 per output
    assert layer_of((4, 5, 2), "global_avg_pool").flops == 4 * 5 * 2
    assert layer_of((6, 3), "lstm 4").flops == 2 * 6 * (4 * 4 * (3 + 4))
    assert layer_of((6, 3), "gru 4 bidirectional=true").flops == 2 * 2 * 6 * (3 * 4 * (3 + 4))
    steps, d, h, k = 5, 8, 2, 4
    attention = 2 * steps * d * (3 * h * k) + 2 * steps**2 * h * k * 2 + 2 * steps * h * k * d
    assert layer_of((steps, d), "self_attention heads=2").flops == attention
    assert layer_of((steps, d), "transformer_encoder heads=2 ff=16").flops == \
        attention + 2 * 2 * steps * d * 16 + 12 * steps * d
    assert layer_of((4, 5), "layer_norm").flops == 5 * 20
    assert layer_of((2, 3), "relu").flops == 6
    assert layer_of((4,), "add x x").flops == 4                              # merges: one per output element


@pytest.mark.parametrize("n,text", [(0, "0"), (999, "999"), (1000, "1.0 K"), (4352, "4.4 K"),
                                    (999_950, "1.0 M"), (3_400_000, "3.4 M"), (2 * 10**24, "2.0 Y"),
                                    (10**40, "10^40")])
def test_show_flops(n: int, text: str) -> None:
    assert show_flops(n) == text


def test_summary_has_a_flops_column_and_total() -> None:
    program = nnspec.check_text("model m {\n    input x[64]\n    h: dense 32 relu\n    out: dense 10\n}\n")
    lines = summary(program).splitlines()
    assert lines[2].split() == ["Layer", "(type)", "Output", "shape", "Params", "FLOPs"]
    assert next(r for r in lines if r.startswith("h (")).split()[-2:] == ["4.1", "K"]   # 2·64·32 = 4,096
    assert next(r for r in lines if r.startswith("out (")).split()[-1] == "640"
    assert "Total FLOPs per example: 4,736 (4.7 K)" in lines
    assert program.model.flops == 4096 + 640


# --------------------------------------------------------------- against XLA's own count

def _xla_flops_per_example(in_shape: tuple[int, ...], line: str, batch: int = 8) -> float:
    jax = pytest.importorskip("jax")
    from nnspec.lower import lower
    dims = ", ".join(map(str, in_shape))
    model = lower(nnspec.check_text(f"model m {{\n    input x[{dims}]\n    l: {line}\n}}\n"))
    params = model.init(jax.random.key(0))
    x = jax.numpy.zeros((batch, *in_shape))
    try:
        cost = jax.jit(lambda x: model.apply(params, x)).lower(x).compile().cost_analysis()
    except Exception as exc:  # a backend without cost analysis
        pytest.skip(f"no cost analysis here: {exc}")
    if isinstance(cost, (list, tuple)):  # older JAX: one dict per device
        cost = cost[0] if cost else None
    if not cost or "flops" not in cost or cost["flops"] <= 0:
        pytest.skip("XLA's cost analysis gives no `flops` here")
    return cost["flops"] / batch


@pytest.mark.parametrize("in_shape,line", [((64,), "dense 32"), ((64,), "dense 16 relu"), ((4, 6), "dense 3 per_step"),
                                           ((8, 8, 1), "conv2d 4 3 relu"),
                                           ((12, 12, 3), "conv2d 8 3 stride=2 padding=same")])
def test_within_a_factor_of_two_of_xla(in_shape, line) -> None:
    ours = layer_of(in_shape, line).flops
    theirs = _xla_flops_per_example(in_shape, line)
    assert theirs / 2 <= ours <= theirs * 2, (ours, theirs)
