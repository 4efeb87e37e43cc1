"""Cost of one Bayesian `ask(1)` through the public Tuner API after 200 … 20,000 finished trials.

Usage: python bench/bayesian_scale/run.py [--sizes 200 500 2000 10000 20000] [--repeats 7]
       [--peer optuna-tpe] [--profile 20000]

What it shows: a suggestion must cost about the same however long the job has
run (issue 16: at most 1.5× the cost at 500 results at 10,000 and 20,000), so
that a job's total suggestion cost grows linearly with its length. The tuner is
restored from a history of N finished Hartmann6 trials (restoring replays the
history without asking the strategy), then asked for one trial and told its
result, `--repeats` times, the sizes taking turns ask by ask so that they
share the machine's load; the figure is the median ask. Ratios are against
kubetune's own cost at 500 in the same run; the peer (Optuna's multivariate
TPE, if installed; it has no subset scheme, so its cost grows with N) is
timed in the same run on the same histories for scale (median of at most 3).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import os
import platform
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "bayesian"))

from methods import Optuna, _kubetune_spec  # noqa: E402
from problems import PROBLEMS  # noqa: E402

from kubetune import Tuner  # noqa: E402
from kubetune.engine.tuner import make_history  # noqa: E402

PROBLEM = PROBLEMS["hartmann6"]


def _history(n: int, seed: int) -> tuple[list[dict[str, Any]], list[float]]:
    rng = np.random.default_rng([seed, n])
    xs = [{p.name: float(v) for p, v in zip(PROBLEM.params, row, strict=True)} for row in rng.random((n, 6))]
    return xs, [PROBLEM.fn(x) for x in xs]


def restored_tuner(n: int, seed: int, extra: int) -> Tuner:
    """A Bayesian tuner with n finished trials, and room for `extra` more."""
    spec = _kubetune_spec(PROBLEM, "Bayesian", seed, n + extra, 1)
    xs, ys = _history(n, seed)
    trials = [
        {
            "id": str(i + 1),
            "number": i + 1,
            "hyperparameters": x,
            "tuned": x,
            "asked": 2 * i + 1,
            "reports": [],
            "status": "Completed",
            "value": y,
            "reason": "",
            "ended": 2 * i + 2,
        }
        for i, (x, y) in enumerate(zip(xs, ys, strict=True))
    ]
    return Tuner(spec, history=make_history(seed, time.time(), trials))


def kubetune_ask_seconds(sizes: list[int], repeats: int, seed: int = 0) -> dict[int, float]:
    """Median ask per size; the sizes take turns, ask by ask, so that they share the machine's load."""
    tuners = {n: restored_tuner(n, seed, repeats) for n in sizes}
    samples: dict[int, list[float]] = {n: [] for n in sizes}
    for _ in range(repeats):
        for n, tuner in tuners.items():
            t0 = time.perf_counter()
            (trial,) = tuner.ask(1)
            samples[n].append(time.perf_counter() - t0)
            tuner.tell(trial.id, PROBLEM.fn(trial.tuned))
    return {n: statistics.median(s) for n, s in samples.items()}


def optuna_ask_seconds(sizes: list[int], repeats: int, seed: int = 0) -> dict[int, float] | None:
    try:
        import optuna
    except ImportError:
        return None
    studies = {}
    for n in sizes:
        opt = Optuna(PROBLEM, seed, "tpe")
        xs, ys = _history(n, seed)
        opt.study.add_trials(
            [optuna.trial.create_trial(params=x, distributions=opt.dists, value=y) for x, y in zip(xs, ys, strict=True)]
        )
        studies[n] = opt
    samples: dict[int, list[float]] = {n: [] for n in sizes}
    for _ in range(repeats):
        for n, opt in studies.items():
            t0 = time.perf_counter()
            handle, config = opt.ask()
            samples[n].append(time.perf_counter() - t0)
            opt.tell(handle, PROBLEM.fn(config))
    return {n: statistics.median(s) for n, s in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 500, 2000, 10000, 20000])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--profile", type=int, default=0, help="profile the asks at this size instead")
    args = parser.parse_args()
    if args.profile:
        tuner = restored_tuner(args.profile, 0, args.repeats)
        prof = cProfile.Profile()
        for _ in range(args.repeats):
            prof.enable()
            (trial,) = tuner.ask(1)
            prof.disable()
            tuner.tell(trial.id, PROBLEM.fn(trial.tuned))
        pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
        return
    threads = {k: os.environ.get(k, "unset") for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}"
    )
    print(
        f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; env {threads}; load {os.getloadavg()[0]:.2f}"
    )
    ours = kubetune_ask_seconds(args.sizes, args.repeats)
    peer = {} if args.no_peer else (optuna_ask_seconds(args.sizes, min(args.repeats, 3)) or {})
    base = ours.get(500)
    print(f"{'results':>8} {'kubetune ask(1)':>16} {'÷ at 500':>9} {'optuna-tpe ask':>15}")
    for n in args.sizes:
        ratio = f"{ours[n] / base:.2f}×" if base else "n/a"
        p = peer.get(n)
        ptext = f"{p * 1000:.1f} ms" if p is not None else "not run"
        print(f"{n:>8} {ours[n] * 1000:>13.1f} ms {ratio:>9} {ptext:>15}")


if __name__ == "__main__":
    main()
