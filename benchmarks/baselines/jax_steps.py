"""Baseline (a): the tutorial loop. One `jax.jit` training step, called from Python for
every batch; NumPy shuffles and slices the batches on the host each epoch. The dropout
key is folded with the step number inside the step (as Flax's examples do), and the
losses stay on the device until the epoch ends (no host sync per step)."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import optax

from benchmarks.baselines import jax_common as common
from benchmarks.clock import Clock
from benchmarks.workloads import Workload


def train(w: Workload, npz: Path, spec: Path, clock: Clock) -> None:
    x, y = common.load(npz)
    key = jax.random.key(w.seed)
    init_key, dropout_key = jax.random.split(key)
    params = common.init(w, init_key)
    opt = common.optimizer(w)
    opt_state = opt.init(params)
    loss_fn = common.loss_fn(w)

    @jax.jit
    def step(params, opt_state, xb, yb, i):
        k = jax.random.fold_in(dropout_key, i) if w.drop_prob else None
        loss, grads = jax.value_and_grad(loss_fn)(params, xb, yb, k)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    rng = np.random.default_rng(w.seed)
    i = 0
    for _ in range(w.epochs):
        perm = rng.permutation(w.n)
        losses = []
        for s in range(w.steps):
            idx = perm[s * w.batch:(s + 1) * w.batch]
            params, opt_state, loss = step(params, opt_state, x[idx], y[idx], i)
            losses.append(loss)
            i += 1
        clock.epoch(np.mean(jax.device_get(losses)))
