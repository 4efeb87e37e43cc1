"""The search space: every range type and scaling, mapped to the unit cube and back.

Each hyperparameter owns one coordinate u in [0, 1]. Sampling u uniformly gives
the distribution the user asked for (uniform, log-uniform, reverse-log, every
integer equally likely under Linear), so a strategy can work in the cube alone
and never think about scaling. Categorical values sit at the centres of k equal
cells, so uniform u picks each value with probability 1/k; a strategy that wants
one-hot columns reads `Parameter.choices`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from kubetune.api.spec import HyperParameterTuningJobSpec, ParameterValue, ScalingType

AUTO_LOG_RATIO = 100.0
"""Auto picks Logarithmic when the range is positive and spans at least two orders of magnitude."""


class Kind(StrEnum):
    INTEGER = "integer"
    CONTINUOUS = "continuous"
    CATEGORICAL = "categorical"


def resolve_scaling(scaling: ScalingType, low: float, high: float) -> ScalingType:
    """Auto as we define it (SageMaker does not publish its rule): log for wide positive ranges."""
    if scaling is not ScalingType.AUTO:
        return scaling
    if low > 0 and high / low >= AUTO_LOG_RATIO:
        return ScalingType.LOGARITHMIC
    return ScalingType.LINEAR


@dataclass(frozen=True)
class Parameter:
    """One tunable hyperparameter and its map between value and unit coordinate."""

    name: str
    kind: Kind
    low: float = 0.0
    high: float = 1.0
    scaling: ScalingType = ScalingType.LINEAR
    choices: tuple[ParameterValue, ...] = ()

    def _warp(self, u: float) -> float:
        """Unit coordinate to a real number in the parameter's scale (integers: before flooring)."""
        low, high = self.low, self.high
        if self.kind is Kind.INTEGER:
            high = high + 1.0  # integers own the cell [v, v + 1), so both ends are equally likely
        if self.scaling is ScalingType.LOGARITHMIC:
            return math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
        if self.scaling is ScalingType.REVERSE_LOGARITHMIC:
            a, b = math.log(1.0 - low), math.log(1.0 - high)
            return 1.0 - math.exp(a + u * (b - a))
        return low + u * (high - low)

    def _unwarp(self, x: float) -> float:
        low, high = self.low, self.high
        if self.kind is Kind.INTEGER:
            high = high + 1.0
        if self.scaling is ScalingType.LOGARITHMIC:
            return (math.log(x) - math.log(low)) / (math.log(high) - math.log(low))
        if self.scaling is ScalingType.REVERSE_LOGARITHMIC:
            a, b = math.log(1.0 - low), math.log(1.0 - high)
            return (math.log(1.0 - x) - a) / (b - a)
        return (x - low) / (high - low)

    def from_unit(self, u: float) -> ParameterValue:
        u = min(max(float(u), 0.0), 1.0)
        if self.kind is Kind.CATEGORICAL:
            return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]
        x = self._warp(u)
        if self.kind is Kind.INTEGER:
            return int(min(max(math.floor(x), self.low), self.high))
        return float(min(max(x, self.low), self.high))

    def to_unit(self, value: Any) -> float:
        """The coordinate of a value; integers and categories map to the centre of their cell."""
        if self.kind is Kind.CATEGORICAL:
            index = self.index_of(value)
            return (index + 0.5) / len(self.choices)
        if self.kind is Kind.INTEGER:
            v = int(value)
            lo_edge, hi_edge = self._unwarp(float(v)), self._unwarp(float(v) + 1.0)
            return (lo_edge + hi_edge) / 2.0
        return min(max(self._unwarp(float(value)), 0.0), 1.0)

    def index_of(self, value: Any) -> int:
        for i, choice in enumerate(self.choices):
            if type(choice) is type(value) and choice == value:
                return i
        for i, choice in enumerate(self.choices):  # JSON round trips may turn 1.0 into 1
            if choice == value and not isinstance(choice, bool) and not isinstance(value, bool):
                return i
        raise ValueError(f"{value!r} is not a value of categorical hyperparameter {self.name!r}")

    @property
    def cardinality(self) -> int | None:
        """Number of distinct values, or None for continuous parameters."""
        if self.kind is Kind.CATEGORICAL:
            return len(self.choices)
        if self.kind is Kind.INTEGER:
            return int(self.high - self.low) + 1
        return None

    def grid_values(self) -> list[ParameterValue]:
        if self.kind is Kind.CATEGORICAL:
            return list(self.choices)
        if self.kind is Kind.INTEGER:
            return list(range(int(self.low), int(self.high) + 1))
        raise ValueError(f"continuous hyperparameter {self.name!r} has no grid")


@dataclass(frozen=True)
class SearchSpace:
    """The ordered tunable hyperparameters of a tuning job."""

    parameters: tuple[Parameter, ...]

    @classmethod
    def from_spec(cls, spec: HyperParameterTuningJobSpec) -> SearchSpace:
        ranges = spec.parameter_ranges
        params: list[Parameter] = []
        for r in ranges.integer_parameter_ranges:
            params.append(
                Parameter(
                    r.name,
                    Kind.INTEGER,
                    float(r.min_value),
                    float(r.max_value),
                    resolve_scaling(r.scaling_type, r.min_value, r.max_value),
                )
            )
        for c in ranges.continuous_parameter_ranges:
            params.append(
                Parameter(
                    c.name,
                    Kind.CONTINUOUS,
                    c.min_value,
                    c.max_value,
                    resolve_scaling(c.scaling_type, c.min_value, c.max_value),
                )
            )
        for k in ranges.categorical_parameter_ranges:
            params.append(Parameter(k.name, Kind.CATEGORICAL, choices=tuple(k.values)))
        return cls(tuple(params))

    @property
    def dims(self) -> int:
        return len(self.parameters)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def decode(self, u: Sequence[float] | np.ndarray) -> dict[str, ParameterValue]:
        return {p.name: p.from_unit(x) for p, x in zip(self.parameters, u, strict=True)}

    def encode(self, config: Mapping[str, Any]) -> np.ndarray:
        return np.array([p.to_unit(config[p.name]) for p in self.parameters], dtype=float)

    def sample(self, rng: np.random.Generator, count: int = 1) -> list[dict[str, ParameterValue]]:
        return [self.decode(row) for row in rng.random((count, self.dims))]

    def key(self, config: Mapping[str, Any]) -> tuple[Any, ...]:
        """A hashable identity of a configuration, for duplicate detection."""
        return tuple((type(config[p.name]).__name__, config[p.name]) for p in self.parameters)
