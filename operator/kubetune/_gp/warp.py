"""Losses to GP targets: robust centring, a fitted Yeo-Johnson power transform, standardisation.

Loss surfaces in tuning are skewed and heavy-tailed (a diverged run reports
1e6 next to 0.1s); a stationary GP fitted on raw values spends its whole
amplitude on the outliers and sees the good region as flat. Centring on the
median and scaling by the interquartile range keeps the transform's fit from
being dominated by the tail; the power transform (lambda chosen by maximum
likelihood on a fixed grid, so it is deterministic and cannot diverge) then
makes the values roughly Gaussian, which is what the GP assumes. Being
monotone, it never changes which point is best.

Choosing lambda scores 41 candidate transforms, each over every loss: at
20,000 losses that was a quarter of an ask (issue 16). Past LAMBDA_POINTS
losses lambda is chosen on that many evenly spaced order statistics instead
(the empirical quantiles: the same distribution, so the same maximum up to
the grid's resolution), and only the chosen transform touches every loss.
Below it, every loss is used, exactly as before.

The power transform is optional (`power=False`: the caller's choice, by the
number of hyperparameters and the kind of ask). As a search progresses its own
results make the losses skewed: most of them near the incumbent, the
space-filling start far above. The likelihood then picks a strongly
compressing lambda (about -1 by 100 results on Rosenbrock-30), which flattens
the slope between the start and the incumbent; in 20-30 dimensions that slope
is what leads the search (engine/strategies/bayesian.py, point 2). Without the
power transform the losses are only centred and scaled, and a far tail past
TAIL robust units is compressed logarithmically, so a diverged run's 1e30
still cannot flatten the rest.
"""

from __future__ import annotations

import numpy as np

from kubetune._gp.kernel import FloatArray

LAMBDAS = np.linspace(-2.0, 2.0, 41)
CLIP = 1e6
LAMBDA_POINTS = 2048
"""Most values lambda is chosen on: past this, evenly spaced order statistics of all of them."""
TAIL = 20.0
"""Without the power transform: robust units (interquartile ranges from the median) past which losses are
compressed logarithmically. Beyond what a search's own progress makes (11-15 by 180 results on
Rosenbrock-30), so only true outliers reach it."""


def yeo_johnson(z: FloatArray, lam: float) -> FloatArray:
    out = np.empty_like(z)
    pos = z >= 0
    if abs(lam) > 1e-8:
        out[pos] = (np.power(z[pos] + 1.0, lam) - 1.0) / lam
    else:
        out[pos] = np.log1p(z[pos])
    if abs(lam - 2.0) > 1e-8:
        out[~pos] = -(np.power(1.0 - z[~pos], 2.0 - lam) - 1.0) / (2.0 - lam)
    else:
        out[~pos] = -np.log1p(-z[~pos])
    return out


def _log_likelihood(z: FloatArray, lam: float) -> float:
    t = yeo_johnson(z, lam)
    var = float(t.var())
    if not np.isfinite(var) or var <= 0:
        return -np.inf
    return float(-0.5 * len(z) * np.log(var) + (lam - 1.0) * (np.sign(z) * np.log1p(np.abs(z))).sum())


def _robust_units(losses: FloatArray) -> FloatArray | None:
    """Losses centred on their median and scaled by their interquartile range; None when every loss is the same."""
    spread = float(np.ptp(losses)) if len(losses) else 0.0
    if len(losses) < 2 or spread <= 1e-12 * max(1.0, float(np.abs(losses).max())):
        return None
    q1, med, q3 = np.percentile(losses, [25, 50, 75])
    scale = float(q3 - q1)
    if scale <= 0:
        scale = float(losses.std())
    return np.asarray(np.clip((losses - med) / scale, -CLIP, CLIP), dtype=float)


def _compress_tail(z: FloatArray) -> FloatArray:
    """Identity within TAIL robust units of the median, logarithmic beyond: monotone and continuous."""
    over = np.abs(z) - TAIL
    return np.asarray(np.where(over > 0, np.sign(z) * (TAIL + np.log1p(np.maximum(over, 0.0))), z), dtype=float)


def warp_losses(losses: FloatArray, power: bool = True) -> FloatArray | None:
    """Targets with mean 0 and variance 1, in the order of `losses`; None when every loss is the same.

    `power=False` leaves out the power transform: the targets are then an affine map of the losses
    except in a far tail (TAIL).
    """
    losses = np.asarray(losses, dtype=float)
    z = _robust_units(losses)
    if z is None:
        return None
    if power:
        sample = z if len(z) <= LAMBDA_POINTS else np.sort(z)[np.linspace(0, len(z) - 1, LAMBDA_POINTS).astype(int)]
        lam = max(LAMBDAS, key=lambda lam: _log_likelihood(sample, float(lam)))
        t = yeo_johnson(z, float(lam))
    else:
        t = _compress_tail(z)
    sd = float(t.std())
    if not np.isfinite(sd) or sd <= 0:
        return None
    t = (t - t.mean()) / sd
    return np.asarray(t, dtype=float)
