"""Drone ground projection: a pixel's ray meets flat ground (z = 0) -> WGS84, with an accuracy estimate.

``accuracy_m`` is the DRMS radius sqrt(sigma_east^2 + sigma_north^2) from the stated pose errors
(``ProjectionSigmas``), propagated by numerically perturbing the pose; the true point falls within it
roughly two times in three, and within twice it about 95 % of the time. It grows with height and
obliqueness by construction, and with missing fields through wider assumed errors.

A pixel gets no location (``location`` None and a stated ``reason``) when the drone position or height is
unknown, or when its ray points at or above the horizon or meets the ground beyond ``max_range_m``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field
from pyproj import Geod

from detector.geo.camera import (
    Attitude,
    CameraProfile,
    GimbalReference,
    Intrinsics,
    PinholeCamera,
    camera_rotation,
)
from detector.geo.enu import offset_m
from detector.types import GeoPoint, LocationMethod, Telemetry

Float64Array = npt.NDArray[np.float64]

METHOD = LocationMethod.DRONE_PROJECTION
NADIR_ASSUMED = "gimbal pitch unknown: camera assumed to look straight down (nadir)"
HEADING_UNKNOWN = "heading unknown (no gimbal or aircraft yaw): north assumed; accuracy covers any heading"
_GEOD = Geod(ellps="WGS84")
_STEP_RAD = 1e-4
_STEP_PX = 0.5


class ProjectionSigmas(BaseModel):
    """1-sigma errors assumed for each pose input; they set ``accuracy_m``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gps_horizontal_m: float = Field(default=2.0, ge=0, description="Drone GPS error, per axis (east, north)")
    height_m: float = Field(default=1.5, ge=0, description="Height above the target's ground (baro, terrain)")
    tilt_deg: float = Field(default=1.0, ge=0, description="Camera pitch and roll error (stabilised gimbal)")
    heading_deg: float = Field(default=3.0, ge=0, description="Camera heading error (compass)")
    pixel_px: float = Field(default=2.0, ge=0, description="Error of the pixel itself (box bottom centre)")
    assumed_nadir_tilt_deg: float = Field(
        default=15.0, ge=0, description="Tilt error when the gimbal pitch is missing and nadir is assumed"
    )


@dataclass(frozen=True)
class ProjectionResult:
    """One pixel's ground fix. ``location`` is None when it cannot be located, and ``reason`` says why."""

    location: GeoPoint | None
    reason: str = ""
    assumptions: tuple[str, ...] = ()
    offset_enu_m: tuple[float, float] | None = None  # east, north of the point under the drone


def _rotation_about(axis: int, angle_rad: float) -> Float64Array:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    i, j = [k for k in range(3) if k != axis]
    rot = np.eye(3)
    rot[i, i], rot[i, j], rot[j, i], rot[j, j] = c, -s, s, c
    return rot


def _ground(camera: PinholeCamera, pixels: Float64Array) -> tuple[Float64Array, Float64Array]:
    """(Nx2 east/north of the ground hit, N sine of the ray's depression below the horizon)."""
    rays = camera.ray(pixels)
    down = -rays[:, 2]
    scale = np.where(down > 0.0, camera.position_enu_m[2] / np.where(down > 0.0, down, 1.0), np.nan)
    return camera.position_enu_m[:2] + rays[:, :2] * scale[:, None], down


