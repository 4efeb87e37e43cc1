"""Schedulers decide, on each report, whether a running trial continues.

The split follows Syne Tune: a strategy proposes configurations, a scheduler
owns the running trials' fate. The tuner asks the scheduler after every
report; a STOP is final.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from kubetune.api.spec import ParameterValue


class Decision(StrEnum):
    CONTINUE = "Continue"
    STOP = "Stop"


@dataclass(frozen=True)
class StopDecision:
    decision: Decision
    reason: str = ""

    @property
    def stop(self) -> bool:
        return self.decision is Decision.STOP


CONTINUE = StopDecision(Decision.CONTINUE)


class Scheduler:
    """Runs every trial to its end; subclasses stop some of them early."""

    def on_start(self, trial_id: str, config: Mapping[str, ParameterValue]) -> dict[str, ParameterValue]:
        """Extra hyperparameters for a new trial (Hyperband tells it its resource).

        `config` is the trial's tuned hyperparameters: a model-based proposer
        learns from what the scheduler saw at its rungs, which needs both.
        """
        return {}

    def on_report(self, trial_id: str, step: float, loss: float) -> StopDecision:
        return CONTINUE

    def on_end(self, trial_id: str, completed: bool = False) -> None:
        """The trial ended, whatever the way (`completed`: it ran to its end); forget what only running trials need."""
