"""RESULTS.md from the stored results: tables, the issue's targets checked, and the machine they came from.

Everything below the NOTES marker in an existing RESULTS.md is kept, so the
written analysis survives a rerun.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from machine import machine_lines
from methods import METHODS
from problems import PROBLEMS
from regret import RAW, load

NOTES = "<!-- notes: everything below is written by hand and kept across reruns -->"
PEERS = [m for m in METHODS if m not in ("kubetune", "random")]
PACKAGES = ["numpy", "scipy", "optuna", "scikit-optimize", "hyperopt", "torch", "scikit-learn"]


def _curves(method: str, problem: str, pending: int) -> np.ndarray | None:
    data = load(method, problem, pending)
    if not data:
        return None
    return np.array([data[s]["regret"] for s in sorted(data, key=int)])


def _stat(method: str, problem: str, pending: int, at: int) -> tuple[float, float, float, int] | None:
    curves = _curves(method, problem, pending)
    if curves is None or curves.shape[1] < at:
        return None
    col = curves[:, at - 1]
    q1, med, q3 = np.percentile(col, [25, 50, 75])
    return float(med), float(q1), float(q3), len(col)


def _fmt(x: float) -> str:
    return f"{x:.3g}" if x != 0 else "0"


def _regret_table(pending: int, at: int) -> list[str]:
    methods = [m for m in METHODS if any(_stat(m, p, pending, at) for p in PROBLEMS)]
    lines = ["| problem | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for problem in PROBLEMS:
        cells = []
        stats = {m: _stat(m, problem, pending, at) for m in methods}
        best = min((s[0] for s in stats.values() if s), default=None)
        for m in methods:
            s = stats[m]
            if s is None:
                cells.append("—")
                continue
            text = f"{_fmt(s[0])} [{_fmt(s[1])}, {_fmt(s[2])}]" + (f" (n={s[3]})" if s[3] != 10 else "")
            cells.append(f"**{text}**" if s[0] == best else text)
        lines.append(f"| {problem} | " + " | ".join(cells) + " |")
    return lines


def _mean_ranks(pending: int, at: int) -> dict[str, float]:
    """Each problem ranks the methods by median regret (ties share the mean rank); then the mean over problems."""
    methods = [m for m in METHODS if all(_stat(m, p, pending, at) for p in PROBLEMS)]
    ranks: dict[str, list[float]] = {m: [] for m in methods}
    for problem in PROBLEMS:
        meds = {m: _stat(m, problem, pending, at)[0] for m in methods}  # type: ignore[index]
        for m in methods:
            better = sum(1 for o in methods if meds[o] < meds[m])
            equal = sum(1 for o in methods if meds[o] == meds[m])
            ranks[m].append(better + (equal + 1) / 2)
    return {m: float(np.mean(r)) for m, r in ranks.items()}


def _targets() -> list[str]:
    lines = ["| target | figure | met |", "|---|---|---|"]
    for problem in PROBLEMS:
        ours = _stat("kubetune", problem, 0, 100)
        peers = {m: _stat(m, problem, 0, 100) for m in PEERS}
        peers = {m: s for m, s in peers.items() if s}
        if ours is None or not peers:
            continue
        best_m = min(peers, key=lambda m: peers[m][0])  # type: ignore[index]
        best = peers[best_m][0]  # type: ignore[index]
        ratio = ours[0] / best if best > 0 else (1.0 if ours[0] == 0 else float("inf"))
        short = [m for m in PEERS if (s := _stat(m, problem, 0, 100)) is None or s[3] < 10]
        caveat = f"; incomplete: {', '.join(short)}" if short else ""
        lines.append(
            f"| {problem}: regret@100 ≤ 2× best peer | {_fmt(ours[0])} vs {best_m} {_fmt(best)} ({ratio:.2g}×{caveat})"
            f" | {'yes' if ratio <= 2 else 'NO'}{' so far' if short else ''} |"
        )
    ranks = _mean_ranks(0, 100)
    if ranks:
        best_rank = min(ranks.values())
        order = ", ".join(f"{m} {r:.2f}" for m, r in sorted(ranks.items(), key=lambda kv: kv[1]))
        met = ranks.get("kubetune") == best_rank
        absent = [m for m in METHODS if m not in ranks]
        note = f" (not ranked, results incomplete: {', '.join(absent)})" if absent else ""
        lines.append(
            f"| best mean rank at 100 (sequential) | {order}{note} | {'yes' if met else 'NO'}{' so far' if absent else ''} |"
        )
    for problem in PROBLEMS:
        ours = _stat("kubetune", problem, 8, 100)
        gp = _stat("optuna-gp", problem, 8, 100)
        if ours is None or gp is None:
            continue
        ratio = ours[0] / gp[0] if gp[0] > 0 else (1.0 if ours[0] == 0 else float("inf"))
        n_note = f", GPSampler n={gp[3]}" if gp[3] < 10 else ""
        lines.append(
            f"| {problem}, 8 pending: regret@100 ≤ 2× GPSampler | {_fmt(ours[0])} vs {_fmt(gp[0])} ({ratio:.2g}×{n_note})"
            f" | {'yes' if ratio <= 2 else 'NO'}{' so far' if n_note else ''} |"
        )
    timing = _timing()
    ours_t = timing.get("kubetune", {})
    gp_t = timing.get("optuna-gp", {})
    if "500" in ours_t:
        lines.append(
            f"| one suggestion at 500 < 100 ms | {ours_t['500'] * 1000:.0f} ms | {'yes' if ours_t['500'] < 0.1 else 'NO'} |"
        )
    if "2000" in ours_t:
        lines.append(
            f"| one suggestion at 2,000 < 1 s | {ours_t['2000'] * 1000:.0f} ms | {'yes' if ours_t['2000'] < 1 else 'NO'} |"
        )
    if "500" in ours_t and "500" in gp_t:
        speedup = gp_t["500"] / ours_t["500"]
        lines.append(f"| ≥ 5× faster than GPSampler at 500 | {speedup:.1f}× | {'yes' if speedup >= 5 else 'NO'} |")
    return lines


def _timing() -> dict[str, dict[str, float]]:
    path = RAW / "timing.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _timing_table() -> list[str]:
    timing = _timing()
    sizes = ["50", "200", "500", "2000"]
    lines = ["| method | " + " | ".join(f"{s} obs" for s in sizes) + " |", "|---" * (len(sizes) + 1) + "|"]
    for method, row in timing.items():
        cells = [f"{row[s] * 1000:.1f} ms" if s in row else "not run" for s in sizes]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def write_results(path: Path) -> None:
    notes = ""
    if path.exists() and NOTES in path.read_text():
        notes = path.read_text().split(NOTES, 1)[1]
    out: list[Any] = [
        "# Bayesian benchmark — results",
        "",
        "Reproduce: `python bench/bayesian/run.py` (see bench/bayesian/requirements.txt). Figures are the median",
        "[25th, 75th percentile] over seeds 0–9 of simple regret: the noise-free value of the best point seen",
        "so far, minus the function's minimum. Bold: the best median of the row.",
        "",
        *machine_lines(PACKAGES),
        "",
        "## Targets (issue 5)",
        "",
        *_targets(),
    ]
    for pending in (0, 8):
        for at in (30, 100):
            title = "sequential" if pending == 0 else f"{pending} trials pending at once"
            out += ["", f"## Regret after {at} evaluations, {title}", "", *_regret_table(pending, at)]
        ranks = _mean_ranks(pending, 100)
        if ranks:
            out += [
                "",
                "Mean rank at 100: "
                + ", ".join(f"{m} {r:.2f}" for m, r in sorted(ranks.items(), key=lambda kv: kv[1])),
            ]
    out += ["", "## Time of one suggestion on Hartmann6 (median of repeats)", "", *_timing_table(), "", NOTES]
    path.write_text("\n".join(out) + (notes if notes else "\n"))
