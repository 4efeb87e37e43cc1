"""Expected improvement of one more pick while other trials are in flight: their values drawn, not assumed.

The kriging believer (each trial in flight fantasised at its posterior mean,
noise-free, and the incumbent lowered to the best fantasy) treats a guess as
a result. Near the incumbent the first picks of a batch look about as good as
the incumbent itself, so EI there collapses and the rest of a large batch is
pushed to where the model knows least.

Here the latent values of the trials in flight f_R are drawn from their joint
posterior instead, S times with fixed normal draws (scrambled Sobol through
the inverse normal CDF, so the estimate is smooth in the query point and the
same for every candidate). For draw s the threshold is t_s = min(best,
min f_R^s), and the query's value is Gaussian given f_R^s with mean
mu(z) + b(z) . w_s and variance var(z) - |b(z)|^2, where b = L_RR^-1 k(R, z | data)
and f_R^s = mu_R + L_RR w_s. The acquisition is

    log (1/S) sum_s EI(mean_s(z), var(z) - |b|^2, t_s),

the Monte Carlo q-EI of the batch {running trials, z} less its part that does
not depend on z (the improvement the running trials bring on their own), with
the inner expectation over z's own value done exactly. A candidate next to
the incumbent keeps its value in the draws where the running trials do not
improve, which is most of them; one next to a running trial loses it, because
there its value is nearly determined by that trial's draw.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg import cho_solve, solve_triangular
from scipy.special import logsumexp, ndtri
from scipy.stats import qmc

from kubetune._gp.acquisition import log_ei, log_ei_with_grad
from kubetune._gp.gp import GP, robust_cholesky
from kubetune._gp.kernel import FloatArray

SAMPLES = 128
"""Joint draws of the running trials' values (a power of two: Sobol's balance properties)."""


def normal_draws(rng: np.random.Generator, count: int, samples: int = SAMPLES) -> FloatArray:
    """(samples, count) standard normals from one scrambled Sobol set: column j is running trial j's draw."""
    u = qmc.Sobol(max(count, 1), scramble=True, seed=rng).random(samples)
    return np.asarray(ndtri(np.clip(u, 1e-10, 1.0 - 1e-10)), dtype=float)[:, :count]


class PendingLogEI:
    """log E[improvement of z over min(best, running trials' values)], the running trials drawn jointly.

    `gp` is conditioned on results only; `pending` (r, d) are the running trials' rows; `draws` (S, r')
    with r' >= r, of which the first r columns are used, so a batch that adds its picks one by one keeps
    the earlier trials' draws.
    """

    def __init__(self, gp: GP, best: float, pending: FloatArray, draws: FloatArray) -> None:
        r = len(pending)
        self.gp, self.best, self.pending = gp, best, pending
        self.draws = draws[:, :r]
        k_xr = gp.kernel(gp.x, pending)  # (n, r)
        self.k_inv_xr = cho_solve((gp.chol, True), k_xr, check_finite=False)  # K^-1 k(X, R)
        cov_rr = gp.kernel(pending, pending) - k_xr.T @ self.k_inv_xr
        cov_rr[np.diag_indices(r)] += 1e-9 * gp.hp.amp
        self.chol_rr = robust_cholesky(cov_rr)
        mu_r = k_xr.T @ gp.alpha
        fantasies = mu_r[None, :] + self.draws @ self.chol_rr.T  # (S, r)
        self.thresholds = np.minimum(best, fantasies.min(axis=1))  # (S,)
        self._log_s = math.log(len(self.draws))

    def _b(self, z: FloatArray) -> FloatArray:
        """(m, r): L_RR^-1 times the posterior covariance of (R, z)."""
        a = self.gp.kernel(z, self.pending) - self.gp.cross(z) @ self.k_inv_xr
        return np.asarray(solve_triangular(self.chol_rr, a.T, lower=True, check_finite=False).T, dtype=float)

    def value(self, z: FloatArray) -> FloatArray:
        mu, var = self.gp.predict(z)
        b = self._b(z)
        cond_var = np.maximum(var - (b * b).sum(1), 1e-12)
        means = mu[:, None] + b @ self.draws.T  # (m, S)
        le = log_ei(means, cond_var[:, None], self.thresholds[None, :])
        return np.asarray(logsumexp(le, axis=1) - self._log_s, dtype=float)

    def value_with_grad(self, z: FloatArray) -> tuple[FloatArray, FloatArray]:
        gp = self.gp
        m, d = z.shape
        r, s = len(self.pending), len(self.draws)
        k_zx, dk_zx = gp.kernel_with_grad(z, gp.x)
        mu, var, dmu, dvar = gp.posterior_with_grad(k_zx, dk_zx)
        k_zr, dk_zr = gp.kernel_with_grad(z, self.pending)
        a = k_zr - k_zx @ self.k_inv_xr  # (m, r)
        da = dk_zr - np.einsum("mnd,nr->mrd", dk_zx, self.k_inv_xr)  # (m, r, d)
        b = solve_triangular(self.chol_rr, a.T, lower=True, check_finite=False).T
        db_flat = solve_triangular(
            self.chol_rr, da.transpose(1, 0, 2).reshape(r, m * d), lower=True, check_finite=False
        )
        db = db_flat.reshape(r, m, d).transpose(1, 0, 2)  # (m, r, d)
        raw_var = var - (b * b).sum(1)
        cond_var = np.maximum(raw_var, 1e-12)
        dcond = np.where((raw_var > 1e-12)[:, None], dvar - 2.0 * np.einsum("mr,mrd->md", b, db), 0.0)
        means = mu[:, None] + b @ self.draws.T  # (m, S)
        dmeans = dmu[:, None, :] + np.einsum("mrd,sr->msd", db, self.draws)  # (m, S, d)
        le, grad = log_ei_with_grad(
            means.reshape(-1),
            np.repeat(cond_var, s),
            dmeans.reshape(m * s, d),
            np.repeat(dcond, s, axis=0),
            np.tile(self.thresholds, m),
        )
        le = le.reshape(m, s)
        total = logsumexp(le, axis=1)
        weights = np.exp(le - total[:, None])  # each draw's share of the expectation
        return (
            np.asarray(total - self._log_s, dtype=float),
            np.asarray(np.einsum("ms,msd->md", weights, grad.reshape(m, s, d)), dtype=float),
        )
