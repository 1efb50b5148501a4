"""W3 without a sweep, at its best: nnspec's own fused epoch program (`nnspec.trainer.epoch_program`)
compiled once and run for each of the 16 settings in turn, in one process. Each setting
gets its own initial state, its learning rate injected into the optimizer state (the
rate is a traced value, so one compiled program serves them all) and nnspec's own host
shuffle: exactly the epochs `fit` runs, without compiling them 16 times (`fit` itself
builds a new jitted program per call and recompiles: see `nnspec_fits`).

This assembles nnspec's internals (`epoch_program`, `keys_for`, `shuffle`, `_labels`,
`lower.with_hparams`) and may need updating when they change."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import nnspec
import nnspec.trainer as nfit
import nnspec.prepare as nprep
from nnspec.lower import lower, with_hparams

from benchmarks.clock import Clock
from benchmarks.workloads import Workload


def train(w: Workload, npz: Path, spec: Path, clock: Clock) -> None:
    program = nnspec.check_text(spec.read_text(encoding="utf-8"), filename=str(spec))
    members = program.sweep.programs  # one checked Program per setting, in `w.lrs` order
    splits = nprep.prepare(members[0])
    n = len(splits.train)
    model = lower(members[0])
    init = jax.jit(model.init_state)
    run = nfit.epoch_program(model, n, members[0].train.batch)
    x, y = jnp.asarray(splits.train.x), jnp.asarray(nprep._labels(members[0], splits.train.y))
    clock.models = len(members)
    finals = []
    for p in members:
        t = p.train
        init_key, epoch_base = nfit.keys_for(t.seed)
        state = init(init_key)
        state = state._replace(opt_state=with_hparams(state.opt_state, p.optimizer, p.regularization))
        hp = lower(p).hparams()
        for e in range(t.epochs):
            order = nfit.shuffle(t.seed, e, n)
            state, sums, _ = run(state, x, y, order, epoch_base, np.int32(e), hp)
            clock.epoch(float(sums["loss"]))  # one model's epoch: n samples
        finals.append(clock.losses[-1])
    clock.sweep_losses = finals
    clock.final_loss = finals[w.reference]
