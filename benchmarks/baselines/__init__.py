"""The implementations a workload is timed with: nnspec, and what a user would write instead.

Each module has `train(workload, npz, spec, clock)`: load the data from `npz` (or train
`spec`), build and train the model for `workload.epochs` epochs, calling
`clock.epoch(mean training loss)` after each. `IMPLS` names the package a baseline
needs beyond JAX; a missing one skips it with a note.
"""

from __future__ import annotations

# name -> (module, package it needs beyond JAX, what it is)
IMPLS: dict[str, tuple[str, str | None, str]] = {
    "nnspec": ("benchmarks.baselines.nnspec_fit", None, "nnspec.train: the spec, fused epoch programs"),
    "jax_steps": ("benchmarks.baselines.jax_steps", None, "hand-written JAX + Optax, a jitted step per batch"),
    "jax_fused": ("benchmarks.baselines.jax_fused", None, "hand-written JAX + Optax, each epoch one lax.scan"),
    "torch_eager": ("benchmarks.baselines.torch_eager", "torch", "PyTorch eager on the CPU"),
    "keras_jax": ("benchmarks.baselines.keras_jax", "keras", "Keras 3 model.fit on the JAX backend"),
    "jax_vmap": ("benchmarks.baselines.jax_vmap", None, "hand-written JAX: a sweep's models vmapped in one fused epoch"),
}
