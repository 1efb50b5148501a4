"""CSV reading: nnspec's reader (`nnspec.data.load_csv`, what train, eval and predict use)
against `numpy.loadtxt` and, where installed, `pyarrow.csv` on the same generated file,
best of a few rounds each, taken in turns. The bar: nnspec within 2x of `numpy.loadtxt`.
`python -m benchmarks.csv_read [ROWS] [ROUNDS]` prints the numbers as JSON.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

BAR = 2.0  # nnspec's time ÷ numpy.loadtxt's


def write_csv(path: Path, rows: int, features: int = 8, *, seed: int = 0) -> None:
    """`rows` examples of `features` numbers (6 significant digits) and a 0/1 `label`."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features))
    table = np.column_stack([x, (x[:, 0] > 0).astype(np.float64)])
    header = ",".join([f"x{i + 1}" for i in range(features)] + ["label"])
    np.savetxt(path, table, fmt=["%.6g"] * features + ["%d"], delimiter=",", header=header, comments="")


def readers(path: Path) -> dict[str, Callable[[], Any]]:
    from nnspec.data import load_csv
    out: dict[str, Callable[[], Any]] = {
        "numpy_loadtxt": lambda: np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64),
        "nnspec": lambda: load_csv(path.name, base_dir=path.parent, target=("label",)),
    }
    try:
        import pyarrow.csv as pacsv
    except ImportError:
        pass
    else:
        out["pyarrow"] = lambda: pacsv.read_csv(path)
    return out


def measure(directory: Path, *, rows: int = 200_000, rounds: int = 3) -> dict[str, Any]:
    """Seconds per reader (best of `rounds`) and nnspec's ratio to each; `passes` is the bar."""
    path = directory / "table.csv"
    write_csv(path, rows)
    fns = readers(path)
    best = {name: float("inf") for name in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:  # rotated: no one always runs first
            t0 = time.perf_counter()
            fns[name]()
            best[name] = min(best[name], time.perf_counter() - t0)
    ds = fns["nnspec"]()
    ref = fns["numpy_loadtxt"]()
    agrees = bool(np.array_equal(ds.x, ref[:, :-1].astype(np.float32)) and np.array_equal(ds.y[:, 0], ref[:, -1]))
    ratio = {name: best["nnspec"] / s for name, s in best.items() if name != "nnspec"}
    return {"rows": rows, "bytes": path.stat().st_size, "seconds": best, "ratio": ratio, "bar": BAR,
            "passes": ratio["numpy_loadtxt"] <= BAR, "agrees": agrees}


def line(result: dict[str, Any]) -> str:
    """One line for the benchmark report."""
    s, r = result["seconds"], result["ratio"]
    others = "; ".join(f"{name} {s[name]:.2f} s (nnspec {r[name]:.2f}×)" for name in r)
    verdict = "passes" if result["passes"] else "FAILS"
    return (f"CSV reading, {result['rows']:,} rows ({result['bytes'] / 1e6:.1f} MB): nnspec {s['nnspec']:.2f} s; "
            f"{others}; bar ≤{result['bar']:g}× numpy.loadtxt {verdict}"
            + ("" if result["agrees"] else " — WARNING: nnspec read other numbers than numpy.loadtxt"))


if __name__ == "__main__":
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    with tempfile.TemporaryDirectory(prefix="nnspec-csv-") as tmp:
        result = measure(Path(tmp), rows=rows, rounds=rounds)
    print(line(result), file=sys.stderr)
    print(json.dumps(result))
