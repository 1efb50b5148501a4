"""Recurrent layers (simple RNN, LSTM, GRU, bidirectional) and embeddings: the rule side (parameters, shape rules), pure Python."""

from __future__ import annotations

from nnspec.params import Entry

LAYERS: list[Entry] = []
