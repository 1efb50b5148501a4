"""run(...) -> results: every workload × implementation, one subprocess per measurement.

The data and spec files are written once to a temporary folder, so every implementation
reads the same arrays. With `repeat` > 1 each workload is measured in rounds, the order
of the implementations rotated every round, and each keeps its best round (the highest
samples/s): other processes on a shared machine only ever slow a run down.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from benchmarks import csv_read, frontend, report, stream
from benchmarks.baselines import IMPLS
from benchmarks.workloads import Workload, workloads
from benchmarks.worker import MARK

ROOT = Path(__file__).resolve().parent.parent
Log = Callable[[str], None]


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info: dict[str, Any] = {"date": datetime.date.today().isoformat(), "nproc": os.cpu_count(), "cpu": cpu,
                            "python": platform.python_version()}
    for pkg in ("jax", "jaxlib", "optax", "numpy", "torch", "keras"):
        info[pkg] = _version(pkg)
    return info


def _version(pkg: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(pkg)
    except PackageNotFoundError:
        return None


def cpu_busy_s() -> float:
    """CPU seconds every process on the machine has used since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


def children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def others_now(seconds: float = 0.5) -> float:
    """Cores busy with other processes over the next `seconds` (this one sleeps)."""
    busy = cpu_busy_s()
    time.sleep(seconds)
    return (cpu_busy_s() - busy) / seconds


def wait_quiet(max_wait: float, log: Log, *, threshold: float = 0.3) -> float:
    """Wait up to `max_wait` seconds for the other processes to use under `threshold` cores;
    returns what they used last."""
    deadline = time.monotonic() + max_wait
    others = others_now()
    told = False
    while others > threshold and time.monotonic() < deadline:
        if not told:
            log(f"  waiting for other processes to quiet down ({others:.1f} cores busy)")
            told = True
        others = others_now(2.0)
    return others


def missing(impl: str) -> str | None:
    """Why `impl` cannot run here, or None."""
    need = IMPLS[impl][1]
    if need is not None and importlib.util.find_spec(need) is None:
        # the bench extra: pip install -e '.[bench]' (PyTorch's CPU wheel, Keras 3)
        pin = " (pip install 'torch==2.13.0')" if need == "torch" else " (pip install 'keras>=3')"
        return f"`{need}` is not installed{pin}"
    return None


def measure(w: Workload, impl: str, npz: Path, spec: Path, quick: bool) -> dict[str, Any]:
    """One measurement in a fresh process; `others_cores` is how many cores the rest of the
    machine kept busy meanwhile (0 on a quiet machine; the measurement is then trustworthy)."""
    request = {"workload": w.name, "quick": quick, "impl": impl, "npz": str(npz), "spec": str(spec)}
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)  # every run compiles: time to first step is honest
    busy, mine = cpu_busy_s(), children_cpu_s()
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "benchmarks.worker", json.dumps(request)],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    others = max(0.0, (cpu_busy_s() - busy) - (children_cpu_s() - mine)) / wall
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if not lines:
        return {"status": "error", "note": f"the worker exited {done.returncode} without a result:\n"
                                           f"{done.stderr[-2000:]}"}
    result = json.loads(lines[-1][len(MARK):])
    result.update(process_s=wall, others_cores=others)
    return result


