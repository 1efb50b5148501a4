"""Front-end latency: `nnspec check` and `nnspec compile --emit summary` on a generated
200-layer spec, as subprocess wall time (what a user or an editor integration waits for),
and `nnspec.check_text` in-process, cold (the first call builds the parser) and warm.
`python -m benchmarks.frontend SPEC` prints the in-process numbers as JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def big_spec(layers: int = 200) -> str:
    """A valid spec with `layers` dense layers (the last one the softmax output)."""
    body = "\n".join("    dense 64 relu" for _ in range(layers - 1))
    return (f"model deep {{\n    input x[2]\n{body}\n    dense 10 softmax\n}}\n"
            "loss categorical_crossentropy\noptimizer adam lr=1e-3\n"
            "train {\n    data builtin(\"blobs\", n=1000, classes=10)\n    batch 32\n    epochs 1\n    seed 0\n}\n")


def in_process(path: Path, repeats: int) -> dict[str, float | bool]:
    """check_text's cold and warm (median) seconds, in this process."""
    text = path.read_text(encoding="utf-8")
    t0 = time.perf_counter()
    import nnspec
    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    program = nnspec.check_text(text, filename=str(path))
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        nnspec.check_text(text, filename=str(path))
        warm.append(time.perf_counter() - t0)
    return {"import_nnspec_s": import_s, "check_text_cold_s": cold, "check_text_s": statistics.median(warm),
            "layers": len(program.model.layers), "jax_imported": "jax" in sys.modules}


def cli_command() -> list[str]:
    """The `nnspec` console script beside this interpreter, as a user runs it."""
    script = Path(sys.executable).with_name("nnspec")
    if script.exists():
        return [sys.executable, str(script)]
    found = shutil.which("nnspec")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from nnspec.cli import main; sys.exit(main())"]


def _wall(cmd: list[str], repeats: int, env: dict[str, str]) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - t0)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return statistics.median(times)


def measure(directory: Path, *, layers: int = 200, repeats: int = 5) -> dict:
    """Every front-end number, subprocesses included."""
    path = directory / "deep.nn"
    path.write_text(big_spec(layers), encoding="utf-8")
    env = {**os.environ, "NNSPEC_NO_CACHE": "1"}
    cli = cli_command()
    here = subprocess.run([sys.executable, "-m", "benchmarks.frontend", str(path), str(max(repeats, 5) * 4)],
                          capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parent.parent)
    if here.returncode != 0:
        raise RuntimeError(here.stderr)
    out = {"layers": layers, **json.loads(here.stdout.strip().splitlines()[-1])}
    out["python_startup_s"] = _wall([sys.executable, "-c", "pass"], repeats, env)
    out["cli_check_s"] = _wall([*cli, "check", str(path)], repeats, env)
    out["cli_summary_s"] = _wall([*cli, "compile", str(path), "--emit", "summary"], repeats, env)
    return out


if __name__ == "__main__":
    print(json.dumps(in_process(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 20)))
