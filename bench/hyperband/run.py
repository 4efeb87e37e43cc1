"""The Hyperband and early-stopping benchmark: `python bench/hyperband/run.py` runs what is missing, rewrites RESULTS.md.

For each problem, worker count (1, 4, 16) and seed, Random runs --trials
trials to the end; its total resource B and final best are the yardsticks.
Hyperband, Optuna's Hyperband and successive-halving pruners, and the
"-budget" runs of Auto and MedianPruner then run trials until they have spent
B epochs; Random with Auto early stopping and Optuna's MedianPruner also run
the same number of trials as Random. The model-based methods run on the first
--slow-seeds seeds only.

Results are cached per (problem, method, workers) in results/, seed by seed,
so an interrupted run resumes and `--report` only rebuilds RESULTS.md. Runs
go to --jobs processes; each is deterministic, so their number changes no
figure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from multiprocessing import Pool
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # the GP's small matrices: threads only add contention
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from methods import BUDGETED, METHODS, SLOW, UNLIMITED_TRIALS  # noqa: E402
from problems import PROBLEMS  # noqa: E402
from report import write_results  # noqa: E402
from simulate import simulate  # noqa: E402

RESULTS = HERE / "results"


def cell_path(problem: str, method: str, workers: int) -> Path:
    return RESULTS / problem / f"{method}-w{workers}.json"


Task = tuple[str, str, int, int, int]
"""(problem, method, workers, seed, trials of Random)."""


def run_one(task: Task) -> tuple[Task, dict[str, Any], float]:
    problem_name, method, workers, seed, trials = task
    started = time.perf_counter()
    problem = PROBLEMS[problem_name]()
    budget = trials * problem.max_epochs
    max_trials, max_resource = (UNLIMITED_TRIALS, budget) if method in BUDGETED else (trials, math.inf)
    driver = METHODS[method](problem, seed, workers, max_trials)
    run = simulate(driver, problem, workers, seed, max_trials, max_resource)
    return task, run.to_json(), time.perf_counter() - started


def missing_tasks(
    problems: list[str], methods: list[str], workers: list[int], seeds: dict[str, int], trials: int
) -> list[Task]:
    tasks: list[Task] = []
    for problem in problems:
        for method in ["random", *(m for m in methods if m != "random")]:
            for w in workers:
                path = cell_path(problem, method, w)
                done = json.loads(path.read_text()) if path.exists() else {}
                tasks += [(problem, method, w, s, trials) for s in range(seeds[method]) if str(s) not in done]
    return tasks


def run_tasks(tasks: list[Task], jobs: int) -> None:
    """Run in `jobs` processes; each result is saved as it arrives, so an interrupted run loses nothing done."""
    with Pool(jobs) as pool:
        for (problem, method, workers, seed, _), data, took in pool.imap_unordered(run_one, tasks):
            path = cell_path(problem, method, workers)
            cell = json.loads(path.read_text()) if path.exists() else {}
            cell[str(seed)] = data
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(cell, sort_keys=True))
            print(f"{problem:11} {method:28} w={workers:<3} seed {seed:<3} {took:7.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 4, 16])
    parser.add_argument("--seeds", type=int, default=30, help="seeds 0..N-1, the same for every method")
    parser.add_argument("--slow-seeds", type=int, default=10, help="seeds of the model-based methods (at least 10)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes running seeds at once")
    parser.add_argument("--trials", type=int, default=100, help="trials of Random; its resource is everyone's budget")
    parser.add_argument("--report", action="store_true", help="only rebuild RESULTS.md from results/")
    args = parser.parse_args()
    if not args.report:
        seeds = {m: args.slow_seeds if m in SLOW else args.seeds for m in METHODS}
        run_tasks(missing_tasks(args.problems, args.methods, args.workers, seeds, args.trials), args.jobs)
    write_results(RESULTS, HERE / "RESULTS.md", args.trials, args.seeds, args.slow_seeds)


if __name__ == "__main__":
    main()
