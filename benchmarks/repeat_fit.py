"""`nnspec.fit` called many times in one process on one model with different numbers (a
library user's own search loop): how long N calls take with compiled programs shared
across calls (`nnspec.trainer.compiled`), against the same calls with plain `jax.jit`
(every call compiles), each in a fresh process, in the same run.

    python -m benchmarks.repeat_fit [--calls 16] [--epochs 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

SPEC = "specs/lr_sweep.nn"


def child(calls: int, epochs: int, shared: bool) -> dict[str, float]:
    import jax

    import nnspec
    from nnspec import trainer
    from nnspec.fit import fit
    if not shared:
        trainer.compiled = lambda fn, options=None: jax.jit(fn)  # every call compiles, as before
    program = nnspec.check_text(open(SPEC, encoding="utf-8").read(), filename=SPEC)
    members = [p for p in program.sweep.programs if p.optimizer.params["lr"] <= 1]  # none diverges
    t0 = time.perf_counter()
    losses = [fit(members[i % len(members)], epochs=epochs).history[-1]["loss"] for i in range(calls)]
    return {"seconds": time.perf_counter() - t0, "losses": losses}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--child", choices=["shared", "jit"])
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.calls, args.epochs, args.child == "shared")))
        return
    out = {}
    for kind in ("jit", "shared"):
        run = subprocess.run([sys.executable, "-m", "benchmarks.repeat_fit", "--child", kind,
                              "--calls", str(args.calls), "--epochs", str(args.epochs)],
                             capture_output=True, text=True, check=True)
        out[kind] = json.loads(run.stdout.strip().splitlines()[-1])
    same = out["jit"]["losses"] == out["shared"]["losses"]
    print(f"{args.calls} fit calls of {SPEC}'s models, {args.epochs} epochs each")
    print(f"  plain jax.jit (compiles every call): {out['jit']['seconds']:.2f} s")
    print(f"  programs shared across calls:        {out['shared']['seconds']:.2f} s  "
          f"({out['jit']['seconds'] / out['shared']['seconds']:.2f}x faster)")
    print(f"  the same losses: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
