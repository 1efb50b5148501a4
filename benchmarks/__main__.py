"""`python -m benchmarks`: measure, print the tables, optionally write JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks import harness, report
from benchmarks.baselines import IMPLS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that everything runs, times nothing")
    p.add_argument("--only", metavar="W1,W2", help="comma-separated workloads: W1, W2, W3, W4, W5, frontend, csv, stream (default: all but stream, which writes a 4 GiB file)")
    p.add_argument("--impls", metavar="A,B", help=f"comma-separated implementations (default: {','.join(IMPLS)})")
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="rounds per workload; each implementation keeps its best (default 1)")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="with --quick: run N measurements side by side (their timings are then meaningless)")
    p.add_argument("--quiet", type=float, default=0.0, metavar="SECONDS",
                   help="before each measurement wait up to SECONDS for other processes to leave the CPUs")
    p.add_argument("--out", type=Path, metavar="FILE.json", help="also write the results as JSON")
    p.add_argument("--report", type=Path, metavar="FILE.json",
                   help="measure nothing: print the tables of an earlier --out file, its bars judged anew")
    args = p.parse_args(argv)
    if args.report is not None:
        try:
            results = json.loads(args.report.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            p.error(f"cannot read `{args.report}`: {exc}")
        sys.stdout.write(report.tables(report.rejudge(results)))
        return 0
    only = args.only.split(",") if args.only else None
    impls = args.impls.split(",") if args.impls else None
    if impls and "nnspec" not in impls:
        impls = ["nnspec", *impls]  # every ratio is nnspec ÷ baseline
    bad = [i for i in impls or () if i not in IMPLS]
    if bad:
        p.error(f"unknown implementation(s) {', '.join(bad)}; choose from {', '.join(IMPLS)}")
    try:
        results = harness.run(quick=args.quick, only=only, impls=impls, repeat=max(1, args.repeat), jobs=args.jobs, quiet=args.quiet,
                              log=lambda s: print(s, file=sys.stderr, flush=True))
    except ValueError as exc:
        p.error(str(exc))
    sys.stdout.write(report.tables(results))
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
