"""Geographic zones from GeoJSON: lon/lat order, holes, multipolygons, ids and clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from detector.geo.errors import ZoneError
from detector.geo.zones import GeoZone, geo_zones_from_geojson, load_geo_zones

# A market square in Madrid: lon -3.704..-3.702, lat 40.415..40.416 (wider than tall, so lon/lat swaps show).
SQUARE = [[-3.704, 40.415], [-3.702, 40.415], [-3.702, 40.416], [-3.704, 40.416], [-3.704, 40.415]]
HOLE = [[-3.7032, 40.4154], [-3.7028, 40.4154], [-3.7028, 40.4156], [-3.7032, 40.4156], [-3.7032, 40.4154]]


def polygon(*rings: list[list[float]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": list(rings)}


def feature(geometry: dict[str, Any], **properties: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def only(zones: list[GeoZone]) -> GeoZone:
    assert len(zones) == 1
    return zones[0]


@pytest.mark.parametrize(
    ("geometry", "lat", "lon", "inside"),
    [
        (polygon(SQUARE), 40.4155, -3.703, True),
        (polygon(SQUARE), 40.4155, -3.705, False),
        (polygon(SQUARE), -3.703, 40.4155, False),  # swapped order is outside, not silently accepted
        (polygon(SQUARE), 40.415, -3.703, True),  # on the border counts as inside
        (polygon(SQUARE, HOLE), 40.4155, -3.703, False),  # in the hole
        (polygon(SQUARE, HOLE), 40.4152, -3.7035, True),
        (
            {"type": "MultiPolygon", "coordinates": [[SQUARE], [[[c[0] + 0.01, c[1]] for c in SQUARE]]]},
            40.4155,
            -3.693,
            True,
        ),
    ],
)
def test_contains(geometry: dict[str, Any], lat: float, lon: float, inside: bool) -> None:
    zone = only(geo_zones_from_geojson(geometry))
    assert zone.contains(lat, lon) is inside
    assert zone.contains_points(np.array([lat]), np.array([lon])).tolist() == [inside]


def test_feature_collection_ids() -> None:
    collection = {
        "type": "FeatureCollection",
        "features": [
            feature(polygon(SQUARE), zone_id="plaza-mayor"),
            feature(polygon(SQUARE), name="by-name"),
            {**feature(polygon(SQUARE)), "id": 7},
            feature(polygon(SQUARE)),
        ],
    }
    assert [z.zone_id for z in geo_zones_from_geojson(collection, default_id="madrid")] == [
        "plaza-mayor",
        "by-name",
        "7",
        "madrid-3",
    ]


def test_load_from_file_uses_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "old-town.geojson"
    path.write_text(json.dumps(polygon(SQUARE)))
    assert only(load_geo_zones(path)).zone_id == "old-town"
    path.write_text(json.dumps(feature(polygon(SQUARE))))
    assert only(load_geo_zones(path)).zone_id == "old-town-0"
    assert only(load_geo_zones(feature(polygon(SQUARE), id="a"))).zone_id == "a"


BOWTIE = [[-3.704, 40.415], [-3.702, 40.416], [-3.702, 40.415], [-3.704, 40.416], [-3.704, 40.415]]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"type": "Point", "coordinates": [-3.7, 40.4]}, "not a FeatureCollection, Feature, Polygon"),
        (feature({"type": "LineString", "coordinates": SQUARE}), "is not a Polygon or MultiPolygon"),
        (polygon(BOWTIE), "not a valid polygon: Self-intersection"),
        (polygon([[40.4, -3.7], [40.5, 200.0], [40.6, -3.7], [40.4, -3.7]]), "outside lon"),
        (polygon([[1, 2]]), "unreadable Polygon coordinates"),
        ({"type": "FeatureCollection"}, "no 'features' list"),
        ({"type": "FeatureCollection", "features": [{"type": "Feature"}]}, "feature 0 has no geometry"),
        (
            {"type": "FeatureCollection", "features": [feature(polygon(SQUARE), id="a")] * 2},
            "repeated: \\['a'\\]",
        ),
    ],
)
def test_invalid_zones_raise_clear_errors(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ZoneError, match=message):
        geo_zones_from_geojson(data)


@pytest.mark.parametrize(
    ("content", "message"), [(None, "cannot read zones file"), ("{nope", "is not JSON"), ("[]", "GeoJSON object")]
)
def test_bad_files(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "zones.geojson"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ZoneError, match=message):
        load_geo_zones(path)
