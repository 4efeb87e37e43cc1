"""The GP maths' own contracts, apart from the strategy that uses them."""

from __future__ import annotations

import numpy as np

from kubetune._gp import GP, fit, warp
from kubetune._gp.acquisition import LogEI
from kubetune._gp.kernel import FloatArray
from kubetune._gp.pending import PendingLogEI, normal_draws
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


def test_without_the_power_transform_losses_are_scaled_and_only_a_far_outlier_is_compressed() -> None:
    """`power=False`: an affine map of the losses, except that a diverged run's 1e30 is pulled in
    logarithmically, so the other results keep most of the targets' spread and their order."""
    rng = np.random.default_rng(5)
    losses = rng.gamma(2.0, size=200)
    scaled = warp_losses(losses, power=False)
    assert scaled is not None
    assert np.allclose(scaled, (losses - losses.mean()) / losses.std())
    with_outlier = warp_losses(np.append(losses, 1e30), power=False)
    assert with_outlier is not None
    bulk = with_outlier[:-1]
    assert with_outlier[-1] == with_outlier.max() and with_outlier[-1] < 15.0
    assert bulk.std() > 0.25  # scaled alone: about 1e-28
    assert np.allclose(np.corrcoef(bulk, losses)[0, 1], 1.0)


def _posterior(seed: int = 0, n: int = 30, d: int = 4) -> tuple[GP, FloatArray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, d))
    y = np.sin(3.0 * x).sum(1)
    y = (y - y.mean()) / y.std()
    is_cat, extra = np.zeros(d, dtype=bool), np.zeros(n)
    return GP(x, y, is_cat, extra, fit(x, y, is_cat, extra)), y


def test_the_gradient_of_ei_over_running_trials_is_the_derivative_of_its_value() -> None:
    """The polish climbs this gradient: a wrong one would stop it short of the maximum without a word."""
    gp, y = _posterior()
    rng = np.random.default_rng(1)
    acq = PendingLogEI(gp, float(y.min()), rng.random((6, 4)), normal_draws(rng, 10))
    z = rng.random((5, 4))
    value, grad = acq.value_with_grad(z)
    assert np.allclose(value, acq.value(z))
    eps, numeric = 1e-6, np.empty_like(grad)
    for j in range(4):
        step = np.zeros(4)
        step[j] = eps
        numeric[:, j] = (acq.value(z + step) - acq.value(z - step)) / (2 * eps)
    assert np.max(np.abs(numeric - grad)) <= 1e-6 * max(1.0, float(np.abs(grad).max()))


def test_a_running_trial_takes_the_value_of_its_own_neighbourhood_and_leaves_the_rest() -> None:
    """Next to a running trial the new pick's value is that trial's draw: no improvement to expect. Far from
    every running trial (uncorrelated under the posterior) it is plain EI below the thresholds the draws
    leave, which are never above the incumbent: never more than plain EI, and equal in the draws where the
    running trial does not improve."""
    gp, y = _posterior()
    best = float(y.min())
    rng = np.random.default_rng(2)
    running = gp.x[np.argsort(y)[:1]] + 0.01  # next to the incumbent: where plain EI is high
    acq = PendingLogEI(gp, best, running, normal_draws(rng, 1))
    plain = LogEI(gp, best)
    near = running + 1e-4
    assert acq.value(near)[0] < plain.value(near)[0] - 3.0  # log: a twentieth of the plain EI at most
    assert np.all(acq.thresholds <= best)
    far = PendingLogEI(gp, best, np.full((1, 4), 50.0), normal_draws(rng, 1))  # outside the data: no correlation
    z = rng.random((8, 4))
    assert np.all(far.value(z) <= plain.value(z) + 1e-9)
    unimproved = far.thresholds == best
    assert 0 < unimproved.sum() < len(unimproved)
    only_those = PendingLogEI(gp, best, np.full((1, 4), 50.0), normal_draws(rng, 1))
    only_those.draws, only_those.thresholds = far.draws[unimproved], far.thresholds[unimproved]
    only_those._log_s = float(np.log(unimproved.sum()))
    assert np.allclose(only_those.value(z), plain.value(z), atol=1e-9)
