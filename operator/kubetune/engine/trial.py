"""Trials as the public API shows them, and the states they pass through."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from kubetune.api.spec import ParameterValue


class TrialStatus(StrEnum):
    RUNNING = "Running"
    COMPLETED = "Completed"
    STOPPED = "Stopped"
    FAILED = "Failed"


@dataclass(frozen=True)
class Trial:
    """A trial handed out by `Tuner.ask`."""

    id: str
    number: int
    hyperparameters: Mapping[str, ParameterValue]
    """Everything the trial receives: tuned values, static values and, under Hyperband, its resource."""
    tuned: Mapping[str, ParameterValue]
    """The tuned hyperparameters alone."""


@dataclass(frozen=True)
class TrialResult:
    """A trial's outcome, as `Tuner.best` and the leaderboard report it."""

    id: str
    number: int
    hyperparameters: Mapping[str, ParameterValue]
    tuned: Mapping[str, ParameterValue]
    value: float
    status: TrialStatus


@dataclass
class TrialRecord:
    """The tuner's mutable bookkeeping of one trial (private to the engine)."""

    trial: Trial
    asked_seq: int
    status: TrialStatus = TrialStatus.RUNNING
    reports: list[tuple[int, float, float]] = field(default_factory=list)
    """(sequence number, step, value) of each intermediate report, in arrival order."""
    value: float | None = None
    reason: str = ""
    end_seq: int | None = None

    @property
    def last_value(self) -> float | None:
        return self.reports[-1][2] if self.reports else None