def run(*, quick: bool = False, only: list[str] | None = None, impls: list[str] | None = None,
        repeat: int = 1, jobs: int = 1, quiet: float = 0.0, log: Log = print) -> dict[str, Any]:
    """Measure; returns a JSON-able dict (see report.py for its layout).

    `jobs` > 1 runs measurements side by side (for --quick smoke runs only: the timings
    are then meaningless); `quiet` waits up to that many seconds before each measurement
    for other processes to leave the CPUs alone."""
    all_w = workloads(quick)
    # `stream` writes a 4 GiB file (0.05 GiB with --quick): only when asked for
    names = only or [*all_w, "frontend", "csv"]
    unknown = [n for n in names if n not in (*all_w, "frontend", "csv", "stream")]
    if unknown:
        raise ValueError(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(all_w)}, frontend, csv, "
                         f"stream")
    if jobs > 1 and not quick:
        raise ValueError("--jobs runs measurements side by side, which spoils their timings: only with --quick")
    chosen = impls or list(IMPLS)
    results: dict[str, Any] = {"machine": machine(), "quick": quick, "repeat": repeat, "workloads": {}}
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nnspec-bench-") as tmp, \
            ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        folder = Path(tmp)
        # first every data file, then the measurements (in order, or `jobs` at a time),
        # then the front end: nothing of the harness's own runs beside a measurement
        jobs_todo: list[tuple[Workload, str, Path, Path, str]] = []
        runnable: dict[str, list[str]] = {}
        for name in names:
            if name in ("frontend", "csv", "stream"):
                continue
            w = all_w[name]
            try:
                npz, spec = w.write(folder)
            except Exception as exc:  # W4's digits need scikit-learn: say so, measure the rest
                note = getattr(exc, "message", None) or str(exc)
                results["workloads"][name] = {"title": w.title, "status": "skipped",
                                              "note": f"cannot make its data: {note}"}
                log(f"{name}: skipped, cannot make its data: {note}")
                continue
            entry: dict[str, Any] = {"title": w.title, "n": w.n, "epochs": w.epochs, "batch": w.batch,
                                     "steps_per_epoch": w.steps, "bars": w.bars,
                                     "wall_bars": {k: list(v) for k, v in w.wall_bars.items()},
                                     "loss_tol": w.loss_tol, "loss_floor": w.loss_floor,
                                     "quick": quick, "impls": {}}
            results["workloads"][name] = entry
            runnable[name] = []
            for impl in (i for i in chosen if i in w.impls):
                why = missing(impl)
                if why:
                    entry["impls"][impl] = {"status": "skipped", "note": why}
                    log(f"{name} {impl}: skipped, {why}")
                else:
                    runnable[name].append(impl)
            for r in range(repeat):
                k = r % len(runnable[name]) if runnable[name] else 0
                for impl in runnable[name][k:] + runnable[name][:k]:  # rotated: no one always runs first
                    jobs_todo.append((w, impl, npz, spec, f"{name} {impl} (round {r + 1}/{repeat})"))
        futures = [(w.name, impl, pool.submit(_measure_logged, w, impl, npz, spec, quick, label, quiet, log))
                   for w, impl, npz, spec, label in jobs_todo]
        rounds: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for name, impl, f in futures:
            rounds.setdefault((name, impl), []).append(f.result())
        for name, impls_ in runnable.items():
            entry = results["workloads"][name]
            for impl in impls_:
                entry["impls"][impl] = best(rounds[(name, impl)])
            entry["comparison"] = report.compare(entry)
        if "frontend" in names:
            log("frontend: check and compile a 200-layer spec")
            results["frontend"] = frontend.measure(folder, repeats=1 if quick else 5)
        if "csv" in names:
            log("csv: read a 200,000-row numeric CSV file")
            results["csv"] = csv_read.measure(folder, rows=2_000 if quick else 200_000, rounds=1 if quick else 3)
        if "stream" in names:
            log("stream: train on a 4 GiB .npy file, streamed, and on a small one (peak memory)")
            results["stream"] = stream.measure(folder, gib=0.05 if quick else 4.0)
    results["harness_s"] = time.perf_counter() - t_start
    return results


def _measure_logged(w: Workload, impl: str, npz: Path, spec: Path, quick: bool, label: str, quiet: float,
                    log: Log) -> dict[str, Any]:
    if quiet > 0:
        wait_quiet(quiet, log)
    res = measure(w, impl, npz, spec, quick)
    log(f"{label}: {_brief(res)}")
    return res


def best(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the highest samples/s (for whole runs: the shortest), with the lowest
    time to first step and the shortest wall clock of any round."""
    ok = [r for r in rounds if r.get("status") == "ok"]
    if not ok:
        return rounds[-1]
    top = max(ok, key=lambda r: r["samples_per_s"] if r["samples_per_s"] is not None else -r["total_s"])
    firsts = [r["first_step_s"] for r in ok if r["first_step_s"] is not None]
    return {**top, "first_step_s": min(firsts) if firsts else None, "total_s": min(r["total_s"] for r in ok),
            "rounds": [{k: r[k] for k in ("samples_per_s", "first_step_s", "total_s", "peak_rss_mb", "others_cores")}
                       for r in ok]}


def _brief(res: dict[str, Any]) -> str:
    if res.get("status") != "ok":
        return f"{res.get('status')}: {res.get('note', '').strip().splitlines()[-1:]}"
    rate = res["samples_per_s"]
    speed = (f"{rate:,.0f} samples/s, first step {res['first_step_s']:.2f} s, " if rate is not None
             else f"{res['runs']} whole run(s), ")
    return (f"{speed}wall {res['total_s']:.2f} s, loss {res['final_loss']:.4f}, peak {res['peak_rss_mb']:.0f} MiB, "
            f"other processes {res['others_cores']:.1f} cores")
