"""The geo stage: each kind of source puts a detection's bottom centre at the right place, or says why not."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from detector.geo.projection import NADIR_ASSUMED
from detector.geo.stage import ABOVE_HORIZON, NO_CAMERA_MODEL, NO_TELEMETRY, GeoStage
from detector.rules import RulesConfig
from detector.types import Detections, Frame, Telemetry
from tests.geo.synthetic import (
    DRONE_PROFILE,
    FIXED_SIZE,
    LAT,
    LON,
    control_points,
    distance_m,
    drone_pixel,
    drone_telemetry,
    fixed_pixel,
)


def box_standing_at(x: float, y: float) -> tuple[float, float, float, float]:
    return (x - 5.0, y - 12.0, x + 5.0, y)


def detections(*boxes: tuple[float, float, float, float]) -> Detections:
    n = len(boxes)
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.full(n, 0.9), np.zeros(n))


def frame(telemetry: Telemetry | None, size: tuple[int, int] = (320, 240)) -> Frame:
    return Frame("src", 1, 0.0, np.zeros((size[1], size[0], 3), np.uint8), telemetry)


def locator(**source: Any) -> GeoStage:
    return GeoStage(RulesConfig.model_validate({"sources": {"src": source}}))


@pytest.mark.parametrize(("east_m", "north_m"), [(0.0, 12.0), (-5.0, 20.0), (4.0, 33.0)])
def test_calibrated_camera_maps_the_bottom_centre_through_the_homography(east_m: float, north_m: float) -> None:
    fixes = locator(geo={"calibration": {"control_points": control_points()}}).locate_at(
        "src", detections(box_standing_at(*fixed_pixel(east_m, north_m))), FIXED_SIZE
    )
    (location,) = fixes.locations
    assert location is not None and location.method == "HOMOGRAPHY"
    assert distance_m(location.lat, location.lon, east_m, north_m) < 0.01  # exact control points, exact pixels
    assert 0.5 <= location.accuracy_m < 3.0
    assert fixes.notes == [""] and fixes.pose is None  # no position configured: no pose


def test_calibration_on_another_image_size_scales_the_stream_pixels() -> None:
    x, y = fixed_pixel(2.0, 18.0)
    geo = {"calibration": {"control_points": control_points(), "frame_size_px": FIXED_SIZE}}
    fixes = locator(geo=geo).locate_at("src", detections(box_standing_at(2 * x, 2 * y)), (640, 480))
    (location,) = fixes.locations
    assert location is not None and distance_m(location.lat, location.lon, 2.0, 18.0) < 0.05


def test_a_box_above_the_calibrated_horizon_is_not_located_and_says_why() -> None:
    fixes = locator(geo={"calibration": {"control_points": control_points()}}).locate_at(
        "src", detections(box_standing_at(160.0, 5.0)), FIXED_SIZE
    )
    assert fixes.locations == [None] and fixes.notes == [ABOVE_HORIZON]


def test_a_camera_with_only_a_position_locates_everything_at_the_camera() -> None:
    geo = {"position": {"lat": LAT, "lon": LON, "height_m": 6.0, "accuracy_m": 40.0}}
    fixes = locator(geo=geo).locate_at("src", detections((0, 0, 10, 10), (50, 50, 90, 90)), FIXED_SIZE)
    assert [(p.lat, p.lon, p.accuracy_m, p.method) for p in fixes.locations if p] == [
        (LAT, LON, 40.0, "SOURCE_FIXED")
    ] * 2
    assert fixes.pose == Telemetry(lat=LAT, lon=LON, altitude_agl_m=6.0)


def test_an_unconfigured_source_is_not_located() -> None:
    fixes = GeoStage(RulesConfig()).locate_at("cam", detections((0, 0, 10, 10)), FIXED_SIZE)
    assert (fixes.locations, fixes.notes, fixes.pose) == ([None], [""], None)


DRONE = {"camera": "moving", "geo": {"camera_profile": DRONE_PROFILE}}


@pytest.mark.parametrize(
    "angles",
    [
        {"gimbal_pitch_deg": -90.0, "gimbal_yaw_deg": 0.0},
        {"gimbal_pitch_deg": -60.0, "gimbal_yaw_deg": 30.0, "gimbal_roll_deg": 0.0},
        {"gimbal_pitch_deg": -45.0, "gimbal_yaw_deg": -120.0},
    ],
)
def test_drone_projection_puts_the_bottom_centre_on_the_ground(angles: dict[str, float]) -> None:
    telemetry = drone_telemetry(0.0, -15.0, **angles)
    if angles["gimbal_yaw_deg"] == -120.0:
        telemetry = drone_telemetry(15.0, 8.0, **angles)  # look back toward the target
    pixel = drone_pixel(telemetry, 0.0, 0.0)
    assert pixel is not None
    fixes = locator(**DRONE).locate(frame(telemetry), detections(box_standing_at(*pixel)))
    (location,) = fixes.locations
    assert location is not None and location.method == "DRONE_PROJECTION"
    assert distance_m(location.lat, location.lon, 0.0, 0.0) < 0.01
    assert fixes.notes == [""] and fixes.pose == telemetry


def test_drone_without_gimbal_angles_assumes_nadir_and_says_so() -> None:
    telemetry = drone_telemetry(0.0, 0.0, aircraft_yaw_deg=0.0)
    fixes = locator(**DRONE).locate(frame(telemetry), detections(box_standing_at(160.0, 120.0)))
    (location,) = fixes.locations
    assert location is not None and distance_m(location.lat, location.lon, 0.0, 0.0) < 0.01
    assert fixes.notes == [NADIR_ASSUMED]


@pytest.mark.parametrize(
    ("source", "telemetry", "note"),
    [
        (DRONE, None, NO_TELEMETRY),
        (DRONE, drone_telemetry(0, 0, gimbal_pitch_deg=10.0, gimbal_yaw_deg=0.0), "at or above the horizon"),
        (DRONE, Telemetry(lat=LAT, lon=LON), "no height above ground"),
        ({"camera": "moving"}, drone_telemetry(0, 0, gimbal_pitch_deg=-90.0), NO_CAMERA_MODEL),
    ],
)
def test_drone_detections_that_cannot_be_located_say_why(
    source: dict[str, Any], telemetry: Telemetry | None, note: str
) -> None:
    fixes = locator(**source).locate(frame(telemetry), detections(box_standing_at(160.0, 120.0)))
    assert fixes.locations == [None]
    assert note in fixes.notes[0]


def test_drone_without_a_profile_uses_the_telemetry_field_of_view() -> None:
    telemetry = drone_telemetry(0.0, -15.0, gimbal_pitch_deg=-60.0, gimbal_yaw_deg=0.0, hfov_deg=80.0)
    pixel = drone_pixel(telemetry, 0.0, 0.0)
    assert pixel is not None
    fixes = locator(camera="moving").locate(frame(telemetry), detections(box_standing_at(*pixel)))
    (location,) = fixes.locations
    assert location is not None and distance_m(location.lat, location.lon, 0.0, 0.0) < 0.01


def test_calibration_reports_give_the_reprojection_error_in_metres() -> None:
    reports = locator(geo={"calibration": {"control_points": control_points()}}).calibration_reports()
    assert set(reports) == {"src"}
    assert reports["src"].rms_error_m < 0.01 and reports["src"].outliers == ()
