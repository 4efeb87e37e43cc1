"""The report's parts that need no browser: fANOVA importance on functions whose answer is known, and the page."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from kubetune.api.spec import ScalingType
from kubetune.engine.space import Kind, Parameter
from kubetune.results.importance import importance
from kubetune.results.model import TrialRow, TuningResults
from kubetune.results.report import report_html, stop_mark

PARAMETERS = (
    Parameter("x", Kind.CONTINUOUS, 0.0, 1.0),
    Parameter("rate", Kind.CONTINUOUS, 1e-3, 1.0, scaling=ScalingType.LOGARITHMIC),
    Parameter("colour", Kind.CATEGORICAL, choices=("red", "green", "blue")),
)


def synthetic(objective: str, count: int = 300, seed: int = 4) -> TuningResults:
    rng = np.random.default_rng(seed)
    rows = []
    for n in range(1, count + 1):
        u = rng.random(3)
        config = {p.name: p.from_unit(v) for p, v in zip(PARAMETERS, u, strict=True)}
        unit = {p.name: p.to_unit(config[p.name]) for p in PARAMETERS}
        value = eval(objective, {}, unit) + rng.normal(0, 0.01)
        rows.append(TrialRow(n, f"t-{n}", "Completed", float(value), config, ((1.0, float(value)),), n, n + 1.0))
    return TuningResults("synthetic", "test", "y", True, "Completed", "", tuple(rows), parameters=PARAMETERS)


def test_importance_matches_the_known_variance_shares() -> None:
    # Var(3x) = 9/12 and Var(rate's unit coordinate) = 1/12: shares 0.9 and 0.1; colour plays no part.
    shares = dict(importance(synthetic("3 * x + rate")).shares)
    assert abs(shares["x"] - 0.9) < 0.08 and abs(shares["rate"] - 0.1) < 0.06 and shares["colour"] < 0.02
    ranked = importance(synthetic("3 * x + rate"))
    assert [name for name, _ in ranked.shares] == ["x", "rate", "colour"] and ranked.trials_used == 300


def test_importance_of_a_category_and_of_a_pure_interaction() -> None:
    shares = dict(importance(synthetic("2.0 * (colour > 0.5)")).shares)  # green and blue above red
    assert shares["colour"] > 0.85 and shares["x"] < 0.03
    # (x - 1/2)(rate - 1/2) has no main effects at all: the shares stay small, the rest is interaction.
    product = dict(importance(synthetic("(x - 0.5) * (rate - 0.5)")).shares)
    assert all(share < 0.2 for share in product.values()), product


def test_importance_says_why_there_is_none() -> None:
    few = synthetic("x", count=3)
    result = importance(few)
    assert result.shares == () and result.note == "needs at least 4 trials with an objective, has 3"
    flat = synthetic("0 * x", count=20)
    flat = TuningResults(
        flat.name,
        flat.source,
        "y",
        True,
        "Completed",
        "",
        tuple(TrialRow(r.number, r.name, r.status, 1.0, r.hyperparameters) for r in flat.trials),
        parameters=PARAMETERS,
    )
    assert importance(flat).note == "every trial has the same objective value"


def test_page_is_self_contained_and_carries_every_trial(hyperband_result: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    done = subprocess.run(
        [sys.executable, "-m", "kubetune.cli", "report", str(hyperband_result), "-o", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and str(out) in done.stdout, done.stderr
    page = out.read_text()
    markup = re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S)  # the inlined library's own strings aside
    assert page.count("<script") == 3 and not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", markup)
    assert "Licensed to the Apache Software Foundation" in page  # echarts' licence header, kept
    data = json.loads(re.search(r'<script type="application/json" id="kubetune-data">(.*?)</script>', page, re.S)[1])
    document = json.loads(hyperband_result.read_text())
    assert [t["n"] for t in data["trials"]] == [int(t["id"]) for t in document["trials"]]
    assert data["parameters"][1] == {
        "name": "lr",
        "kind": "continuous",
        "low": 1e-4,
        "high": 1.0,
        "log": True,
        "choices": [],
    }
    assert data["rungs"] and all(r["label"].startswith("rung ") for r in data["rungs"])


def test_a_reason_cannot_close_the_script() -> None:
    results = synthetic("x", count=6)
    evil = TrialRow(
        7,
        "t-7",
        "Stopped",
        0.5,
        results.trials[0].hyperparameters,
        ((1.0, 0.5),),
        reason="</script><script>alert(1)</script>",
    )
    page = report_html(
        TuningResults("s", "t", "y", True, "Completed", "", (*results.trials, evil), parameters=PARAMETERS)
    )
    assert "</script><script>alert(1)" not in page and "<\\/script>" in page
    assert stop_mark(evil) == {"kind": "stopped", "label": "stopped"}
    median = TrialRow(
        8, "t-8", "Stopped", 0.1, {}, reason="Auto early stopping at step 3: its objective is worse than the median"
    )
    assert stop_mark(median) == {"kind": "median", "label": "below the median at step 3"}
