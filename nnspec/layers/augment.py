"""Image augmentation: the rule side (parameters, shape rules), pure Python.

Keras 3's preprocessing layers `RandomFlip`, `RandomTranslation`, `RandomRotation`,
`RandomZoom` and `RandomContrast`: in training each example is flipped, shifted, turned,
zoomed or contrasted at random (a fresh draw per example and per step, from the
layer's key, as dropout draws its mask); at eval, predict and export the layer is the
identity. No weights; the output has the input's shape, an image (height, width,
channels). The JAX side is nnspec/nn/augment.py.
"""

from __future__ import annotations

from typing import Any, Mapping

from nnspec.layers.base import Shape
from nnspec.layers.conv import _spatial
from nnspec.params import ArgError, Choice, Entry, Float, ListOf, P

E_IMAGE = "E225"  # an augmentation layer's input is not an image (height, width, channels)

FLIP_MODES = ("horizontal_and_vertical", "horizontal", "vertical")
FILL_MODES = ("reflect", "nearest", "wrap", "constant")
INTERPOLATIONS = ("bilinear", "nearest")


def _image(op: str):
    def rule(p: Mapping[str, Any], in_shape: Shape | None) -> Shape | None:
        if in_shape is not None:
            _spatial(op, in_shape, 2, code=E_IMAGE)
        return in_shape
    return rule


def _fill_check(p: Mapping[str, Any], given: set[str]) -> None:
    if "fill_value" in given and p["fill_mode"] != "constant":
        raise ArgError("E108", f"`fill_value` given with `fill_mode={p['fill_mode']}`",
                       "`fill_value` is the value of `fill_mode=constant`: write both, or remove `fill_value`")


def _translation_check(p: Mapping[str, Any], given: set[str]) -> None:
    if p["height"] == 0 and p["width"] == 0:
        raise ArgError("E104", "`random_translation 0 0` moves nothing",
                       "give a fraction of the height or width above 0: `random_translation 0.1 0.1`")
    _fill_check(p, given)


def _rotation_check(p: Mapping[str, Any], given: set[str]) -> None:
    if p["factor"] == 0:
        raise ArgError("E104", "`random_rotation 0` turns nothing",
                       "give a fraction of a full turn above 0: `random_rotation 0.1` turns by up to ±36°")
    _fill_check(p, given)


def _zoom_check(p: Mapping[str, Any], given: set[str]) -> None:
    if p["height"] == 0 and not p["width"]:
        raise ArgError("E104", "`random_zoom 0` zooms nothing",
                       "give a fraction above 0: `random_zoom 0.2` zooms by 0.8 to 1.2")
    _fill_check(p, given)


def _contrast_check(p: Mapping[str, Any], given: set[str]) -> None:
    if p["factor"] == 0:
        raise ArgError("E104", "`random_contrast 0` changes nothing",
                       "give a factor above 0: `random_contrast 0.2` scales each image's contrast by 0.8 to 1.2")
    r = p["value_range"]
    if r is not None and (len(r) != 2 or r[0] >= r[1]):
        raise ArgError("E104", f"`value_range` must be [low, high] with low < high, found {list(r)}",
                       "write the range the pixels take: `value_range=[0, 255]` or `value_range=[0, 1]`")


_FRACTION = Float(ge=0, lt=1)
# how a layer that moves pixels reads between them and beyond the edge (Keras's names)
_RESAMPLE = (
    P("fill_mode", Choice(FILL_MODES), "reflect",
      "what fills the pixels moved in: `reflect` (the image mirrored at its edge), `nearest` (the edge "
      "pixel repeated), `wrap` (the opposite side), `constant` (`fill_value`)"),
    P("fill_value", Float(), 0.0, "the value of `fill_mode=constant`"),
    P("interpolation", Choice(INTERPOLATIONS), "bilinear",
      "`bilinear`: between pixels, the weighted mean of the four around; `nearest`: the nearest pixel"),
)

