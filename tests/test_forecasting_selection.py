"""Per-series choice among candidate forecasts (forecasting/selection.py)."""

from __future__ import annotations

import numpy as np

from retailopt.forecasting.selection import top_weights


def test_each_series_averages_its_best_candidates():
    sse = np.array([[5.0, 1.0, 3.0, 2.0],
                    [0.5, 9.0, 0.1, 7.0]])
    w = top_weights(sse, np.array([True, True]), 2)
    assert np.allclose(w, [[0, 0.5, 0, 0.5], [0.5, 0, 0.5, 0]])
    assert np.allclose(top_weights(sse, np.array([True, True]), 1), [[0, 1, 0, 0], [0, 0, 1, 0]])


def test_series_without_scored_periods_average_every_candidate():
    sse = np.array([[0.0, 0.0, 0.0], [4.0, np.nan, 1.0], [3.0, 2.0, 1.0]])
    w = top_weights(sse, np.array([False, True, True]), 2)
    # Unscored, or with an error that is not a number: equal weights.
    assert np.allclose(w[0], 1 / 3) and np.allclose(w[1], 1 / 3)
    assert np.allclose(w[2], [0, 0.5, 0.5])
    assert np.allclose(w.sum(axis=1), 1.0)


def test_ties_go_to_the_earlier_candidate_and_top_is_bounded():
    sse = np.array([[1.0, 1.0, 1.0]])
    assert np.allclose(top_weights(sse, np.array([True]), 1), [[1, 0, 0]])
    assert np.allclose(top_weights(sse, np.array([True]), 10), [[1 / 3, 1 / 3, 1 / 3]])
