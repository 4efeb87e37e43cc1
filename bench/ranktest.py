"""Whether two methods' final regrets over the same seeds differ beyond what the seeds' spread explains.

A median over 10 seeds is the only verdict the benchmarks' targets name, but on a
bimodal cell (Hartmann6: a run ends in the global basin or in the one 0.12 above
it) it falls wherever the middle seeds did, and the same code moves it by 100x
when the machine's floating point differs. A two-sided Mann-Whitney U test asks
the question the median cannot: is one method's distribution of final regret
shifted against the other's? It is printed over the seeds both methods ran and
over seeds 0-9 alone, with how many runs of each end below `--found` (for
Hartmann6: reached the global basin).

    python bench/ranktest.py bench/bayesian/results/kubetune__hartmann6__p8.json \
        bench/bayesian/results/optuna-gp__hartmann6__p8.json --found 0.03
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from scipy.stats import mannwhitneyu


def final_regrets(path: Path) -> dict[int, float]:
    """Seed -> regret after the last evaluation, from a results file of bench/bayesian or bench/bayesian_batch."""
    runs = json.loads(path.read_text())
    return {int(seed): float(run["regret"][-1]) for seed, run in runs.items()}


def compare(a: dict[int, float], b: dict[int, float], seeds: list[int], found: float | None) -> str:
    x, y = [a[s] for s in seeds], [b[s] for s in seeds]
    line = f"n={len(seeds)}: medians {statistics.median(x):.3g} / {statistics.median(y):.3g}"
    if found is not None:
        line += f", below {found:g}: {sum(v < found for v in x)} / {sum(v < found for v in y)}"
    return f"{line}, Mann-Whitney two-sided p = {mannwhitneyu(x, y).pvalue:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--found", type=float, default=None, help="count the runs that end below this regret")
    args = parser.parse_args()
    a, b = final_regrets(args.first), final_regrets(args.second)
    common = sorted(set(a) & set(b))
    print(f"{args.first.name} / {args.second.name}")
    print("  all common seeds, " + compare(a, b, common, args.found))
    first_ten = [s for s in common if s < 10]
    if len(first_ten) < len(common):
        print("  seeds 0-9,        " + compare(a, b, first_ten, args.found))


if __name__ == "__main__":
    main()
