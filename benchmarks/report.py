"""Ratios, bars, loss agreement and the printed tables.

Every ratio is nnspec ÷ baseline: for samples/s higher is better for nnspec, for time to
first step and peak memory lower is. The wall-clock ratio is the other way round,
baseline ÷ nnspec ("how many times faster nnspec finished the whole job"), so above 1 is
better for nnspec as for speed. A wall bar (`Workload.wall_bars`) may name another nnspec
implementation to compare with (`nnspec train` of a sweep against `nnspec train` per
setting). A baseline's final loss "agrees" when it is within the workload's `loss_tol`
(relative) of nnspec's, or when both are below the workload's `loss_floor`.
"""

from __future__ import annotations

import math
from typing import Any

REFERENCE = "nnspec"


def loss_agrees(loss: float, ref: float, tol: float, floor: float = 0.0) -> bool:
    """Within `tol` of `ref` (relative), or both below `floor` (trained to near zero)."""
    if not (math.isfinite(loss) and math.isfinite(ref)):
        return False
    return abs(loss - ref) <= tol * max(abs(ref), 1e-3) or max(abs(loss), abs(ref)) < floor


def compare(entry: dict[str, Any]) -> dict[str, Any]:
    """nnspec against each baseline of one workload: ratios, bars, loss agreement."""
    impls = entry["impls"]
    ref = impls.get(REFERENCE, {})
    out: dict[str, Any] = {}
    if ref.get("status") != "ok":
        return out
    for name, res in impls.items():
        if name == REFERENCE or res.get("status") != "ok":
            continue
        c: dict[str, Any] = {
            "speed": ref["samples_per_s"] / res["samples_per_s"] if ref["samples_per_s"] and res["samples_per_s"] else None,
            "first_step": ref["first_step_s"] / res["first_step_s"] if ref["first_step_s"] and res["first_step_s"] else None,
            "wall": res["total_s"] / ref["total_s"],
            "peak_rss": ref["peak_rss_mb"] / res["peak_rss_mb"],
            "loss_agrees": loss_agrees(res["final_loss"], ref["final_loss"], entry["loss_tol"],
                                       entry.get("loss_floor", 0.0)),
        }
        bar = entry["bars"].get(name)
        if bar is not None:
            c["bar"] = bar  # judged on full sizes only: --quick times compilation, not training
            c["passes"] = None if entry.get("quick") else (c["speed"] is not None and c["speed"] >= bar)
        if name in entry.get("wall_bars", {}):
            least, vs = entry["wall_bars"][name]
            against = impls.get(vs, {})
            c["wall_bar"], c["wall_vs"] = least, vs
            c["wall_vs_ratio"] = res["total_s"] / against["total_s"] if against.get("status") == "ok" else None
            c["wall_passes"] = (None if entry.get("quick") or c["wall_vs_ratio"] is None
                                else c["wall_vs_ratio"] >= least)
        out[name] = c
    return out


def rejudge(results: dict[str, Any]) -> dict[str, Any]:
    """Saved results with each workload's bars taken from the current `workloads` and its
    comparison recomputed: the same measurements, judged by today's bars."""
    from benchmarks.workloads import workloads
    current = workloads(results["quick"])
    for name, entry in results["workloads"].items():
        if "impls" not in entry or name not in current:
            continue
        w = current[name]
        entry["bars"], entry["wall_bars"] = dict(w.bars), {k: list(v) for k, v in w.wall_bars.items()}
        entry["comparison"] = compare(entry)
    return results


def all_losses_finite(results: dict[str, Any]) -> bool:
    return all(math.isfinite(r["final_loss"]) for w in results["workloads"].values()
               for r in w.get("impls", {}).values() if r.get("status") == "ok")


