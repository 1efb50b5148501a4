"""What nnspec's XLA compile options (nnspec/xla_options.py) change: `python -m
benchmarks.xla_options [--only W1,W2,W3,W4,W5] [--models 256] [--epochs 20]`.

For each workload, two trainers of the same spec in one process, one compiled with XLA's
defaults and one with nnspec's options, train one epoch each in turn (the order swapped
every epoch, so a busy machine slows both alike); each line is the median epoch of each
(the first, which compiles, left out) and their ratio. W3 is the sweep at `--models`
learning rates (benchmarks/sweep_scale.py's workload). The last column is the largest
relative difference between the two trainers' final losses: the options change how XLA
computes, not what.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np


def _trainer(w, folder: Path, options: dict):
    import nnspec
    from nnspec import xla_options
    from nnspec.prepare import prepare
    from nnspec.trainer import Trainer
    _, spec_path = w.write(folder)
    program = nnspec.check_text(spec_path.read_text(encoding="utf-8"), filename=str(spec_path))
    programs = list(program.sweep.programs) if program.sweep is not None else [program]
    import jax
    xla_options._known[jax.default_backend()] = options  # what the trainer's programs compile with
    try:
        trainer = Trainer(programs, prepare(programs[0], folder))
        snap = trainer.fresh()
        snap = trainer.run(snap, 1)  # compiles, with these options
    finally:
        xla_options._known.clear()
    return trainer, snap


def compare(w, folder: Path, epochs: int) -> dict:
    from nnspec.xla_options import CPU_OPTIONS
    folder.mkdir(parents=True, exist_ok=True)
    pairs = [_trainer(w, folder, {}), _trainer(w, folder, dict(CPU_OPTIONS))]
    snaps = [p[1] for p in pairs]
    times: list[list[float]] = [[], []]
    for epoch in range(1, epochs):
        for k in ((0, 1) if epoch % 2 else (1, 0)):
            t0 = time.perf_counter()
            snaps[k] = pairs[k][0].run(snaps[k], epoch + 1)
            times[k].append(time.perf_counter() - t0)
    losses = [np.array([tr.history[-1]["loss"] for tr in s.tracks]) for s in snaps]
    default, ours = statistics.median(times[0]), statistics.median(times[1])
    return {"workload": w.name, "models": len(w.lrs) or 1, "default_ms": 1e3 * default, "options_ms": 1e3 * ours,
            "speedup": default / ours,
            "loss_rel_diff": float(np.max(np.abs(losses[0] - losses[1]) / np.maximum(np.abs(losses[0]), 1e-12)))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.xla_options", description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="W1,W2,W3,W4,W5")
    p.add_argument("--models", type=int, default=256, help="W3's learning rates")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that it runs, times nothing")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    from benchmarks.sweep_scale import workload as sweep_workload
    from benchmarks.workloads import workloads
    every = workloads(quick=a.quick)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.only.split(","):
            w = sweep_workload(a.models, a.epochs) if name == "W3" else every[name]
            if a.quick and name == "W3":
                w = replace(w, n=every["W1"].n)
            epochs = 3 if a.quick else a.epochs
            row = compare(replace(w, epochs=epochs), Path(tmp) / name, epochs)
            rows.append(row)
            print(f"{row['workload']} ({row['models']} model{'s' if row['models'] > 1 else ''}): XLA's defaults "
                  f"{row['default_ms']:.2f} ms an epoch, nnspec's options {row['options_ms']:.2f} ms: "
                  f"{row['speedup']:.2f}×; final losses differ by {row['loss_rel_diff']:.1e} (relative)",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
