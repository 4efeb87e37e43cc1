"""The GP maths' own contracts, apart from the strategy that uses them."""

from __future__ import annotations

import numpy as np

from kubetune._gp import warp
from kubetune._gp.warp import warp_losses


def test_many_losses_are_warped_like_all_of_them_with_lambda_from_their_quantiles() -> None:
    """Past LAMBDA_POINTS, lambda comes from order statistics: the targets stay monotone and close to the full fit."""
    rng = np.random.default_rng(3)
    losses = np.exp(rng.normal(size=20_000)) + rng.pareto(2.0, 20_000)
    sketched = warp_losses(losses)
    limit = warp.LAMBDA_POINTS
    try:
        warp.LAMBDA_POINTS = len(losses)
        full = warp_losses(losses)
    finally:
        warp.LAMBDA_POINTS = limit
    assert sketched is not None and full is not None
    order = np.argsort(losses)
    assert np.all(np.diff(sketched[order]) >= 0)  # monotone: the best point stays the best
    assert abs(sketched.mean()) < 1e-9 and abs(sketched.std() - 1.0) < 1e-9
    assert np.max(np.abs(sketched - full)) < 0.1
