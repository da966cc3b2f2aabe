"""Count distributions for demand: negative binomial matched to a mean and a variance.

Daily demand and demand summed over a window are both described by their mean and variance;
a negative binomial with the same two moments (Poisson when there is no over-dispersion) gives
integer quantiles that respect the mass at zero of intermittent demand, which a normal
approximation does not.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

QUANTILES: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95, 0.99)


def count_quantiles(mean: np.ndarray, var: np.ndarray, probs: np.ndarray | list[float]) -> np.ndarray:
    """Quantiles of a count distribution with the given mean and variance.

    Returns an array of shape ``mean.shape + (len(probs),)``. Variance below the mean (which
    counts cannot have with a Poisson-gamma mixture) is raised to the mean.
    """
    mean = np.maximum(np.asarray(mean, dtype=float), 0.0)
    var = np.maximum(np.asarray(var, dtype=float), mean)
    probs = np.asarray(probs, dtype=float)
    flat_mean = mean.ravel()
    flat_var = var.ravel()
    out = np.zeros((flat_mean.size, probs.size))
    positive = flat_mean > 1e-12
    over = positive & (flat_var > flat_mean * (1 + 1e-9))
    poisson = positive & ~over
    if over.any():
        m = flat_mean[over]
        v = flat_var[over]
        n = m * m / (v - m)
        p = m / v
        out[over] = stats.nbinom.ppf(probs[None, :], n[:, None], p[:, None])
    if poisson.any():
        out[poisson] = stats.poisson.ppf(probs[None, :], flat_mean[poisson][:, None])
    return out.reshape(mean.shape + (probs.size,))


def count_cdf(x: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """P(X <= x) for the count distribution with the given mean and variance."""
    mean = np.maximum(np.asarray(mean, dtype=float), 0.0)
    var = np.maximum(np.asarray(var, dtype=float), mean)
    x = np.asarray(x, dtype=float)
    out = np.ones(np.broadcast(x, mean, var).shape)
    x, mean, var = np.broadcast_arrays(x, mean, var)
    positive = mean > 1e-12
    over = positive & (var > mean * (1 + 1e-9))
    poisson = positive & ~over
    out[~positive] = (x[~positive] >= 0).astype(float)
    if over.any():
        m, v = mean[over], var[over]
        out[over] = stats.nbinom.cdf(x[over], m * m / (v - m), m / v)
    if poisson.any():
        out[poisson] = stats.poisson.cdf(x[poisson], mean[poisson])
    return out
