"""Grid search over every combination of the categorical and integer ranges."""

from __future__ import annotations

import math

from kubetune.engine.space import Kind, SearchSpace
from kubetune.engine.strategies.base import Config, SearchState, Strategy
from kubetune.errors import SpecError

MAX_GRID_SIZE = 1_000_000
"""Larger grids are a typo more often than a plan; we refuse them rather than enumerate for ever."""


def grid_size(space: SearchSpace) -> int:
    return math.prod(p.cardinality or 0 for p in space.parameters)


class GridStrategy(Strategy):
    """Enumerates the grid in a fixed order (last parameter fastest), one point per trial.

    The i-th trial gets the i-th point, computed by mixed-radix decoding, so the
    grid is never materialised and a restored tuner continues where it stopped.
    """

    def __init__(self, space: SearchSpace) -> None:
        for p in space.parameters:
            if p.kind is Kind.CONTINUOUS:
                raise SpecError(
                    "spec.parameterRanges.continuousParameterRanges",
                    f"the Grid strategy cannot enumerate continuous hyperparameter {p.name!r}; use integer or categorical ranges",
                )
        self._space = space
        self._values = [p.grid_values() for p in space.parameters]
        self._size = grid_size(space)
        if self._size > MAX_GRID_SIZE:
            raise SpecError("spec.parameterRanges", f"the grid has {self._size} points, more than {MAX_GRID_SIZE}")

    def size(self) -> int:
        return self._size

    def point(self, index: int) -> Config:
        config: Config = {}
        for p, values in reversed(list(zip(self._space.parameters, self._values, strict=True))):
            index, digit = divmod(index, len(values))
            config[p.name] = values[digit]
        return {p.name: config[p.name] for p in self._space.parameters}

    def suggest(self, state: SearchState, count: int, seed: int) -> list[Config]:
        end = min(self._size, state.asked + count)
        return [self.point(i) for i in range(state.asked, end)]
