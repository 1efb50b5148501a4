"""nnspec as its users run it: `nnspec.train(spec)` with a progress callback, and for a
sweep `nnspec.sweep_fit.fit_sweep` (one vmapped program for all the models)."""

from __future__ import annotations

import math
from pathlib import Path

import nnspec
import nnspec.sweep_fit  # noqa: F401 - imports JAX outside the timed region, as for the baselines

from benchmarks.clock import Clock
from benchmarks.workloads import Workload


def train(w: Workload, npz: Path, spec: Path, clock: Clock) -> None:
    # the spec reads `npz` itself: check, load, lower, compile and train are all timed
    if not w.lrs:
        nnspec.train(str(spec), progress=lambda epoch, total, row, seconds: clock.epoch(row["loss"]))
        return
    program = nnspec.check_text(spec.read_text(encoding="utf-8"), filename=str(spec))
    clock.samples = w.n * len(w.lrs)  # one progress line per epoch of all the models
    result = nnspec.sweep_fit.fit_sweep(program, progress=lambda line: clock.epoch(math.nan))
    clock.sweep_losses = [m.history[-1]["loss"] if m.history else math.nan for m in result.members]
    clock.final_loss = clock.sweep_losses[w.reference]
