"""Prohibited zones: polygons in image pixels, tested with the bottom-centre of boxes (where things stand), and
areas in lat/lon, tested with the located ground point of each box."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt
import shapely

from detector.geo.config import GeoZoneConfig
from detector.rules.config import WHOLE_VIEW_ZONE_ID, FixedCamera, RulesConfig, SourceRules, ZoneConfig
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


def uses_whole_view(rules: FixedCamera) -> bool:
    """A fixed camera with no zone of any kind and ``no_zones: whole_view``: its whole frame is the zone."""
    return rules.no_zones == "whole_view" and not rules.zones and not rules.geo.zones


def build_zones(rules: FixedCamera, frame_size: tuple[int, int], dwell_classes: Iterable[str] = ()) -> list[Zone]:
    """The source's zones in the pixels of a stream of ``frame_size`` (width, height); for a camera that
    :func:`uses_whole_view`, the whole frame as one zone prohibiting ``dwell_classes``."""
    if uses_whole_view(rules):
        w, h = frame_size
        return [Zone(WHOLE_VIEW_ZONE_ID, [(0, 0), (w, 0), (w, h), (0, h)], dwell_classes)]
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


def dwell_classes(config: RulesConfig) -> list[str]:
    """The classes of the categories that open by dwell (on a fixed camera)."""
    return sorted(
        cls for category in config.categories.values() if category.rule == "dwell" for cls in category.classes
    )


def zone_summary(config: RulesConfig, source: str, rules: SourceRules) -> str:
    """One line for the start-up log: where this source's dwell classes (stalls, carts, goods) can open incidents."""
    dwell = ", ".join(dwell_classes(config)) or "none"
    if not isinstance(rules, FixedCamera):
        where = f"{len(rules.geo.zones)} geo zone(s)" if rules.geo.zones else "anywhere"
        return f"{source}: moving camera: every category opens by confirmation, {where}"
    if uses_whole_view(rules):
        return (
            f"{source}: no zones configured, so the whole view is one prohibited zone ({WHOLE_VIEW_ZONE_ID!r}) for "
            f"{dwell} (dwell {rules.dwell_s:g} s); draw rules.sources.<id>.zones to narrow it, or set no_zones: off"
        )
    if not rules.zones and not rules.geo.zones:
        return f"{source}: no zones and no_zones: off: {dwell} never open incidents here (hazards still do)"
    ids = [zone.id for zone in rules.zones] + [zone.id for zone in rules.geo.zones]
    return f"{source}: {len(ids)} prohibited zone(s) ({', '.join(ids)}) for dwell (dwell {rules.dwell_s:g} s)"


def zone_summaries(config: RulesConfig) -> list[str]:
    """:func:`zone_summary` of every configured source, then of ``default_source`` (sources not listed)."""
    lines = [zone_summary(config, source, rules) for source, rules in sorted(config.sources.items())]
    return [*lines, zone_summary(config, "default_source (sources not listed)", config.default_source)]
