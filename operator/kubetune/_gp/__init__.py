"""Gaussian-process maths for the Bayesian strategy: numpy and scipy only, no state between calls.

Notation (every module here uses these names and shapes):

    n          training points the model is conditioned on (observations, imputed failures, fantasies)
    m          query points (candidates of the acquisition optimiser)
    d          input columns: one per hyperparameter
    X          (n, d) training inputs. A continuous or integer hyperparameter's column is its unit
               coordinate in [0, 1] (scaling already applied by the search space); a categorical's
               column is the index of its value, stored as a float
    Z          (m, d) query inputs, laid out like X
    is_cat     (d,) bool: which columns are categorical. Their distance is 0 when equal and 1 when
               not (a Hamming term), so a categorical gets one lengthscale like any other column
    y          (n,) warped targets: losses after `warp.warp_losses`, roughly N(0, 1), lower is better
    extra      (n,) noise variance added to one point on top of the shared noise: early-stopped
               (non-final) observations and imputed failures are trusted less than final results
    log_ls     (d,) log lengthscales
    log_amp    ()   log signal variance
    log_noise  ()   log noise variance
    D          (n, n, d) per-column squared distances (continuous) or mismatches (categorical)
    r2         (n, n) or (m, n) lengthscale-scaled squared distance: sum_j D[..., j] / ls_j**2
    K          (n, n) k(X, X) + diag(noise + extra)
    L          (n, n) lower Cholesky factor of K
    alpha      (n,) K^-1 y
    mu, var    (m,) posterior mean and variance of the latent function at Z (noise excluded)

The kernel is Matérn 5/2 with one lengthscale per column (ARD): smooth enough for
gradient-based acquisition optimisation, rough enough for real loss surfaces.
"""

from kubetune._gp.gp import GP, Hyperparameters, fit
from kubetune._gp.warp import warp_losses

__all__ = ["GP", "Hyperparameters", "fit", "warp_losses"]
