"""When a tuning job is done, as SageMaker defines it, and why.

Criteria are checked after every event. Those that end the job early
(target reached, not improving, converged, runtime, too many failures) fire
even while trials run: the runner then stops them. The budget criterion fires
once every trial the budget allows has ended.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from kubetune.api.spec import ConvergenceSetting, HyperParameterTuningJobSpec, ObjectiveType

IMPROVEMENT_THRESHOLD = 0.01
"""SageMaker's bestObjectiveNotImproving counts a trial as improving when it betters the best by 1% or more."""

OBJECTIVE_NOT_REPORTED_TRIALS = 3
"""Trials that completed without an objective value, while none has had one, before the job fails:
a wrong metricName or a regex that never matches would otherwise spend the whole budget."""

CONVERGENCE_MIN_TRIALS = 20
CONVERGENCE_TOLERANCE = 1e-4
"""Converged: over the last half of the finished trials (at least CONVERGENCE_MIN_TRIALS in all),
the best improved by less than this fraction of the range of objective values seen."""


class Outcome(StrEnum):
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPED = "Stopped"


class Reason(StrEnum):
    MAX_TRAINING_JOBS = "MaxNumberOfTrainingJobsReached"
    SEARCH_SPACE_EXHAUSTED = "SearchSpaceExhausted"
    MAX_RUNTIME = "MaxRuntimeReached"
    TARGET_REACHED = "TargetObjectiveReached"
    NOT_IMPROVING = "BestObjectiveNotImproving"
    CONVERGED = "ConvergenceDetected"
    MAX_FAILED = "MaxFailedTrainingJobsExceeded"
    ALL_FAILED = "AllTrainingJobsFailed"
    STOPPED_BY_USER = "StoppedByUser"
    INVALID_TRIAL_TEMPLATE = "InvalidTrialTemplate"
    """The cluster refused a trial's Job for a reason every trial would meet (the runner says which)."""
    TRIAL_NAME_TAKEN = "TrialNameTaken"
    """Both names a trial may have are taken by objects the tuning job does not own."""
    OBJECTIVE_NOT_REPORTED = "ObjectiveNotReported"
    """Trials complete but none reports the objective: every further trial would do the same."""


@dataclass(frozen=True)
class Completion:
    outcome: Outcome
    reason: Reason
    message: str


class LossTrace:
    """The losses of finished trials in end order, with the running summaries the criteria need.

    Kept incrementally so that checking the criteria after each event costs
    O(1), not O(trials): a tuning job may run tens of thousands of trials.
    """

    def __init__(self) -> None:
        self.prefix_min: list[float] = []
        self.worst = -math.inf
        self.since_improvement = 0

    def __len__(self) -> int:
        return len(self.prefix_min)

    @property
    def best(self) -> float:
        return self.prefix_min[-1] if self.prefix_min else math.inf

    def append(self, loss: float) -> None:
        if self.prefix_min:
            best = self.prefix_min[-1]
            improved = loss < best - IMPROVEMENT_THRESHOLD * abs(best) or (best == 0 and loss < 0)
            self.since_improvement = 0 if improved else self.since_improvement + 1
        self.prefix_min.append(min(loss, self.best))
        self.worst = max(self.worst, loss)


@dataclass(frozen=True)
class Progress:
    """What the criteria look at: counts, and the losses of finished trials in the order they finished."""

    asked: int
    running: int
    failed: int
    losses: LossTrace
    """Losses (objective in minimisation sign) of the trials that ended with a value."""
    elapsed_seconds: float
    budget: int | None
    """Trials the job may start, or None when only the strategy limits it."""
    strategy_exhausted: bool
    without_objective: int = 0
    """Trials that completed (exit 0) without an objective value."""
    last_without_objective: str = ""
    """What the runner saw of the last of them (kubetune.collector's explanation), or ""."""


class CompletionCriteria:
    """The spec's completion criteria, evaluated on a Progress."""

    def __init__(self, spec: HyperParameterTuningJobSpec, budget: int | None) -> None:
        self._sign = -1.0 if spec.objective.type is ObjectiveType.MAXIMIZE else 1.0
        limits = spec.resource_limits
        criteria = spec.tuning_job_completion_criteria
        self._budget = budget
        self._max_runtime = limits.max_runtime_in_seconds
        self._max_failed = limits.max_failed_training_jobs
        self._target = criteria.target_objective_metric_value if criteria else None
        not_improving = criteria.best_objective_not_improving if criteria else None
        self._patience = not_improving.max_number_of_training_jobs_not_improving if not_improving else None
        convergence = criteria.convergence_detected if criteria else None
        self._convergence = bool(convergence and convergence.complete_on_convergence is ConvergenceSetting.ENABLED)

    def check(self, progress: Progress) -> Completion | None:
        if self._max_failed is not None and progress.failed > self._max_failed:
            return Completion(
                Outcome.FAILED,
                Reason.MAX_FAILED,
                f"{progress.failed} trials failed, more than maxFailedTrainingJobs ({self._max_failed})",
            )
        if not progress.losses and progress.without_objective >= OBJECTIVE_NOT_REPORTED_TRIALS:
            seen = progress.last_without_objective or "the runner did not say what it saw"
            return Completion(
                Outcome.FAILED,
                Reason.OBJECTIVE_NOT_REPORTED,
                f"{progress.without_objective} trials completed without an objective value and none has had one;"
                f" the last: {seen}",
            )
        if self._target is not None and progress.losses:
            best = progress.losses.best
            if best <= self._sign * self._target:
                return Completion(
                    Outcome.COMPLETED,
                    Reason.TARGET_REACHED,
                    f"objective {self._sign * best:g} reached targetObjectiveMetricValue {self._target:g}",
                )
        if self._patience is not None and self._not_improving(progress.losses):
            return Completion(
                Outcome.COMPLETED,
                Reason.NOT_IMPROVING,
                f"the last {self._patience} trials did not improve the best objective by 1% or more",
            )
        if self._convergence and self._converged(progress.losses):
            return Completion(Outcome.COMPLETED, Reason.CONVERGED, "the best objective has converged")
        if self._max_runtime is not None and progress.elapsed_seconds >= self._max_runtime:
            return Completion(
                Outcome.COMPLETED, Reason.MAX_RUNTIME, f"maxRuntimeInSeconds ({self._max_runtime}) reached"
            )
        if progress.running:
            return None
        if self._budget is not None and progress.asked >= self._budget:
            return self._budget_spent(progress, Reason.MAX_TRAINING_JOBS, f"all {self._budget} trials ended")
        if progress.strategy_exhausted:
            return self._budget_spent(
                progress, Reason.SEARCH_SPACE_EXHAUSTED, f"all {progress.asked} configurations were tried"
            )
        return None

    @staticmethod
    def _budget_spent(progress: Progress, reason: Reason, message: str) -> Completion:
        if progress.asked and not progress.losses:
            return Completion(
                Outcome.FAILED, Reason.ALL_FAILED, f"none of the {progress.asked} trials yielded an objective value"
            )
        return Completion(Outcome.COMPLETED, reason, message)

    def _not_improving(self, losses: LossTrace) -> bool:
        assert self._patience is not None
        return losses.since_improvement >= self._patience

    @staticmethod
    def _converged(losses: LossTrace) -> bool:
        n = len(losses)
        if n < CONVERGENCE_MIN_TRIALS:
            return False
        spread = losses.worst - losses.best
        if not math.isfinite(spread) or spread == 0:
            return spread == 0
        best_before = losses.prefix_min[n // 2 - 1]
        return best_before - losses.best < CONVERGENCE_TOLERANCE * spread
