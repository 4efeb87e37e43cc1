"""`kubetune report`: one self-contained HTML page of a tuning job's trials.

Everything is inline — Apache ECharts (vendored under assets/, licence header
kept), the page's script and style, and the trials as JSON — so the file can be
mailed, archived or opened offline and fetches nothing when it is viewed.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
import re
from importlib.resources import files
from typing import Any

from kubetune.api.spec import ScalingType
from kubetune.engine.space import Kind
from kubetune.results.importance import MIN_LEAF, TREES, Importance, importance
from kubetune.results.model import TrialRow, TuningResults

MAX_CURVES = 400
"""Learning curves drawn at most: the best half of them and an even spread of the rest (the page says which)."""
RUNG = re.compile(r"^Hyperband rung (\d+) of \d+ \(([^=]+)=([^,]+),")
MEDIAN = re.compile(r"^Auto early stopping at step ([^:]+):")

METHOD = """Importance is each hyperparameter's share of the variance of the objective that it explains on its own:
the main effects of a functional ANOVA (fANOVA; Hutter, Hoos and Leyton-Brown, ICML 2014) of a random forest
fitted to the trials. Hyperparameters are mapped to the unit cube as the search samples them (logarithmic ranges
log-scaled), a forest of {trees} regression trees (bootstrap samples, leaves of at least {leaf} trials) is fitted to
{population} ({used} trials), and for each hyperparameter x the variance over x of the forest's prediction averaged
over all the other hyperparameters is divided by the total variance of the prediction, both estimated by Monte Carlo
over the cube. Shares need not sum to 100%: the remainder is due to interactions. With few trials this is a rough
guide."""


def report_html(results: TuningResults, seed: int = 0) -> str:
    """The whole page for `results`."""
    ranked = importance(results, seed)
    payload = _payload(results, ranked)
    assets = files("kubetune.results") / "assets"
    library = (assets / "echarts.min.js").read_text(encoding="utf-8")
    script = (assets / "report.js").read_text(encoding="utf-8")
    style = (assets / "report.css").read_text(encoding="utf-8")
    counts: dict[str, int] = {}
    for trial in results.trials:
        counts[trial.status] = counts.get(trial.status, 0) + 1
    best = results.best
    best_text = "none yet" if best is None else f"{best.objective:.6g} (trial {best.number}, {best.name})"
    method_text = (
        METHOD.format(trees=TREES, leaf=MIN_LEAF, population=ranked.population, used=ranked.trials_used)
        if ranked.shares
        else f"No importance estimate: {ranked.note}."
    )
    curves_note = (
        f"All {len(payload['curves'])} trials that reported."
        if len(payload["curves"]) >= sum(1 for t in results.trials if t.reports)
        else f"{len(payload['curves'])} of {len(results.trials)} trials: the {MAX_CURVES // 2} best and an even"
        " spread of the others by trial number."
    )
    e = html.escape
    summary = "".join(
        f"<div><b>{e(label)}</b>{e(value)}</div>"
        for label, value in [
            ("tuning job", results.name),
            ("source", results.source),
            ("strategy", results.strategy or "-"),
            (
                "status",
                f"{results.status} ({results.completion_reason})" if results.completion_reason else results.status,
            ),
            ("objective", f"{'Maximize' if results.maximize else 'Minimize'} {results.metric}"),
            ("best", best_text),
            ("trials", ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) or "none"),
        ]
    )
    data = json.dumps(payload, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    generated = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="kubetune report">
<title>kubetune report: {e(results.name)}</title>
<style>
{style}
</style>
</head>
<body>
<h1>Tuning job {e(results.name)}</h1>
<div class="summary">{summary}</div>
<p class="note">Generated {generated} by kubetune report. Charts: Apache ECharts, Apache License 2.0 (inlined below with its licence header).</p>
<h2>Optimisation history</h2>
<div id="history-number" class="chart" data-chart="history"></div>
<div id="history-time" class="chart" data-chart="history"></div>
<h2>Parallel coordinates</h2>
<div id="parallel" class="chart" data-chart="parallel" style="height: 380px"></div>
<h2>Objective against each hyperparameter</h2>
<div id="vs-parameters" class="grid"></div>
<h2>Learning curves</h2>
<p class="note">{e(curves_note)} Marks show where a trial was stopped and why: a triangle at the Hyperband rung
that stopped it (dashed lines: the rungs), a diamond where the median rule of Auto early stopping stopped it;
hover a mark for the whole reason.</p>
<div id="curves" class="chart" data-chart="curves" style="height: 420px"></div>
<h2>Hyperparameter importance</h2>
<div id="importance" class="chart" data-chart="importance" style="height: {max(160, 60 + 34 * len(ranked.shares))}px"></div>
<p class="note" id="importance-method">{e(method_text)}</p>
<h2>Trials</h2>
<div class="table-wrap"><table id="trials"></table></div>
<script type="application/json" id="kubetune-data">{data}</script>
<script>
{library}
</script>
<script>
{script}
</script>
</body>
</html>
"""


