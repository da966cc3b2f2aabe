"""Haversine distance matrix."""

from __future__ import annotations

import numpy as np
import pytest

from retailopt.geo import distance_matrix_km


def test_known_distances_shape_and_symmetry():
    lat = [48.8566, 51.5074, 41.8781]  # Paris, London, Chicago
    lon = [2.3522, -0.1278, -87.6298]
    d = distance_matrix_km(lat, lon, lat, lon)
    assert d.shape == (3, 3)
    assert np.allclose(np.diag(d), 0.0)
    assert np.allclose(d, d.T)
    assert d[0, 1] == pytest.approx(343.5, abs=1.0)
    assert d[1, 2] == pytest.approx(6356, rel=0.01)
    assert distance_matrix_km([0.0], [0.0], [0.0], [180.0])[0, 0] == pytest.approx(np.pi * 6371.0088)
    assert distance_matrix_km([0.0, 1.0], [0.0, 1.0], [0.0], [0.0]).shape == (2, 1)


def test_mismatched_lengths_are_an_error():
    with pytest.raises(ValueError):
        distance_matrix_km([0.0, 1.0], [0.0], [0.0], [0.0])
