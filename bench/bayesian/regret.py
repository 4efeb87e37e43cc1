"""The optimisation loop every method runs, sequential or with trials pending, and its stored results."""

from __future__ import annotations

import json
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
from methods import make
from problems import PROBLEMS

RAW = Path(__file__).resolve().parent / "results"


def run_one(method: str, problem_name: str, seed: int, budget: int, pending: int) -> dict[str, Any]:
    """Regret after each evaluation; with `pending` = p, p trials run at once and finish oldest first."""
    problem = PROBLEMS[problem_name]
    noise_rng = np.random.default_rng([seed, 7])
    parallel = max(1, pending)
    opt = make(method, problem, seed, budget, parallel)
    queue: deque[tuple[Any, dict[str, Any]]] = deque()
    seen: list[float] = []
    true: list[float] = []
    asked = 0
    ask_seconds = 0.0
    while len(seen) < budget:
        while asked < budget and len(queue) < parallel:
            t0 = time.perf_counter()
            queue.append(opt.ask())
            ask_seconds += time.perf_counter() - t0
            asked += 1
        handle, config = queue.popleft()
        y_seen, y_true = problem.evaluate(config, noise_rng)
        opt.tell(handle, y_seen)
        seen.append(y_seen)
        true.append(y_true)
    # the recommendation after k evaluations is the best point seen so far, scored by its noise-free value
    regret: list[float] = []
    best_i = 0
    for i, y in enumerate(seen):
        if y < seen[best_i]:
            best_i = i
        regret.append(float(f"{true[best_i] - problem.minimum:.4g}"))
    return {"regret": regret, "ask_seconds": round(ask_seconds, 3)}


def path_for(method: str, problem: str, pending: int) -> Path:
    return RAW / f"{method}__{problem}__p{pending}.json"


def load(method: str, problem: str, pending: int) -> dict[str, Any]:
    path = path_for(method, problem, pending)
    return json.loads(path.read_text()) if path.exists() else {}


def run_cell(method: str, problem: str, seeds: list[int], budget: int, pending: int, fresh: bool) -> None:
    """Runs the missing seeds of one (method, problem, pending) cell, saving after each seed."""
    data = {} if fresh else load(method, problem, pending)
    for seed in seeds:
        if str(seed) in data and len(data[str(seed)]["regret"]) >= budget:
            continue
        t0 = time.perf_counter()
        data[str(seed)] = run_one(method, problem, seed, budget, pending)
        print(
            f"{method:10s} {problem:16s} p={pending} seed={seed} regret@{budget}={data[str(seed)]['regret'][-1]:.3g}"
            f" ({time.perf_counter() - t0:.1f}s)",
            flush=True,
        )
        RAW.mkdir(parents=True, exist_ok=True)
        path_for(method, problem, pending).write_text(json.dumps(data, sort_keys=True))
