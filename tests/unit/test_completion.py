"""Each completion criterion, as SageMaker defines it, through the Tuner."""

from __future__ import annotations

import time

from kubetune import Tuner
from kubetune.engine.completion import Outcome, Reason

from .conftest import make_spec


def run_sequentially(tuner: Tuner, values: list[float]) -> int:
    """Tell the tuner one value per trial until it completes; returns how many trials ran."""
    for n, value in enumerate(values, start=1):
        trials = tuner.ask(1)
        if not trials:
            return n - 1
        tuner.tell(trials[0].id, value)
        if tuner.is_complete:
            return n
    return len(values)


def test_max_number_of_training_jobs() -> None:
    tuner = Tuner(make_spec(resourceLimits={"maxNumberOfTrainingJobs": 3, "maxParallelTrainingJobs": 3}))
    trials = tuner.ask(10)
    assert len(trials) == 3 and tuner.ask(1) == []
    tuner.tell(trials[0].id, 1.0)
    tuner.tell(trials[1].id, 2.0)
    assert not tuner.is_complete  # one still running
    tuner.tell(trials[2].id, 3.0)
    assert tuner.completion_reason == "MaxNumberOfTrainingJobsReached"
    assert tuner.completion is not None and tuner.completion.outcome is Outcome.COMPLETED


def test_target_objective_value_minimize() -> None:
    spec = make_spec(tuningJobCompletionCriteria={"targetObjectiveMetricValue": 0.1})
    tuner = Tuner(spec)
    assert run_sequentially(tuner, [0.5, 0.3, 0.09, 0.01]) == 3
    assert tuner.completion_reason == "TargetObjectiveReached"


def test_target_objective_value_maximize_while_others_run() -> None:
    spec = make_spec(
        objective={"metricName": "acc", "type": "Maximize"},
        tuningJobCompletionCriteria={"targetObjectiveMetricValue": 0.9},
    )
    tuner = Tuner(spec)
    a, b = tuner.ask(2)
    tuner.tell(a.id, 0.95)
    assert tuner.completion_reason == "TargetObjectiveReached"
    assert tuner.ask(1) == []
    tuner.stop(b.id, "the tuning job completed")
    assert tuner.counts()["Stopped"] == 1


def test_best_objective_not_improving_uses_one_percent() -> None:
    spec = make_spec(
        tuningJobCompletionCriteria={"bestObjectiveNotImproving": {"maxNumberOfTrainingJobsNotImproving": 3}}
    )
    tuner = Tuner(spec)
    # 1.0 -> 0.995 is an improvement of only 0.5%: it does not reset the count.
    ran = run_sequentially(tuner, [1.0, 0.5, 0.499, 0.6, 0.4999, 0.1, 0.1])
    assert ran == 5
    assert tuner.completion_reason == "BestObjectiveNotImproving"


def test_convergence_detected() -> None:
    spec = make_spec(
        resourceLimits={"maxNumberOfTrainingJobs": 100},
        tuningJobCompletionCriteria={"convergenceDetected": {"completeOnConvergence": "Enabled"}},
    )
    tuner = Tuner(spec)
    values = [10.0, 5.0, 1.0] + [2.0 + (i % 5) for i in range(60)]
    ran = run_sequentially(tuner, values)
    assert tuner.completion_reason == "ConvergenceDetected"
    assert 20 <= ran < 30


def test_convergence_disabled_by_default() -> None:
    tuner = Tuner(make_spec(resourceLimits={"maxNumberOfTrainingJobs": 40}))
    assert run_sequentially(tuner, [1.0] * 40) == 40
    assert tuner.completion_reason == "MaxNumberOfTrainingJobsReached"


def test_max_runtime() -> None:
    tuner = Tuner(make_spec(resourceLimits={"maxNumberOfTrainingJobs": 10, "maxRuntimeInSeconds": 1}))
    assert len(tuner.ask(1)) == 1
    assert not tuner.is_complete
    time.sleep(1.05)
    assert tuner.completion_reason == "MaxRuntimeReached"
    assert tuner.ask(1) == []


def test_max_failed_training_jobs() -> None:
    tuner = Tuner(
        make_spec(
            resourceLimits={"maxNumberOfTrainingJobs": 10, "maxParallelTrainingJobs": 2, "maxFailedTrainingJobs": 1}
        )
    )
    a, b = tuner.ask(2)
    tuner.fail(a.id, "exit code 1")
    assert not tuner.is_complete
    tuner.fail(b.id, "OOMKilled")
    completion = tuner.completion
    assert completion is not None and completion.outcome is Outcome.FAILED
    assert completion.reason == "MaxFailedTrainingJobsExceeded"
    assert "2 trials failed" in completion.message


def test_all_failed_fails_the_job() -> None:
    tuner = Tuner(make_spec(resourceLimits={"maxNumberOfTrainingJobs": 2, "maxParallelTrainingJobs": 2}))
    for trial in tuner.ask(2):
        tuner.fail(trial.id, "exit code 1")
    completion = tuner.completion
    assert completion is not None and completion.outcome is Outcome.FAILED
    assert completion.reason == "AllTrainingJobsFailed"


def test_cancel_waits_for_running_trials() -> None:
    tuner = Tuner(make_spec())
    trials = tuner.ask(3)
    tuner.cancel("spec.stopped is true")
    assert tuner.ask(1) == [] and not tuner.is_complete
    for trial in trials:
        tuner.stop(trial.id, "the tuning job was stopped")
    completion = tuner.completion
    assert completion is not None and completion.outcome is Outcome.STOPPED


def test_abort_fails_the_job_once_running_trials_end_and_survives_a_restart() -> None:
    spec = make_spec(resourceLimits={"maxNumberOfTrainingJobs": 10, "maxParallelTrainingJobs": 2})
    tuner = Tuner(spec)
    first, second = tuner.ask(2)
    tuner.fail(first.id, "cannot create Job x-0001: Invalid")
    tuner.abort(Reason.INVALID_TRIAL_TEMPLATE, "cannot create Job x-0001: Invalid")
    assert tuner.ask(1) == [] and not tuner.is_complete  # the second trial still runs
    tuner.stop(second.id, "the tuning job failed")
    completion = tuner.completion
    assert completion is not None and completion.outcome is Outcome.FAILED
    assert completion.reason is Reason.INVALID_TRIAL_TEMPLATE and "x-0001" in completion.message
    tuner.cancel("too late")  # a failed job does not turn into a stopped one
    again = Tuner(spec, history=tuner.history())
    assert again.completion == completion
