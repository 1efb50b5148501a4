"""W3 as a library user without sweeps writes it: `nnspec.fit.fit` on each setting's
Program (the sweep's members), one after another in one process. Every call builds and
compiles its own programs (initialization, epoch), so this prices what compiling per
setting costs against `nnspec_seq`. With `Workload.alone` (--quick) only some settings."""

from __future__ import annotations

from pathlib import Path

import nnspec
import nnspec.fit as nfit

from benchmarks.clock import Clock
from benchmarks.workloads import Workload


def train(w: Workload, npz: Path, spec: Path, clock: Clock) -> None:
    program = nnspec.check_text(spec.read_text(encoding="utf-8"), filename=str(spec))
    chosen = w.settings_alone()
    clock.models = len(chosen)
    finals = {}
    for i in chosen:
        nfit.fit(program.sweep.programs[i], progress=lambda epoch, total, row, seconds: clock.epoch(row["loss"]))
        finals[i] = clock.losses[-1]
    clock.sweep_losses = [finals[i] for i in sorted(finals)]
    clock.final_loss = finals[w.reference]
