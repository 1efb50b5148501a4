"""Merges and embeddings: the rule side (parameters, shape rules), pure Python.

A merge row (`attrs["merge"]`) reads two or more nodes, named by position (`add h1 h2`),
and its shape rule is `merge_shape(params, [shape, ...])`, one shape per input in the
order written, raising ShapeError with `arg` set to `"input:I"` for the I-th input that
does not fit. Its `out_shape(params, None)` is None: nothing is known without the inputs.
A row with `inputs` reads exactly that many (`sample mean log_var`).

`embedding` (`attrs["tokens"]`) is the one layer that reads an `int` token input; its
`vocab` is filled in by the checker from that input when the line does not give it.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from nnspec.layers.base import Shape, ShapeError, show_shape
from nnspec.params import ArgError, Entry, Float, Int, NpyFile, P, Symbol


def _identical(op: str) -> Any:
    def merge_shape(p: Mapping[str, Any], shapes: Sequence[Shape]) -> Shape:
        first = shapes[0]
        for i, s in enumerate(shapes[1:], 1):
            if s != first:
                how = (f"make the last axis {first[-1]} in every input" if len(s) == len(first) and s[:-1] == first[:-1]
                       else "give every input the same shape")
                raise ShapeError("E252", f"`{op}` needs inputs of one shape, found {show_shape(first)} "
                                         f"and {show_shape(s)}",
                                 f"`{op}` combines element by element: {how}, or join them with `concat`",
                                 arg=f"input:{i}")
        return first
    return merge_shape


def _axes(n: int) -> str:
    return "1 axis" if n == 1 else f"{n} axes"


def _concat_shape(p: Mapping[str, Any], shapes: Sequence[Shape]) -> Shape:
    first = shapes[0]
    rank = len(first)
    axis = p["axis"]
    if not -rank <= axis < rank:
        raise ShapeError("E252", f"`concat` along axis {axis}, but its inputs have {_axes(rank)}",
                         f"an input of shape {show_shape(first)} has axes {-rank} to {rank - 1}: "
                         f"leave `axis` out to join along the last", arg="axis")
    ax = axis % rank
    for i, s in enumerate(shapes[1:], 1):
        if len(s) != rank:
            raise ShapeError("E252", f"`concat` joins inputs with as many axes each, found {show_shape(first)} "
                                     f"({_axes(rank)}) and {show_shape(s)} ({_axes(len(s))})",
                             "`flatten` each input of several axes first, or `reshape` one to the other's rank",
                             arg=f"input:{i}")
        other = [k for k, (a, b) in enumerate(zip(first, s)) if a != b and k != ax]
        if other:
            k = other[0]
            raise ShapeError("E252", f"`concat` along axis {axis} needs shapes equal in every other axis, "
                                     f"found {show_shape(first)} and {show_shape(s)}",
                             f"only the joined axis may differ, but axis {k} is {first[k]} in one and {s[k]} in "
                             "the other: reshape or project an input first (`dense` to change a flat width, "
                             "`padding=same` to keep a convolution's size)", arg=f"input:{i}")
    return tuple(sum(s[ax] for s in shapes) if k == ax else d for k, d in enumerate(first))


def _sample_shape(p: Mapping[str, Any], shapes: Sequence[Shape]) -> Shape:
    mean, log_var = shapes
    if log_var != mean:
        raise ShapeError("E258", f"`sample` needs a mean and a log-variance of one shape, found {show_shape(mean)} "
                                 f"and {show_shape(log_var)}",
                         "each latent unit has a mean and a log-variance: give both layers as many units, "
                         "as in `mean: dense 2` and `log_var: dense 2`", arg="input:1")
    return mean


def _none(p: Mapping[str, Any], in_shape: Shape | None) -> Shape | None:
    return None


def _embedding_shapes(p: Mapping[str, Any], in_shape: Shape) -> dict[str, Shape]:
    # named `w`, as the weights that penalties and weight decay reach
    return {"w": (p["vocab"], p["dim"])}


def _embedding_check(p: Mapping[str, Any], given: set[str]) -> None:
    if p["weights"] is not None and "init" in given:
        raise ArgError("E108", "both `weights` and `init` given", "the file's vectors replace the initializer: remove one")


LAYERS: list[Entry] = [
    Entry("add", doc="element-wise sum of two or more inputs of one shape",
          attrs={"merge": True, "merge_shape": _identical("add"), "out_shape": _none,
                 "examples": [((4,), "add x x"), ((2, 3), "add x x x")]}),
    Entry("multiply", doc="element-wise product of two or more inputs of one shape",
          attrs={"merge": True, "merge_shape": _identical("multiply"), "out_shape": _none,
                 "examples": [((4,), "multiply x x")]}),
    Entry("average", doc="element-wise mean of two or more inputs of one shape",
          attrs={"merge": True, "merge_shape": _identical("average"), "out_shape": _none,
                 "examples": [((4,), "average x x"), ((2, 2), "average x x x")]}),
    Entry("concat", (P("axis", Int(), -1, "the axis of one example to join along: `-1`, the last, "
                                          "or 0 for the first"),),
          doc="joins two or more inputs along one axis; the others must agree",
          attrs={"merge": True, "merge_shape": _concat_shape, "out_shape": _none,
                 "examples": [((4,), "concat x x"), ((2, 3), "concat x x axis=0"), ((2, 3), "concat x x x")]}),
    # the reparameterization trick of a variational autoencoder; `inputs` fixes the count
    Entry("sample", (P("beta", Float(ge=0), 1.0, "the weight of this layer's KL divergence in the loss "
                                                 "(β of a β-VAE; 0 leaves it out)"),),
          doc="z = mean + exp(log_var / 2)·ε, ε ~ N(0, 1), in training (z = mean otherwise), adding "
              "β·KL(N(mean, exp(log_var)) ‖ N(0, 1)) to each example's loss",
          attrs={"merge": True, "inputs": 2, "merge_shape": _sample_shape, "out_shape": _none,
                 "examples": [((4,), "sample x x"), ((2, 3), "sample x x beta=0.5")]}),
    Entry("embedding", (
        P("dim", Int(min=1), required=True, positional=True, doc="length of each token's vector"),
        P("vocab", Int(min=1), None, "number of token ids (0..vocab-1); by default the `int` input's `vocab`"),
        P("padding", Int(min=0), None, "a token id whose vector is all zeros and receives no gradient"),
        P("init", Symbol("initializer"), "normal", "how the vectors start"),
        P("weights", NpyFile(), None, "a `.npy` file of vocab rows of dim numbers that the vectors start as "
                                      "(pretrained vectors such as GloVe), relative to the spec's folder"),
        P("l1", Float(ge=0), 0.0, "L1 penalty on this layer's vectors"),
        P("l2", Float(ge=0), 0.0, "L2 penalty on this layer's vectors"),
    ), doc="looks up a learned vector for each token id: shape (steps,) becomes (steps, dim)",
        attrs={"tokens": True, "param_shapes": _embedding_shapes, "check": _embedding_check,
               "out_shape": lambda p, s: None if s is None else (*s, p["dim"]),
               # (input shape, line, the input's type): the sweep declares `input x[...] int vocab=10`
               "examples": [((5,), "embedding 3", "int vocab=10"),
                            ((2, 4), "embedding 2 vocab=12 padding=0", "int vocab=10")]}),
]
