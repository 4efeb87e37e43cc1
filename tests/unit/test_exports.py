"""Exports of a real run: an Optuna study loaded back with Optuna, the CSV, and kubetune.analytics()."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import optuna
import optuna_dashboard
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

import kubetune


def kubetune_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubetune.cli", *args], capture_output=True, text=True, timeout=120)


def test_optuna_study_holds_every_trial_with_distributions_and_reports(hyperband_result: Path, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    done = kubetune_cli("export", str(hyperband_result), "--optuna", storage)
    assert done.returncode == 0, done.stderr
    document = json.loads(hyperband_result.read_text())
    history = {t["id"]: t for t in document["history"]["trials"]}

    study = optuna.load_study(study_name="hb", storage=storage)
    assert study.direction is optuna.study.StudyDirection.MAXIMIZE
    assert study.metric_names == ["score"]
    assert len(study.trials) == len(document["trials"])
    states = {"Completed": TrialState.COMPLETE, "Stopped": TrialState.PRUNED, "Failed": TrialState.FAIL}
    for frozen, trial in zip(study.trials, document["trials"], strict=True):
        assert frozen.number == int(trial["id"]) - 1
        assert frozen.state is states[trial["status"]]
        assert frozen.user_attrs["kubetune_name"] == trial["name"]
        if trial["status"] == "Failed":
            assert frozen.value is None and "exit code 3" in frozen.user_attrs["kubetune_reason"]
        else:
            assert frozen.value == trial["objective"]
            assert frozen.params == history[trial["id"]]["tuned"]
        reports = history[trial["id"]]["reports"]
        assert frozen.intermediate_values == {int(step): value for _, step, value in reports}
        assert frozen.duration is not None and frozen.duration.total_seconds() > 0
    some = next(t for t in study.trials if t.state is TrialState.COMPLETE)
    assert some.distributions == {
        "width": IntDistribution(4, 40),
        "lr": FloatDistribution(1e-4, 1.0, log=True),
        "act": CategoricalDistribution(["relu", "tanh"]),
    }
    best = max((t for t in document["trials"] if t["status"] == "Completed"), key=lambda t: t["objective"])
    assert study.best_trial.number == int(best["id"]) - 1
    assert any("Hyperband rung" in t.user_attrs.get("kubetune_reason", "") for t in study.trials)
    # Optuna can go on from it: its sampler reads these distributions back.
    study.optimize(lambda t: t.suggest_float("lr", 1e-4, 1.0, log=True), n_trials=1)

    again = kubetune_cli("export", str(hyperband_result), "--optuna", storage)
    assert again.returncode == 2 and "a study named 'hb' exists already; pass --study-name" in again.stderr
    renamed = kubetune_cli("export", str(hyperband_result), "--optuna", storage, "--study-name", "hb-2")
    assert renamed.returncode == 0 and set(optuna.get_all_study_names(storage)) == {"hb", "hb-2"}


def dashboard_get(storage: str, path: str) -> Any:
    """A GET on optuna-dashboard's own WSGI app, as its browser front end makes it."""
    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    environ.update(PATH_INFO=path, REQUEST_METHOD="GET")
    status: list[str] = []
    body = b"".join(optuna_dashboard.wsgi(storage)(environ, lambda s, headers, exc_info=None: status.append(s)))
    assert status == ["200 OK"], (path, status, body[:500])
    return json.loads(body)


def test_optuna_dashboard_opens_the_study(hyperband_result: Path, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    assert kubetune_cli("export", str(hyperband_result), "--optuna", storage).returncode == 0
    (summary,) = dashboard_get(storage, "/api/studies")["study_summaries"]
    assert summary["study_name"] == "hb" and summary["directions"] == ["maximize"]
    study = dashboard_get(storage, f"/api/studies/{summary['study_id']}")
    trials = json.loads(hyperband_result.read_text())["trials"]
    assert len(study["trials"]) == len(trials) and study["objective_names"] == ["score"]
    assert study["has_intermediate_values"] is True
    space = {p["name"]: p["distribution"] for p in study["union_search_space"]}
    assert space["lr"]["type"] == "FloatDistribution" and space["lr"]["log"] is True
    assert space["width"]["type"] == "IntDistribution" and space["act"]["type"] == "CategoricalDistribution"
    assert {t["state"] for t in study["trials"]} == {"Complete", "Pruned", "Fail"}


def test_csv_export_is_the_trial_table(hyperband_result: Path, tmp_path: Path) -> None:
    out = tmp_path / "trials.csv"
    assert kubetune_cli("export", str(hyperband_result), "--csv", str(out)).returncode == 0
    listed = kubetune_cli("trials", str(hyperband_result), "-o", "csv").stdout
    assert out.read_text() == listed
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0])[:7] == ["number", "name", "status", "score", "width", "lr", "act"]
    nothing = kubetune_cli("export", str(hyperband_result))
    assert nothing.returncode == 2 and "--optuna STORAGE_URL and/or --csv FILE" in nothing.stderr


def test_analytics_dataframe(hyperband_result: Path) -> None:
    frame = kubetune.analytics(str(hyperband_result))
    document = json.loads(hyperband_result.read_text())
    assert len(frame) == len(document["trials"])
    assert list(frame.columns[:3]) == ["width", "lr", "act"]
    assert {"TrainingJobName", "TrainingJobStatus", "FinalObjectiveValue", "TrainingElapsedTimeSeconds"} <= set(
        frame.columns
    )
    assert list(frame["TrialNumber"]) == list(range(1, len(frame) + 1))
    assert str(frame["TrainingStartTime"].dtype) == "datetime64[ns, UTC]"
    assert (frame["TrainingElapsedTimeSeconds"] > 0).all()
    failed = frame[frame["TrainingJobStatus"] == "Failed"]
    assert failed["FinalObjectiveValue"].isna().all()
    best = frame.loc[frame["FinalObjectiveValue"].idxmax()]
    assert math.isclose(best["FinalObjectiveValue"], document["best"]["objective"])
    assert best["TrainingJobName"] == document["best"]["name"]
    assert frame.attrs == {"tuning_job": "hb", "metric": "score", "maximize": True}
