"""The Bayesian benchmark: `python bench/bayesian/run.py` runs what is missing and rewrites RESULTS.md.

Results are cached per (method, problem, pending) in results/*.json, seed by
seed, so an interrupted run resumes, a subset can be run alone (--methods,
--problems, --pending, --seeds) and `--report` only rebuilds the tables.
Everything runs in this one process, one thing at a time, because the timings
are only comparable when nothing else competes for the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from methods import METHODS  # noqa: E402
from problems import PROBLEMS  # noqa: E402
from regret import RAW, run_cell  # noqa: E402
from report import write_results  # noqa: E402
from timing import TIMERS  # noqa: E402

SIZES = [50, 200, 500, 2000]
SKIP_TIMING = {("skopt", 2000)}  # minutes per suggestion (14.8 s already at 500): recorded as not run


def run_timing(methods: list[str], repeats: int) -> None:
    path = RAW / "timing.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    for method in methods:
        if method not in TIMERS:
            continue
        for n in SIZES:
            if (method, n) in SKIP_TIMING:
                continue
            reps = repeats if n <= 500 or method == "kubetune" else 1
            if method == "skopt" and n >= 500:
                reps = 1
            times = [TIMERS[method](n, seed) for seed in range(reps)]
            data.setdefault(method, {})[str(n)] = statistics.median(times)
            print(f"timing {method:10s} n={n:5d} {statistics.median(times) * 1000:9.1f} ms", flush=True)
            RAW.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(data, indent=1, sort_keys=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--pending", default="0,8", help="comma-separated numbers of trials pending at once")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--fresh", action="store_true", help="rerun cells that already have results")
    parser.add_argument("--no-regret", action="store_true")
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (median)")
    parser.add_argument("--report", action="store_true", help="only rebuild RESULTS.md from stored results")
    args = parser.parse_args()
    methods = args.methods.split(",")
    if not args.report:
        if not args.no_regret:
            for pending in [int(p) for p in args.pending.split(",")]:
                for problem in args.problems.split(","):
                    for method in methods:
                        run_cell(method, problem, list(range(args.seeds)), args.budget, pending, args.fresh)
        if not args.no_timing:
            run_timing(methods, args.repeats)
    write_results(HERE / "RESULTS.md")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
