"""Per-series choice among candidate forecasts by their errors at rolling origins.

Why: no single smoothing family or seasonal window wins on every series (a drifting season
wants few years of ratios, a noisy one many; a trending series wants the damped trend, a flat
one simple smoothing), and an equal-weight average pays for the poor members on each series.
Choosing the single best candidate on a short validation window is noisy, so each series
averages the ``top`` candidates with the smallest squared error over its own rolling-origin
forecasts ("select, then combine": the average of a few good candidates is more robust than
the winner alone). The scored periods never include the held-out future; a series without
scored periods averages every candidate.
"""

from __future__ import annotations

import numpy as np


def top_weights(sse: np.ndarray, scored: np.ndarray, top: int) -> np.ndarray:
    """Combination weights (S, K), each row summing to 1: 1/top on the ``top`` candidates with
    the smallest validation error ``sse`` (S, K) for the series with scored periods (``scored``,
    (S,)), 1/K on every candidate for the others. Ties go to the earlier candidate."""
    sse = np.asarray(sse, dtype=float)
    n_series, n_cand = sse.shape
    top = int(min(max(top, 1), n_cand))
    weights = np.full((n_series, n_cand), 1.0 / n_cand)
    scored = np.asarray(scored, dtype=bool) & np.isfinite(sse).all(axis=1)
    if scored.any():
        order = np.argsort(sse[scored], axis=1, kind="stable")[:, :top]
        chosen = np.zeros((int(scored.sum()), n_cand))
        np.put_along_axis(chosen, order, 1.0 / top, axis=1)
        weights[scored] = chosen
    return weights
