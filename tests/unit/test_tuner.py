"""The Tuner's own semantics: reports, stops, failures, unknown ids, the leaderboard."""

from __future__ import annotations

import math

import pytest

from kubetune import Tuner
from kubetune.engine import TrialStatus

from .conftest import make_spec


def test_ask_returns_trials_with_static_and_tuned_hyperparameters() -> None:
    tuner = Tuner(make_spec())
    (trial,) = tuner.ask(1)
    assert trial.id == "1" and trial.number == 1
    assert trial.hyperparameters["epochs"] == 5
    assert set(trial.tuned) == {"layers", "lr", "dropout", "optimizer"}
    assert {**trial.tuned, "epochs": 5} == dict(trial.hyperparameters)


def test_stopped_trial_scored_by_last_report() -> None:
    tuner = Tuner(make_spec())
    (trial,) = tuner.ask(1)
    assert tuner.report(trial.id, 1, 0.8) is False
    assert tuner.report(trial.id, 2, 0.6) is False
    tuner.stop(trial.id, "the user stopped the tuning job")
    record = tuner.record(trial.id)
    assert record.status is TrialStatus.STOPPED and record.value == 0.6
    assert tuner.report(trial.id, 3, 0.1) is True  # a late report: the trial must stop
    assert tuner.best is not None and tuner.best.value == 0.6


def test_non_finite_values_yield_no_objective() -> None:
    tuner = Tuner(make_spec())
    a, b = tuner.ask(2)
    assert tuner.report(a.id, 1, math.nan) is False
    tuner.tell(a.id, math.inf)
    tuner.tell(b.id, None)
    assert tuner.best is None
    assert tuner.record(a.id).status is TrialStatus.COMPLETED and tuner.record(a.id).value is None


def test_events_after_the_end_are_ignored() -> None:
    tuner = Tuner(make_spec())
    (trial,) = tuner.ask(1)
    tuner.tell(trial.id, 1.0)
    tuner.fail(trial.id, "late failure")
    tuner.tell(trial.id, 0.0)
    record = tuner.record(trial.id)
    assert record.status is TrialStatus.COMPLETED and record.value == 1.0


def test_unknown_trial_id_is_a_key_error() -> None:
    tuner = Tuner(make_spec())
    with pytest.raises(KeyError, match="no trial with id '99'"):
        tuner.tell("99", 1.0)


def test_leaderboard_orders_by_direction() -> None:
    tuner = Tuner(make_spec(objective={"metricName": "acc", "type": "Maximize"}))
    trials = tuner.ask(4)
    for trial, value in zip(trials, [0.5, 0.9, 0.7, 0.9], strict=True):
        tuner.tell(trial.id, value)
    assert [r.id for r in tuner.leaderboard(3)] == ["2", "4", "3"]
    assert tuner.best is not None and tuner.best.id == "2"


def test_history_format_is_checked() -> None:
    with pytest.raises(ValueError, match="history format"):
        Tuner(make_spec(), history={"format": "something-else"})


# -- trials that complete without the objective --------------------------------------------------


def test_three_trials_without_an_objective_fail_the_job_naming_what_was_seen() -> None:
    tuner = Tuner(make_spec())
    said = "no objective: loss was never reported; reported: accuracy (12)"
    for number in range(3):
        assert tuner.completion is None
        (trial,) = tuner.ask(1)
        tuner.tell(trial.id, None, diagnostic=said)
        assert tuner.record(trial.id).reason == said and tuner.record(trial.id).status is TrialStatus.COMPLETED
        assert number < 2 or tuner.completion is not None
    completion = tuner.completion
    assert completion is not None and completion.outcome.value == "Failed"
    assert completion.reason.value == "ObjectiveNotReported"
    assert completion.message == f"3 trials completed without an objective value and none has had one; the last: {said}"
    assert tuner.ask(1) == []
    restored = Tuner(make_spec(), history=tuner.history())
    assert restored.history() == tuner.history() and restored.completion == completion


def test_trials_without_an_objective_after_one_with_it_do_not_fail_the_job() -> None:
    tuner = Tuner(make_spec())
    first, *others = tuner.ask(4)
    tuner.tell(first.id, 0.5)
    for trial in others:
        tuner.tell(trial.id, math.nan, diagnostic="the objective loss was NaN at step 2")
    assert tuner.completion is None
    assert tuner.record(first.id).reason == ""  # a value needs no diagnostic


def test_running_trials_are_stopped_once_the_objective_is_known_missing() -> None:
    tuner = Tuner(make_spec())
    trials = tuner.ask(4)
    for trial in trials[:3]:
        tuner.tell(trial.id, None)
    completion = tuner.completion
    assert completion is not None and completion.reason.value == "ObjectiveNotReported"
    assert "the runner did not say what it saw" in completion.message
    assert [t.id for t in tuner.running] == [trials[3].id]  # the runner stops it; the job has ended


def test_failed_trials_do_not_count_as_missing_objectives() -> None:
    tuner = Tuner(make_spec())
    trials = tuner.ask(4)
    for trial in trials[:3]:
        tuner.fail(trial.id, "exit code 1")
    tuner.tell(trials[3].id, None, diagnostic="no objective")
    assert tuner.completion is None
