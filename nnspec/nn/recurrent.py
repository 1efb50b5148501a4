"""Recurrent layers and embeddings: the JAX side, one example at a time."""

from __future__ import annotations

from nnspec.nn.base import LayerImpl

LAYERS: dict[str, type[LayerImpl]] = {}
