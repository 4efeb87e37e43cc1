"""The Hyperband and early-stopping benchmark: `python bench/hyperband/run.py` runs what is missing, rewrites RESULTS.md.

For each problem, worker count (1, 4, 16) and seed, Random runs --trials
trials to the end; its total resource B and final best are the yardsticks.
Hyperband and Optuna's Hyperband and successive-halving pruners then run
trials until they have spent B epochs; Random with Auto early stopping and
Optuna's MedianPruner run the same number of trials as Random.

Results are cached per (problem, method, workers) in results/, seed by seed,
so an interrupted run resumes and `--report` only rebuilds RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from methods import BUDGETED, METHODS, UNLIMITED_TRIALS  # noqa: E402
from problems import PROBLEMS  # noqa: E402
from report import write_results  # noqa: E402
from simulate import simulate  # noqa: E402

RESULTS = HERE / "results"


def cell_path(problem: str, method: str, workers: int) -> Path:
    return RESULTS / problem / f"{method}-w{workers}.json"


def run_cell(problem_name: str, method: str, workers: int, seeds: list[int], trials: int) -> None:
    path = cell_path(problem_name, method, workers)
    data = json.loads(path.read_text()) if path.exists() else {}
    missing = [s for s in seeds if str(s) not in data]
    if not missing:
        return
    problem = PROBLEMS[problem_name]()
    budget = trials * problem.max_epochs
    started = time.perf_counter()
    for seed in missing:
        max_trials, max_resource = (UNLIMITED_TRIALS, budget) if method in BUDGETED else (trials, math.inf)
        driver = METHODS[method](problem, seed, workers, max_trials)
        data[str(seed)] = simulate(driver, problem, workers, seed, max_trials, max_resource).to_json()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, sort_keys=True))  # after each seed: the model-based methods take hours
    took = time.perf_counter() - started
    print(f"{problem_name:11} {method:20} w={workers:<3} {len(missing)} seeds in {took:6.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 4, 16])
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1, the same for every method")
    parser.add_argument("--trials", type=int, default=100, help="trials of Random; its resource is everyone's budget")
    parser.add_argument("--report", action="store_true", help="only rebuild RESULTS.md from results/")
    args = parser.parse_args()
    if not args.report:
        for problem in args.problems:
            for workers in args.workers:
                for method in ["random", *(m for m in args.methods if m != "random")]:
                    run_cell(problem, method, workers, list(range(args.seeds)), args.trials)
    write_results(RESULTS, HERE / "RESULTS.md", args.trials)


if __name__ == "__main__":
    main()
