"""Real places of the Chicago metropolitan area used to site the sample chain.

Coordinates are the approximate centres of real neighbourhoods and suburbs (WGS84), so road
distances and travel times computed from them are realistic.
"""

from __future__ import annotations

from typing import NamedTuple


class Place(NamedTuple):
    name: str
    region: str
    latitude: float
    longitude: float


# (south, west, north, east): every generated coordinate falls inside this box.
METRO_BBOX: tuple[float, float, float, float] = (41.45, -88.40, 42.25, -87.50)

PLACES: tuple[Place, ...] = (
    # City of Chicago neighbourhoods
    Place("The Loop", "City", 41.8837, -87.6289),
    Place("River North", "City", 41.8924, -87.6341),
    Place("Lincoln Park", "City", 41.9214, -87.6513),
    Place("Lakeview", "City", 41.9403, -87.6536),
    Place("Wicker Park", "City", 41.9088, -87.6796),
    Place("Logan Square", "City", 41.9231, -87.7093),
    Place("Uptown", "City", 41.9665, -87.6533),
    Place("Rogers Park", "City", 42.0106, -87.6696),
    Place("Pilsen", "City", 41.8564, -87.6607),
    Place("Bridgeport", "City", 41.8380, -87.6510),
    Place("Hyde Park", "City", 41.7943, -87.5907),
    Place("Portage Park", "City", 41.9581, -87.7650),
    # North and north-west suburbs
    Place("Evanston", "North", 42.0451, -87.6877),
    Place("Skokie", "North", 42.0324, -87.7416),
    Place("Wilmette", "North", 42.0723, -87.7229),
    Place("Glenview", "North", 42.0698, -87.7878),
    Place("Northbrook", "North", 42.1275, -87.8290),
    Place("Highland Park", "North", 42.1817, -87.8003),
    Place("Des Plaines", "North", 42.0334, -87.8834),
    Place("Arlington Heights", "North", 42.0884, -87.9806),
    Place("Schaumburg", "North", 42.0334, -88.0834),
    # West suburbs
    Place("Oak Park", "West", 41.8850, -87.7845),
    Place("Cicero", "West", 41.8456, -87.7539),
    Place("Elmhurst", "West", 41.8995, -87.9403),
    Place("Oak Brook", "West", 41.8328, -87.9290),
    Place("Downers Grove", "West", 41.8089, -88.0112),
    Place("Wheaton", "West", 41.8661, -88.1070),
    Place("Naperville", "West", 41.7508, -88.1535),
    Place("Aurora", "West", 41.7606, -88.3201),
    # South and south-west suburbs
    Place("Oak Lawn", "South", 41.7106, -87.7581),
    Place("Evergreen Park", "South", 41.7206, -87.7017),
    Place("Orland Park", "South", 41.6303, -87.8539),
    Place("Tinley Park", "South", 41.5734, -87.7845),
    Place("Bolingbrook", "South", 41.6986, -88.0684),
    Place("Homewood", "South", 41.5573, -87.6656),
    Place("Calumet City", "South", 41.6156, -87.5295),
    Place("Joliet", "South", 41.5250, -88.0817),
)

# The distribution centre sits in the Elk Grove Village industrial park next to O'Hare.
DC_PLACE = Place("Elk Grove Village DC", "North", 42.0036, -87.9703)
