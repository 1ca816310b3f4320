"""Geographic zones: GeoJSON Polygon / MultiPolygon areas in WGS84 lon/lat, tested with shapely.

Example::

    zones = load_geo_zones(Path("zones.geojson"))  # a FeatureCollection, Feature or bare geometry
    inside = [zone.zone_id for zone in zones if zone.contains(point.lat, point.lon)]
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from shapely.errors import ShapelyError
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.validation import explain_validity

from detector.geo.errors import ZoneError

_AREA_TYPES = ("Polygon", "MultiPolygon")


class GeoZone:
    """One named lat/lon area. GeoJSON order is [lon, lat]; the methods take lat first."""

    def __init__(self, zone_id: str, area: Polygon | MultiPolygon) -> None:
        if area.is_empty or not area.is_valid:
            raise ZoneError(f"zone {zone_id!r} is not a valid polygon: {explain_validity(area)}")
        min_lon, min_lat, max_lon, max_lat = area.bounds
        if not (-180.0 <= min_lon <= max_lon <= 180.0 and -90.0 <= min_lat <= max_lat <= 90.0):
            raise ZoneError(f"zone {zone_id!r} has coordinates outside lon [-180, 180] / lat [-90, 90]")
        self.zone_id = zone_id
        self.area = area
        shapely.prepare(area)

    def contains(self, lat: float, lon: float) -> bool:
        """True when the point is inside the zone or on its border."""
        return bool(self.area.covers(shapely.Point(lon, lat)))

    def contains_points(self, lat: npt.ArrayLike, lon: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Vectorised ``contains`` over arrays of lat and lon."""
        points = shapely.points(np.asarray(lon, np.float64), np.asarray(lat, np.float64))
        return np.asarray(shapely.covers(self.area, points), dtype=np.bool_)


def zone_from_geometry(geometry: Mapping[str, Any], zone_id: str) -> GeoZone:
    """One zone from a GeoJSON Polygon or MultiPolygon geometry; raises ``ZoneError`` naming the zone."""
    kind = geometry.get("type")
    if kind not in _AREA_TYPES:
        raise ZoneError(f"zone {zone_id!r}: geometry type {kind!r} is not a Polygon or MultiPolygon")
    try:
        area = shape(geometry)
    except (ValueError, TypeError, AttributeError, IndexError, KeyError, ShapelyError) as exc:
        raise ZoneError(f"zone {zone_id!r}: unreadable {kind} coordinates ({exc})") from exc
    return GeoZone(zone_id, area)


def geo_zones_from_geojson(data: Mapping[str, Any], default_id: str = "zone") -> list[GeoZone]:
    """Zones from a GeoJSON FeatureCollection, Feature or bare geometry (dict).

    A feature's id is ``properties.zone_id``, else ``properties.id``, ``properties.name``, the feature
    ``id``, else ``{default_id}-{n}``.
    """
    kind = data.get("type")
    if kind == "FeatureCollection":
        features = data.get("features")
        if not isinstance(features, list):
            raise ZoneError("GeoJSON FeatureCollection has no 'features' list")
    elif kind == "Feature":
        features = [data]
    elif kind in _AREA_TYPES:
        features = [{"type": "Feature", "geometry": data, "properties": {"zone_id": default_id}}]
    else:
        raise ZoneError(f"GeoJSON type {kind!r} is not a FeatureCollection, Feature, Polygon or MultiPolygon")
    zones = []
    for n, feature in enumerate(features):
        if not isinstance(feature, Mapping) or not isinstance(feature.get("geometry"), Mapping):
            raise ZoneError(f"GeoJSON feature {n} has no geometry object")
        props = feature.get("properties") or {}
        candidates = (props.get("zone_id"), props.get("id"), props.get("name"), feature.get("id"))
        zone_id = next((str(c) for c in candidates if c is not None), f"{default_id}-{n}")
        zones.append(zone_from_geometry(feature["geometry"], zone_id))
    ids = [z.zone_id for z in zones]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ZoneError(f"zone ids must be unique; repeated: {duplicates}")
    return zones


def load_geo_zones(source: Path | str | Mapping[str, Any]) -> list[GeoZone]:
    """Zones from a GeoJSON file path or an already parsed GeoJSON dict."""
    if isinstance(source, Mapping):
        return geo_zones_from_geojson(source)
    path = Path(source)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ZoneError(f"cannot read zones file {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ZoneError(f"zones file {path} is not JSON: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ZoneError(f"zones file {path} does not hold a GeoJSON object")
    return geo_zones_from_geojson(data, default_id=path.stem)
