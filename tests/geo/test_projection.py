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

from detector.geo.camera import CameraProfile, PinholeCamera
from detector.geo.enu import LocalTangentPlane, offset_m, shifted
from detector.geo.projection import HEADING_UNKNOWN, NADIR_ASSUMED, DroneProjector, ProjectionSigmas
from detector.types import Telemetry

PROFILE = CameraProfile(name="mini3-4k", focal_35mm_mm=24.0, image_width_px=3840, image_height_px=2160)
PROJECTOR = DroneProjector(PROFILE, max_range_m=2000.0)
LAT, LON = 41.3851, 2.1734


def make_telemetry(**fields: float | None) -> Telemetry:
    base: dict[str, float | None] = {"lat": LAT, "lon": LON, "altitude_agl_m": 80.0}
    base.update(fields)
    return Telemetry(**base)


def visible_ground_points(camera: PinholeCamera, max_range_m: float) -> tuple[npt.NDArray[np.float64], ...]:
    """A ground grid (ENU around the drone's nadir) and its pixels, for the points the camera sees."""
    height = camera.position_enu_m[2]
    grids = []
    for half_width in (height, 4 * height, 16 * height):  # fine near the drone, coarse far away
        axis = np.linspace(-min(half_width, max_range_m), min(half_width, max_range_m), 41)
        east, north = np.meshgrid(axis, axis)
        grids.append(np.stack([east.ravel(), north.ravel(), np.zeros(east.size)], axis=1))
    ground = np.concatenate(grids)
    pixels, in_front = camera.project(ground)
    w, h = camera.intrinsics.width_px, camera.intrinsics.height_px
    with np.errstate(invalid="ignore"):
        seen = in_front & (pixels[:, 0] >= 0) & (pixels[:, 0] <= w) & (pixels[:, 1] >= 0) & (pixels[:, 1] <= h)
    seen &= np.hypot(ground[:, 0], ground[:, 1]) <= max_range_m
    return ground[seen], pixels[seen]


def round_trip_errors_m(telemetry: Telemetry) -> npt.NDArray[np.float64]:
    """Ground points -> pixels (camera model) -> lat/lon (projector) -> metres from the truth."""
    assert telemetry.lat is not None and telemetry.lon is not None
    camera, _ = PROJECTOR.camera(telemetry)
    ground, pixels = visible_ground_points(camera, PROJECTOR.max_range_m)
    assert len(ground) > 0
    plane = LocalTangentPlane(telemetry.lat, telemetry.lon)  # an independent path: pyproj aeqd on the drone
    results = PROJECTOR.locate(pixels, telemetry)
    located = [r.location for r in results]
    assert all(p is not None for p in located), {r.reason for r in results}
    east, north = plane.to_enu([p.lat for p in located if p], [p.lon for p in located if p])
    errors: npt.NDArray[np.float64] = np.hypot(east - ground[:, 0], north - ground[:, 1])
    return errors


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


def coverage(
    rng: np.random.Generator, trials: int, sigmas: ProjectionSigmas, *, drop_pitch: bool
) -> tuple[float, float, float]:
    """Fraction of trials whose true point lies within 1x and 2x the stated accuracy, and the median error.

    Each trial draws a pose and a pixel, finds the true ground point, perturbs every pose input with the
    stated sigmas (GPS, height, gimbal pitch/roll/yaw, pixel), and locates the pixel again. With
    ``drop_pitch``, the true camera is tilted off nadir by the assumed-nadir sigma and the telemetry gives
    no gimbal pitch.
    """
    projector = DroneProjector(PROFILE, sigmas, max_range_m=2000.0)
    inside_1 = inside_2 = 0
    errors = []
    for _ in range(trials):
        altitude = rng.uniform(30.0, 150.0)
        yaw = rng.uniform(-180.0, 180.0)
        if drop_pitch:
            tilt_e, tilt_n = rng.normal(0.0, sigmas.assumed_nadir_tilt_deg, size=2)
            pitch, yaw = -90.0 + math.hypot(tilt_e, tilt_n), math.degrees(math.atan2(tilt_e, tilt_n))
        else:
            pitch = rng.uniform(-90.0, -30.0)
        truth = make_telemetry(altitude_agl_m=altitude, gimbal_pitch_deg=pitch, gimbal_yaw_deg=yaw, gimbal_roll_deg=0.0)
        pixel = rng.uniform([0.0, 0.0], [3840.0, 2160.0])
        true_point = projector.locate([pixel], truth)[0].location
        if true_point is None:
            continue
        lat, lon = shifted(LAT, LON, *rng.normal(0.0, sigmas.gps_horizontal_m, size=2))
        noisy = make_telemetry(
            lat=lat,
            lon=lon,
            altitude_agl_m=altitude + rng.normal(0.0, sigmas.height_m),
            gimbal_pitch_deg=None if drop_pitch else pitch + rng.normal(0.0, sigmas.tilt_deg),
            gimbal_roll_deg=None if drop_pitch else rng.normal(0.0, sigmas.tilt_deg),
            gimbal_yaw_deg=None if drop_pitch else yaw + rng.normal(0.0, sigmas.heading_deg),
            aircraft_yaw_deg=yaw + rng.normal(0.0, sigmas.heading_deg) if drop_pitch else None,
        )
        estimate = projector.locate([pixel + rng.normal(0.0, sigmas.pixel_px, size=2)], noisy)[0].location
        if estimate is None:
            continue
        error = math.hypot(*offset_m(true_point.lat, true_point.lon, estimate.lat, estimate.lon))
        errors.append(error)
        inside_1 += error <= estimate.accuracy_m
        inside_2 += error <= 2.0 * estimate.accuracy_m
    n = len(errors)
    assert n > 0.8 * trials
    return inside_1 / n, inside_2 / n, float(np.median(errors))


@pytest.mark.parametrize(
    ("drop_pitch", "band_1x", "min_2x"),
    [(False, (0.55, 0.90), 0.92), (True, (0.50, 0.95), 0.88)],
    ids=["full-telemetry", "pitch-missing"],
)
def test_accuracy_covers_the_truth_in_a_noisy_simulation(
    drop_pitch: bool, band_1x: tuple[float, float], min_2x: float
) -> None:
    within_1, within_2, median_m = coverage(np.random.default_rng(7), 600, ProjectionSigmas(), drop_pitch=drop_pitch)
    label = "pitch missing (nadir assumed)" if drop_pitch else "full telemetry"
    print(f"\ncoverage, {label}: {within_1:.1%} within accuracy_m, {within_2:.1%} within 2x", end="")
    print(f"; median error {median_m:.2f} m")
    assert band_1x[0] <= within_1 <= band_1x[1]
    assert within_2 >= min_2x
