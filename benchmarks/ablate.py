"""Where nnspec's epoch time goes: `python -m benchmarks.ablate [--quick] [--only W1,W2,W3]`.

In one process, interleaved round by round (so a busy machine slows every variant alike),
it times one epoch of:

- before: nnspec's epoch program as it was until the shuffle moved to the host (a
  `jax.random.permutation` inside the program, padding weights always), rebuilt here from
  `Model.step`, so the change can be priced on the same machine in the same run;
- nnspec's epoch program as `fit` calls it (`nnspec.trainer.epoch_program`, the epoch's order
  from `nnspec.trainer.shuffle` on the host, included in the time);
- the same with the L1/L2 penalty left out when the spec has none (a `Model` subclass),
  and without the metric sums (the step returns the objective's loss), to price what is
  left of nnspec's step beyond the hand-written one;
- the hand-written fused baseline (benchmarks/baselines/jax_fused.py), its NumPy
  shuffle included in the time;
- `nnspec.fit.fit` end to end, per epoch (from its progress callback).

For W3 (16 models): the rebuilt "before" sweep epoch (16 device permutations), nnspec's
vmapped sweep epoch as `fit_sweep` calls it (one shared host order), nnspec's
single-model epoch program run 16 times one after another (what a user without sweeps
gets at best), the hand-written vmapped baseline (jax_vmap.py), and `fit_sweep` end to
end.

The hand-written variants read the data file themselves, as the baselines do (their
losses expect integer labels, not nnspec's (n, 1) binary targets). The last-loss column
checks that a variant trains what it should (for W3 the mean over the 16 models, whose
initial weights differ between nnspec and the hand-written code).

Each line is the best epoch time over the rounds. This reads nnspec's internals
(`trainer.epoch_fn`, `trainer.shuffle`, `Model.step`, `Model.penalty`, `with_hparams`)
and may need updating when they change.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

import nnspec
import nnspec.fit as nfit
import nnspec.trainer as ntrain
from nnspec.sweep_fit import fit_sweep
import nnspec.prepare as nprep
from nnspec.lower import Model, TrainState, lower, with_hparams

from benchmarks.baselines import jax_common as common
from benchmarks.baselines.jax_fused import epoch_program as hand_epoch
from benchmarks.workloads import Workload, workloads

Epoch = Callable[[int], float]  # run epoch e, return its mean loss (after the device finished)


def device_shuffle_epoch_fn(model: Model, n: int, batch: int) -> Callable:
    """nnspec's epoch function before the shuffle moved to the host: the permutation is a
    sort of threefry bits inside the program, and every step multiplies by padding weights
    (all ones here). Same signature as today's, less `order`."""
    steps = math.ceil(n / batch)
    pad = steps * batch - n
    weights = jnp.concatenate([jnp.ones(n), jnp.zeros(pad)]).reshape(steps, batch)

    def run(state, x, y, base_key, epoch, hparams):
        k_perm, k_steps = jax.random.split(jax.random.fold_in(base_key, epoch))
        perm = jax.random.permutation(k_perm, n)
        idx = jnp.concatenate([perm, perm[:pad]]).reshape(steps, batch)
        keys = jax.random.split(k_steps, steps)

        def body(state, inp):
            i, w, k = inp
            return model.step(state, x[i], y[i], key=k, hparams=hparams, weights=w)

        state, sums = jax.lax.scan(body, state, (idx, weights, keys))
        return state, {"loss": jnp.sum(sums["loss"]) / n}, sums["loss"] / jnp.sum(weights, axis=1)
    return run


def no_metrics_epoch_fn(model: Model, n: int, batch: int) -> Callable:
    """Today's `epoch_fn` (host order, no padding weights when the batch divides n), but
    the step returns the objective's loss instead of recomputing per-example metric sums."""
    assert n % batch == 0, "without padding only"
    steps = n // batch

    def run(state, x, y, order, base_key, epoch, hparams):
        keys = jax.random.split(jax.random.fold_in(base_key, epoch), steps)
        idx = order.reshape(steps, batch)

        def body(state, inp):
            i, k = inp

            def objective(params):
                pred = model.apply(params, x[i], key=k, train=True, hparams=hparams)
                return jnp.mean(model.per_example_loss(pred, y[i])) + model.penalty(params, hparams)
            loss, grads = jax.value_and_grad(objective)(state.params)
            updates, opt_state = model.optimizer.update(grads, state.opt_state, state.params)
            return TrainState(optax.apply_updates(state.params, updates), opt_state), loss

        state, losses = jax.lax.scan(body, state, (idx, keys))
        return state, {"loss": jnp.mean(losses)}, losses
    return run


class ZeroPenaltySkipped(Model):
    """nnspec's Model, but the L1/L2 penalty is left out of the objective when the spec's
    own numbers make it zero (today it is computed from traced zeros every step)."""

    def penalty(self, params, hparams=None):
        spec = self.hparams()  # the numbers as written (NumPy); static, unlike `hparams`
        if all(float(v) == 0 for layer in spec.values() for k, v in layer.items() if k in ("l1", "l2")):
            return jnp.zeros((), jnp.float32)
        return super().penalty(params, hparams)


