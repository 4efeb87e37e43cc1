"""Maximising the acquisition over the mixed space: many cheap candidates, then gradient polish of the best few.

Candidates come from two sources: a scrambled Sobol set for the whole space,
and Gaussian perturbations of the best points so far at several scales (the
optimum of EI is usually near an incumbent, in a basin too small for a
global sample of a thousand points to hit). The top few are polished with
L-BFGS-B on the continuous columns, then each categorical column is swept over
all its values. Integer columns are optimised as continuous and snapped by
the caller, which re-scores the snapped points.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize
from scipy.stats import qmc

from kubetune._gp.acquisition import Acquisition
from kubetune._gp.kernel import FloatArray

LOCAL_SCALES = np.array([0.3, 0.1, 0.03, 0.01, 0.003])
"""Perturbation sizes around incumbents, as fractions of each column's lengthscale (capped at 1)."""
RANKED = 64
"""Unpolished candidates returned after the polished ones: spares for when the best are duplicates."""


def candidates(
    rng: np.random.Generator,
    n_global: int,
    n_local: int,
    centres: FloatArray,
    log_ls: FloatArray,
    n_choices: np.ndarray,
    box: tuple[FloatArray, FloatArray] | None = None,
) -> FloatArray:
    """Z: (n_global + n_local, d). `centres` (k, d) best first; `n_choices` (d,) is 0 for non-categorical columns.

    With a `box` (lower, upper: (d,) each, in the unit cube) the continuous columns of every candidate
    lie in it: the Sobol set is scaled into it and the perturbations are clipped to it.
    """
    d = len(n_choices)
    is_cat = n_choices > 0
    sobol = np.asarray(qmc.Sobol(d, scramble=True, seed=rng).random(n_global), dtype=float)
    lo, hi = box if box is not None else (np.zeros(d), np.ones(d))
    glob = np.where(is_cat[None, :], sobol, lo[None, :] + sobol * (hi - lo)[None, :])
    glob[:, is_cat] = np.floor(sobol[:, is_cat] * n_choices[is_cat])
    if n_local == 0 or len(centres) == 0:
        return glob
    # half the local points around the best centre, the rest spread over the others
    k = len(centres)
    which = np.where(rng.random(n_local) < 0.5, 0, rng.integers(0, k, n_local))
    scale = (
        LOCAL_SCALES[rng.integers(0, len(LOCAL_SCALES), n_local)][:, None] * np.minimum(np.exp(log_ls), 1.0)[None, :]
    )
    base = centres[which]
    local = np.where(is_cat[None, :], base, np.clip(base + rng.normal(size=(n_local, d)) * scale, lo, hi))
    if is_cat.any():
        flip = (rng.random((n_local, d)) < 1.0 / (1.0 + is_cat.sum())) & is_cat[None, :]
        redraw = np.floor(rng.random((n_local, d)) * np.maximum(n_choices, 1)[None, :])
        local = np.where(flip, redraw, local)
    return np.vstack([glob, local])


def _polish(
    acq: Acquisition, z0: FloatArray, cont: np.ndarray, max_iter: int, box: tuple[FloatArray, FloatArray] | None
) -> FloatArray:
    """L-BFGS-B on the continuous columns of all starts Z0 (s, d) at once, the categorical columns held.

    The objective is the sum over starts: the starts do not interact, so its
    optimum is every start's optimum, and one vectorised posterior call per
    iteration replaces s of them (BoTorch polishes its restarts the same way).
    """
    if not cont.any():
        return z0
    s, c = len(z0), int(cont.sum())
    lo, hi = (box[0][cont], box[1][cont]) if box is not None else (np.zeros(c), np.ones(c))

    def neg(u: FloatArray) -> tuple[float, FloatArray]:
        z = z0.copy()
        z[:, cont] = u.reshape(s, c)
        value, grad = acq.value_with_grad(z)
        return -float(value.sum()), -grad[:, cont].reshape(-1)

    res = minimize(
        neg,
        z0[:, cont].reshape(-1),
        jac=True,
        method="L-BFGS-B",
        bounds=list(zip(np.tile(lo, s), np.tile(hi, s), strict=True)),
        options={"maxiter": max_iter},
    )
    z = z0.copy()
    z[:, cont] = np.clip(res.x.reshape(s, c), lo[None, :], hi[None, :])
    return z


def _sweep_categories(acq: Acquisition, z: FloatArray, n_choices: np.ndarray) -> FloatArray:
    """Each categorical column in turn set to its best value, the others held."""
    for j in np.flatnonzero(n_choices > 0):
        trial = np.repeat(z[None, :], int(n_choices[j]), axis=0)
        trial[:, j] = np.arange(n_choices[j])
        z = trial[int(np.argmax(acq.value(trial)))]
    return z


def maximize(
    acq: Acquisition,
    pool: FloatArray,
    n_choices: np.ndarray,
    snap: Callable[[FloatArray], FloatArray],
    n_starts: int = 5,
    max_iter: int = 100,
    box: tuple[FloatArray, FloatArray] | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Snapped points, best first, with their acquisition values: the polished starts first, then the rest of the pool.

    Returning a ranked list rather than one point lets the caller skip
    duplicates of configurations already tried without a second search.
    """
    scores = acq.value(pool)
    order = np.argsort(-scores, kind="stable")
    cont = n_choices == 0
    polished = [_sweep_categories(acq, z, n_choices) for z in _polish(acq, pool[order[:n_starts]], cont, max_iter, box)]
    points = snap(np.vstack([np.array(polished), pool[order[:RANKED]]]))
    values = acq.value(points)
    rank = np.argsort(-values, kind="stable")
    return points[rank], values[rank]