class DroneProjector:
    """Locates pixels of a drone frame on the ground. One per camera profile; stateless per call."""

    def __init__(
        self, profile: CameraProfile, sigmas: ProjectionSigmas | None = None, max_range_m: float = 1000.0
    ) -> None:
        self.profile = profile
        self.sigmas = sigmas or ProjectionSigmas()
        self.max_range_m = max_range_m

    def camera(
        self, telemetry: Telemetry, width_px: int | None = None, height_px: int | None = None
    ) -> tuple[PinholeCamera, tuple[str, ...]]:
        """The camera at (0, 0, altitude_agl_m) in ENU around the point under the drone, and what was assumed.

        Missing gimbal pitch -> nadir; missing gimbal yaw -> aircraft yaw, else north; missing roll -> 0.
        """
        t = telemetry
        assumptions: list[str] = []
        intrinsics = self.profile.intrinsics(width_px, height_px)
        if t.hfov_deg is not None:
            intrinsics = Intrinsics.from_hfov(t.hfov_deg, intrinsics.width_px, intrinsics.height_px)
        pitch = t.gimbal_pitch_deg
        if pitch is None:
            pitch = -90.0
            assumptions.append(NADIR_ASSUMED)
        body = self.profile.gimbal_reference is GimbalReference.BODY
        # Heading: from an absolute gimbal yaw when given, else from the aircraft.
        heading = t.aircraft_yaw_deg if body or t.gimbal_yaw_deg is None else t.gimbal_yaw_deg
        if heading is None:
            heading = 0.0
            assumptions.append(HEADING_UNKNOWN)
        if body:
            gimbal = Attitude(t.gimbal_yaw_deg or 0.0, pitch, t.gimbal_roll_deg or 0.0)
            aircraft = Attitude(heading, t.aircraft_pitch_deg or 0.0, t.aircraft_roll_deg or 0.0)
            rotation = camera_rotation(gimbal, aircraft, GimbalReference.BODY)
        else:
            rotation = camera_rotation(Attitude(heading, pitch, t.gimbal_roll_deg or 0.0))
        return PinholeCamera(intrinsics, rotation, (0.0, 0.0, t.altitude_agl_m or 0.0)), tuple(assumptions)

    def sees(
        self,
        point: GeoPoint,
        telemetry: Telemetry,
        width_px: int | None = None,
        height_px: int | None = None,
        margin_frac: float = 0.05,
    ) -> bool:
        """Whether a ground point is inside the frame, at least ``margin_frac`` of the size from every edge
        (where a detector may still miss half an object), and within ``max_range_m``. False when the pose
        cannot tell (no position or height)."""
        t = telemetry
        if t.lat is None or t.lon is None or t.altitude_agl_m is None or t.altitude_agl_m <= 0.0:
            return False
        camera, _ = self.camera(t, width_px, height_px)
        east, north = offset_m(t.lat, t.lon, point.lat, point.lon)
        if math.hypot(east, north) > self.max_range_m:
            return False
        pixels, in_front = camera.project([(east, north, 0.0)])
        if not in_front[0]:
            return False
        (u, v), w, h = pixels[0], camera.intrinsics.width_px, camera.intrinsics.height_px
        inside_u = margin_frac * w <= u <= (1.0 - margin_frac) * w
        return bool(inside_u and margin_frac * h <= v <= (1.0 - margin_frac) * h)

    def locate(
        self,
        pixels_px: npt.ArrayLike,
        telemetry: Telemetry,
        width_px: int | None = None,
        height_px: int | None = None,
    ) -> list[ProjectionResult]:
        """Ground fixes for Nx2 pixels of a ``width_px`` x ``height_px`` frame (profile default if None)."""
        pixels = np.asarray(pixels_px, np.float64).reshape(-1, 2)
        t = telemetry
        if t.lat is None or t.lon is None:
            return [ProjectionResult(None, "telemetry has no drone position (lat/lon)")] * len(pixels)
        if t.altitude_agl_m is None:
            return [ProjectionResult(None, "telemetry has no height above ground (altitude_agl_m)")] * len(pixels)
        if t.altitude_agl_m <= 0.0:
            reason = f"height above ground is {t.altitude_agl_m:.1f} m; the camera must be above the ground"
            return [ProjectionResult(None, reason)] * len(pixels)
        camera, assumptions = self.camera(t, width_px, height_px)
        ground, down = _ground(camera, pixels)
        accuracy = self._accuracy(camera, pixels, ground, assumptions)
        # Geodesic azimuth and distance from the drone: the azimuthal equidistant plane centred on it.
        finite = np.nan_to_num(ground)
        n = len(pixels)
        lon, lat, _ = _GEOD.fwd(
            np.full(n, t.lon),
            np.full(n, t.lat),
            np.degrees(np.arctan2(finite[:, 0], finite[:, 1])),
            np.hypot(*finite.T),
        )
        results = []
        for i in range(len(pixels)):
            if not down[i] > 0.0:
                elevation = math.degrees(math.asin(min(1.0, max(-1.0, -down[i]))))
                reason = f"ray is at or above the horizon ({elevation:.1f} deg up); it never meets the ground"
                results.append(ProjectionResult(None, reason, assumptions))
                continue
            distance = float(np.hypot(*ground[i]))
            if distance > self.max_range_m:
                reason = f"ground point is {distance:.0f} m away, beyond max_range_m={self.max_range_m:.0f}"
                results.append(ProjectionResult(None, reason, assumptions))
                continue
            point = GeoPoint(float(lat[i]), float(lon[i]), float(accuracy[i]), METHOD)
            results.append(ProjectionResult(point, "", assumptions, (float(ground[i, 0]), float(ground[i, 1]))))
        return results

    def _accuracy(
        self, camera: PinholeCamera, pixels: Float64Array, ground: Float64Array, assumptions: tuple[str, ...]
    ) -> Float64Array:
        """DRMS radius per pixel from the pose sigmas, by central differences of the ground point."""
        s = self.sigmas
        tilt = math.radians(s.assumed_nadir_tilt_deg if NADIR_ASSUMED in assumptions else s.tilt_deg)
        heading_unknown = HEADING_UNKNOWN in assumptions
        variance = np.full(len(pixels), 2.0 * s.gps_horizontal_m**2)
        # Height: the ground offset scales with the height.
        variance += np.sum((ground / camera.position_enu_m[2]) ** 2, axis=1) * s.height_m**2
        # Attitude errors as small rotations about the world east, north (tilt) and up (heading) axes.
        axes = [(0, tilt), (1, tilt)] + ([] if heading_unknown else [(2, math.radians(s.heading_deg))])
        for axis, sigma in axes:
            plus, minus = (
                PinholeCamera(
                    camera.intrinsics,
                    _rotation_about(axis, sign * _STEP_RAD) @ camera.rotation,
                    camera.position_enu_m,
                )
                for sign in (1.0, -1.0)
            )
            derivative = (_ground(plus, pixels)[0] - _ground(minus, pixels)[0]) / (2.0 * _STEP_RAD)
            variance += np.sum(derivative**2, axis=1) * sigma**2
        for column in (0, 1):
            step = np.zeros(2)
            step[column] = _STEP_PX
            derivative = (_ground(camera, pixels + step)[0] - _ground(camera, pixels - step)[0]) / (2.0 * _STEP_PX)
            variance += np.sum(derivative**2, axis=1) * s.pixel_px**2
        if heading_unknown:
            # A uniformly unknown heading moves the point on a circle round the nadir: E|error|^2 = 2 r^2.
            variance += 2.0 * np.sum(ground**2, axis=1)
        result: Float64Array = np.sqrt(variance)
        return result
