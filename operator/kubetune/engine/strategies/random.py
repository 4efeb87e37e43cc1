"""Random search: independent draws from the distributions the ranges define."""

from __future__ import annotations

from kubetune.engine.strategies.base import Config, SearchState, Strategy, batch_rng


class RandomStrategy(Strategy):
    """Each suggestion costs O(dims), whatever the number of finished trials."""

    def suggest(self, state: SearchState, count: int, seed: int) -> list[Config]:
        return state.space.sample(batch_rng(seed, state), count)
