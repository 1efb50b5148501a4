"""W2 and the W3 sweep on 1, 2 and 4 devices: `python -m benchmarks.devices [--quick]`.

On a machine with one CPU the devices are pretended (XLA_FLAGS=
--xla_force_host_platform_device_count=4, set here before JAX starts): they share the
same cores, so the times say nothing about speed-ups. What this shows is that the
program really is partitioned: for each layout it reports the collectives in the compiled
epoch program (from `jax.jit(...).lower(...).compile().as_text()`), how many examples of
a batch and how many models each device holds, and the epoch time beside the one-device
time measured in the same run. On a real multi-device machine the same command measures
throughput (drop the forced count by setting NNSPEC_BENCH_REAL_DEVICES=1).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

if not os.environ.get("NNSPEC_BENCH_REAL_DEVICES"):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()

COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")


def measure(spec: Path, devices: int, epochs: int, shard: bool = False) -> dict:
    """One layout: collectives, per-device shares (of a batch, of the models, of the
    largest weight), and the median steady epoch time."""
    import jax
    import numpy as np

    import nnspec
    from nnspec.devices import Devices
    from nnspec.prepare import prepare
    from nnspec.trainer import Trainer
    program = nnspec.check_text(spec.read_text(), filename=str(spec))
    programs = list(program.sweep.programs) if program.sweep is not None else [program]
    splits = prepare(programs[0], spec.parent)
    tr = Trainer(programs, splits, devices=Devices(devices, shard=shard))
    snap = tr.fresh()
    args = (snap.state, tr.x, tr.y, tr.order(0), tr.epoch_keys, np.int32(0), tr.hparams, tr.sw)
    text = tr._epoch.jitted.lower(*args).compile().as_text()
    found = {c: len(re.findall(rf"\b{c}(-start)?\(", text)) for c in COLLECTIVES}
    tr.run(snap, 1)  # compile and warm
    times = []
    for e in range(1, epochs + 1):
        t0 = time.perf_counter()
        state, sums, _ = tr._epoch(snap.state, tr.x, tr.y, tr.order(e), tr.epoch_keys, np.int32(e), tr.hparams,
                                   tr.sw)
        jax.block_until_ready(sums)
        times.append(time.perf_counter() - t0)
    batch = programs[0].train.batch or len(splits.train)
    largest = max(jax.tree_util.tree_leaves(snap.state.params), key=lambda a: a.size)
    held = largest.addressable_shards[0].data.shape
    return {"devices": devices, "layout": tr.devices.describe(), "models": len(programs),
            "models_per_device": len(programs) // tr.devices.models, "examples_per_device": batch // tr.devices.data,
            "largest": "×".join(map(str, held)) + ("" if held == largest.shape else
                                                   " of " + "×".join(map(str, largest.shape))),
            "collectives": {k: v for k, v in found.items() if v}, "epoch_ms": 1000 * float(np.median(times))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.devices", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, few epochs (a smoke run)")
    parser.add_argument("--only", choices=("W2", "W3"), help="one of the two workloads")
    args = parser.parse_args(argv)
    import jax

    from benchmarks.workloads import workloads
    chosen = workloads(quick=args.quick)
    have = jax.device_count()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in (args.only,) if args.only else ("W2", "W3"):
            _, spec = chosen[name].write(Path(tmp))
            for d in (1, 2, 4):
                if d <= have:
                    rows.append((name, measure(spec, d, 3 if args.quick else 10)))
            # W2's weights split too (`shard=params`); W3's models are already split
            for d in (2, 4) if name == "W2" else ():
                if d <= have:
                    rows.append((name, measure(spec, d, 3 if args.quick else 10, shard=True)))
    print(f"devices: {have} × {jax.devices()[0].platform}"
          + ("" if os.environ.get("NNSPEC_BENCH_REAL_DEVICES") else " (forced: they share this machine's cores)"))
    print("| Workload | Devices | Layout | Examples of a batch per device | Models per device "
          "| Largest weight on each device | Collectives in the epoch program | Epoch (ms) | ÷ 1 device |")
    print("|---|---|---|---|---|---|---|---|---|")
    base: dict[str, float] = {}
    for name, r in rows:
        base.setdefault(name, r["epoch_ms"])
        shown = ", ".join(f"{k} ×{v}" for k, v in r["collectives"].items()) or "none"
        print(f"| {name} | {r['devices']} | {r['layout']} | {r['examples_per_device']} | {r['models_per_device']} "
              f"| {r['largest']} | {shown} | {r['epoch_ms']:.1f} | {r['epoch_ms'] / base[name]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
