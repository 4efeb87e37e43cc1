"""The tuning job's status, computed from the Tuner: bounded whatever the number of trials."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from kubetune.api.status import (
    LEADERBOARD_SIZE,
    Condition,
    HyperParameterTuningJobStatus,
    ObjectiveStatusCounters,
    TrainingJobStatusCounters,
    TrialSummary,
    TuningJobStatus,
)
from kubetune.engine import TrialStatus, Tuner
from kubetune.engine.completion import Outcome


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()


def rfc3339(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def significant(value: float, digits: int = 4) -> str:
    """`value` rounded to `digits` significant digits, as kubectl shows it: 0.9123, 1235, 1.235e+05, -2.5e-06."""
    return f"{value:.{digits}g}"


OUTCOME_STATUS = {
    Outcome.COMPLETED: TuningJobStatus.COMPLETED,
    Outcome.FAILED: TuningJobStatus.FAILED,
    Outcome.STOPPED: TuningJobStatus.STOPPED,
}


def set_condition(
    conditions: list[Condition], type_: str, status: str, reason: str, message: str, generation: int | None
) -> list[Condition]:
    """Conditions with one replaced; its transition time moves only when its status changes."""
    old = next((c for c in conditions if c.type == type_), None)
    changed = old is None or old.status != status
    new = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=now_rfc3339() if changed or old is None else old.last_transition_time,
        observed_generation=generation,
    )
    return [c for c in conditions if c.type != type_] + [new]


def tuner_status(
    tuner: Tuner,
    job_name: Callable[[int], str],
    previous: HyperParameterTuningJobStatus,
    generation: int | None,
    stopping: bool,
    retryable_errors: int = 0,
    retryable_failures: int = 0,
    pending: int = 0,
) -> HyperParameterTuningJobStatus:
    """`retryable_errors`: trial pods replaced by a disruption or a retry, and trials that waited too long
    to run (`retryable_failures` of the failed ones); `pending`: trials waiting to run now."""
    counts = tuner.counts()
    with_value = sum(1 for r in tuner.trials if r.value is not None)
    ended = len(tuner.trials) - counts[TrialStatus.RUNNING]
    board = [
        TrialSummary(
            name=job_name(r.number),
            tuned_hyper_parameters=dict(r.tuned),
            final_objective_value=r.value,
            status=r.status.value,
        )
        for r in tuner.leaderboard(LEADERBOARD_SIZE)
    ]
    completion = tuner.completion
    conditions = list(previous.conditions)
    conditions = set_condition(conditions, "Valid", "True", "SpecValid", "the spec is valid", generation)
    if completion is None:
        state = TuningJobStatus.STOPPING if stopping else TuningJobStatus.IN_PROGRESS
        running = counts[TrialStatus.RUNNING] - pending
        conditions = set_condition(
            conditions, "Running", "True", state.value, f"{running} trials running, {pending} pending", generation
        )
        end_time = None
    else:
        state = OUTCOME_STATUS[completion.outcome]
        conditions = set_condition(
            conditions, "Running", "False", completion.reason.value, completion.message, generation
        )
        conditions = set_condition(
            conditions,
            state.value if state is not TuningJobStatus.COMPLETED else "Complete",
            "True",
            completion.reason.value,
            completion.message,
            generation,
        )
        end_time = previous.end_time or now_rfc3339()
    budget = tuner.budget
    return previous.model_copy(
        update={
            "hyper_parameter_tuning_job_status": state,
            "training_job_status_counters": TrainingJobStatusCounters(
                completed=counts[TrialStatus.COMPLETED],
                in_progress=counts[TrialStatus.RUNNING],
                pending=pending,
                running=counts[TrialStatus.RUNNING] - pending,
                retryable_error=retryable_errors,
                non_retryable_error=counts[TrialStatus.FAILED] - retryable_failures,
                stopped=counts[TrialStatus.STOPPED],
            ),
            "objective_status_counters": ObjectiveStatusCounters(
                succeeded=with_value, pending=counts[TrialStatus.RUNNING], failed=ended - with_value
            ),
            "best_training_job": board[0] if board else None,
            "best_objective_value": significant(board[0].final_objective_value) if board else None,
            "leaderboard": board,
            "conditions": conditions,
            "observed_generation": generation,
            "end_time": end_time,
            "failure_reason": completion.message if completion and completion.outcome is Outcome.FAILED else None,
            "completion_reason": completion.reason.value if completion else None,
            "trials_started": len(tuner.trials),
            "trials_budget": budget,
            "progress": f"{ended}/{budget if budget is not None else '?'}",
        }
    )


def status_from_wire(raw: dict[str, Any] | None) -> HyperParameterTuningJobStatus:
    try:
        return HyperParameterTuningJobStatus.model_validate(raw or {})
    except ValueError:
        return HyperParameterTuningJobStatus()
