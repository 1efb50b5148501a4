"""Where nnspec's epoch time goes: `python -m benchmarks.ablate [--quick] [--only W1,W2,W3]`.

In one process, interleaved round by round (so a busy machine slows every variant alike),
it times one epoch of:

- nnspec's own epoch program (`nnspec.fit.epoch_program`, or the sweep's vmapped
  `epoch_fn`), called as `fit` calls it;
- the same program with one change, the shuffle done on the host (a NumPy permutation
  seeded from the seed and the epoch, passed in as an index array), which is the change
  this tool exists to argue for; the rest of nnspec's step (weights, metric sums, keys)
  is untouched;
- that change without the padding weights and metric sums, to price what is left;
- the hand-written fused baseline (benchmarks/baselines/jax_fused.py, jax_vmap.py);
- `nnspec.fit.fit` end to end, as is and with the host shuffle patched in (in memory only).

Each line is the best epoch time over the rounds. This reads nnspec's internals
(`epoch_fn`, `Model.step`) and may need updating when they change.
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
from nnspec.lower import lower

from benchmarks.baselines import jax_common as common
from benchmarks.baselines.jax_fused import epoch_program as hand_epoch
from benchmarks.workloads import Workload, workloads

Epoch = Callable[[int], float]  # run epoch e, return its mean loss (after the device finished)


def host_perm_epoch_fn(model, n: int, batch: int, *, weights_and_metrics: bool = True) -> Callable:
    """nnspec's `epoch_fn`, but the permutation arrives as an argument (from the host)."""
    steps = math.ceil(n / batch)
    pad = steps * batch - n
    weights = jnp.concatenate([jnp.ones(n), jnp.zeros(pad)]).reshape(steps, batch)

    def run(state, x, y, base_key, epoch, hparams, perm):
        key = jax.random.fold_in(base_key, epoch)
        _, k_steps = jax.random.split(key)
        idx = jnp.concatenate([perm, perm[:pad]]).reshape(steps, batch)
        keys = jax.random.split(k_steps, steps)

        def body(state, inp):
            i, w, k = inp
            if weights_and_metrics:
                return model.step(state, x[i], y[i], key=k, hparams=hparams, weights=w)

            def objective(params):
                pred = model.apply(params, x[i], key=k, train=True, hparams=hparams)
                return jnp.mean(model.per_example_loss(pred, y[i])) + model.penalty(params, hparams)
            loss, grads = jax.value_and_grad(objective)(state.params)
            updates, opt_state = model.optimizer.update(grads, state.opt_state, state.params)
            return type(state)(optax.apply_updates(state.params, updates), opt_state), {"loss": loss * batch}

        state, sums = jax.lax.scan(body, state, (idx, weights, keys))
        return state, {k: jnp.sum(v) / n for k, v in sums.items()}, sums["loss"] / jnp.sum(weights, axis=1)
    return run


def host_perm(seed: int, epoch: int, n: int) -> np.ndarray:
    """A reproducible shuffle from (seed, epoch): resuming at any epoch gives the same one."""
    return np.random.default_rng((seed, epoch)).permutation(n).astype(np.int32)


def _setup(w: Workload, folder: Path):
    npz, spec = w.write(folder)
    program = nnspec.check_text(spec.read_text(encoding="utf-8"), filename=str(spec))
    splits = nfit.prepare(program)
    x = jnp.asarray(splits.train.x)
    y = jnp.asarray(nfit._labels(program, splits.train.y))
    return npz, program, x, y


def single_model(w: Workload, folder: Path) -> dict[str, Callable[[], Epoch]]:
    """W1/W2 variants: each a factory of an epoch-runner with its own state."""
    npz, program, x, y = _setup(w, folder)
    model = lower(program)
    hp = model.hparams()
    init_key, base = nfit.keys_for(w.seed)
    state0 = jax.jit(model.init_state)(init_key)

    def nnspec_as_is() -> Epoch:
        run, state = nfit.epoch_program(model, w.n, w.batch), state0

        def epoch(e: int) -> float:
            nonlocal state
            state, sums, _ = run(state, x, y, base, np.int32(e), hp)
            return float(sums["loss"])
        return epoch

    def nnspec_host(weights_and_metrics: bool) -> Callable[[], Epoch]:
        def make() -> Epoch:
            run = jax.jit(host_perm_epoch_fn(model, w.n, w.batch, weights_and_metrics=weights_and_metrics))
            state = state0

            def epoch(e: int) -> float:
                nonlocal state
                state, sums, _ = run(state, x, y, base, np.int32(e), hp, host_perm(w.seed, e, w.n))
                return float(sums["loss"])
            return epoch
        return make

    def hand() -> Epoch:
        init_key, dropout_key = jax.random.split(jax.random.key(w.seed))
        params = common.init(w, init_key)
        opt = common.optimizer(w)
        opt_state = opt.init(params)
        run = hand_epoch(w, opt, dropout_key)

        def epoch(e: int) -> float:
            nonlocal params, opt_state
            idx = host_perm(w.seed, e, w.n).reshape(w.steps, w.batch)
            params, opt_state, loss = run(params, opt_state, x, y, idx, e)
            return float(loss)
        return epoch

    return {"nnspec epoch program, as fit calls it": nnspec_as_is,
            "  + shuffle on the host (the fix)": nnspec_host(True),
            "  + host shuffle, no padding weights or metric sums": nnspec_host(False),
            "hand-written fused JAX (baseline b)": hand}


