"""Empirical-Bayes pooling of series levels towards the store x product structure.

A position's level is estimated from its own sales alone; for a slow mover that estimate rests on
a handful of units, so a few quiet weeks pull it far below the position's true rate (and a few
busy ones far above). Grouped by their trailing sales, quiet positions then sell more than
forecast and busy ones less: the conditional bias of an unpooled estimate.

Most of a position's rate is shared structure: how much its store sells and how much its product
sells across the chain right now. The prior for position (s, p) is the multiplicative store x
product model of the table of levels, ``a_s x b_p`` (the independence model, fitted to the cells
that exist), whose store and product factors average many series and are far less noisy than any
one of them. Each level moves towards its prior by the
usual normal-normal weight ``tau2 / (tau2 + v)``: ``v`` is the series' own relative level error
(measured by the engine's rolling origins) and ``tau2`` the spread of true levels around the
prior, estimated by the method of moments (observed spread minus the estimation noise).
"""

from __future__ import annotations

import numpy as np

# Smallest relative spread of true levels around the prior (a 10 % CV): a method-of-moments
# estimate near zero would erase every position's own information, which no chain justifies.
MIN_TAU2 = 0.01


def independence_prior(levels: np.ndarray, store_codes: np.ndarray, product_codes: np.ndarray,
                       iterations: int = 30) -> np.ndarray:
    """Store x product fit ``a_s x b_p`` of ``levels`` (S,) or (S, J), a fit per column.

    Fitted by iterative proportional fitting to the cells that exist, so every store's and every
    product's total is matched; ``row x col / total`` would be wrong as soon as a product is not
    sold in every store (a product sold in one store only must get its own level back, not its
    level times that store's share of the chain).
    """
    lv = levels.reshape(len(levels), -1)
    n_store = int(store_codes.max(initial=-1)) + 1
    n_prod = int(product_codes.max(initial=-1)) + 1
    prior = np.zeros_like(lv, dtype=float)
    for j in range(lv.shape[1]):
        col = lv[:, j]
        row_sum = np.bincount(store_codes, col, minlength=n_store)
        col_sum = np.bincount(product_codes, col, minlength=n_prod)
        a = np.ones(n_store)
        b = np.zeros(n_prod)
        for _ in range(iterations):
            den_b = np.bincount(product_codes, a[store_codes], minlength=n_prod)
            b = np.divide(col_sum, den_b, out=np.zeros(n_prod), where=den_b > 0)
            den_a = np.bincount(store_codes, b[product_codes], minlength=n_store)
            a = np.divide(row_sum, den_a, out=np.zeros(n_store), where=den_a > 0)
        prior[:, j] = a[store_codes] * b[product_codes]
    return prior.reshape(levels.shape)


def prior_spread(levels: np.ndarray, prior: np.ndarray, rel_var: np.ndarray, product_codes: np.ndarray) -> float:
    """Relative variance of true levels around the prior: the observed squared deviations less
    the estimation noise, as a ratio of sums so the many tiny levels cannot dominate it.

    Only products sold in two stores or more say anything (the prior of a product sold in one
    store is its level); the fit uses one degree of freedom per product, hence n / (n - 1).
    """
    n = np.bincount(product_codes)[product_codes].astype(float)
    use = n >= 2
    den = float((prior[use] ** 2).sum())
    if den <= 0:
        return MIN_TAU2
    dev = (levels - prior) ** 2 * np.divide(n, n - 1, out=np.ones_like(n), where=use)
    num = float((dev - rel_var * levels ** 2)[use].sum())
    return max(num / den, MIN_TAU2)


def pool_weights(rel_var: np.ndarray, tau2: float) -> np.ndarray:
    """Weight of a series' own level (1: no pooling) given its relative level error variance."""
    return tau2 / (tau2 + np.maximum(rel_var, 0.0))


def pool_levels(final: np.ndarray, rel_var: np.ndarray, store_codes: np.ndarray, product_codes: np.ndarray,
                at_origins: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Pooled final levels (S,), the same pooling of the levels at past origins (S, J) when given,
    and the weight each series keeps on its own level (S,).

    The spread is estimated once, on the final levels, and used at every origin too, so the
    rolling-origin forecasts that calibrate the intervals are pooled as the final one is.
    """
    prior = independence_prior(final, store_codes, product_codes)
    w = pool_weights(rel_var, prior_spread(final, prior, rel_var, product_codes))
    pooled = w * final + (1 - w) * prior
    pooled_origins = None
    if at_origins is not None:
        prior_o = independence_prior(at_origins, store_codes, product_codes)
        pooled_origins = w[:, None] * at_origins + (1 - w[:, None]) * prior_o
    return pooled, pooled_origins, w
