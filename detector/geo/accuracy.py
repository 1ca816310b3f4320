"""How right the geotagging is: the drone projection's round trip through the camera model, and whether
``accuracy_m`` covers the truth when the pose (drone) or the control points (fixed camera) are noisy.
Used by tests/geo and benchmarks/geo_accuracy.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detector.geo.calibration import ControlPoint, GroundCalibration
from detector.geo.camera import Attitude, Intrinsics, PinholeCamera
from detector.geo.enu import LocalTangentPlane, offset_m, shifted
from detector.geo.projection import DroneProjector
from detector.types import Telemetry

Float64Array = npt.NDArray[np.float64]


def visible_ground_points(camera: PinholeCamera, max_range_m: float) -> tuple[Float64Array, Float64Array]:
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


def round_trip_errors_m(projector: DroneProjector, telemetry: Telemetry) -> Float64Array:
    """Ground points -> pixels (camera model) -> lat/lon (projector) -> metres from the truth.

    The way back to metres is independent of the projector: pyproj's azimuthal equidistant plane on the drone.
    Raises ``ValueError`` when a visible point is not located or the camera sees no ground.
    """
    if telemetry.lat is None or telemetry.lon is None:
        raise ValueError("the round trip needs a drone position")
    camera, _ = projector.camera(telemetry)
    ground, pixels = visible_ground_points(camera, projector.max_range_m)
    if not len(ground):
        raise ValueError(f"the camera sees no ground within max_range_m at {telemetry}")
    plane = LocalTangentPlane(telemetry.lat, telemetry.lon)
    results = projector.locate(pixels, telemetry)
    located = [r.location for r in results if r.location is not None]
    if len(located) != len(results):
        raise ValueError(f"visible points were not located: { ({r.reason for r in results if r.location is None}) }")
    east, north = plane.to_enu([p.lat for p in located], [p.lon for p in located])
    errors: Float64Array = np.hypot(east - ground[:, 0], north - ground[:, 1])
    return errors


@dataclass(frozen=True)
class Coverage:
    """Of ``trials`` located estimates: the fraction within 1x and 2x ``accuracy_m`` of the truth."""

    trials: int
    within_1x: float
    within_2x: float
    median_error_m: float
    median_accuracy_m: float

    @classmethod
    def of(cls, errors_m: list[float], accuracies_m: list[float]) -> Coverage:
        if not errors_m:
            raise ValueError("nothing was located, so there is no coverage to tell")
        error, accuracy = np.asarray(errors_m), np.asarray(accuracies_m)
        return cls(
            len(error),
            float(np.mean(error <= accuracy)),
            float(np.mean(error <= 2.0 * accuracy)),
            float(np.median(error)),
            float(np.median(accuracy)),
        )


def coverage(
    projector: DroneProjector,
    rng: np.random.Generator,
    trials: int,
    *,
    drop_pitch: bool,
    lat: float = 41.3851,
    lon: float = 2.1734,
    altitude_m: tuple[float, float] = (30.0, 150.0),
    progress: Callable[[], None] | None = None,
) -> Coverage:
    """Monte-Carlo check of the stated accuracy against the projector's own ``sigmas``.

    Each trial draws a pose (altitude, pitch -90..-30, any yaw) and a pixel, finds the true ground point,
    perturbs every pose input by the stated sigmas (GPS, height, gimbal pitch/roll/yaw, pixel), and locates the
    pixel again. With ``drop_pitch`` the true camera is tilted off nadir by the assumed-nadir sigma and the
    telemetry gives no gimbal angles (only the aircraft yaw), as on models that do not record them.
    """
    s = projector.sigmas
    width, height = projector.profile.image_width_px, projector.profile.image_height_px
    errors: list[float] = []
    accuracies: list[float] = []
    for _ in range(trials):
        if progress is not None:
            progress()
        altitude = rng.uniform(*altitude_m)
        yaw = rng.uniform(-180.0, 180.0)
        if drop_pitch:
            tilt_e, tilt_n = rng.normal(0.0, s.assumed_nadir_tilt_deg, size=2)
            pitch, yaw = -90.0 + math.hypot(tilt_e, tilt_n), math.degrees(math.atan2(tilt_e, tilt_n))
        else:
            pitch = rng.uniform(-90.0, -30.0)
        truth = Telemetry(
            lat=lat, lon=lon, altitude_agl_m=altitude, gimbal_pitch_deg=pitch, gimbal_yaw_deg=yaw, gimbal_roll_deg=0.0
        )
        pixel = rng.uniform([0.0, 0.0], [width, height])
        true_point = projector.locate([pixel], truth)[0].location
        if true_point is None:
            continue
        noisy_lat, noisy_lon = shifted(lat, lon, *rng.normal(0.0, s.gps_horizontal_m, size=2))
        noisy = Telemetry(
            lat=noisy_lat,
            lon=noisy_lon,
            altitude_agl_m=altitude + rng.normal(0.0, s.height_m),
            gimbal_pitch_deg=None if drop_pitch else pitch + rng.normal(0.0, s.tilt_deg),
            gimbal_roll_deg=None if drop_pitch else rng.normal(0.0, s.tilt_deg),
            gimbal_yaw_deg=None if drop_pitch else yaw + rng.normal(0.0, s.heading_deg),
            aircraft_yaw_deg=yaw + rng.normal(0.0, s.heading_deg) if drop_pitch else None,
        )
        estimate = projector.locate([pixel + rng.normal(0.0, s.pixel_px, size=2)], noisy)[0].location
        if estimate is None:
            continue
        errors.append(math.hypot(*offset_m(true_point.lat, true_point.lon, estimate.lat, estimate.lon)))
        accuracies.append(estimate.accuracy_m)
    return Coverage.of(errors, accuracies)


def homography_coverage(
    rng: np.random.Generator,
    calibrations: int,
    *,
    survey_sigma_m: float = 0.3,
    pixel_sigma_px: float = 2.0,
    min_accuracy_m: float = 0.5,
    progress: Callable[[], None] | None = None,
) -> Coverage:
    """Monte-Carlo check of HOMOGRAPHY accuracy: a street camera 8 m up, looking north 35 deg down (1920x1080,
    90 deg across). Each run surveys 8 random ground points (``survey_sigma_m`` per axis, ``pixel_sigma_px``
    on their pixels), fits, and locates the other visible points of the draw from noisy pixels."""
    plane = LocalTangentPlane(41.3851, 2.1734)
    camera = PinholeCamera.from_angles(Intrinsics.from_hfov(90.0, 1920, 1080), (0.0, 0.0, 8.0), Attitude(0.0, -35.0))
    errors: list[float] = []
    accuracies: list[float] = []
    for _ in range(calibrations):
        if progress is not None:
            progress()
        ground = np.column_stack([rng.uniform(-12, 12, 16), rng.uniform(8, 40, 16), np.zeros(16)])
        pixels, _ = camera.project(ground)
        seen = (pixels[:, 0] > 0) & (pixels[:, 0] < 1920) & (pixels[:, 1] > 0) & (pixels[:, 1] < 1080)
        ground, pixels = ground[seen], pixels[seen]
        if len(ground) < 12:
            continue
        surveyed = ground[:8, :2] + rng.normal(0.0, survey_sigma_m, (8, 2))
        lat, lon = plane.to_geo(surveyed[:, 0], surveyed[:, 1])
        picked = pixels[:8] + rng.normal(0.0, pixel_sigma_px, (8, 2))
        points = [ControlPoint(x_px=x, y_px=y, lat=a, lon=o) for (x, y), a, o in zip(picked, lat, lon, strict=True)]
        calibration = GroundCalibration.fit(points, pixel_sigma_px=pixel_sigma_px, min_accuracy_m=min_accuracy_m)
        queried = pixels[8:] + rng.normal(0.0, pixel_sigma_px, (len(pixels) - 8, 2))
        for truth, point in zip(ground[8:], calibration.pixel_to_geo(queried), strict=True):
            if point is None:
                continue
            east, north = plane.to_enu(point.lat, point.lon)
            errors.append(math.hypot(float(east) - truth[0], float(north) - truth[1]))
            accuracies.append(point.accuracy_m)
    return Coverage.of(errors, accuracies)
