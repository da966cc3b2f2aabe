"""Great-circle distances between sites (stores, distribution centres)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# Mean Earth radius (IUGG), km.
EARTH_RADIUS_KM = 6371.0088


def distance_matrix_km(lat1: npt.ArrayLike, lon1: npt.ArrayLike,
                       lat2: npt.ArrayLike, lon2: npt.ArrayLike) -> np.ndarray:
    """Haversine distance in km between every point of set 1 (rows) and set 2 (columns).

    Inputs are WGS84 degrees; the result has shape (len(lat1), len(lat2)) and dtype float64.
    """
    la1 = np.radians(np.asarray(lat1, dtype=np.float64)).reshape(-1, 1)
    lo1 = np.radians(np.asarray(lon1, dtype=np.float64)).reshape(-1, 1)
    la2 = np.radians(np.asarray(lat2, dtype=np.float64)).reshape(1, -1)
    lo2 = np.radians(np.asarray(lon2, dtype=np.float64)).reshape(1, -1)
    if la1.shape != lo1.shape or la2.shape != lo2.shape:
        raise ValueError("latitude and longitude arrays must have the same length")
    h = np.sin((la2 - la1) / 2.0) ** 2 + np.cos(la1) * np.cos(la2) * np.sin((lo2 - lo1) / 2.0) ** 2
    # Rounding can push h a hair above 1 for antipodal points.
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
