"""`nnspec train` run as a user runs it from a shell: one process per job, with its own
interpreter start, imports, compilation (no persistent cache: NNSPEC_NO_CACHE=1), training
and run folder. `nnspec_cli` trains the W3 sweep spec in one such process; `nnspec_procs`
trains each setting in a process of its own. Timed from before the first process starts
to the end of the last; the losses are read back from the run folders."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import tempfile
from pathlib import Path

from benchmarks.clock import Clock
from benchmarks.frontend import cli_command
from benchmarks.workloads import Workload


def nnspec_train(spec: Path, out: Path) -> None:
    env = {**os.environ, "NNSPEC_NO_CACHE": "1"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    done = subprocess.run([*cli_command(), "train", str(spec), "--out", str(out), "-q"],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"nnspec train {spec} exited {done.returncode}:\n{done.stdout}{done.stderr[-2000:]}")


def last_loss(history_jsonl: str) -> float:
    return json.loads(history_jsonl.strip().splitlines()[-1])["loss"]


def train(w: Workload, npz: Path, spec: Path, clock: Clock) -> None:
    clock.whole_runs = True
    with tempfile.TemporaryDirectory(prefix="nnspec-cli-") as tmp:
        out = Path(tmp) / "run"
        nnspec_train(spec, out)
        members = [json.loads(line) for line in (out / "sweep.jsonl").read_text().splitlines() if line.strip()]
        losses = [m["history"][-1]["loss"] for m in members]
        clock.epoch(losses[w.reference])
    if any(len(m["history"]) != w.epochs for m in members) or len(members) != len(w.lrs):
        raise RuntimeError(f"the sweep trained {len(members)} models for {[len(m['history']) for m in members]} epochs")
    clock.sweep_losses = losses
    clock.final_loss = losses[w.reference]


def train_each(w: Workload, npz: Path, spec: Path, clock: Clock) -> None:
    """One `nnspec train` process per setting (`nnspec_procs`)."""
    clock.whole_runs = True
    chosen = w.settings_alone()
    clock.models = len(chosen)
    finals: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="nnspec-procs-") as tmp:
        folder = Path(tmp)
        specs = {}
        for i in chosen:  # written before the clock's first run starts, as a user's files would be
            one = dataclasses.replace(w, lrs=(), lr=w.lrs[i])
            specs[i] = folder / f"{w.name}_lr{i}.nn"
            specs[i].write_text(one.spec(str(npz.resolve())), encoding="utf-8")
        clock.begin()
        for i in chosen:
            out = folder / f"run{i}"
            nnspec_train(specs[i], out)
            history = (out / "history.jsonl").read_text()
            finals[i] = last_loss(history)
            clock.epoch(finals[i])
            if len(history.strip().splitlines()) != w.epochs:
                raise RuntimeError(f"setting {i} trained {len(history.strip().splitlines())} epochs, not {w.epochs}")
    clock.sweep_losses = [finals[i] for i in sorted(finals)]
    clock.final_loss = finals[w.reference]
