"""What `history steps` costs: `python -m benchmarks.steps [--quick] [--epochs N]`.

The trainer (nnspec.trainer.Trainer, as fit and fit_sweep drive it) trains the same
workload twice side by side, with and without `history steps`, ONE EPOCH EACH IN TURN
(the order swapped every epoch), so a busy machine slows both alike; both share one
compiled epoch program. Each line gives the median epoch of each (the first epoch, which
compiles, left out) and their ratio, with ÷ without; `nnspec.fit` end to end with a run
folder (checkpoints and `steps.csv` rewritten every 2 seconds, as `nnspec train` does)
is timed whole, alternating runs.

- W1 (the textbook MLP, batch 32: 128 steps an epoch, a tiny program, so any per-epoch
  overhead shows);
- W1 at batch 1 (4,096 steps an epoch: the most per-step losses per epoch);
- W3 (W1 at 16 learning rates as one stack: 16 × 128 losses an epoch).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import nnspec
from nnspec.fit import fit
from nnspec.prepare import prepare
from nnspec.trainer import Trainer

from benchmarks.workloads import Workload, workloads


def _with_steps(text: str) -> str:
    return text.replace("train {\n", "train {\n    history steps\n", 1)


def _programs(w: Workload, folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    _, spec_path = w.write(folder)
    text = spec_path.read_text(encoding="utf-8")
    out = []
    for source in (text, _with_steps(text)):
        program = nnspec.check_text(source, filename=str(spec_path))
        out.append(list(program.sweep.programs) if program.sweep is not None else [program])
    return out


def trainer_epochs(w: Workload, folder: Path, epochs: int) -> tuple[float, float, int]:
    """(median seconds of an epoch without, with `history steps`, steps recorded an epoch)."""
    without, with_ = _programs(w, folder)
    splits = prepare(without[0], folder)
    trainers = [Trainer(without, splits), Trainer(with_, splits)]
    assert not trainers[0].record_steps and trainers[1].record_steps
    snaps = [t.fresh() for t in trainers]
    times: list[list[float]] = [[], []]
    for epoch in range(epochs):
        for k in ((0, 1) if epoch % 2 else (1, 0)):
            t0 = time.perf_counter()
            snaps[k] = trainers[k].run(snaps[k], epoch + 1)
            times[k].append(time.perf_counter() - t0)
    assert trainers[0]._epoch.fast is trainers[1]._epoch.fast  # one compiled program for both
    recorded = sum(len(tr.steps[-1]) for tr in snaps[1].tracks)
    return statistics.median(times[0][1:]), statistics.median(times[1][1:]), recorded


def fit_whole(w: Workload, folder: Path, rounds: int) -> tuple[float, float]:
    """(best seconds of a whole `fit` with a run folder, without and with `history steps`)."""
    without, with_ = _programs(w, folder)
    best = [float("inf"), float("inf")]
    for r in range(rounds + 1):  # round 0 compiles, and is not counted
        for k in ((0, 1) if r % 2 else (1, 0)):
            out = Path(tempfile.mkdtemp(dir=folder)) / "run"
            t0 = time.perf_counter()
            fit((without, with_)[k][0], base_dir=folder, out=out)
            if r:
                best[k] = min(best[k], time.perf_counter() - t0)
    return best[0], best[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.steps", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks that it runs, times nothing")
    ap.add_argument("--epochs", type=int, default=None, help="epochs of each variant (default 200; --quick 6)")
    args = ap.parse_args(argv)
    ws = workloads(args.quick)
    epochs = args.epochs or (6 if args.quick else 200)
    w1, w3 = ws["W1"], ws["W3"]
    rows = [("W1, batch 32", w1), ("W1, batch 1", replace(w1, name="W1b1", batch=1)),
            ("W3, 16-model stack", w3)]
    print(f"`history steps`: median epoch of {epochs}, alternating epoch by epoch (the first left out)")
    print(f"{'workload':<24} {'steps kept/epoch':>16} {'without':>11} {'with':>11} {'ratio':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for title, w in rows:
            without, with_, recorded = trainer_epochs(w, Path(tmp) / w.name, epochs)
            print(f"{title:<24} {recorded:>16,} {without * 1e3:>9.3f}ms {with_ * 1e3:>9.3f}ms "
                  f"{with_ / without:>7.3f}", flush=True)
        whole = replace(w1, epochs=20 if args.quick else 100)
        without, with_ = fit_whole(whole, Path(tmp) / "fit", 1 if args.quick else 3)
        print(f"{'W1 fit, run folder':<24} {whole.epochs:>10} epochs {without:>10.3f}s {with_:>10.3f}s "
              f"{with_ / without:>7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