def _num(v: float | None, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def tables(results: dict[str, Any]) -> str:
    """The report as text: one table per workload, the bars, the front end."""
    m = results["machine"]
    lines = [f"nnspec benchmarks, {m['date']}: {m['nproc']} × {m['cpu']}, JAX {m['jax']}, "
             f"torch {m['torch'] or '—'}, keras {m['keras'] or '—'}"
             + (" (--quick: tiny sizes, timings meaningless)" if results["quick"] else "")]
    flags = []
    for name, w in results["workloads"].items():
        lines.append("")
        if "impls" not in w:
            lines.append(f"{name}: {w['status']}: {w['note']}")
            continue
        lines.append(f"{name}: {w['title']} — {w['n']:,} examples × {w['epochs']} epochs "
                     f"({w['steps_per_epoch']} steps/epoch)")
        head = ("impl", "samples/s", "speed ratio", "first step s", "ratio", "wall s", "ratio", "peak MiB", "ratio",
                "final loss", "bar", "others")
        rows = [head]
        for impl, r in w["impls"].items():
            if r.get("status") != "ok":
                rows.append((impl, r.get("status", "?"), (r.get("note") or "").strip().splitlines()[-1][:60],
                             *[""] * (len(head) - 3)))
                continue
            c = w["comparison"].get(impl, {})
            verdict = lambda ok: "n/a" if ok is None else "pass" if ok else "FAIL"  # noqa: E731
            bars = []
            if "bar" in c:
                bars.append(f"≥{c['bar']:g}× " + verdict(c["passes"]))
            if "wall_bar" in c:
                bars.append(f"wall ≥{c['wall_bar']:g}× vs {c['wall_vs']}: {_num(c['wall_vs_ratio'], '.3g')}× "
                            + verdict(c["wall_passes"]))
            bar = "; ".join(bars)
            loss = f"{r['final_loss']:.4f}" + ("" if impl == REFERENCE or c.get("loss_agrees", True) else " DIFFERS")
            if impl != REFERENCE and not c.get("loss_agrees", True):
                flags.append(f"{name}: {impl}'s final loss {r['final_loss']:.4f} differs from nnspec's by more "
                             f"than {w['loss_tol']:.0%}")
            ratio = lambda key, fmt: ("1" if impl == REFERENCE else "—" if c.get(key) is None  # noqa: E731
                                      else format(c[key], fmt) + "×")
            rows.append((impl, _num(r["samples_per_s"], ",.0f"), ratio("speed", ".3g"),
                         _num(r["first_step_s"], ".2f"), ratio("first_step", ".2f"),
                         f"{r['total_s']:.2f}", ratio("wall", ".3g"),
                         f"{r['peak_rss_mb']:.0f}", ratio("peak_rss", ".2f"),
                         loss, bar, f"{r.get('others_cores', 0.0):.1f}"))
        lines += _grid(rows)
    fe = results.get("frontend")
    if fe:
        lines += ["", f"front end, a {fe['layers']}-layer spec: `nnspec check` {fe['cli_check_s'] * 1e3:.0f} ms, "
                      f"`nnspec compile --emit summary` {fe['cli_summary_s'] * 1e3:.0f} ms (subprocess wall; "
                      f"bare `python -c pass` {fe['python_startup_s'] * 1e3:.0f} ms, `import nnspec` "
                      f"{fe['import_nnspec_s'] * 1e3:.0f} ms); check_text in-process "
                      f"{fe['check_text_s'] * 1e3:.1f} ms warm, {fe['check_text_cold_s'] * 1e3:.0f} ms cold"
                      + ("" if not fe.get("jax_imported") else " — WARNING: checking imported JAX")]
    if results.get("csv"):
        from benchmarks.csv_read import line
        lines += ["", line(results["csv"])]
    if results.get("stream"):
        from benchmarks.stream import line as stream_line
        lines += ["", stream_line(results["stream"])]
    if flags:
        lines += ["", "LOSSES DIFFER:", *flags]
    if "harness_s" in results:
        lines += ["", f"harness wall time {results['harness_s']:.0f} s"]
    return "\n".join(lines) + "\n"


def _grid(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for j, r in enumerate(rows):
        cells = [r[0].ljust(widths[0])] + [c.rjust(wd) for c, wd in zip(r[1:], widths[1:])]
        out.append("  " + "  ".join(cells).rstrip())
        if j == 0:
            out.append("  " + "  ".join("-" * wd for wd in widths))
    return out
