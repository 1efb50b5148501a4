"""Baseline (b): the practical limit of JAX + Optax. Each epoch is one jitted program, a
`lax.scan` over the batches that gathers each batch on the device. The shuffle is a NumPy
permutation on the host, passed in as a (steps, batch) index array: on the CPU backend
`jax.random.permutation` (a sort of threefry bits) costs far more than the epoch's
training on W1, and a 16 KiB index array is cheap to send. Dropout keys come from
`fold_in(key, epoch)` split once per step inside the program.

For a sweep (W3) it trains the models one after another, as a user without sweeps would,
with the learning rate a traced value (Optax's `inject_hyperparams`), so one compiled
program serves every rate."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.baselines import jax_common as common
from benchmarks.clock import Clock
from benchmarks.workloads import Workload


def epoch_program(w: Workload, opt: optax.GradientTransformation, dropout_key: jax.Array) -> Callable:
    """(params, opt_state, x, y, idx (steps, batch), epoch) -> (params, opt_state, mean loss)."""
    loss_fn = common.loss_fn(w)

    @jax.jit
    def epoch(params, opt_state, x, y, idx, e):  # data as arguments, not baked-in constants
        keys = jax.random.split(jax.random.fold_in(dropout_key, e), w.steps) if w.drop_prob else None

        def body(carry, inp):
            params, opt_state = carry
            i, k = inp
            loss, grads = jax.value_and_grad(loss_fn)(params, x[i], y[i], k)
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), (idx, keys))
        return params, opt_state, losses.mean()

    return epoch


def train(w: Workload, npz: Path, spec: Path, clock: Clock) -> None:
    xh, yh = common.load(npz)
    x, y = jnp.asarray(xh), jnp.asarray(yh)
    init_key, dropout_key = jax.random.split(jax.random.key(w.seed))
    if w.lrs:
        return _one_after_another(w, x, y, init_key, dropout_key, clock)
    params = common.init(w, init_key)
    opt = common.optimizer(w)
    opt_state = opt.init(params)
    epoch = epoch_program(w, opt, dropout_key)
    rng = np.random.default_rng(w.seed)
    for e in range(w.epochs):
        idx = rng.permutation(w.n).astype(np.int32).reshape(w.steps, w.batch)
        params, opt_state, loss = epoch(params, opt_state, x, y, idx, e)
        clock.epoch(float(loss))


def _one_after_another(w: Workload, x, y, init_key, dropout_key, clock: Clock) -> None:
    from benchmarks.baselines.jax_vmap import set_lr, sweep_optimizer
    opt = sweep_optimizer(w)
    epoch = epoch_program(w, opt, dropout_key)
    clock.models = len(w.lrs)
    finals = []
    for lr in w.lrs:  # every model from the same start and the same shuffles, as in nnspec's sweep
        params = common.init(w, init_key)
        opt_state = set_lr(opt.init(params), lr)
        rng = np.random.default_rng(w.seed)
        for e in range(w.epochs):
            idx = rng.permutation(w.n).astype(np.int32).reshape(w.steps, w.batch)
            params, opt_state, loss = epoch(params, opt_state, x, y, idx, e)
            clock.epoch(float(loss))  # one model's epoch: n samples
        finals.append(clock.losses[-1])
    clock.sweep_losses = finals
    clock.final_loss = finals[w.reference]
