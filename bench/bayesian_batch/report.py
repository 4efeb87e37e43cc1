"""RESULTS.md of the batch / high-dimension benchmark from the stored results; text below NOTES is kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from machine import machine_lines  # bench/bayesian, which run puts on the path
from run import GRID, METHODS, MODES, PEERS, load

NOTES = "<!-- notes: everything below is written by hand and kept across reruns -->"
PACKAGES = ["numpy", "scipy", "threadpoolctl", "optuna", "torch"]
TITLES = {
    "b32x8": "32 trials at once, 8 rounds (256 evaluations)",
    "b100x4": "100 trials at once, 4 rounds (400 evaluations)",
    "seq200": "sequential, 200 evaluations",
}


def _final(method: str, problem: str, mode: str) -> np.ndarray | None:
    data = load(method, problem, mode)
    if not data:
        return None
    return np.array([data[s]["regret"][-1] for s in sorted(data, key=int)])


def _fmt(x: float) -> str:
    return f"{x:.3g}" if x != 0 else "0"


def _table(mode: str) -> tuple[list[str], list[str]]:
    methods = [m for m in METHODS if any(_final(m, p, mode) is not None for p in GRID[mode])]
    lines = ["| problem | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    targets: list[str] = []
    factor = 2.0 if mode == "seq200" else 1.5
    for problem in GRID[mode]:
        finals = {m: _final(m, problem, mode) for m in methods}
        meds = {m: float(np.median(v)) for m, v in finals.items() if v is not None}
        best = min(meds.values(), default=None)
        cells = []
        for m in methods:
            v = finals[m]
            if v is None:
                cells.append("—")
                continue
            q1, q3 = np.percentile(v, [25, 75])
            text = f"{_fmt(meds[m])} [{_fmt(float(q1))}, {_fmt(float(q3))}] (n={len(v)})"
            cells.append(f"**{text}**" if meds[m] == best else text)
        lines.append(f"| {problem} | " + " | ".join(cells) + " |")
        peers = {m: meds[m] for m in PEERS if m in meds}
        if "kubetune" in meds and peers:
            best_m = min(peers, key=lambda m: peers[m])
            ours, theirs = meds["kubetune"], peers[best_m]
            ratio = ours / theirs if theirs > 0 else (1.0 if ours == 0 else float("inf"))
            seeds = {m: len(finals[m]) for m in ["kubetune", *PEERS] if finals.get(m) is not None}
            missing = [m for m in PEERS if m not in peers]
            note = ", ".join(f"{m} n={n}" for m, n in seeds.items())
            if missing:
                note += "; not run: " + ", ".join(missing)
            met = "yes" if ratio <= factor else "NO"
            complete = not missing and all(n >= 10 for n in seeds.values())
            targets.append(
                f"| {problem}, {mode}: median regret ≤ {factor:g}× best of {', '.join(PEERS)} |"
                f" {_fmt(ours)} vs {best_m} {_fmt(theirs)} ({ratio:.2g}×; {note}) | {met}{'' if complete else ' so far'} |"
            )
    return lines, targets


def write_results(path: Path) -> None:
    notes = ""
    if path.exists() and NOTES in path.read_text():
        notes = path.read_text().split(NOTES, 1)[1]
    tables: list[str] = []
    targets = ["| target | figure | met |", "|---|---|---|"]
    for mode in MODES:
        lines, t = _table(mode)
        targets += t
        tables += ["", f"## Final regret, {TITLES[mode]}", "", *lines]
    out = [
        "# Bayesian batches and high dimensions — results",
        "",
        "Reproduce: `OMP_NUM_THREADS=1 nice -n 10 python bench/bayesian_batch/run.py --jobs 2` (peers:",
        "`pip install -e '.[bench]'`). Figures: median [25th, 75th percentile] over the seeds run (n) of the",
        "regret after the last evaluation. Bold: the best median of the row.",
        "",
        *machine_lines(PACKAGES),
        "",
        "## Targets (issue 16)",
        "",
        *targets,
        *tables,
        "",
        NOTES,
    ]
    path.write_text("\n".join(out) + (notes if notes else "\n"))
