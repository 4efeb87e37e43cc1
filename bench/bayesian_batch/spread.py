"""How spread out one large batch is: `ask(32)` and `ask(100)` after 200 results, for batch-spacing settings.

Usage: python bench/bayesian_batch/spread.py [--problems hartmann6 ackley10] [--seeds 3] [--spacings 0 0.02 0.05]

For each seed the strategy is given the same 200 uniformly random results and
asked for one batch. Reported, in the unit cube (diagonal sqrt(d)):

- `min gap`: the smallest distance between two suggestions of the batch, ÷ diagonal;
- `crowded`: suggestions with another within 2% of the diagonal (issue 16's near-duplicates);
- `near best`: suggestions within 10% of the diagonal of the best result (exploitation);
- `seconds`: the time of the whole ask.

Spacing 0 is the strategy before issue 16: kriging-believer fantasies alone.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "bayesian"))

from methods import _kubetune_spec  # noqa: E402
from problems import SCALE_PROBLEMS  # noqa: E402

from kubetune.api.spec import parse_spec  # noqa: E402
from kubetune.engine.space import SearchSpace  # noqa: E402
from kubetune.engine.strategies.base import Observation, SearchState  # noqa: E402
from kubetune.engine.strategies.bayesian import BayesianSettings, BayesianStrategy  # noqa: E402


def batch_figures(problem_name: str, spacing: float, count: int, seed: int, n: int = 200) -> dict[str, float]:
    problem = SCALE_PROBLEMS[problem_name]
    space = SearchSpace.from_spec(parse_spec(_kubetune_spec(problem, "Bayesian", seed, n + count, count)))
    rng = np.random.default_rng([seed, n])
    configs = [space.decode(row) for row in rng.random((n, space.dims))]
    losses = [problem.fn(c) for c in configs]
    state = SearchState(space, [Observation(c, y, True) for c, y in zip(configs, losses, strict=True)], [], [], n)
    strategy = BayesianStrategy(space, BayesianSettings(batch_spacing=spacing))
    t0 = time.perf_counter()
    batch = strategy.suggest(state, count, seed)
    seconds = time.perf_counter() - t0
    u = np.array([space.encode(c) for c in batch])
    diag = math.sqrt(space.dims)
    gaps = np.sqrt(((u[:, None, :] - u[None, :, :]) ** 2).sum(-1)) / diag
    np.fill_diagonal(gaps, np.inf)
    best = space.encode(configs[int(np.argmin(losses))])
    to_best = np.sqrt(((u - best) ** 2).sum(1)) / diag
    return {
        "min gap": float(gaps.min()),
        "crowded": float((gaps.min(1) < 0.02).sum()),
        "near best": float((to_best < 0.1).sum()),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--problems", nargs="+", default=["hartmann6", "ackley10"])
    parser.add_argument("--counts", type=int, nargs="+", default=[32, 100])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--spacings", type=float, nargs="+", default=[0.0, 0.02, 0.05])
    args = parser.parse_args()
    print("| problem | batch | spacing | min gap ÷ diag | crowded (< 2%) | near best (< 10%) | seconds |")
    print("|---|---|---|---|---|---|---|")
    for problem in args.problems:
        for count in args.counts:
            for spacing in args.spacings:
                rows = [batch_figures(problem, spacing, count, seed) for seed in range(args.seeds)]
                med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
                print(
                    f"| {problem} | {count} | {spacing:g} | {med['min gap']:.4f} | {med['crowded']:.0f} |"
                    f" {med['near best']:.0f} | {med['seconds']:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
