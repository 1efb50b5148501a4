"""W3 as a shell user without sweeps runs it: one `nnspec train` process per setting (see
nnspec_cli.py). With `Workload.alone` (--quick) only some settings."""

from benchmarks.baselines.nnspec_cli import train_each as train

__all__ = ["train"]
