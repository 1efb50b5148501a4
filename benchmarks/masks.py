"""What a dropout mask costs: `python -m benchmarks.masks [--shapes 32x128,128x256]
[--steps 512] [--rounds 5]`.

One program per way of drawing a mask, each a `lax.scan` of `--steps` masks of a shape
from split keys (as an epoch draws one a step), compiled with nnspec's options and timed
in one process, the ways interleaved round by round (a busy machine slows all alike);
each line is the best round, with the compile time and the fraction of elements kept at
keep = 0.8 (the check that every way draws a mask of that probability):

- `bernoulli`: `jax.random.bernoulli`, 32 random bits an element (the hand-written
  baselines' dropout, and nnspec's before 2026-12-02);
- `bits16`: 16 bits an element from `jax.random.bits` (nnspec until 2026-12-03: JAX's
  partitionable Threefry, one hash for each 32-bit word);
- `nnspec`: `nnspec.nn.base.keep_mask`, 16 bits an element, every Threefry hash's 64
  bits used (four elements a hash).
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Callable


def _bits16(key, shape, keep):
    import jax
    import jax.numpy as jnp
    n = math.prod(shape)
    words = jax.random.bits(key, ((n + 1) // 2,), jnp.uint32)
    halves = jnp.stack([words & 0xFFFF, words >> 16], axis=-1).reshape(-1)[:n].reshape(shape)
    return halves.astype(jnp.float32) < keep * 65536.0


def _bernoulli(key, shape, keep):
    import jax
    return jax.random.bernoulli(key, keep, shape)


def ways() -> dict[str, Callable]:
    from nnspec.nn.base import keep_mask
    return {"bernoulli": _bernoulli, "bits16": _bits16, "nnspec": keep_mask}


def program(draw: Callable, shape: tuple[int, ...], steps: int):
    """(compiled program of `steps` masks, each mask's kept count summed; its compile s)."""
    import jax
    from nnspec.xla_options import compile_options

    def scan(key):
        def body(total, k):
            return total + draw(k, shape, 0.8).sum(dtype="int32"), None
        return jax.lax.scan(body, 0, jax.random.split(key, steps))[0]
    t0 = time.perf_counter()
    compiled = jax.jit(scan, compiler_options=compile_options() or None).lower(jax.random.key(0)).compile()
    return compiled, time.perf_counter() - t0


def measure(shapes: list[tuple[int, ...]], steps: int, rounds: int) -> list[dict]:
    import jax
    key = jax.random.key(0)
    built = {(name, shape): program(draw, shape, steps) for shape in shapes for name, draw in ways().items()}
    best = {k: math.inf for k in built}
    kept = {k: int(c(key)) / (steps * math.prod(k[1])) for k, (c, _) in built.items()}  # and the first run
    for r in range(rounds):
        order = list(built) if r % 2 == 0 else list(reversed(built))
        for k in order:
            t0 = time.perf_counter()
            built[k][0](key).block_until_ready()
            best[k] = min(best[k], time.perf_counter() - t0)
    return [{"way": name, "shape": shape, "compile_s": built[name, shape][1], "ms": best[name, shape] * 1e3,
             "per_mask_us": best[name, shape] / steps * 1e6, "kept": kept[name, shape]}
            for name, shape in built]


def table(rows: list[dict]) -> str:
    lines = ["| mask | way | compile s | ms per scan | µs a mask | ÷ nnspec | kept at 0.8 |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        ours = next(o for o in rows if o["shape"] == r["shape"] and o["way"] == "nnspec")
        lines.append(f"| {'×'.join(map(str, r['shape']))} | {r['way']} | {r['compile_s']:.2f} | {r['ms']:.2f} | "
                     f"{r['per_mask_us']:.1f} | {r['ms'] / ours['ms']:.2f}× | {r['kept']:.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.masks", description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", default="32x128,128x256", help="mask shapes, comma-separated (default: %(default)s)")
    ap.add_argument("--steps", type=int, default=512, help="masks a program draws (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds; each way keeps its best (default: %(default)s)")
    args = ap.parse_args(argv)
    try:
        shapes = [tuple(int(d) for d in s.split("x")) for s in args.shapes.split(",")]
    except ValueError:
        ap.error(f"--shapes: expected shapes such as 32x128,128x256, got {args.shapes!r}")
    print(table(measure(shapes, args.steps, args.rounds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
