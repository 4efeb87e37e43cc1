"""Hyperparameters by maximum a posteriori, and the posterior they give.

Priors, not just bounds, are what keep a GP sane on 10-30 points: without them
the likelihood happily explains everything as noise, or interpolates with a
lengthscale of 0.01. The lengthscale prior follows Hvarfner et al. (2024,
"Vanilla Bayesian optimization performs great in high dimensions"): its median
grows with sqrt(d), so adding columns does not make the model assume a rougher
function. The noise prior sits low (most objectives in tuning are close to
deterministic per configuration) but is wide enough for the fit to find real noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_solve, cholesky, solve_triangular
from scipy.linalg.lapack import dpotri
from scipy.optimize import minimize

from kubetune._gp.kernel import BoolArray, FloatArray, column_distances, matern52, matern52_and_slope, scaled_sq_dist

LOG_LS_BOUNDS = (math.log(1e-2), math.log(1e2))
LOG_AMP_BOUNDS = (math.log(5e-2), math.log(2e1))
LOG_NOISE_BOUNDS = (math.log(1e-6), math.log(1.0))
LOG_AMP_PRIOR = (0.0, 1.0)
LOG_NOISE_PRIOR = (math.log(1e-3), 3.0)
JITTER = 1e-9
LS_PRIOR_SHIFT = -2.5
LS_PRIOR_SD = 1.0
TWO_STARTS_BELOW = 100
"""Past this many points one start suffices: the data, not the start, decides the basin."""


@dataclass(frozen=True)
class Hyperparameters:
    log_ls: FloatArray
    log_amp: float
    log_noise: float

    @property
    def inv_ls2(self) -> FloatArray:
        return np.exp(-2.0 * self.log_ls)

    @property
    def amp(self) -> float:
        return math.exp(self.log_amp)

    @property
    def noise(self) -> float:
        return math.exp(self.log_noise)


def _ls_prior(d: int) -> tuple[float, float]:
    return math.sqrt(2.0) + 0.5 * math.log(d) + LS_PRIOR_SHIFT, LS_PRIOR_SD


def _neg_log_posterior(
    theta: FloatArray, dist: FloatArray, y: FloatArray, extra: FloatArray
) -> tuple[float, FloatArray]:
    n, _, d = dist.shape
    log_ls, log_amp, log_noise = theta[:d], theta[d], theta[d + 1]
    inv_ls2 = np.exp(-2.0 * log_ls)
    amp, noise = math.exp(log_amp), math.exp(log_noise)
    r2 = dist @ inv_ls2
    k0, slope = matern52_and_slope(r2)
    kf = amp * k0
    cov = kf.copy()
    cov[np.diag_indices(n)] += noise + extra + JITTER
    try:
        chol = cholesky(cov, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        return 1e10, np.zeros_like(theta)
    alpha = cho_solve((chol, True), y, check_finite=False)
    nll = 0.5 * float(y @ alpha) + float(np.log(np.diag(chol)).sum())
    inv = _inverse(chol)
    w = inv - np.outer(alpha, alpha)  # d nll / d K = w / 2
    grad = np.empty_like(theta)
    m = (w * slope).reshape(-1) * amp
    grad[:d] = -inv_ls2 * (m @ dist.reshape(n * n, d))
    grad[d] = 0.5 * float((w * kf).sum())
    grad[d + 1] = 0.5 * noise * float(np.trace(w))
    mu_ls, sd_ls = _ls_prior(d)
    nll += 0.5 * float((((log_ls - mu_ls) / sd_ls) ** 2).sum())
    grad[:d] += (log_ls - mu_ls) / sd_ls**2
    for i, (mu, sd) in ((d, LOG_AMP_PRIOR), (d + 1, LOG_NOISE_PRIOR)):
        nll += 0.5 * float((theta[i] - mu) / sd) ** 2
        grad[i] += (theta[i] - mu) / sd**2
    return nll, grad


def fit(x: FloatArray, y: FloatArray, is_cat: BoolArray, extra: FloatArray, max_iter: int = 200) -> Hyperparameters:
    """MAP hyperparameters, from two deterministic starts (short and long lengthscales); the better one wins.

    Two starts because the posterior is often bimodal on few points (a wiggly
    interpolant vs. a smooth trend plus noise), and L-BFGS-B from one start
    lands in whichever basin it starts in.
    """
    d = x.shape[1]
    dist = column_distances(x, x, is_cat)
    bounds = [LOG_LS_BOUNDS] * d + [LOG_AMP_BOUNDS, LOG_NOISE_BOUNDS]
    best: tuple[float, FloatArray] | None = None
    starts, iters = ((0.2, 1.0), max_iter) if len(x) < TWO_STARTS_BELOW else ((0.2,), max_iter // 4)
    for ls in starts:
        theta0 = np.concatenate([np.full(d, math.log(ls * math.sqrt(d))), [0.0, math.log(1e-3)]])
        theta0[:d] = np.clip(theta0[:d], *LOG_LS_BOUNDS)
        res = minimize(
            _neg_log_posterior,
            theta0,
            args=(dist, y, extra),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": iters},
        )
        value = float(res.fun)
        if best is None or value < best[0]:
            best = (value, np.asarray(res.x, dtype=float))
    assert best is not None
    theta = best[1]
    return Hyperparameters(theta[:d].copy(), float(theta[d]), float(theta[d + 1]))


class GP:
    """The posterior given hyperparameters; `condition` adds points (fantasies) in O(n^2) per point."""

    def __init__(self, x: FloatArray, y: FloatArray, is_cat: BoolArray, extra: FloatArray, hp: Hyperparameters) -> None:
        self.x, self.y, self.is_cat, self.hp = x, y, is_cat, hp
        cov = hp.amp * matern52(scaled_sq_dist(x, x, hp.inv_ls2, is_cat))
        cov[np.diag_indices(len(x))] += hp.noise + extra + JITTER
        self.chol = robust_cholesky(cov)
        self.alpha = cho_solve((self.chol, True), y, check_finite=False)

    def cross(self, z: FloatArray) -> FloatArray:
        """k(Z, X): (m, n)."""
        return self.kernel(z, self.x)

    def predict(self, z: FloatArray) -> tuple[FloatArray, FloatArray]:
        kzx = self.cross(z)
        mu = kzx @ self.alpha
        v = solve_triangular(self.chol, kzx.T, lower=True, check_finite=False)
        var = np.maximum(self.hp.amp - (v * v).sum(0), 1e-12)
        return mu, var

    def kernel(self, a: FloatArray, b: FloatArray) -> FloatArray:
        """k(A, B) under this posterior's hyperparameters: (len(a), len(b)), noise excluded."""
        return self.hp.amp * matern52(scaled_sq_dist(a, b, self.hp.inv_ls2, self.is_cat))

    def kernel_with_grad(self, z: FloatArray, b: FloatArray) -> tuple[FloatArray, FloatArray]:
        """k(Z, B) (m, p) and its gradient in Z (m, p, d); categorical columns get gradient 0."""
        hp = self.hp
        k0, slope = matern52_and_slope(scaled_sq_dist(z, b, hp.inv_ls2, self.is_cat))
        # d k_mi / d z_mj = amp * slope_mi * 2 (z_mj - b_ij) / ls_j^2 for continuous j
        dk = (hp.amp * 2.0 * slope)[:, :, None] * (z[:, None, :] - b[None, :, :]) * hp.inv_ls2
        dk[:, :, self.is_cat] = 0.0
        return hp.amp * k0, dk

    def predict_with_grad(self, z: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """mu, var (m,) and their gradients (m, d) at Z; categorical columns get gradient 0."""
        return self.posterior_with_grad(*self.kernel_with_grad(z, self.x))

    def posterior_with_grad(
        self, k: FloatArray, dk: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """`predict_with_grad` from k(Z, X) (m, n) and its gradient (m, n, d), for a caller that needs them too."""
        hp = self.hp
        v = solve_triangular(self.chol, k.T, lower=True, check_finite=False)  # (n, m)
        w = solve_triangular(self.chol, v, lower=True, trans=1, check_finite=False)  # K^-1 k: (n, m)
        var = np.maximum(hp.amp - (v * v).sum(0), 1e-12)
        dmu = np.einsum("mnd,n->md", dk, self.alpha)
        dvar = -2.0 * np.einsum("mnd,nm->md", dk, w)
        return k @ self.alpha, var, dmu, dvar

    def condition(self, z: FloatArray, y: FloatArray, extra: FloatArray) -> GP:
        """This posterior with (z, y) added, by extending the Cholesky factor instead of refactoring."""
        hp = self.hp
        kxz = self.cross(z).T
        kzz = hp.amp * matern52(scaled_sq_dist(z, z, hp.inv_ls2, self.is_cat))
        kzz[np.diag_indices(len(z))] += hp.noise + extra + JITTER
        l21 = solve_triangular(self.chol, kxz, lower=True, check_finite=False).T
        l22 = robust_cholesky(kzz - l21 @ l21.T)
        n, p = len(self.x), len(z)
        chol = np.zeros((n + p, n + p))
        chol[:n, :n], chol[n:, :n], chol[n:, n:] = self.chol, l21, l22
        new = object.__new__(GP)
        new.x, new.y, new.is_cat, new.hp = np.vstack([self.x, z]), np.concatenate([self.y, y]), self.is_cat, hp
        new.chol = chol
        new.alpha = cho_solve((chol, True), new.y, check_finite=False)
        return new


def _inverse(chol: FloatArray) -> FloatArray:
    """K^-1 from its Cholesky factor (LAPACK potri: a third of the work of solving against the identity)."""
    inv, info = dpotri(chol, lower=1)
    if info != 0:
        return np.asarray(cho_solve((chol, True), np.eye(len(chol)), check_finite=False), dtype=float)
    inv = np.tril(inv) + np.tril(inv, -1).T
    return np.asarray(inv, dtype=float)


def robust_cholesky(cov: FloatArray) -> FloatArray:
    """Cholesky with growing jitter: duplicate points and near-zero noise make K singular in floating point."""
    jitter = 0.0
    scale = float(np.mean(np.diag(cov))) if len(cov) else 1.0
    for _ in range(8):
        try:
            return np.asarray(cholesky(cov + jitter * np.eye(len(cov)), lower=True, check_finite=False), dtype=float)
        except np.linalg.LinAlgError:
            jitter = max(jitter * 10.0, 1e-8 * scale)
    raise np.linalg.LinAlgError("covariance is not positive definite even with jitter")
