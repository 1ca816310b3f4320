"""Local east-north-up metric plane around a WGS84 origin (azimuthal equidistant, via pyproj)."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from pyproj import CRS, Transformer

Float64Array = npt.NDArray[np.float64]

# WGS84 ellipsoid, for the cheap small-distance approximation in ``offset_m``.
_A_M = 6378137.0
_E2 = 6.69437999014e-3


class LocalTangentPlane:
    """Metres east/north of ``(lat0, lon0)``; exact to millimetres within a few kilometres of the origin.

    Building one costs ~15 ms (pyproj); keep it for a fixed origin rather than making one per frame.
    """

    def __init__(self, lat0: float, lon0: float) -> None:
        if not (-90.0 <= lat0 <= 90.0 and -180.0 <= lon0 <= 180.0):
            raise ValueError(f"origin ({lat0}, {lon0}) is not a WGS84 lat/lon")
        self.lat0 = lat0
        self.lon0 = lon0
        local = CRS.from_proj4(f"+proj=aeqd +lat_0={lat0!r} +lon_0={lon0!r} +datum=WGS84 +units=m")
        self._forward = Transformer.from_crs("EPSG:4326", local, always_xy=True)
        self._inverse = Transformer.from_crs(local, "EPSG:4326", always_xy=True)

    def to_enu(self, lat: npt.ArrayLike, lon: npt.ArrayLike) -> tuple[Float64Array, Float64Array]:
        """(east_m, north_m) of WGS84 points."""
        east, north = self._forward.transform(np.asarray(lon, np.float64), np.asarray(lat, np.float64))
        return np.asarray(east, np.float64), np.asarray(north, np.float64)

    def to_geo(self, east_m: npt.ArrayLike, north_m: npt.ArrayLike) -> tuple[Float64Array, Float64Array]:
        """(lat, lon) of points given in metres east/north of the origin."""
        lon, lat = self._inverse.transform(np.asarray(east_m, np.float64), np.asarray(north_m, np.float64))
        return np.asarray(lat, np.float64), np.asarray(lon, np.float64)


def _metres_per_radian(lat: float) -> tuple[float, float]:
    """(east, north) metres per radian of longitude, latitude at ``lat`` on the WGS84 ellipsoid."""
    phi = math.radians(lat)
    w = math.sqrt(1.0 - _E2 * math.sin(phi) ** 2)
    return _A_M / w * math.cos(phi), _A_M * (1.0 - _E2) / w**3


def offset_m(lat0: float, lon0: float, lat: float, lon: float) -> tuple[float, float]:
    """(east_m, north_m) from one point to another, for short distances (error < 0.1 % under 10 km)."""
    east, north = _metres_per_radian((lat0 + lat) / 2.0)
    dlon = (lon - lon0 + 180.0) % 360.0 - 180.0
    return math.radians(dlon) * east, math.radians(lat - lat0) * north


def shifted(lat0: float, lon0: float, east_m: float, north_m: float) -> tuple[float, float]:
    """(lat, lon) of the point ``east_m``/``north_m`` from ``(lat0, lon0)``; the inverse of ``offset_m``."""
    lat = lat0
    for _ in range(3):  # offset_m scales at the mid latitude, which depends on the answer
        east, north = _metres_per_radian((lat0 + lat) / 2.0)
        lat = lat0 + math.degrees(north_m / north)
    east, _ = _metres_per_radian((lat0 + lat) / 2.0)
    return lat, (lon0 + math.degrees(east_m / east) + 180.0) % 360.0 - 180.0
