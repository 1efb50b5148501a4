"""Convolution, pooling and upsampling: the rule side (parameters, shape rules), pure Python."""

from __future__ import annotations

from nnspec.params import Entry

LAYERS: list[Entry] = []