def _setup(w: Workload, folder: Path):
    npz, spec = w.write(folder)
    program = nnspec.check_text(spec.read_text(encoding="utf-8"), filename=str(spec))
    first = program.sweep.programs[0] if program.sweep is not None else program
    splits = nprep.prepare(first)
    x = jnp.asarray(splits.train.x)
    y = jnp.asarray(nprep._labels(first, splits.train.y))
    return program, x, y, npz


def _hand_data(npz: Path) -> tuple[jax.Array, jax.Array]:
    """The arrays as the hand-written baselines read them: integer labels of shape (n,),
    where nnspec's binary labels are (n, 1) floats (the baselines' losses expect their own)."""
    xh, yh = common.load(npz)
    return jnp.asarray(xh), jnp.asarray(yh)


def _hand_single(w: Workload, npz: Path) -> Epoch:
    x, y = _hand_data(npz)
    init_key, dropout_key = jax.random.split(jax.random.key(w.seed))
    params = common.init(w, init_key)
    opt = common.optimizer(w)
    opt_state = opt.init(params)
    run = hand_epoch(w, opt, dropout_key)

    def epoch(e: int) -> float:
        nonlocal params, opt_state
        idx = ntrain.shuffle(w.seed, e, w.n).reshape(w.steps, w.batch)
        params, opt_state, loss = run(params, opt_state, x, y, idx, e)
        return float(loss)
    return epoch


def single_model(w: Workload, folder: Path) -> dict[str, Callable[[], Epoch]]:
    """W1/W2 variants: each a factory of an epoch-runner with its own state."""
    program, x, y, npz = _setup(w, folder)
    model = lower(program)
    hp = model.hparams()
    init_key, base = ntrain.keys_for(w.seed)
    state0 = jax.jit(model.init_state)(init_key)

    def before() -> Epoch:
        run, state = jax.jit(device_shuffle_epoch_fn(model, w.n, w.batch)), state0

        def epoch(e: int) -> float:
            nonlocal state
            state, sums, _ = run(state, x, y, base, np.int32(e), hp)
            return float(sums["loss"])
        return epoch

    def host_order(make_fn: Callable) -> Callable[[], Epoch]:
        def make() -> Epoch:
            run, state = make_fn(), state0

            def epoch(e: int) -> float:
                nonlocal state
                state, sums, _ = run(state, x, y, ntrain.shuffle(w.seed, e, w.n), base, np.int32(e), hp)
                return float(sums["loss"])
            return epoch
        return make

    return {"before: shuffle on the device (rebuilt)": before,
            "nnspec epoch program, as fit calls it (host order)": host_order(
                lambda: ntrain.epoch_program(model, w.n, w.batch)),
            "  without the L1/L2 penalty (the spec has none)": host_order(
                lambda: ntrain.epoch_program(ZeroPenaltySkipped(program), w.n, w.batch)),
            "  without the metric sums": host_order(lambda: jax.jit(no_metrics_epoch_fn(model, w.n, w.batch))),
            "hand-written fused JAX (baseline b)": lambda: _hand_single(w, npz)}


def sweep(w: Workload, folder: Path) -> dict[str, Callable[[], Epoch]]:
    """W3 variants; every one trains all 16 models for one epoch per call."""
    program, x, y, npz = _setup(w, folder)
    members = program.sweep.programs
    model = Model(members[0])
    m = len(members)
    keys = [ntrain.keys_for(p.train.seed) for p in members]
    init_keys = jnp.stack([k[0] for k in keys])
    epoch_keys = jnp.stack([k[1] for k in keys])
    params = jax.jit(jax.vmap(model.init))(init_keys)
    template = jax.jit(model.optimizer.init)(jax.tree_util.tree_map(lambda a: a[0], params))
    opt_states = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *[
        with_hparams(template, p.optimizer, p.regularization) for p in members])
    hps = jax.tree_util.tree_map(lambda *a: np.stack(a), *[Model(p).hparams() for p in members])
    state0 = TrainState(params, opt_states)
    seed = members[0].train.seed
    assert all(p.train.seed == seed for p in members), "W3's models share a seed, so one shared order"

    def before() -> Epoch:
        run = jax.jit(jax.vmap(device_shuffle_epoch_fn(model, w.n, w.batch), in_axes=(0, None, None, 0, None, 0)))
        state = state0

        def epoch(e: int) -> float:
            nonlocal state
            state, sums, _ = run(state, x, y, epoch_keys, np.int32(e), hps)
            return float(np.mean(sums["loss"]))
        return epoch

    def as_is() -> Epoch:  # as sweep_fit._train_group: models sharing a seed share one order
        run = jax.jit(jax.vmap(ntrain.epoch_fn(model, w.n, w.batch), in_axes=(0, None, None, None, 0, None, 0)))
        state = state0

        def epoch(e: int) -> float:
            nonlocal state
            state, sums, _ = run(state, x, y, ntrain.shuffle(seed, e, w.n), epoch_keys, np.int32(e), hps)
            return float(np.mean(sums["loss"]))
        return epoch

    def one_by_one() -> Epoch:  # as benchmarks/baselines/nnspec_seq.py, one epoch of each model
        run = ntrain.epoch_program(model, w.n, w.batch)
        states = [jax.tree_util.tree_map(lambda a, i=i: a[i], state0) for i in range(m)]
        hp = [Model(p).hparams() for p in members]

        def epoch(e: int) -> float:
            order = ntrain.shuffle(seed, e, w.n)
            losses = []
            for i in range(m):
                states[i], sums, _ = run(states[i], x, y, order, epoch_keys[i], np.int32(e), hp[i])
                losses.append(sums["loss"])
            return float(np.mean(jax.device_get(losses)))
        return epoch

    def hand() -> Epoch:
        from benchmarks.baselines.jax_vmap import set_lr, sweep_optimizer
        hx, hy = _hand_data(npz)
        opt = sweep_optimizer(w)
        p0 = common.init(w, jax.random.split(jax.random.key(w.seed))[0])
        lrs = np.asarray(w.lrs, np.float32)
        ps = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (len(lrs), *a.shape)), p0)
        os_ = jax.vmap(lambda lr: set_lr(opt.init(p0), lr))(lrs)
        one = hand_epoch(w, opt, jax.random.key(0))
        run = jax.jit(jax.vmap(one, in_axes=(0, 0, None, None, None, None)))

        def epoch(e: int) -> float:
            nonlocal ps, os_
            idx = ntrain.shuffle(w.seed, e, w.n).reshape(w.steps, w.batch)
            ps, os_, loss = run(ps, os_, hx, hy, idx, e)
            return float(np.mean(loss))
        return epoch

    return {f"before: {m} device shuffles in the sweep epoch (rebuilt)": before,
            f"nnspec sweep epoch ({m} models), as fit_sweep calls it": as_is,
            f"nnspec's single-model epoch program, {m} times in turn": one_by_one,
            "hand-written vmapped fused JAX (jax_vmap)": hand}


