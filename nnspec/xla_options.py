"""The XLA compile options nnspec's programs are built with (`trainer.compiled`, the
predictor), one place for all of them, so that training, `eval` and `predict` compute each
number the same way.

On the CPU, XLA hands some fusions to the YNNPACK library. Its reductions cost far more
than XLA's own on the small arrays of a training step: a 256-model sweep of W3's MLP took
52 ms an epoch against 19 ms without them, where the hand-written vmapped program of the
same steps (fewer, differently shaped reductions) took 20 ms (benchmarks/xla_options.py
measures it). nnspec keeps YNNPACK for matrix products alone. The option is experimental
in XLA: where a jaxlib does not know it, the programs compile with XLA's defaults (one
tiny compilation finds out, once per process).
"""

from __future__ import annotations

from typing import Any

# the XLA debug option, and the value that keeps YNNPACK for matrix products only
CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}

_known: dict[str, dict[str, Any]] = {}


def compile_options() -> dict[str, Any]:
    """The compile options for the default backend's programs ({} where there are none
    to set, or the installed jaxlib does not take them)."""
    import jax
    backend = jax.default_backend()
    if backend not in _known:
        _known[backend] = _probe(CPU_OPTIONS) if backend == "cpu" else {}
    return dict(_known[backend])


def jit(fn: Any) -> Any:
    """`jax.jit(fn)` with these options (for programs outside `trainer.compiled`)."""
    import jax
    return jax.jit(fn, compiler_options=compile_options() or None)


def _probe(options: dict[str, Any]) -> dict[str, Any]:
    import jax
    import numpy as np
    try:
        jax.jit(lambda v: v + 1, compiler_options=options).lower(np.float32(0)).compile()
    except Exception:  # an option this jaxlib does not have, or not with this value
        return {}
    return options
