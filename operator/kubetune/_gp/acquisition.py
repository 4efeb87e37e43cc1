"""Log expected improvement, stable far into the tail (Ament et al., 2023, "Unexpected improvements to EI").

Plain EI underflows to exactly 0 once a candidate is a few standard
deviations worse than the incumbent, which late in a run is almost
everywhere: the optimiser then sees a flat surface and stops moving. Its log
stays informative there, and so does its gradient.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
from scipy.special import erfcx, log_ndtr, ndtr

from kubetune._gp.gp import GP
from kubetune._gp.kernel import FloatArray

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_SQRT_HALF_PI = math.sqrt(0.5 * math.pi)
_TAIL = -1e6


def log_h(z: FloatArray) -> FloatArray:
    """log(z Phi(z) + phi(z)), the log of EI for a unit Gaussian."""
    out = np.empty_like(z)
    mid = z > -1.0
    zm = z[mid]
    out[mid] = np.log(zm * ndtr(zm) + np.exp(-0.5 * zm * zm - _LOG_SQRT_2PI))
    low = (~mid) & (z > _TAIL)
    zl = z[low]
    out[low] = -0.5 * zl * zl - _LOG_SQRT_2PI + np.log1p(zl * _SQRT_HALF_PI * erfcx(-zl / math.sqrt(2.0)))
    tail = z <= _TAIL
    zt = z[tail]
    out[tail] = -0.5 * zt * zt - _LOG_SQRT_2PI - 2.0 * np.log(-zt)
    return out


def log_ei(mu: FloatArray, var: FloatArray, best: float | FloatArray) -> FloatArray:
    """log EI of values below `best` (minimisation), for each (mu, var); arrays broadcast."""
    sd = np.sqrt(var)
    return np.asarray(log_h((best - mu) / sd) + np.log(sd), dtype=float)


def log_ei_with_grad(
    mu: FloatArray, var: FloatArray, dmu: FloatArray, dvar: FloatArray, best: float | FloatArray
) -> tuple[FloatArray, FloatArray]:
    """log EI (m,) and its gradient (m, d), from the posterior's values (m,) and gradients (m, d);
    `best` is one threshold or one per row (m,)."""
    sd = np.sqrt(var)
    z = (best - mu) / sd
    lh = log_h(z)
    # d EI / d mu = -Phi(z), d EI / d sd = phi(z); divide by EI = sd h(z) for the log
    ratio_cdf = np.exp(log_ndtr(z) - lh) / sd
    ratio_pdf = np.exp(-0.5 * z * z - _LOG_SQRT_2PI - lh) / sd
    grad = -ratio_cdf[:, None] * dmu + (ratio_pdf / (2.0 * sd))[:, None] * dvar
    return lh + np.log(sd), grad


class Acquisition(Protocol):
    """What the optimiser maximises: larger is better, one value per query row."""

    def value(self, z: FloatArray) -> FloatArray:
        """(m,) at Z (m, d)."""
        ...

    def value_with_grad(self, z: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(m,) and the gradient (m, d) at Z; categorical columns get 0."""
        ...


class LogEI:
    """log EI under one posterior, below one threshold: the acquisition with no trial running."""

    def __init__(self, gp: GP, best: float) -> None:
        self.gp, self.best = gp, best

    def value(self, z: FloatArray) -> FloatArray:
        mu, var = self.gp.predict(z)
        return log_ei(mu, var, self.best)

    def value_with_grad(self, z: FloatArray) -> tuple[FloatArray, FloatArray]:
        mu, var, dmu, dvar = self.gp.predict_with_grad(z)
        return log_ei_with_grad(mu, var, dmu, dvar, self.best)
