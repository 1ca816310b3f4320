"""Drone ground projection: round trip through the camera model, missing fields, horizon, and whether the
stated accuracy holds in a noisy simulation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.geo import accuracy
from detector.geo.camera import CameraProfile
from detector.geo.projection import HEADING_UNKNOWN, NADIR_ASSUMED, DroneProjector, ProjectionSigmas
from detector.types import Telemetry

PROFILE = CameraProfile(name="mini3-4k", focal_35mm_mm=24.0, image_width_px=3840, image_height_px=2160)
PROJECTOR = DroneProjector(PROFILE, max_range_m=2000.0)
LAT, LON = 41.3851, 2.1734


def make_telemetry(**fields: float | None) -> Telemetry:
    base: dict[str, float | None] = {"lat": LAT, "lon": LON, "altitude_agl_m": 80.0}
    base.update(fields)
    return Telemetry(**base)


def round_trip_errors_m(telemetry: Telemetry) -> npt.NDArray[np.float64]:
    return accuracy.round_trip_errors_m(PROJECTOR, telemetry)


@settings(max_examples=120, deadline=None)
@given(
    altitude_m=st.floats(30.0, 150.0),
    pitch_deg=st.floats(-90.0, -30.0),
    yaw_deg=st.floats(-180.0, 180.0),
    lat=st.floats(-70.0, 70.0),
    lon=st.floats(-179.0, 179.0),
)
def test_round_trip_property(altitude_m: float, pitch_deg: float, yaw_deg: float, lat: float, lon: float) -> None:
    telemetry = Telemetry(
        lat=lat, lon=lon, altitude_agl_m=altitude_m, gimbal_pitch_deg=pitch_deg, gimbal_yaw_deg=yaw_deg
    )
    assert round_trip_errors_m(telemetry).max() < 0.05


def test_round_trip_grid_reports_error() -> None:
    worst = 0.0
    count = 0
    for altitude, pitch, yaw in itertools.product((30, 60, 100, 150), (-90, -75, -60, -45, -30), range(-180, 180, 45)):
        errors = round_trip_errors_m(
            make_telemetry(altitude_agl_m=altitude, gimbal_pitch_deg=pitch, gimbal_yaw_deg=yaw, gimbal_roll_deg=0.0)
        )
        worst = max(worst, float(errors.max()))
        count += len(errors)
    print(f"\nround trip: {count} ground points over 160 poses, max error {worst:.2e} m")
    assert worst < 0.05


@pytest.mark.parametrize(
    ("telemetry", "reason"),
    [
        (make_telemetry(lat=None), "no drone position"),
        (make_telemetry(altitude_agl_m=None), "no height above ground"),
        (make_telemetry(altitude_agl_m=-2.0), "must be above the ground"),
        (make_telemetry(gimbal_pitch_deg=0.0, gimbal_yaw_deg=0.0), "at or above the horizon"),
        (make_telemetry(gimbal_pitch_deg=10.0, gimbal_yaw_deg=0.0), "at or above the horizon (10.0 deg up)"),
        (make_telemetry(gimbal_pitch_deg=-1.5, gimbal_yaw_deg=0.0), "beyond max_range_m=2000"),
    ],
)
def test_no_location_states_the_reason(telemetry: Telemetry, reason: str) -> None:
    (result,) = PROJECTOR.locate([(1920, 1080)], telemetry)
    assert result.location is None
    assert reason in result.reason


def test_missing_gimbal_assumes_nadir_and_says_so() -> None:
    with_gimbal = PROJECTOR.locate([(1920, 1080)], make_telemetry(gimbal_pitch_deg=-90.0, gimbal_yaw_deg=30.0))[0]
    nadir = PROJECTOR.locate([(1920, 1080)], make_telemetry(aircraft_yaw_deg=30.0))[0]
    assert nadir.assumptions == (NADIR_ASSUMED,)
    assert nadir.location is not None and with_gimbal.location is not None
    assert (nadir.location.lat, nadir.location.lon) == pytest.approx(
        (with_gimbal.location.lat, with_gimbal.location.lon)
    )
    assert nadir.location.accuracy_m > 3 * with_gimbal.location.accuracy_m
    assert nadir.location.method == "DRONE_PROJECTION"


def test_unknown_heading_is_stated_and_widens_off_centre_accuracy() -> None:
    centre, corner = PROJECTOR.locate([(1920, 1080), (0, 0)], make_telemetry(gimbal_pitch_deg=-90.0))
    known = PROJECTOR.locate([(0, 0)], make_telemetry(gimbal_pitch_deg=-90.0, gimbal_yaw_deg=0.0))[0]
    assert HEADING_UNKNOWN in corner.assumptions
    assert centre.location is not None and corner.location is not None and known.location is not None
    distance = math.hypot(*corner.offset_enu_m) if corner.offset_enu_m else 0.0
    assert corner.location.accuracy_m >= math.sqrt(2) * distance > 5 * known.location.accuracy_m


def accuracy_at(altitude_m: float, pitch_deg: float) -> float:
    (result,) = PROJECTOR.locate(
        [(1920, 1080)], make_telemetry(altitude_agl_m=altitude_m, gimbal_pitch_deg=pitch_deg, gimbal_yaw_deg=0.0)
    )
    assert result.location is not None
    return result.location.accuracy_m


@pytest.mark.parametrize("pitch_deg", [-90.0, -60.0, -30.0])
def test_accuracy_grows_with_height(pitch_deg: float) -> None:
    assert accuracy_at(30.0, pitch_deg) < accuracy_at(80.0, pitch_deg) < accuracy_at(150.0, pitch_deg)


@pytest.mark.parametrize("altitude_m", [30.0, 150.0])
def test_accuracy_grows_with_obliqueness(altitude_m: float) -> None:
    assert accuracy_at(altitude_m, -90.0) < accuracy_at(altitude_m, -60.0) < accuracy_at(altitude_m, -30.0)


@pytest.mark.parametrize(
    ("drop_pitch", "band_1x", "min_2x"),
    [(False, (0.55, 0.90), 0.92), (True, (0.50, 0.95), 0.88)],
    ids=["full-telemetry", "pitch-missing"],
)
def test_accuracy_covers_the_truth_in_a_noisy_simulation(
    drop_pitch: bool, band_1x: tuple[float, float], min_2x: float
) -> None:
    projector = DroneProjector(PROFILE, ProjectionSigmas(), max_range_m=2000.0)
    result = accuracy.coverage(projector, np.random.default_rng(7), 600, drop_pitch=drop_pitch, lat=LAT, lon=LON)
    label = "pitch missing (nadir assumed)" if drop_pitch else "full telemetry"
    print(f"\ncoverage, {label}: {result.within_1x:.1%} within accuracy_m, {result.within_2x:.1%} within 2x", end="")
    print(f"; median error {result.median_error_m:.2f} m")
    assert result.trials > 0.8 * 600
    assert band_1x[0] <= result.within_1x <= band_1x[1]
    assert result.within_2x >= min_2x


@pytest.mark.parametrize(
    ("pixel", "margin_frac", "seen"),
    [
        ((1920, 1080), 0.05, True),
        ((100, 1080), 0.05, False),  # inside the image, but where a detector may miss half of an object
        ((100, 1080), 0.0, True),
        ((1920, 2100), 0.0, True),
    ],
)
def test_sees_tells_whether_a_ground_point_is_in_the_frame(
    pixel: tuple[float, float], margin_frac: float, seen: bool
) -> None:
    telemetry = make_telemetry(gimbal_pitch_deg=-60.0, gimbal_yaw_deg=30.0)
    (result,) = PROJECTOR.locate([pixel], telemetry)
    assert result.location is not None
    assert PROJECTOR.sees(result.location, telemetry, margin_frac=margin_frac) is seen


def test_sees_nothing_behind_beyond_range_or_without_a_pose() -> None:
    telemetry = make_telemetry(gimbal_pitch_deg=-60.0, gimbal_yaw_deg=0.0)
    (ahead,) = PROJECTOR.locate([(1920, 1080)], telemetry)
    assert ahead.location is not None
    behind = make_telemetry(gimbal_pitch_deg=-60.0, gimbal_yaw_deg=180.0)
    near = DroneProjector(PROFILE, max_range_m=10.0)
    assert not PROJECTOR.sees(ahead.location, behind)
    assert not near.sees(ahead.location, telemetry)
    assert not PROJECTOR.sees(ahead.location, make_telemetry(altitude_agl_m=None))
