"""Issue 16's Bayesian benchmark: large synchronous batches and 20-30 dimensions, against peers in the same run.

Usage (the full grid, 10 seeds; results are cached per seed in results/, so an interrupted run resumes):

    OMP_NUM_THREADS=1 nice -n 10 python bench/bayesian_batch/run.py --jobs 2

Modes:

- `b32x8`: 32 trials asked at once, all evaluated, all told, 8 rounds (256 evaluations);
- `b100x4`: 100 at once, 4 rounds (400 evaluations);
- `seq200`: one at a time, 200 evaluations (the 20- and 30-dimensional problems).

Methods: kubetune (Bayesian); kubetune-kb (the same with batch spacing 0: kriging-believer fantasies
alone, the strategy before issue 16; an ablation, not a peer); random (kubetune's Random); optuna-tpe
(multivariate TPE, with constant_liar=True in the batch modes, so running trials count as bad results);
optuna-gp (GPSampler, torch on CPU; it conditions on running trials itself). Every method is given the
seed. A batch's trials are asked one after another with the earlier ones running, which is how each
peer sees a batch (kubetune: one `ask(count)`).

Regret: the best value seen after the run minus the function's minimum (no noise here). `--report`
only rebuilds RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # the peers' small matrices too; the processes share 2 cores

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "operator"))
sys.path.insert(0, str(HERE.parent / "bayesian"))
sys.path.insert(0, str(HERE))  # first: this directory's report.py, not bench/bayesian's

from methods import Kubetune, Optuna  # noqa: E402
from problems import SCALE_PROBLEMS  # noqa: E402

RAW = HERE / "results"
MODES = {"b32x8": (32, 8), "b100x4": (100, 4), "seq200": (1, 200)}
GRID = {
    "b32x8": ["hartmann6", "ackley10", "levy20", "rosenbrock30"],
    "b100x4": ["hartmann6", "ackley10", "levy20", "rosenbrock30"],
    "seq200": ["levy20", "rosenbrock30", "ackley20", "levy30"],
}
METHODS = ["kubetune", "kubetune-kb", "random", "optuna-tpe", "optuna-gp"]
PEERS = ["random", "optuna-tpe", "optuna-gp"]


def make(method: str, problem: Any, seed: int, budget: int, batch: int) -> Any:
    if method in ("kubetune", "kubetune-kb"):
        opt = Kubetune(problem, seed, budget, batch, "Bayesian")
        if method == "kubetune-kb":
            from dataclasses import replace

            strategy = opt.tuner._strategy
            strategy.settings = replace(strategy.settings, batch_spacing=0.0)
        return opt
    if method == "random":
        return Kubetune(problem, seed, budget, batch, "Random")
    if method in ("optuna-tpe", "optuna-gp"):
        opt = Optuna(problem, seed, "gp" if method == "optuna-gp" else "tpe")
        if method == "optuna-tpe" and batch > 1:
            import optuna

            opt.study.sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
        return opt
    raise ValueError(method)


def run_one(method: str, problem_name: str, mode: str, seed: int) -> dict[str, Any]:
    problem = SCALE_PROBLEMS[problem_name]
    batch, rounds = MODES[mode]
    budget = batch * rounds
    opt = make(method, problem, seed, budget, batch)
    best = float("inf")
    curve: list[float] = []
    ask_seconds = 0.0
    t0 = time.perf_counter()
    for _ in range(rounds):
        t_ask = time.perf_counter()
        if method in ("kubetune", "kubetune-kb", "random"):
            trials = opt.tuner.ask(batch)
            asked = [(t.id, dict(t.tuned)) for t in trials]
        else:
            asked = [opt.ask() for _ in range(batch)]
        ask_seconds += time.perf_counter() - t_ask
        for handle, config in asked:
            value = problem.fn(config)
            opt.tell(handle, value)
            best = min(best, value)
        curve.append(float(f"{best - problem.minimum:.4g}"))
    return {
        "regret": curve,
        "evaluations": budget,
        "ask_seconds": round(ask_seconds, 2),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def path_for(method: str, problem: str, mode: str) -> Path:
    return RAW / f"{method}__{problem}__{mode}.json"


def load(method: str, problem: str, mode: str) -> dict[str, Any]:
    path = path_for(method, problem, mode)
    return json.loads(path.read_text()) if path.exists() else {}


def _task(args: tuple[str, str, str, int]) -> tuple[tuple[str, str, str, int], dict[str, Any]]:
    return args, run_one(*args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--problems", default="", help="comma-separated; default: each mode's grid")
    parser.add_argument("--seeds", default="0-9", help="a range a-b or a comma-separated list")
    parser.add_argument("--jobs", type=int, default=1, help="processes at once (the machine has 2 shared cores)")
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    if not args.report:
        if "-" in args.seeds:
            lo, hi = (int(x) for x in args.seeds.split("-"))
            seeds = list(range(lo, hi + 1))
        else:
            seeds = [int(x) for x in args.seeds.split(",")]
        tasks = []
        for seed in seeds:  # seed-major: a run cut short still has every method on its first seeds
            for mode in args.modes.split(","):
                problems = args.problems.split(",") if args.problems else GRID[mode]
                for problem in problems:
                    if problem not in GRID[mode]:
                        continue
                    for method in args.methods.split(","):
                        if method == "kubetune-kb" and mode == "seq200":
                            continue  # spacing only acts on trials in flight
                        if str(seed) not in load(method, problem, mode):
                            tasks.append((method, problem, mode, seed))
        RAW.mkdir(parents=True, exist_ok=True)
        with multiprocessing.get_context("spawn").Pool(args.jobs, maxtasksperchild=1) as pool:
            for (method, problem, mode, seed), result in pool.imap_unordered(_task, tasks):
                data = load(method, problem, mode)
                data[str(seed)] = result
                path_for(method, problem, mode).write_text(json.dumps(data, sort_keys=True))
                print(
                    f"{method:12s} {problem:13s} {mode:7s} seed={seed} regret={result['regret'][-1]:.4g}"
                    f" ({result['seconds']:.0f}s)",
                    flush=True,
                )
    from report import write_results

    write_results(HERE / "RESULTS.md")


if __name__ == "__main__":
    main()
