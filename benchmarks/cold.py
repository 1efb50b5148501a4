"""`python -m benchmarks.cold`: time to a trained model from a cold process (issue 12).

    python -m benchmarks.cold [--specs pass_class,digits_mlp] [--repeat 3] [--json FILE]
                              [--breakdown] [--epochs N]

For each spec, each implementation is run in a fresh process, the implementations in
turn, the order rotated every round; each keeps its best of `--repeat` rounds:

- `nnspec` : `python -m nnspec train specs/X.nn --out TMP` (the CLI as users run it),
  with an empty persistent XLA cache (the CLI keeps it in `$XDG_CACHE_HOME/nnspec/xla`,
  nnspec/envinfo.py `xla_cache_dir`: every run gets a fresh XDG_CACHE_HOME);
- `nnspec (warm cache)` : the same with a cache that one unmeasured run filled first (a
  user's second run of the spec);
- `keras` : benchmarks/baselines/keras_cold.py (Keras 3, KERAS_BACKEND=jax);
- `torch` : benchmarks/baselines/torch_cold.py (PyTorch eager on the CPU).

The baselines build the same arrays without importing nnspec (baselines/cold_data.py).
Every process gets PYTHONUNBUFFERED=1 (so each line is seen when printed) and no
JAX_COMPILATION_CACHE_DIR. Per run: `whole_s`, from just before the process is spawned
to its exit; `first_epoch_s`, from the spawn to the first epoch's line on its stdout or
stderr (`FIRST_EPOCH` says which line that is for each); the test accuracy it prints
last. nnspec's runs also time the lines before (`header_s`: the spec checked, imports
but JAX's done; `compiling_s`: the data split, about to compile) and after
(`last_epoch_s`, `finished_s`: the summary printed). `--breakdown` times the imports
alone, each in fresh processes. Goals: nnspec's whole time ≤ 0.5× Keras's and ≤ 0.7×
PyTorch's; its first epoch line within 1.0 s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from benchmarks.harness import cpu_busy_s, children_cpu_s, machine

ROOT = Path(__file__).resolve().parent.parent
BASELINES = ROOT / "benchmarks" / "baselines"
SPECS = ("pass_class", "digits_mlp")
IMPLS = ("nnspec", "nnspec_warm", "keras", "torch")
LABELS = {"nnspec": "nnspec", "nnspec_warm": "nnspec (warm cache)", "keras": "Keras 3 (JAX)",
          "torch": "PyTorch (CPU)"}
NEEDS = {"keras": "keras", "torch": "torch"}  # a missing package skips its rows, with a note
# the goals of issue 12: nnspec's whole time ÷ the baseline's, at most; its first epoch line, in s
RATIO_GOALS = {"keras": 0.5, "torch": 0.7}
FIRST_EPOCH_GOAL = 1.0
TIMEOUT_S = 600.0

# the first epoch's line: nnspec's progress line (`epoch   1/100  loss ...`, on stderr) and
# torch_cold.py's (`epoch 1/100  loss ...`); Keras's verbose=2 prints `Epoch 1/100` when the
# epoch starts and `10/10 - 0s - 4ms/step - ... loss: ...` when it ends: the latter
FIRST_EPOCH = {
    "nnspec": re.compile(r"^epoch\s+1/\d+\s"),
    "torch": re.compile(r"^epoch\s+1/\d+\s"),
    "keras": re.compile(r"^\d+/\d+ - .*loss: "),
}
# the test accuracy each prints: nnspec's summary row `    test   loss 0.1127  accuracy 0.9800`
TEST_ACCURACY = {
    "nnspec": re.compile(r"^\s+test\s+loss \S+\s+accuracy (\d\S*)"),
    "torch": re.compile(r"^test accuracy (\d\S*)"),
    "keras": re.compile(r"^test accuracy (\d\S*)"),
}
# nnspec's milestones, by the line that marks them
MILESTONES = {"header_s": re.compile(r"^(training|resuming) `"), "compiling_s": re.compile(r"^compiling"),
              "first_epoch_s": FIRST_EPOCH["nnspec"], "finished_s": re.compile(r"^training finished")}
LAST_EPOCH = re.compile(r"^epoch\s+(\d+)/(\d+)\s")
COMPILED_IN = re.compile(r"compiled in ([\d.]+)s")
Log = Callable[[str], None]


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "KERAS_BACKEND": "jax", **extra}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env.pop("NNSPEC_NO_CACHE", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return env


def command(impl: str, spec: str, out: Path, epochs: int | None = None) -> list[str]:
    if impl.startswith("nnspec"):
        cmd = [sys.executable, "-m", "nnspec", "train", str(ROOT / "specs" / f"{spec}.nn"), "--out", str(out)]
        return cmd + (["--epochs", str(epochs)] if epochs else [])
    return [sys.executable, str(BASELINES / f"{impl}_cold.py"), spec, *([str(epochs)] if epochs else [])]


def timed_run(cmd: list[str], env: dict[str, str], impl: str) -> dict[str, Any]:
    """One process, its output read line by line as it comes: the times of the lines that
    matter, its exit status, the test accuracy it printed, the other processes' load."""
    kind = "nnspec" if impl.startswith("nnspec") else impl
    busy, mine = cpu_busy_s(), children_cpu_s()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
                            bufsize=1)
    watchdog = threading.Timer(TIMEOUT_S, proc.kill)  # a hung process, printing nothing, is ended too
    watchdog.start()
    times: dict[str, float] = {}
    accuracy = compiled = None
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        now = time.perf_counter() - t0
        tail = (tail + [line])[-40:]
        if "first_epoch_s" not in times and FIRST_EPOCH[kind].search(line):
            times["first_epoch_s"] = now
        if kind == "nnspec":
            for key, pattern in MILESTONES.items():
                if key not in times and pattern.search(line):
                    times[key] = now
            if LAST_EPOCH.search(line):
                times["last_epoch_s"] = now
            m = COMPILED_IN.search(line)
            if m and compiled is None:
                compiled = float(m.group(1))
        m = TEST_ACCURACY[kind].search(line)
        if m:
            accuracy = float(m.group(1))
    rc = proc.wait()
    watchdog.cancel()
    whole = time.perf_counter() - t0
    others = max(0.0, (cpu_busy_s() - busy) - (children_cpu_s() - mine)) / whole
    if rc != 0 or "first_epoch_s" not in times:
        return {"status": "error", "note": f"exited {rc}" + ("" if rc else ", no first epoch line seen")
                + ":\n" + "".join(tail[-15:])}
    return {"status": "ok", "whole_s": whole, **times, "test_accuracy": accuracy, "compiled_in_s": compiled,
            "others_cores": others}