def end_to_end(w: Workload, folder: Path) -> dict[str, Callable[[], list[float]]]:
    """`fit` (or for a sweep `fit_sweep`) as users call it; per-epoch times from its progress
    callback, the first epoch (the compilation) left out."""
    _, spec = w.write(folder)
    program = nnspec.check_text(spec.read_text(encoding="utf-8"), filename=str(spec))

    def times() -> list[float]:
        marks: list[float] = []
        if program.sweep is not None:
            fit_sweep(program, progress=lambda line: marks.append(time.perf_counter()))
        else:
            nfit.fit(program, progress=lambda *a: marks.append(time.perf_counter()))
        return list(np.diff(marks))
    if program.sweep is None:
        return {"nnspec.fit end to end": times}
    return {"nnspec.sweep_fit.fit_sweep end to end": times}


def interleave(variants: dict[str, Callable[[], Epoch]], rounds: int
               ) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Per-variant epoch times, and each variant's loss in its last epoch (a check that every
    variant trains the same model: the mean over a sweep's models for W3)."""
    runners = {name: make() for name, make in variants.items()}
    for run in runners.values():
        run(0)  # compile
    times: dict[str, list[float]] = {name: [] for name in runners}
    losses: dict[str, float] = {}
    for r in range(1, rounds + 1):
        for name, run in runners.items():
            t0 = time.perf_counter()
            losses[name] = run(r)
            times[name].append(time.perf_counter() - t0)
    return times, losses


def report(title: str, times: dict[str, list[float]], losses: dict[str, float], samples: int,
           reference: str) -> str:
    best = {k: min(v) for k, v in times.items()}
    lines = [title, f"  {'variant':58s} {'best ms':>9s} {'median ms':>10s} {'samples/s':>13s} {'÷ hand':>7s}"
                    f" {'last loss':>10s}"]
    for k, v in times.items():
        loss = f"{losses[k]:10.4f}" if k in losses else f"{'—':>10s}"
        lines.append(f"  {k:58s} {best[k] * 1e3:9.3f} {statistics.median(v) * 1e3:10.3f} "
                     f"{samples / best[k]:13,.0f} {best[reference] / best[k]:6.2f}× {loss}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ablate", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", default="W1,W2,W3")
    p.add_argument("--rounds", type=int, default=None, help="epochs timed per variant (default: by workload)")
    args = p.parse_args(argv)
    ws = workloads(args.quick)
    with tempfile.TemporaryDirectory(prefix="nnspec-ablate-") as tmp:
        folder = Path(tmp)
        for name in args.only.split(","):
            w = ws[name]
            rounds = args.rounds or (3 if args.quick else {"W1": 100, "W2": 4, "W3": 30}[name])
            if w.lrs:
                variants, samples = sweep(w, folder), w.n * len(w.lrs)
                ref = "hand-written vmapped fused JAX (jax_vmap)"
            else:
                variants, samples = single_model(w, folder), w.n
                ref = "hand-written fused JAX (baseline b)"
            times, losses = interleave(variants, rounds)
            for label, fit_run in end_to_end(w, folder).items():
                times[label] = fit_run()[1:]
            print(report(f"{name}: {w.title} (best of {rounds} interleaved epochs)", times, losses, samples, ref),
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
