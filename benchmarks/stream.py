"""Data larger than memory: the peak resident memory of `nnspec train` on a generated
float32 `.npy` file, streamed (`train { stream }`) against the same spec loaded whole, and
against the floor (the same process training on a file of 4,000 examples), each in a
fresh process, in the same run. Peak memory is the process's high-water mark (Linux's
VmHWM, else `ru_maxrss`). The bar (issue 12): a 4 GiB file trains streamed with a peak
under 1 GiB.

`python -m benchmarks.stream [GIB] [--whole]` prints the numbers as JSON; `--whole` also
trains the file loaded whole (it needs about twice the file's size in memory).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

BAR_BYTES = 1 << 30  # the streamed run's peak, for a 4 GiB file
FEATURES = 1024  # 4 KiB an example

SPEC = """\
model m {{
    input x[{features}]
    dense 16 relu
    dense 1 sigmoid
}}
loss binary_crossentropy
optimizer adam lr=0.001
train {{
    data npy(x="{x}", y="{y}")
    split val=0.05
    batch 1024
    epochs 1
    standardize
    metrics accuracy
{stream}}}
"""

# Run in a fresh process: train the spec, then report the high-water mark of its memory.
CHILD = textwrap.dedent("""
    import json, resource, sys, time
    import nnspec
    t0 = time.perf_counter()
    result = nnspec.train(sys.argv[1])
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) * 1024
    except OSError:
        pass
    print(json.dumps({"peak_bytes": peak, "seconds": seconds, "accuracy": result.history[-1].get("accuracy")}))
""")


def write_npy(folder: Path, examples: int, *, seed: int = 0, name: str = "x") -> tuple[Path, Path]:
    """`examples` rows of FEATURES float32 normals, written a block at a time (never held
    whole), and 0/1 labels of the sign of a fixed projection."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=FEATURES).astype(np.float32)
    xp, yp = folder / f"{name}.npy", folder / f"{name}_y.npy"
    x = np.lib.format.open_memmap(xp, mode="w+", dtype=np.float32, shape=(examples, FEATURES))
    y = np.empty(examples, np.int64)
    block = 16_384
    for s in range(0, examples, block):
        part = rng.normal(size=(min(block, examples - s), FEATURES)).astype(np.float32)
        x[s:s + len(part)] = part
        y[s:s + len(part)] = part @ w > 0
    x.flush()
    del x
    np.save(yp, y)
    return xp, yp


def train_peak(folder: Path, x: Path, y: Path, stream: bool, tag: str) -> dict[str, Any]:
    spec = folder / f"{tag}.nn"
    spec.write_text(SPEC.format(features=FEATURES, x=x.name, y=y.name, stream="    stream\n" if stream else ""))
    out = subprocess.run([sys.executable, "-c", CHILD, str(spec)], capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"{tag}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(folder: Path, *, gib: float = 4.0, whole: bool = False) -> dict[str, Any]:
    examples = int(gib * (1 << 30)) // (FEATURES * 4)
    t0 = time.perf_counter()
    x, y = write_npy(folder, examples)
    written = time.perf_counter() - t0
    sx, sy = write_npy(folder, 4_000, name="small")
    floor = train_peak(folder, sx, sy, False, "floor")
    streamed = train_peak(folder, x, y, True, "streamed")
    out: dict[str, Any] = {"file_bytes": x.stat().st_size, "examples": examples, "write_seconds": written,
                           "floor": floor, "streamed": streamed,
                           "streamed_over_floor_bytes": streamed["peak_bytes"] - floor["peak_bytes"]}
    if whole:
        out["whole"] = train_peak(folder, x, y, False, "whole")
    out["passes"] = bool(gib < 4 or streamed["peak_bytes"] < BAR_BYTES)
    return out


def line(r: dict[str, Any]) -> str:
    mib = 1 << 20
    text = (f"stream: {r['file_bytes'] / (1 << 30):.2f} GiB .npy, peak {r['streamed']['peak_bytes'] / mib:,.0f} MiB "
            f"streamed (floor {r['floor']['peak_bytes'] / mib:,.0f} MiB")
    if "whole" in r:
        text += f", loaded whole {r['whole']['peak_bytes'] / mib:,.0f} MiB"
    return text + f"); one epoch {r['streamed']['seconds']:.1f} s"


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    with tempfile.TemporaryDirectory() as d:
        result = measure(Path(d), gib=float(args[0]) if args else 4.0, whole="--whole" in sys.argv)
    print(json.dumps(result, indent=2))
    print(line(result))
