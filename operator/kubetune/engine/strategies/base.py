"""The contract every strategy fulfils, and the view of the tuning job it is given."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from kubetune.api.spec import ParameterValue
from kubetune.engine.space import SearchSpace

Config = dict[str, ParameterValue]


@dataclass(frozen=True)
class Observation:
    """A trial's result as a strategy sees it: always a loss (lower is better)."""

    config: Mapping[str, ParameterValue]
    loss: float
    final: bool
    """False when the trial was stopped early and `loss` is its last report, not its final value."""


@dataclass(frozen=True)
class SearchState:
    """Everything a strategy may base a suggestion on; nothing else, so suggestions are reproducible."""

    space: SearchSpace
    observations: Sequence[Observation]
    pending: Sequence[Mapping[str, ParameterValue]]
    """Configurations of trials running now: a batch-aware strategy spreads new points away from them."""
    failed: Sequence[Mapping[str, ParameterValue]]
    asked: int
    """Trials asked for so far; the next suggestion is for trial number asked + 1."""


def batch_rng(seed: int, state: SearchState) -> np.random.Generator:
    """The random stream of one ask, keyed by the seed and how many trials came before.

    Keying on the trial count rather than carrying a generator through the
    job's life is what makes a restored tuner suggest exactly what the original
    would have: the stream needs no state beyond what history() records.
    """
    return np.random.default_rng([seed, state.asked])


class Strategy(ABC):
    """Proposes configurations to try next."""

    @abstractmethod
    def suggest(self, state: SearchState, count: int, seed: int) -> list[Config]:
        """Up to `count` new configurations; fewer (or none) when the strategy is exhausted."""

    def size(self) -> int | None:
        """How many configurations the strategy can ever propose, or None if unbounded."""
        return None