def missing(impl: str) -> str | None:
    import importlib.util
    need = NEEDS.get(impl)
    if need is not None and importlib.util.find_spec(need) is None:
        return f"`{need}` is not installed (pip install {'torch==2.13.0' if need == 'torch' else 'keras>=3'})"
    return None


def measure(spec: str, impl: str, folder: Path, warm_cache: Path, epochs: int | None = None) -> dict[str, Any]:
    """One run of `impl` on `spec` in a fresh process."""
    run = Path(tempfile.mkdtemp(prefix=f"{impl}-", dir=folder))
    try:
        cache = warm_cache if impl == "nnspec_warm" else run / "cache"
        env = _env(XDG_CACHE_HOME=str(cache)) if impl.startswith("nnspec") else _env()
        return timed_run(command(impl, spec, run / "out", epochs), env, impl)
    finally:
        shutil.rmtree(run, ignore_errors=True)


def best(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the shortest whole time, with the earliest first epoch of any round
    (`best_round`: that round alone, every line's time as it came)."""
    ok = [r for r in rounds if r["status"] == "ok"]
    if not ok:
        return rounds[-1]
    top = min(ok, key=lambda r: r["whole_s"])
    return {**top, "first_epoch_s": min(r["first_epoch_s"] for r in ok), "best_round": top,
            "rounds": [{k: r.get(k) for k in ("whole_s", "first_epoch_s", "others_cores")} for r in ok]}


def run(specs: list[str], repeat: int, *, impls: tuple[str, ...] = IMPLS, epochs: int | None = None,
        log: Log = print) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine(), "repeat": repeat, "epochs": epochs, "specs": {}}
    with tempfile.TemporaryDirectory(prefix="nnspec-cold-") as tmp:
        folder = Path(tmp)
        for spec in specs:
            entry: dict[str, Any] = {"impls": {}}
            results["specs"][spec] = entry
            runnable = []
            for impl in impls:
                why = missing(impl)
                if why:
                    entry["impls"][impl] = {"status": "skipped", "note": why}
                    log(f"{spec} {impl}: skipped, {why}")
                else:
                    runnable.append(impl)
            warm = folder / f"{spec}-warm-cache"
            if "nnspec_warm" in runnable:  # a user's first run fills the cache: not measured
                env = _env(XDG_CACHE_HOME=str(warm))
                primed = timed_run(command("nnspec", spec, folder / f"{spec}-prime", epochs), env, "nnspec")
                shutil.rmtree(folder / f"{spec}-prime", ignore_errors=True)
                log(f"{spec}: the warm cache filled by one unmeasured run ({_brief(primed)})")
            rounds: dict[str, list[dict[str, Any]]] = {i: [] for i in runnable}
            for r in range(repeat):
                k = r % len(runnable) if runnable else 0
                for impl in runnable[k:] + runnable[:k]:  # rotated: no one always runs first
                    res = measure(spec, impl, folder, warm, epochs)
                    rounds[impl].append(res)
                    log(f"{spec} {impl} (round {r + 1}/{repeat}): {_brief(res)}")
            for impl in runnable:
                entry["impls"][impl] = best(rounds[impl])
    results["rows"] = judge(results)
    return results


def judge(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The table's rows: every implementation's best, nnspec's ratios to the baselines and
    whether each goal is met (for nnspec with an empty cache, and with a warm one)."""
    rows = []
    for spec, entry in results["specs"].items():
        got = entry["impls"]
        for impl, res in got.items():
            row: dict[str, Any] = {"spec": spec, "impl": impl, "status": res["status"], "note": res.get("note"),
                                   "whole_s": res.get("whole_s"), "first_epoch_s": res.get("first_epoch_s"),
                                   "test_accuracy": res.get("test_accuracy"), "checks": []}
            if res["status"] == "ok" and impl.startswith("nnspec"):
                ok = res["first_epoch_s"] <= FIRST_EPOCH_GOAL
                row["checks"].append({"goal": f"first epoch ≤ {FIRST_EPOCH_GOAL:g} s", "pass": ok})
                for base, bar in RATIO_GOALS.items():
                    other = got.get(base, {})
                    if other.get("status") != "ok":
                        continue
                    ratio = res["whole_s"] / other["whole_s"]
                    row["checks"].append({"goal": f"≤ {bar:g}× {base}", "ratio": ratio, "pass": ratio <= bar})
            rows.append(row)
    return rows


def _brief(res: dict[str, Any]) -> str:
    if res["status"] != "ok":
        return f"{res['status']}: {res.get('note', '').strip()[-600:]}"
    acc = res.get("test_accuracy")
    return (f"whole {res['whole_s']:.2f} s, first epoch {res['first_epoch_s']:.2f} s, test accuracy "
            f"{'?' if acc is None else f'{acc:.4f}'}, other processes {res['others_cores']:.1f} cores")


def table(results: dict[str, Any]) -> str:
    def s(v: float | None) -> str:
        return "—" if v is None else f"{v:.2f}"
    lines = ["| spec | implementation | whole s | first epoch s | test accuracy | nnspec ÷ it (whole) | goal | |",
             "|---|---|---:|---:|---:|---:|---|---|"]
    for row in results["rows"]:
        label = LABELS[row["impl"]]
        if row["status"] != "ok":
            lines.append(f"| {row['spec']} | {label} | {row['status']}: {row.get('note') or ''} | | | | | |".replace(
                "\n", " "))
            continue
        acc = row["test_accuracy"]
        cells = [row["spec"], label, s(row["whole_s"]), s(row["first_epoch_s"]), "—" if acc is None else f"{acc:.4f}"]
        if not row["checks"]:  # a baseline: nnspec's ratio to it is on nnspec's rows
            nn = [r for r in results["rows"] if r["spec"] == row["spec"] and r["impl"] == "nnspec"
                  and r["status"] == "ok"]
            ratio = nn[0]["whole_s"] / row["whole_s"] if nn else None
            lines.append("| " + " | ".join([*cells, s(ratio) + "×" if ratio else "—", "", ""]) + " |")
            continue
        for i, c in enumerate(row["checks"]):
            lead = cells if i == 0 else ["", "", "", "", ""]
            ratio = f"{c['ratio']:.2f}×" if "ratio" in c else ""
            lines.append("| " + " | ".join([*lead, ratio, c["goal"], "pass" if c["pass"] else "FAIL"]) + " |")
    return "\n".join(lines) + "\n"


def milestones(results: dict[str, Any]) -> str:
    """nnspec's runs, line by line: when each stage's line came, in the round of the
    shortest whole time."""
    keys = ("header_s", "compiling_s", "first_epoch_s", "last_epoch_s", "finished_s", "whole_s")
    lines = ["| spec | run | spec checked (header) | compiling… | first epoch | last epoch | summary | exit |"
             " compiled in |", "|---|---|" + "---:|" * 7]
    for spec, entry in results["specs"].items():
        for impl in ("nnspec", "nnspec_warm"):
            res = entry["impls"].get(impl)
            if not res or res["status"] != "ok":
                continue
            res = res.get("best_round", res)
            cells = ["—" if res.get(k) is None else f"{res[k]:.2f}" for k in keys]
            comp = res.get("compiled_in_s")
            lines.append(f"| {spec} | {LABELS[impl]} | " + " | ".join(cells)
                         + f" | {'—' if comp is None else f'{comp:.1f}'} |")
    return "\n".join(lines) + "\n"


# what --breakdown times, each in fresh processes: `python -c CODE`
BREAKDOWN = [
    ("python -c pass", "pass"),
    ("import numpy", "import numpy"),
    ("import jax", "import jax"),
    ("import jax; jax.devices()", "import jax; jax.devices()"),
    ("jax: one jit compile + run", "import jax, jax.numpy as jnp; jax.jit(lambda x: x * 2 + 1)(jnp.ones(3))"
                                   ".block_until_ready()"),
    ("import optax", "import optax"),
    ("import nnspec.cli", "import nnspec.cli"),
    ("nnspec check (load pass_class.nn)", "from nnspec.cli import load; load('specs/pass_class.nn')"),
    ("import nnspec.fit", "import nnspec.fit"),
    ("sklearn load_digits()", "from sklearn.datasets import load_digits; load_digits()"),
    # the same 1797×65 numbers read from scikit-learn's own file, without importing it
    ("numpy.loadtxt of sklearn's digits.csv.gz", "import importlib.util, os, numpy; numpy.loadtxt(os.path.join("
                                                 "os.path.dirname(importlib.util.find_spec('sklearn').origin), "
                                                 "'datasets', 'data', 'digits.csv.gz'), delimiter=',')"),
    ("import keras (jax)", "import keras"),
    ("import torch", "import torch"),
]


def breakdown(repeat: int, log: Log = print) -> list[dict[str, Any]]:
    rows = []
    for label, code in BREAKDOWN:
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", code], env=_env(NNSPEC_NO_CACHE="1"), cwd=ROOT,
                                  capture_output=True, text=True)
            times.append(time.perf_counter() - t0)
            if done.returncode:
                times = []
                break
        rows.append({"what": label, "best_s": min(times) if times else None})
        log(f"breakdown {label}: {'failed' if not times else f'{min(times):.2f} s'}")
    return rows


def breakdown_table(rows: list[dict[str, Any]]) -> str:
    cells = ["failed" if r["best_s"] is None else f"{r['best_s']:.2f}" for r in rows]
    return "| a fresh process that runs | best s |\n|---|---:|\n" + "".join(
        f"| `{r['what']}` | {c} |\n" for r, c in zip(rows, cells))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cold", description=__doc__.split("\n\n")[0])
    p.add_argument("--specs", default=",".join(SPECS), metavar="A,B", help=f"specs (default: {','.join(SPECS)})")
    p.add_argument("--impls", default=",".join(IMPLS), metavar="A,B", help=f"implementations (default: "
                   f"{','.join(IMPLS)})")
    p.add_argument("--repeat", type=int, default=3, metavar="N", help="rounds; each keeps its best (default 3)")
    p.add_argument("--epochs", type=int, metavar="N", help="train N epochs instead of the spec's (nnspec: `train "
                   "--epochs`), for a quick check")
    p.add_argument("--breakdown", action="store_true", help="also time the imports alone, in fresh processes")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    args = p.parse_args(argv)
    specs = [s for s in args.specs.split(",") if s]
    impls = tuple(i for i in args.impls.split(",") if i)
    bad = [s for s in specs if s not in SPECS] + [i for i in impls if i not in IMPLS]
    if bad:
        p.error(f"unknown {', '.join(bad)}; specs: {', '.join(SPECS)}; implementations: {', '.join(IMPLS)}")

    def log(s: str) -> None:
        print(s, file=sys.stderr, flush=True)
    results = run(specs, max(1, args.repeat), impls=impls, epochs=args.epochs, log=log)
    if args.breakdown:
        results["breakdown"] = breakdown(max(1, args.repeat), log)
    m = results["machine"]
    sys.stdout.write(f"cold start, best of {results['repeat']} ({m['date']}, {m['nproc']} cores, {m['cpu']})\n\n")
    sys.stdout.write(table(results) + "\n" + milestones(results))
    if args.breakdown:
        sys.stdout.write("\n" + breakdown_table(results["breakdown"]))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