def _payload(results: TuningResults, ranked: Importance) -> dict[str, Any]:
    starts = [t.started_at for t in results.trials if t.started_at is not None]
    return {
        "name": results.name,
        "metric": results.metric,
        "maximize": results.maximize,
        "startedAt": min(starts) if starts else None,
        "parameters": [
            {
                "name": p.name,
                "kind": p.kind.value,
                "low": p.low,
                "high": p.high,
                "log": p.kind is not Kind.CATEGORICAL and p.scaling is ScalingType.LOGARITHMIC,
                "choices": list(p.choices),
            }
            for p in results.parameters
        ],
        "trials": [_trial(t) for t in results.trials],
        "curves": _curves(results),
        "rungs": _rungs(results.trials),
        "importance": {"shares": [[name, round(share, 4)] for name, share in ranked.shares]},
    }


def _trial(row: TrialRow) -> dict[str, Any]:
    return {
        "n": row.number,
        "name": row.name,
        "status": row.status,
        "value": _finite(row.objective),
        "hp": dict(row.hyperparameters),
        "reports": [[step, value] for step, value in row.reports if math.isfinite(value)],
        "start": row.started_at,
        "end": row.ended_at,
        "reason": row.reason,
        "stop": stop_mark(row),
    }


def stop_mark(row: TrialRow) -> dict[str, str] | None:
    """Where a learning curve ends and why: rung (Hyperband), median (Auto), stopped (anything else), failed."""
    if row.status == "Failed":
        return {"kind": "failed", "label": "failed"}
    if row.status != "Stopped":
        return None
    if match := RUNG.match(row.reason):
        return {"kind": "rung", "label": f"Hyperband rung {match[1]} ({match[2]}={match[3]})"}
    if match := MEDIAN.match(row.reason):
        return {"kind": "median", "label": f"below the median at step {match[1]}"}
    return {"kind": "stopped", "label": "stopped"}


def _rungs(trials: tuple[TrialRow, ...]) -> list[dict[str, Any]]:
    levels: dict[float, str] = {}
    for row in trials:
        if row.status == "Stopped" and (match := RUNG.match(row.reason)):
            try:
                levels[float(match[3])] = f"rung {match[1]}"
            except ValueError:
                continue
    return [{"step": step, "label": label} for step, label in sorted(levels.items())]


def _curves(results: TuningResults) -> list[int]:
    reported = [t for t in results.trials if t.reports]
    if len(reported) <= MAX_CURVES:
        return [t.number for t in reported]
    best = [t.number for t in results.ranked() if t.reports][: MAX_CURVES // 2]
    chosen = set(best)
    rest = [t.number for t in reported if t.number not in chosen]
    stride = len(rest) / (MAX_CURVES - len(best))
    chosen.update(rest[int(i * stride)] for i in range(MAX_CURVES - len(best)))
    return sorted(chosen)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
