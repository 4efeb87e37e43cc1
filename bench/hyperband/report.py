"""RESULTS.md from the cached runs: tables per problem and worker count, and the targets checked."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from methods import AUTO_PEERS
from simulate import Run

HYPERBAND_METHODS = ["random", "hyperband", "optuna-hyperband", "optuna-sh"]
MODEL_METHODS = ["random", "hyperband", "hyperband-bayesian", "bayesian"]
AUTO_METHODS = AUTO_PEERS
AUTO_BUDGET_METHODS = ["random", *(f"{m}-budget" for m in AUTO_METHODS)]
FRACTIONS = (9, 3, 1)
"""Budgets at which the best found is shown: B/9, B/3, B."""
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


def _workers(n: int) -> str:
    return f"**{n} worker{'s' if n > 1 else ''}**"


@dataclass(frozen=True)
class Summary:
    """One method in one setting: medians over the seeds."""

    reach: float
    """Resource to reach Random's final best, ×B."""
    best: tuple[float, ...]
    """Best found at B/9, B/3, B."""
    seeds: int

    def as_good_as(self, peer: Summary) -> tuple[bool, int]:
        """Needs no more resource than the peer; and at how many of the fixed budgets its best is ≥ the peer's."""
        return self.reach <= peer.reach, sum(a >= b for a, b in zip(self.best, peer.best, strict=True))


