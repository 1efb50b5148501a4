"""Timing and memory of one measurement, and the arithmetic that turns them into results.

An implementation calls `clock.epoch(loss)` once per epoch, after the epoch's results
are on the host (so the device work is finished). From those timestamps:

- steady-state samples/s = n / median(epoch time), over every epoch but the first;
- time to first step = first epoch − (steps − 1)/steps × median(epoch): the compile and
  the first step, measured the same way for programs that fuse a whole epoch (whose first
  step cannot be seen alone) and for loops that run one step at a time;
- wall clock = the end of the last epoch − the start: everything after the imports
  (reading the data, compiling, training), for comparing whole jobs.

An implementation that can only see whole training runs (a `nnspec train` process per
model) sets `whole_runs` and calls `clock.epoch(final loss)` once per run: it then has a
wall clock, but no samples/s and no time to first step.
"""

from __future__ import annotations

import resource
import statistics
import time
from dataclasses import dataclass, field


@dataclass
class Clock:
    """Timestamps of the end of each epoch, and the epoch's mean training loss."""
    start: float = 0.0
    ends: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    # a sweep's runner may count differently: the samples one `epoch` call stands for, and
    # the final loss it reports (the model at the workload's `lr`), every model's in `sweep_losses`
    samples: int | None = None
    final_loss: float | None = None
    sweep_losses: list[float] | None = None
    # models trained one after another, each reporting its own epochs (or, with
    # `whole_runs`, each reporting once, at its end)
    models: int = 1
    whole_runs: bool = False

    def begin(self) -> None:
        self.start = time.perf_counter()

    def epoch(self, loss: float) -> None:
        self.ends.append(time.perf_counter())
        self.losses.append(float(loss))

    def epoch_times(self) -> list[float]:
        marks = [self.start, *self.ends]
        return [b - a for a, b in zip(marks, marks[1:])]


def summarize(clock: Clock, *, n: int, steps: int) -> dict[str, float | None]:
    """Samples/s, time to first step and final loss from one measurement's clock."""
    n = clock.samples or n
    times = clock.epoch_times()
    if not times:
        raise ValueError("the implementation reported no epoch")
    if clock.whole_runs:
        return {"samples_per_s": None, "epoch_s": None, "first_epoch_s": None, "first_step_s": None,
                "total_s": sum(times), "final_loss": clock.final_loss if clock.final_loss is not None
                else clock.losses[-1], "runs": len(times)}
    steady = statistics.median(times[1:]) if len(times) > 1 else None
    first_step = times[0] - (steady * (steps - 1) / steps if steady is not None else 0.0)
    return {
        "samples_per_s": n / steady if steady else None,
        "epoch_s": steady,
        "first_epoch_s": times[0],
        "first_step_s": first_step,
        "total_s": sum(times),
        "final_loss": clock.final_loss if clock.final_loss is not None else clock.losses[-1],
        "epochs": len(times),
    }


def rss_mb() -> float:
    """This process's resident memory now, in MiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def peak_rss_mb(*, children: bool = False) -> float:
    """This process's peak resident memory so far, in MiB (getrusage: KiB on Linux); with
    `children`, the largest peak of any finished child process (0 if none)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF).ru_maxrss / 1024
