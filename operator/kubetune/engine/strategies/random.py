"""Random search: independent draws from the distributions the ranges define."""

from __future__ import annotations

import numpy as np

from kubetune.engine.strategies.base import Config, SearchState, Strategy


class RandomStrategy(Strategy):
    """Trial n's configuration depends on the seed and n alone.

    Not on how asks were batched: an operator that restarts mid-job asks in
    other batch sizes than an uninterrupted one, and must still run the very
    same trials. Each suggestion costs O(dims), whatever the number of trials.
    """

    def suggest(self, state: SearchState, count: int, seed: int) -> list[Config]:
        return [state.space.sample(np.random.default_rng([seed, state.asked + i]), 1)[0] for i in range(count)]
