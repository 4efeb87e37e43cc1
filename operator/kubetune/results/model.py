"""The trials of one tuning job, as every view of them (table, export, report) reads them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from kubetune.api.spec import HyperParameterTuningJobSpec, ParameterValue
from kubetune.engine.space import Kind, Parameter, SearchSpace


@dataclass(frozen=True)
class TrialRow:
    """One trial: who it is, what it ran with, what it reported and how it ended."""

    number: int
    name: str
    status: str
    """Running, Completed, Stopped or Failed (kubetune.engine.TrialStatus values)."""
    objective: float | None
    """The final objective (a stopped trial's last report); None when the trial yielded none."""
    hyperparameters: Mapping[str, ParameterValue]
    """The tuned hyperparameters alone: static ones are the same for every trial."""
    reports: tuple[tuple[float, float], ...] = ()
    """(step, objective value) of each intermediate report, in order: the learning curve."""
    started_at: float | None = None
    """Epoch seconds; None when the source did not record it."""
    ended_at: float | None = None
    """Epoch seconds; None while running or when not recorded."""
    reason: str = ""
    """Why it was stopped or failed, or what it emitted when it yielded no objective."""

    @property
    def steps(self) -> int:
        return len(self.reports)

    @property
    def last_step(self) -> float | None:
        return self.reports[-1][0] if self.reports else None

    def duration(self, now: float) -> float | None:
        """Seconds it ran (so far, for a running trial at `now`)."""
        if self.started_at is None:
            return None
        end = self.ended_at if self.ended_at is not None else now
        return max(0.0, end - self.started_at)


@dataclass(frozen=True)
class TuningResults:
    """A tuning job's outcome and every one of its trials, from a result file or a cluster."""

    name: str
    source: str
    """Where it was read: the result file's path, or namespace/name in the cluster."""
    metric: str
    maximize: bool
    status: str
    """InProgress, Completed, Failed, Stopping or Stopped."""
    completion_reason: str
    trials: tuple[TrialRow, ...]
    spec: HyperParameterTuningJobSpec | None = None
    """None for a result file written before kubetune recorded the spec: ranges are then inferred."""
    strategy: str = ""
    parameters: tuple[Parameter, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.parameters:
            space = SearchSpace.from_spec(self.spec).parameters if self.spec else infer_parameters(self.trials)
            object.__setattr__(self, "parameters", space)

    def sort_key(self, row: TrialRow) -> tuple[bool, float, int]:
        """Best first, trials without an objective last, ties to the earlier trial."""
        if row.objective is None or not math.isfinite(row.objective):
            return (True, 0.0, row.number)
        return (False, -row.objective if self.maximize else row.objective, row.number)

    def ranked(self) -> list[TrialRow]:
        return sorted(self.trials, key=self.sort_key)

    @property
    def best(self) -> TrialRow | None:
        ranked = self.ranked()
        return ranked[0] if ranked and ranked[0].objective is not None else None

    def better(self, a: float, b: float) -> bool:
        """a is strictly better than b in this job's direction."""
        return a > b if self.maximize else a < b


def infer_parameters(trials: tuple[TrialRow, ...]) -> tuple[Parameter, ...]:
    """Ranges read off the values the trials ran with, for a source that does not carry its spec."""
    values: dict[str, list[ParameterValue]] = {}
    for row in trials:
        for name, value in row.hyperparameters.items():
            values.setdefault(name, []).append(value)
    parameters: list[Parameter] = []
    for name, seen in values.items():
        numbers = [v for v in seen if isinstance(v, int | float) and not isinstance(v, bool)]
        if len(numbers) == len(seen):
            kind = Kind.INTEGER if all(isinstance(v, int) for v in numbers) else Kind.CONTINUOUS
            parameters.append(Parameter(name, kind, float(min(numbers)), float(max(numbers))))
        else:
            parameters.append(Parameter(name, Kind.CATEGORICAL, choices=tuple(dict.fromkeys(seen))))
    return tuple(parameters)
