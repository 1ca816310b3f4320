"""Geo settings per source: small dicts that must load, and small dicts that must fail saying what to fix."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from detector.config import ConfigError, load_config
from detector.geo.config import CalibrationConfig, FixedPosition, GeoZoneConfig, SourceGeo
from detector.rules import RulesConfig
from tests.geo.synthetic import DRONE_PROFILE, LAT, LON, control_points, geo_square

CALIBRATION = {"control_points": control_points()}
ZONE = {"id": "market", "geometry": geo_square(0.0, 15.0, 5.0), "prohibited_classes": ["stall"]}
POSITION = {"lat": LAT, "lon": LON}


def sources(**per_source: dict[str, Any]) -> dict[str, Any]:
    return {"sources": per_source}


def test_a_calibrated_camera_a_positioned_camera_and_a_drone_load() -> None:
    config = RulesConfig.model_validate(
        sources(
            cam=dict(geo={"calibration": CALIBRATION, "position": {**POSITION, "height_m": 8}, "zones": [ZONE]}),
            pole=dict(geo={"position": POSITION}),
            drone=dict(camera="moving", geo={"camera_profile": DRONE_PROFILE, "dedup_radius_m": 8}),
        )
    )
    assert config.for_source("cam").geo.calibration is not None
    assert config.for_source("pole").geo.position == FixedPosition(lat=LAT, lon=LON)
    assert config.for_source("drone").geo.dedup_radius_m == 8
    assert config.for_source("anything-else").geo == SourceGeo()


COLLINEAR = [{"x_px": 10.0 * i, "y_px": 100.0, "lat": LAT, "lon": LON + 1e-5 * i} for i in range(5)]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            sources(cam=dict(geo={"calibration": {"control_points": COLLINEAR}})),
            "sources.cam.fixed.geo.calibration\n  Value error, ground calibration: control points [0, 1, 2, 3, 4] are "
            "(nearly) collinear in pixel space",
        ),
        (
            sources(cam=dict(geo={"calibration": {"control_points": control_points()[:3]}})),
            "sources.cam.fixed.geo.calibration.control_points\n  List should have at least 4 items",
        ),
        (
            sources(drone=dict(camera="moving", geo={"calibration": CALIBRATION})),
            "a moving camera cannot use geo.calibration",
        ),
        (
            sources(drone=dict(camera="moving", geo={"position": POSITION})),
            "a moving camera cannot use geo.position",
        ),
        (sources(cam=dict(geo={"camera_profile": DRONE_PROFILE})), "geo.camera_profile is for moving cameras"),
        (sources(cam=dict(geo={"position": POSITION, "zones": [ZONE]})), "geo.zones need a geo.calibration"),
        ({"default_source": {"geo": {"position": POSITION}}}, "default_source cannot have geo.position"),
        (
            sources(
                cam=dict(
                    zones=[{"id": "market", "polygon_px": [[0, 0], [9, 0], [9, 9]], "prohibited_classes": ["stall"]}],
                    geo={"calibration": CALIBRATION, "zones": [ZONE]},
                )
            ),
            "zone ids must be unique across zones and geo.zones; repeated: market",
        ),
        (
            sources(cam=dict(geo={"calibration": CALIBRATION, "zones": [{**ZONE, "prohibited_classes": ["tent"]}]})),
            "cam: zone 'market' prohibits 'tent', which no category maps",
        ),
        (
            sources(
                cam=dict(
                    geo={
                        "calibration": CALIBRATION,
                        "zones": [{**ZONE, "geometry": {"type": "Point", "coordinates": [1, 2]}}],
                    }
                )
            ),
            "zone 'market': geometry type 'Point' is not a Polygon or MultiPolygon",
        ),
        (
            sources(drone=dict(camera="moving", occlusion_s=10, geo={"pass_gap_s": 20})),
            "occlusion_s (10.0) must be at least geo.pass_gap_s (20.0) when geo.confirm_passes is set",
        ),
        (
            sources(drone=dict(camera="moving", geo={"camera_profile": {"name": "x", "hfov_deg": 80, "focal_mm": 4}})),
            "camera profile 'x': give exactly one of hfov_deg, focal_35mm_mm, or focal_mm with sensor_width_mm",
        ),
        (sources(drone=dict(camera="moving", geo={"dedup_radius_m": 0})), "Input should be greater than 0"),
        (sources(cam=dict(geo={"position": {"lat": 91, "lon": 0}})), "Input should be less than or equal to 90"),
    ],
)
def test_geo_config_errors_say_what_to_fix(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        RulesConfig.model_validate(data)
    assert message in str(info.value)


def test_a_degenerate_calibration_fails_at_load_naming_the_source() -> None:
    rules = {"sources": {"cam-7": {"geo": {"calibration": {"control_points": COLLINEAR}}}}}
    with pytest.raises(ConfigError) as info:
        load_config(None, environ={}, overrides=[f"rules={json.dumps(rules)}"])
    assert "rules.sources.cam-7.geo.calibration: Value error, ground calibration: control points" in str(info.value)


@pytest.mark.parametrize("model", [SourceGeo, CalibrationConfig, FixedPosition, GeoZoneConfig])
def test_every_geo_setting_has_a_description(model: type[BaseModel]) -> None:
    for name, field in model.model_fields.items():
        assert field.description, f"{model.__name__}.{name} has no description"
