"""Baseline for W3: a learning-rate sweep written by hand. The fused epoch of jax_fused,
`jax.vmap`ped over the models' parameters, optimizer states and learning rates (Optax's
`inject_hyperparams` makes the rate a traced value); every model starts from the same
initial weights and sees the same NumPy shuffle, as nnspec's sweep members do."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.baselines import jax_common as common
from benchmarks.clock import Clock
from benchmarks.workloads import Workload


def sweep_optimizer(w: Workload) -> optax.GradientTransformation:
    make = optax.sgd if w.optimizer == "sgd" else optax.adam
    return optax.inject_hyperparams(make)(learning_rate=w.lr)


def set_lr(opt_state, lr):
    return opt_state._replace(hyperparams={**opt_state.hyperparams, "learning_rate": jnp.asarray(lr, jnp.float32)})


def train(w: Workload, npz: Path, spec: Path, clock: Clock) -> None:
    xh, yh = common.load(npz)
    x, y = jnp.asarray(xh), jnp.asarray(yh)
    opt = sweep_optimizer(w)
    params = common.init(w, jax.random.split(jax.random.key(w.seed))[0])  # as jax_fused
    lrs = np.asarray(w.lrs, np.float32)
    stacked = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (len(lrs), *a.shape)), params)
    opt_states = jax.vmap(lambda lr: set_lr(opt.init(params), lr))(lrs)
    loss_fn = common.loss_fn(w)

    def one_model(params, opt_state, x, y, idx):
        def body(carry, i):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params, x[i], y[i], None)
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss
        (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), idx)
        return params, opt_state, losses.mean()

    epoch = jax.jit(jax.vmap(one_model, in_axes=(0, 0, None, None, None)))
    clock.samples = w.n * len(lrs)
    rng = np.random.default_rng(w.seed)
    for _ in range(w.epochs):
        idx = rng.permutation(w.n).astype(np.int32).reshape(w.steps, w.batch)
        stacked, opt_states, losses = epoch(stacked, opt_states, x, y, idx)
        losses = np.asarray(losses)
        clock.epoch(float(np.nanmean(losses)))
    clock.sweep_losses = [float(v) for v in losses]
    clock.final_loss = clock.sweep_losses[w.reference]
