"""The implementations a workload is timed with: nnspec, and what a user would write instead.

Each module has `train(workload, npz, spec, clock)`: load the data from `npz` (or train
`spec`), build and train the model for `workload.epochs` epochs, calling
`clock.epoch(mean training loss)` after each (`clock.models` times as many when it trains
a sweep's models one after another; once per `nnspec train` process, with
`clock.whole_runs`, when it can only see whole runs). `IMPLS` names the package a
baseline needs beyond JAX; a missing one skips it with a note.
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
    # a sweep's settings trained one by one with nnspec itself (W3)
    "nnspec_seq": ("benchmarks.baselines.nnspec_seq", None,
                   "nnspec's fused epoch program, compiled once, run for each setting in turn"),
    "nnspec_fits": ("benchmarks.baselines.nnspec_fits", None, "nnspec.fit.fit on each setting's Program, one process"),
    "nnspec_cli": ("benchmarks.baselines.nnspec_cli", None, "`nnspec train` of the sweep spec, as a process"),
    "nnspec_procs": ("benchmarks.baselines.nnspec_procs", None, "one `nnspec train` process per setting"),
}
