"""The words editors highlight, by class, read from the grammar's keywords and the registries.

The Pygments lexer (nnspec/pygments_lexer.py) and the TextMate grammar that
editors/vscode/generate.py writes both use `WORDS`, so a new layer, loss or optimizer is
highlighted everywhere by adding its registry row. Pure Python: no Pygments, no JAX.
"""

from __future__ import annotations

from nnspec.blocks import REPEAT
from nnspec.check import TRAIN
from nnspec.datasets import SOURCES
from nnspec.layers import ACTIVATIONS, INITIALIZERS, LAYERS
from nnspec.losses import LOSSES, METRICS
from nnspec.optim import OPTIMIZERS, SCHEDULES
from nnspec.parse import BLOCK, BLOCK_INPUT, FROM, TOP_LEVEL
from nnspec.params import Registry

# A name's class is the first that lists it: `relu` is a layer and an activation, `mse` a
# loss and a metric, `constant` an initializer and a schedule; each shows as the first.
WORDS: dict[str, tuple[str, ...]] = {}


def _names(*registries: Registry) -> tuple[str, ...]:
    return tuple(sorted({n for r in registries for n in r.names()}))


def _classes() -> dict[str, tuple[str, ...]]:
    classes = {
        "section": tuple(sorted({*TOP_LEVEL, "let"})),        # `model`, `loss`, `train`, ...
        "graph": (FROM, BLOCK_INPUT, REPEAT),                  # `from h1`, `input x[2]`, `repeat=2`
        "constant": ("true", "false"),
        "layer": _names(LAYERS),
        "setting": _names(TRAIN),                              # `batch`, `epochs`, ... inside `train { }`
        "function": _names(LOSSES, OPTIMIZERS, ACTIVATIONS, INITIALIZERS, SCHEDULES, METRICS, SOURCES),
    }
    seen: set[str] = set()
    out = {}
    for cls, words in classes.items():
        out[cls] = tuple(w for w in words if w not in seen)
        seen.update(words)
    assert BLOCK in out["section"]
    return out


WORDS.update(_classes())

# A number as the grammar's NUMBER reads it (grammar/nnspec.lark), a name as its NAME.
NUMBER = r"[+-]?\.?[0-9](?:[eE][+-]|[0-9A-Za-z_.])*"
NAME = r"[A-Za-z_][A-Za-z0-9_]*"