def _budget_table(
    results: Path, problem: str, workers: int, budget: int, methods: list[str], seeds: int | None = None
) -> tuple[list[str], dict[str, Summary]]:
    """Resource to reach Random's final best and the best at fixed budgets, on the first `seeds` seeds (all if None).

    Only the seeds every listed method has are used, so each row is measured on the same seeds as Random's.
    """
    loaded = {m: _load(results, problem, m, workers) for m in methods}
    loaded = {m: runs for m, runs in loaded.items() if runs}
    if "random" not in loaded:
        return [], {}
    n = min(len(runs) for runs in loaded.values())
    n = n if seeds is None else min(n, seeds)
    random = loaded["random"][:n]
    lines = [
        f"{_workers(workers)} — budget B = {budget} epochs (Random's {budget // 81} trials); {n} seeds",
        "",
        "| method | resource to reach Random's final best (×B), median | seeds that reach it | simulated time to reach"
        " it (×Random's) | best at B/9 | best at B/3 | best at B | trials run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    summaries: dict[str, Summary] = {}
    for method, all_runs in loaded.items():
        runs = all_runs[:n]
        pairs = list(zip(runs, random, strict=True))
        reach = [r.resource_to_reach(base.final) / budget for r, base in pairs]
        times = [r.time_to_reach(base.final) / base.total_time for r, base in pairs]
        best = tuple(_median([r.best_at(budget / f) for r in runs]) for f in FRACTIONS)
        summaries[method] = Summary(_median(reach), best, n)
        lines.append(
            f"| {method} | {_fmt(_median(reach))} | {sum(not math.isinf(x) for x in reach)}/{n}"
            f" | {_fmt(_median(times))} | "
            + " | ".join(f"{b:.4f}" for b in best)
            + f" | {_median([float(r.trials) for r in runs]):.0f} |"
        )
    return lines, summaries


BASELINE = {"optuna-median": "optuna-random"}
"""Each early-stopping method is measured against the same library's random search without it (same draws)."""


def _auto_table(results: Path, problem: str, workers: int, budget: int) -> tuple[list[str], dict[str, list[float]]]:
    """The table, and per method: median saving, median gap to its baseline."""
    lines = [
        f"{_workers(workers)} — every method runs {budget // 81} trials; the baseline is the same library's random"
        " search without early stopping (the same configurations)",
        "",
        "| method | resource saved vs baseline, median | final best, median | final best vs baseline's,"
        " median / worst seed |",
        "|---|---|---|---|",
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
        summary[method] = [saved, _median(gaps)]
        lines.append(
            f"| {method} | {saved:.1%} | {_median([r.final for r in runs]):.4f} | {_median(gaps):+.2%} /"
            f" {min(gaps):+.2%} |"
        )
    return lines, summary


NOTES_FILE = Path(__file__).with_name("NOTES.md")
"""What the figures mean, written by hand after reading them; RESULTS.md includes it after the targets."""


def _check(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _environment() -> list[str]:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    packages = ", ".join(f"{p} {version(p)}" for p in ("numpy", "scikit-learn", "optuna"))
    return [
        f"- date: {datetime.now(UTC):%Y-%m-%d}; kubetune at commit {commit}",
        f"- machine: {cpu}, {os.cpu_count()} cores shared with other work (time is simulated, so load changes no figure)",
        f"- Python {platform.python_version()}, {packages}",
    ]


def _peer_verdict(ours: Summary, peer: Summary, name: str) -> str:
    cheaper, budgets = ours.as_good_as(peer)
    return (
        f"{name} {peer.reach:.3f}×B (less or equal resource: {_check(cheaper)};"
        f" best ≥ {name}'s at {budgets} of the 3 fixed budgets)"
    )


def _problem_section(results: Path, problem: str, budget: int, slow_seeds: int) -> tuple[list[str], list[str]]:
    """The tables of one problem, and its lines of the targets."""
    workers_seen = sorted({int(p.stem.rsplit("-w", 1)[1]) for p in (results / problem).glob("random-w*.json")})
    verdicts: list[str] = []
    body = [f"## {problem}", "", "### Hyperband and Optuna's pruners at the same resource budget", ""]
    for workers in workers_seen:
        table, hb = _budget_table(results, problem, workers, budget, HYPERBAND_METHODS)
        body += [*table, ""]
        if "hyperband" in hb:
            ours = hb["hyperband"]
            verdicts.append(
                f"- {problem}, {workers} workers: Hyperband reaches Random's best with {ours.reach:.3f}×B"
                f" (≤ 1/3: {_check(ours.reach <= HYPERBAND_TARGET)}); "
                + "; ".join(_peer_verdict(ours, hb[p], p) for p in ("optuna-hyperband", "optuna-sh") if p in hb)
            )
    body += ["### Model-based Hyperband and Bayesian, on the seeds they ran", ""]
    for workers in workers_seen:
        table, mb = _budget_table(results, problem, workers, budget, MODEL_METHODS, slow_seeds)
        body += [*table, ""]
        if "hyperband" in mb and "hyperband-bayesian" in mb:
            plain, model = mb["hyperband"], mb["hyperband-bayesian"]
            verdicts.append(
                f"- {problem}, {workers} workers, {model.seeds} seeds: model-based Hyperband reaches Random's best"
                f" with {model.reach:.3f}×B against {plain.reach:.3f}×B with random proposals; best at B/9, B/3, B"
                f" {', '.join(f'{b:.4f}' for b in model.best)} against {', '.join(f'{b:.4f}' for b in plain.best)}"
            )
    body += ["### Auto early stopping and MedianPruner at the same resource budget", ""]
    for workers in workers_seen:
        table, ab = _budget_table(results, problem, workers, budget, AUTO_BUDGET_METHODS)
        body += [*table, ""]
        if "random+auto-budget" in ab and "optuna-median-budget" in ab:
            verdicts.append(
                f"- {problem}, {workers} workers, same budget: Auto reaches Random's best with"
                f" {ab['random+auto-budget'].reach:.3f}×B; "
                + _peer_verdict(ab["random+auto-budget"], ab["optuna-median-budget"], "MedianPruner")
            )
    body += ["### Auto early stopping and MedianPruner, same trials", ""]
    for workers in workers_seen:
        table, auto = _auto_table(results, problem, workers, budget)
        body += [*table, ""]
        if "random+auto" in auto:
            saved, gap = auto["random+auto"]
            line = (
                f"- {problem}, {workers} workers, same trials: Auto saves {saved:.1%}"
                f" (≥ 25%: {_check(saved >= AUTO_SAVING_TARGET)}), final best {gap:+.2%} against Random's"
                f" (within 1%: {_check(gap >= -AUTO_GAP_TARGET)})"
            )
            if "optuna-median" in auto:
                p_saved, p_gap = auto["optuna-median"]
                line += f"; MedianPruner saves {p_saved:.1%} at {p_gap:+.2%}"
            verdicts.append(line)
    return body, verdicts


def write_results(results: Path, out: Path, trials: int, seeds: int, slow_seeds: int) -> None:
    problems = sorted(p.name for p in results.iterdir() if p.is_dir()) if results.exists() else []
    budget = trials * 81
    header = [
        "# Hyperband and Auto early stopping — results",
        "",
        "Reproduce: `pip install -e . -r bench/hyperband/requirements.txt && python bench/hyperband/run.py`"
        f" (defaults: {seeds} seeds, {slow_seeds} for the model-based methods, workers 1 4 16, --trials {trials},"
        " --jobs = CPUs; the digits curves are computed once, a few minutes, and cached in ~/.cache/kubetune/bench).",
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
        section, lines = _problem_section(results, problem, budget, slow_seeds)
        body += section
        verdicts += lines
    notes = NOTES_FILE.read_text().splitlines() if NOTES_FILE.exists() else []
    out.write_text("\n".join([*header, "## Targets", "", *verdicts, "", *notes, "", *body]).rstrip() + "\n")
