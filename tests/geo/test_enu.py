"""Local metric planes: the pyproj plane and the cheap small-offset helpers agree."""

from __future__ import annotations

import math

import pytest

from detector.geo.enu import LocalTangentPlane, offset_m, shifted


@pytest.mark.parametrize(("lat0", "lon0"), [(41.3851, 2.1734), (-34.6, -58.4), (64.1, -21.9), (0.0, 179.999)])
@pytest.mark.parametrize(("east_m", "north_m"), [(0.0, 0.0), (250.0, -40.0), (-1000.0, 1000.0)])
def test_offsets_agree_with_the_plane(lat0: float, lon0: float, east_m: float, north_m: float) -> None:
    plane = LocalTangentPlane(lat0, lon0)
    lat, lon = plane.to_geo(east_m, north_m)
    east, north = offset_m(lat0, lon0, float(lat), float(lon))
    assert math.hypot(east - east_m, north - north_m) < 0.01 + 2e-4 * math.hypot(east_m, north_m)
    back_lat, back_lon = shifted(lat0, lon0, east, north)
    assert offset_m(back_lat, back_lon, float(lat), float(lon)) == pytest.approx((0.0, 0.0), abs=1e-6)


def test_plane_round_trip_and_origin_check() -> None:
    plane = LocalTangentPlane(40.0, -3.0)
    east, north = plane.to_enu(*plane.to_geo([10.0, -20.0], [5.0, 30.0]))
    assert east.tolist() == pytest.approx([10.0, -20.0]) and north.tolist() == pytest.approx([5.0, 30.0])
    with pytest.raises(ValueError, match="not a WGS84 lat/lon"):
        LocalTangentPlane(95.0, 0.0)
