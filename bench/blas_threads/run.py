"""Bayesian `ask(1)` at fewer than 50 results with and without the engine's own BLAS thread limit.

Usage: python bench/blas_threads/run.py [--sizes 15 30 45] [--repeats 9] [--rounds 3] [--load 0]

Three configurations, each in its own fresh process, interleaved round by
round so that they see the same load:

- `before`: the engine's limit switched off (what kubetune did before issue 16),
  OpenBLAS at its default thread count (one per core);
- `image`: the limit off, OPENBLAS_NUM_THREADS=1 in the environment (what the
  operator image sets: the peer, the cost the issue asks for);
- `after`: the limit on, nothing in the environment (a notebook, `kubetune run`).

Each process restores a Bayesian tuner from N finished Hartmann6 trials, asks
one trial and tells its result, `--repeats` times, and reports the median and
the worst ask. It also checks that the process's BLAS thread counts after the
asks are what they were before (the limit is scoped to the engine's work).
`--load K` adds K busy processes for the run, to reproduce a loaded machine on
an idle one.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIGS = {"before": (False, None), "image": (False, "1"), "after": (True, None)}
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def child(n: int, repeats: int, limit: bool) -> None:
    """Runs in the measured process: prints one JSON line."""
    sys.path.insert(0, str(HERE.parent / "bayesian_scale"))
    from contextlib import nullcontext

    from run import PROBLEM, restored_tuner  # type: ignore[import-not-found]
    from threadpoolctl import threadpool_info

    import kubetune.engine.strategies.bayesian as bayesian

    if not limit:
        bayesian.engine_threads = nullcontext  # type: ignore[assignment]
    tuner = restored_tuner(n, 0, repeats)
    threads_before = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        (trial,) = tuner.ask(1)
        samples.append(time.perf_counter() - t0)
        tuner.tell(trial.id, PROBLEM.fn(trial.tuned))
    threads_after = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    print(json.dumps({"samples": samples, "threads_before": threads_before, "threads_after": threads_after}))


def _spin() -> None:
    while True:
        pass


def measure(name: str, n: int, repeats: int) -> dict[str, object]:
    limit, env_value = CONFIGS[name]
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    if env_value is not None:
        env["OPENBLAS_NUM_THREADS"] = env_value
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(n), str(repeats), "1" if limit else "0"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[15, 30, 45])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--load", type=int, default=0)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(int(args.child[0]), int(args.child[1]), args.child[2] == "1")
        return
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.load)]
    for s in spinners:
        s.start()
    try:
        print(
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}"
        )
        print(
            f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; extra busy processes {args.load};"
            f" load average {os.getloadavg()[0]:.2f}"
        )
        samples: dict[tuple[str, int], list[float]] = {}
        scoped = True
        for _ in range(args.rounds):
            for n in args.sizes:
                for name in CONFIGS:
                    result = measure(name, n, args.repeats)
                    samples.setdefault((name, n), []).extend(result["samples"])  # type: ignore[arg-type]
                    scoped &= result["threads_before"] == result["threads_after"]
        print(
            f"{'results':>8} "
            + " ".join(f"{name + ' median / worst':>24}" for name in CONFIGS)
            + f" {'after ÷ image':>14}"
        )
        for n in args.sizes:
            cells = []
            for name in CONFIGS:
                s = samples[(name, n)]
                cells.append(f"{statistics.median(s) * 1000:>10.1f} / {max(s) * 1000:>7.1f} ms")
            ratio = statistics.median(samples[("after", n)]) / statistics.median(samples[("image", n)])
            print(f"{n:>8} " + " ".join(f"{c:>24}" for c in cells) + f" {ratio:>13.2f}×")
        print(f"BLAS thread counts after the asks equal those before (limit scoped): {scoped}")
    finally:
        for s in spinners:
            s.terminate()


if __name__ == "__main__":
    main()