LAYERS: list[Entry] = [
    Entry("random_flip", (
        P("mode", Choice(FLIP_MODES), "horizontal_and_vertical",
          "`horizontal`: left-right, `vertical`: upside down, or each on its own draw", positional=True),
    ), doc="in training, flips each image left-right and/or upside down with probability 1/2 "
           "(Keras's RandomFlip); the identity when predicting",
        attrs={"out_shape": _image("random_flip"),
               "examples": [((8, 8, 1), "random_flip"), ((5, 7, 3), "random_flip horizontal"),
                            ((4, 6, 2), "random_flip vertical")]}),
    Entry("random_translation", (
        P("height", _FRACTION, required=True, positional=True,
          doc="largest vertical shift, a fraction of the height: each image moves by U(−height, height)·H rows"),
        P("width", _FRACTION, required=True, positional=True,
          doc="largest horizontal shift, a fraction of the width: U(−width, width)·W columns"),
        *_RESAMPLE,
    ), doc="in training, shifts each image by a random fraction of its height and width "
           "(Keras's RandomTranslation); the identity when predicting",
        attrs={"out_shape": _image("random_translation"), "check": _translation_check,
               "examples": [((8, 8, 1), "random_translation 0.1 0.1"),
                            ((6, 9, 3), "random_translation 0.2 0 fill_mode=nearest"),
                            ((5, 4, 2), "random_translation 0 0.5 fill_mode=constant fill_value=-1 "
                                        "interpolation=nearest"),
                            ((7, 7, 1), "random_translation 0.3 0.3 fill_mode=wrap")]}),
    Entry("random_contrast", (
        P("factor", Float(ge=0, le=1), required=True, positional=True,
          doc="each image's contrast is multiplied by U(1 − factor, 1 + factor)"),
        P("value_range", ListOf(Float()), None,
          "[low, high]: clip the output to it (default: no clipping)"),
    ), doc="in training, moves each channel of each image away from or towards its mean by a random "
           "factor (Keras's RandomContrast); the identity when predicting",
        attrs={"out_shape": _image("random_contrast"), "check": _contrast_check,
               "examples": [((8, 8, 1), "random_contrast 0.2"), ((5, 7, 3), "random_contrast 1 value_range=[0, 1]")]}),
    Entry("random_rotation", (
        P("factor", Float(ge=0, le=1), required=True, positional=True,
          doc="largest turn, a fraction of a full turn: each image turns by U(−factor, factor)·360° about its centre"),
        *_RESAMPLE,
    ), doc="in training, turns each image about its centre by a random angle (Keras's RandomRotation); "
           "the identity when predicting",
        attrs={"out_shape": _image("random_rotation"), "check": _rotation_check,
               "examples": [((8, 8, 1), "random_rotation 0.1"), ((5, 7, 3), "random_rotation 0.5 fill_mode=constant"),
                            ((6, 6, 2), "random_rotation 1 interpolation=nearest fill_mode=wrap")]}),
    Entry("random_zoom", (
        P("height", _FRACTION, required=True, positional=True,
          doc="largest zoom, a fraction: each image is read at a scale of 1 + U(−height, height) vertically"),
        P("width", _FRACTION, None,
          "the same horizontally, on a draw of its own (default: the height's draw, keeping the aspect ratio)",
          positional=True),
        *_RESAMPLE,
    ), doc="in training, zooms each image in or out about its centre by a random scale (Keras's RandomZoom); "
           "the identity when predicting",
        attrs={"out_shape": _image("random_zoom"), "check": _zoom_check,
               "examples": [((8, 8, 1), "random_zoom 0.2"), ((5, 7, 3), "random_zoom 0.3 0.1 fill_mode=nearest"),
                            ((6, 6, 2), "random_zoom 0 0.5 fill_mode=constant interpolation=nearest")]}),
]
