"""One measurement in its own process: `python -m benchmarks.worker REQUEST-JSON`.

A fresh process per measurement keeps frameworks from sharing threads, caches or
compiled programs, and makes its peak resident memory (getrusage's ru_maxrss) belong to
that measurement alone. The result is one JSON line on stdout, after `MARK`.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import traceback
from pathlib import Path

from benchmarks.baselines import IMPLS
from benchmarks.clock import Clock, peak_rss_mb, rss_mb, summarize
from benchmarks.workloads import workloads

MARK = "BENCHMARK-RESULT "


def measure(request: dict) -> dict:
    """Import the implementation (untimed), then time its training from the data file."""
    w = workloads(request["quick"])[request["workload"]]
    t0 = time.perf_counter()
    module = importlib.import_module(IMPLS[request["impl"]][0])
    if "jax" in sys.modules:  # start the JAX runtime (about a second) outside the timed region
        sys.modules["jax"].devices()
    import_s = time.perf_counter() - t0
    base_rss = rss_mb()
    clock = Clock()
    clock.begin()
    module.train(w, Path(request["npz"]), Path(request["spec"]), clock)
    out = summarize(clock, n=w.n, steps=w.steps)
    if clock.whole_runs:
        if out["runs"] != clock.models:
            raise RuntimeError(f"{request['impl']} reported {out['runs']} runs, not {clock.models}")
    elif out["epochs"] != w.epochs * clock.models:
        raise RuntimeError(f"{request['impl']} reported {out['epochs']} epochs, not {w.epochs * clock.models}")
    return {"status": "ok", **out, "import_s": import_s, "rss_after_import_mb": base_rss,
            # with `nnspec train` subprocesses, the largest of them (each is one job)
            "peak_rss_mb": max(peak_rss_mb(), peak_rss_mb(children=True)), "whole_runs": clock.whole_runs,
            "losses": clock.losses[-w.epochs:],
            **({"sweep_losses": clock.sweep_losses} if clock.sweep_losses is not None else {})}


def main(argv: list[str]) -> int:
    request = json.loads(argv[0])
    try:
        result = measure(request)
    except Exception:  # reported in the table, not as a crash of the harness
        result = {"status": "error", "note": traceback.format_exc(limit=8)}
    sys.stdout.write("\n" + MARK + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
