"""The status of a HyperParameterTuningJob: SageMaker's fields, Kubernetes' conventions.

Bounded by construction: counters, the best trial and a leaderboard of at most
LEADERBOARD_SIZE entries, never one entry per trial (etcd refuses objects over
about 1.5 MiB, and a tuning job can run thousands of trials).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field

from kubetune.api.model import Model
from kubetune.api.spec import ParameterValue

LEADERBOARD_SIZE = 10


class TuningJobStatus(StrEnum):
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"


class TrainingJobStatusCounters(Model):
    """How many trials are in each state."""

    completed: int = Field(default=0, description="Trials that ran to the end.")
    in_progress: int = Field(default=0, description="Trials not yet ended: running or pending.")
    pending: int = Field(
        default=0,
        description="Of those, trials waiting to run: to be scheduled, for their image, for quota or admission.",
    )
    running: int = Field(default=0, description="Of those, trials running now (inProgress less pending).")
    retryable_error: int = Field(
        default=0,
        description="Trial pods that failed for a cause other than the training code (evicted, preempted, node lost, retried) and ran again.",
    )
    non_retryable_error: int = Field(
        default=0, description="Trials that failed (the training code's own failure, or retries spent)."
    )
    stopped: int = Field(default=0, description="Trials stopped early (Hyperband, early stopping, or by the user).")


class ObjectiveStatusCounters(Model):
    """How many trials yielded an objective value."""

    succeeded: int = Field(default=0, description="Trials whose objective value was obtained.")
    pending: int = Field(default=0, description="Trials whose objective value is still to come.")
    failed: int = Field(default=0, description="Trials that ended without an objective value.")


class TrialSummary(Model):
    """One trial's result."""

    name: str = Field(description="Name of the trial (its Job's name in the cluster).")
    tuned_hyper_parameters: dict[str, ParameterValue] = Field(
        description="The tuned hyperparameters the trial ran with."
    )
    final_objective_value: float = Field(description="The trial's final (or, if stopped, last) objective value.")
    status: str = Field(description="Completed, or Stopped when the trial was stopped early.")


class Condition(Model):
    """A Kubernetes condition: one aspect of the tuning job's state."""

    type: str = Field(description="Condition type: Running, Complete, Failed, Stopped, Valid.")
    status: str = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="CamelCase reason for the last transition.")
    message: str = Field(default="", description="Human-readable details.")
    last_transition_time: str | None = Field(default=None, description="When the status last changed (RFC 3339).")
    observed_generation: int | None = Field(default=None, description="The spec generation the condition is about.")


class HyperParameterTuningJobStatus(Model):
    """What the tuning job has done so far."""

    hyper_parameter_tuning_job_status: TuningJobStatus | None = Field(
        default=None, description="InProgress, Completed, Failed, Stopping or Stopped."
    )
    training_job_status_counters: TrainingJobStatusCounters = Field(
        default_factory=TrainingJobStatusCounters, description="How many trials are in each state."
    )
    objective_status_counters: ObjectiveStatusCounters = Field(
        default_factory=ObjectiveStatusCounters, description="How many trials yielded an objective value."
    )
    best_training_job: TrialSummary | None = Field(default=None, description="The best trial so far.")
    best_objective_value: str | None = Field(
        default=None,
        description="The best trial's objective rounded to 4 significant digits, for kubectl get (bestTrainingJob has it exact).",
    )
    leaderboard: list[TrialSummary] = Field(
        default_factory=list,
        max_length=LEADERBOARD_SIZE,
        description=f"The best trials so far, best first (at most {LEADERBOARD_SIZE}).",
    )
    conditions: list[Condition] = Field(default_factory=list, description="Kubernetes conditions.")
    observed_generation: int | None = Field(default=None, description="The spec generation last acted on.")
    creation_time: str | None = Field(default=None, description="When the tuning job started (RFC 3339).")
    random_seed: int | None = Field(
        default=None,
        description="The seed in use: spec.randomSeed, or one chosen at start so a restarted operator continues the same way.",
    )
    end_time: str | None = Field(default=None, description="When the tuning job ended (RFC 3339).")
    failure_reason: str | None = Field(default=None, description="Why the tuning job failed.")
    completion_reason: str | None = Field(default=None, description="Why the tuning job completed.")
    trials_started: int = Field(default=0, description="Trials started so far.")
    trials_budget: int | None = Field(default=None, description="Trials the tuning job may start in all.")
    progress: str | None = Field(default=None, description="Ended trials over the budget, e.g. 7/20, for kubectl get.")

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