def sweep(w: Workload, folder: Path) -> dict[str, Callable[[], Epoch]]:
    """W3 variants: nnspec's vmapped sweep epoch, with and without the host shuffle."""
    from nnspec.lower import Model, TrainState, with_hparams
    npz, program, x, y = _setup(w, folder)
    members = program.sweep.programs
    model = Model(members[0])
    keys = [nfit.keys_for(p.train.seed) for p in members]
    init_keys = jnp.stack([k[0] for k in keys])
    epoch_keys = jnp.stack([k[1] for k in keys])
    params = jax.jit(jax.vmap(model.init))(init_keys)
    template = jax.jit(model.optimizer.init)(jax.tree_util.tree_map(lambda a: a[0], params))
    opt_states = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *[
        with_hparams(template, p.optimizer, p.regularization) for p in members])
    hps = jax.tree_util.tree_map(lambda *a: np.stack(a), *[Model(p).hparams() for p in members])
    state0 = TrainState(params, opt_states)

    def as_is() -> Epoch:
        run = jax.jit(jax.vmap(nfit.epoch_fn(model, w.n, w.batch), in_axes=(0, None, None, 0, None, 0)))
        state = state0

        def epoch(e: int) -> float:
            nonlocal state
            state, sums, _ = run(state, x, y, epoch_keys, np.int32(e), hps)
            return float(np.mean(sums["loss"]))
        return epoch

    def host() -> Epoch:
        run = jax.jit(jax.vmap(host_perm_epoch_fn(model, w.n, w.batch), in_axes=(0, None, None, 0, None, 0, None)))
        state = state0

        def epoch(e: int) -> float:
            nonlocal state
            state, sums, _ = run(state, x, y, epoch_keys, np.int32(e), hps, host_perm(w.seed, e, w.n))
            return float(np.mean(sums["loss"]))
        return epoch

    def hand() -> Epoch:
        from benchmarks.baselines.jax_vmap import set_lr, sweep_optimizer
        opt = sweep_optimizer(w)
        p0 = common.init(w, jax.random.split(jax.random.key(w.seed))[0])
        lrs = np.asarray(w.lrs, np.float32)
        ps = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (len(lrs), *a.shape)), p0)
        os_ = jax.vmap(lambda lr: set_lr(opt.init(p0), lr))(lrs)
        one = hand_epoch(w, opt, jax.random.key(0))
        run = jax.jit(jax.vmap(one, in_axes=(0, 0, None, None, None, None)))

        def epoch(e: int) -> float:
            nonlocal ps, os_
            idx = host_perm(w.seed, e, w.n).reshape(w.steps, w.batch)
            ps, os_, loss = run(ps, os_, x, y, idx, e)
            return float(np.mean(loss))
        return epoch

    return {f"nnspec sweep epoch ({len(members)} models), as fit_sweep calls it": as_is,
            "  + shuffle on the host (the fix)": host,
            "hand-written vmapped fused JAX (baseline for W3)": hand}


def fit_variants(w: Workload, folder: Path) -> dict[str, Callable[[], Epoch]]:
    """`nnspec.fit.fit` end to end, per-epoch cost from its progress callback; and the same
    with `epoch_program` patched (in memory) to shuffle on the host."""
    npz, spec = w.write(folder)
    program = nnspec.check_text(spec.read_text(encoding="utf-8"), filename=str(spec))

    def patched_epoch_program(model, n, batch):
        run = jax.jit(host_perm_epoch_fn(model, n, batch))
        return lambda state, x, y, base_key, epoch, hp: run(
            state, x, y, base_key, epoch, hp, host_perm(w.seed, int(epoch), n))

    def fit_times(patch: bool) -> list[float]:
        marks: list[float] = []
        original = nfit.epoch_program
        if patch:
            nfit.epoch_program = patched_epoch_program
        try:
            nfit.fit(program, progress=lambda *a: marks.append(time.perf_counter()))
        finally:
            nfit.epoch_program = original
        return list(np.diff(marks))
    return {"nnspec.fit end to end": lambda: fit_times(False),
            "nnspec.fit with the host shuffle patched in": lambda: fit_times(True)}


def interleave(variants: dict[str, Callable[[], Epoch]], rounds: int) -> dict[str, list[float]]:
    runners = {name: make() for name, make in variants.items()}
    for run in runners.values():
        run(0)  # compile
    times: dict[str, list[float]] = {name: [] for name in runners}
    for r in range(1, rounds + 1):
        for name, run in runners.items():
            t0 = time.perf_counter()
            run(r)
            times[name].append(time.perf_counter() - t0)
    return times


def report(title: str, times: dict[str, list[float]], samples: int, reference: str) -> str:
    best = {k: min(v) for k, v in times.items()}
    lines = [title, f"  {'variant':60s} {'best ms':>9s} {'median ms':>10s} {'samples/s':>13s} {'÷ hand':>7s}"]
    for k, v in times.items():
        lines.append(f"  {k:60s} {best[k] * 1e3:9.3f} {statistics.median(v) * 1e3:10.3f} "
                     f"{samples / best[k]:13,.0f} {best[reference] / best[k]:6.2f}×")
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
                ref = "hand-written vmapped fused JAX (baseline for W3)"
            else:
                variants, samples = single_model(w, folder), w.n
                ref = "hand-written fused JAX (baseline b)"
            times = interleave(variants, rounds)
            if not w.lrs:
                for label, fit_run in fit_variants(w, folder).items():
                    times[label] = fit_run()[1:]
            print(report(f"{name}: {w.title} (best of {rounds} interleaved epochs)", times, samples, ref), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
