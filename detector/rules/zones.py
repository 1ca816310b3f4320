"""Prohibited zones: polygons in image pixels, tested with the bottom-centre of boxes (where things stand), and
areas in lat/lon, tested with the located ground point of each box."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt
import shapely

from detector.geo.config import GeoZoneConfig
from detector.rules.config import FixedCamera, SourceRules, ZoneConfig
from detector.types import FloatArray, GeoPoint

BoolArray = npt.NDArray[np.bool_]


class Zone:
    """A polygon naming the classes that may not stay in it.

    >>> zone = Zone("z", [(0, 0), (10, 0), (10, 10), (0, 10)], ["stall"])
    >>> zone.contains(np.array([[5, 10], [11, 5]], dtype=np.float32)).tolist()
    [True, False]
    """

    def __init__(self, zone_id: str, polygon_px: Sequence[tuple[float, float]], prohibited: Iterable[str]) -> None:
        self.id = zone_id
        self.prohibited = frozenset(prohibited)
        self._polygon = shapely.Polygon(polygon_px)
        shapely.prepare(self._polygon)

    @classmethod
    def from_config(cls, config: ZoneConfig, scale: tuple[float, float] = (1.0, 1.0)) -> Zone:
        sx, sy = scale
        return cls(config.id, [(x * sx, y * sy) for x, y in config.polygon_px], config.prohibited_classes)

    def contains(self, points: FloatArray) -> BoolArray:
        """Which of the Nx2 points lie inside or on the edge (a box standing on the edge line counts)."""
        xy = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return np.asarray(shapely.intersects_xy(self._polygon, xy[:, 0], xy[:, 1]), dtype=np.bool_)


def build_zones(rules: FixedCamera, frame_size: tuple[int, int]) -> list[Zone]:
    """The source's zones in the pixels of a stream of ``frame_size`` (width, height)."""
    scale = (1.0, 1.0)
    if rules.zones_frame_size_px is not None:
        (drawn_w, drawn_h), (w, h) = rules.zones_frame_size_px, frame_size
        scale = (w / drawn_w, h / drawn_h)
    return [Zone.from_config(zone, scale) for zone in rules.zones]


def prohibiting_zone(zones: Sequence[Zone], class_names: Sequence[str], points: FloatArray) -> list[str | None]:
    """For each point, the id of the first zone that contains it and prohibits its class, else None."""
    found: list[str | None] = [None] * len(class_names)
    for zone in zones:
        inside = zone.contains(points)
        for i, cls in enumerate(class_names):
            if found[i] is None and inside[i] and cls in zone.prohibited:
                found[i] = zone.id
    return found


class GeoAreaZone:
    """A lat/lon area naming the classes that may not stand in it."""

    def __init__(self, config: GeoZoneConfig) -> None:
        self.id = config.id
        self.prohibited = frozenset(config.prohibited_classes)
        self._area = config.area()

    def contains(self, location: GeoPoint) -> bool:
        return self._area.contains(location.lat, location.lon)


def build_geo_zones(rules: SourceRules) -> list[GeoAreaZone]:
    return [GeoAreaZone(zone) for zone in rules.geo.zones]


def prohibiting_geo_zone(
    zones: Sequence[GeoAreaZone], class_names: Sequence[str], locations: Sequence[GeoPoint | None]
) -> list[str | None]:
    """For each located detection, the id of the first area that contains it and prohibits its class."""
    found: list[str | None] = [None] * len(class_names)
    for i, (cls, location) in enumerate(zip(class_names, locations, strict=True)):
        if location is not None:
            found[i] = next((z.id for z in zones if cls in z.prohibited and z.contains(location)), None)
    return found
