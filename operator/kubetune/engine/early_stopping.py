"""Auto early stopping: the median rule, for strategies that run every trial to its end otherwise.

SageMaker's text, which we follow: after each epoch, compute for every earlier
trial the running average of its objective up to that epoch; stop the current
trial if its objective at that epoch is worse than the median of those
running averages.

Read literally, that compares a trial's *current* value with the others'
*averages*, which lag on a learning curve, so the bar is lenient. We also
built the like-with-like reading (the trial's own running average against the
others') and measured both in bench/hyperband: the literal rule already saves
62-77% of Random's resource with the same final best in every median, while
like-with-like saves 71-82% but loses up to 1% of accuracy on its worst seed.
The issue asked for like-with-like only where the literal rule saves too
little; it does not, so Auto is the literal rule and Comparison.RUNNING_AVERAGE
stays a constructor option, not an API field.

What SageMaker does not say, we chose: a trial is never stopped before its
MIN_REPORTS-th report, nor at a step fewer than MIN_TRIALS other trials have
reached. "Earlier trials" are those whose report at that step came first in
event order, whether they still run or not, and steps match exactly; so the
decisions depend only on the order of the calls and a restored tuner repeats
them.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from kubetune.api.spec import ParameterValue
from kubetune.engine.stopping import CONTINUE, Decision, Scheduler, StopDecision

MIN_TRIALS = 5
"""Others needed at a step before its median means anything (Optuna's MedianPruner waits for 5 trials too)."""

MIN_REPORTS = 3
"""A trial's first reports carry its initialisation more than its hyperparameters; let them pass."""


class Comparison(StrEnum):
    """What is held against the median of the others' running averages."""

    LATEST = "Latest"
    """The trial's value at this step: SageMaker's text, read literally (the default)."""
    RUNNING_AVERAGE = "RunningAverage"
    """The trial's own running average: like with like; saves more, risks more (see the module docstring)."""


@dataclass
class _Average:
    total: float = 0.0
    count: int = 0

    def add(self, loss: float) -> float:
        self.total += loss
        self.count += 1
        return self.total / self.count


class MedianStoppingRule(Scheduler):
    """Stops a trial that is worse than the median of the earlier trials at the same step."""

    def __init__(
        self,
        comparison: Comparison = Comparison.LATEST,
        min_trials: int = MIN_TRIALS,
        min_reports: int = MIN_REPORTS,
    ) -> None:
        self.comparison = comparison
        self.min_trials = min_trials
        self.min_reports = min_reports
        self._running: dict[str, _Average] = {}
        self._averages: dict[float, list[float]] = {}
        """Sorted running averages of every trial that reported at each step, in any state."""

    def on_start(self, trial_id: str, config: Mapping[str, ParameterValue]) -> dict[str, ParameterValue]:
        self._running[trial_id] = _Average()
        return {}

    def on_report(self, trial_id: str, step: float, loss: float) -> StopDecision:
        average = self._running.get(trial_id)
        if average is None:
            return CONTINUE
        mine = average.add(loss)
        others = self._averages.setdefault(step, [])
        decision = CONTINUE
        if average.count >= self.min_reports and len(others) >= self.min_trials:
            median = _median(others)
            held = mine if self.comparison is Comparison.RUNNING_AVERAGE else loss
            if held > median:
                decision = StopDecision(
                    Decision.STOP,
                    f"Auto early stopping at step {step:g}: {_describe(self.comparison)} is worse than the median"
                    f" of the running averages of the {len(others)} earlier trials at that step",
                )
        bisect.insort(others, mine)
        return decision

    def on_end(self, trial_id: str) -> None:
        self._running.pop(trial_id, None)


def _median(values: list[float]) -> float:
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2.0


def _describe(comparison: Comparison) -> str:
    return "its running average" if comparison is Comparison.RUNNING_AVERAGE else "its objective"
