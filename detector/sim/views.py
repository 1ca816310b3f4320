"""Camera views of the world, posed with detector/geo's camera model: a fixed pole camera and a drone flight.

The drone flies a polyline at constant height and speed, turning on the spot at each reversal, with an
absolute (horizon- and north-referenced) gimbal as DJI drones have; its telemetry, written as DJI .SRT cues,
carries slowly wandering errors (first-order Gauss-Markov) of configurable size, while the picture is rendered
from the true pose.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from detector.geo.camera import Attitude, CameraProfile, GimbalReference, Intrinsics, PinholeCamera
from detector.geo.srt import SrtCue
from detector.sim.world import World

Float64Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class PoleCamera:
    """A fixed camera on a pole: position in ENU metres, attitude as DJI angles (yaw clockwise from north)."""

    east_m: float
    north_m: float
    height_m: float
    yaw_deg: float
    pitch_deg: float
    hfov_deg: float
    roll_deg: float = 0.0

    def camera(self, width_px: int, height_px: int) -> PinholeCamera:
        intrinsics = Intrinsics.from_hfov(self.hfov_deg, width_px, height_px)
        attitude = Attitude(self.yaw_deg, self.pitch_deg, self.roll_deg)
        return PinholeCamera.from_angles(intrinsics, (self.east_m, self.north_m, self.height_m), attitude)


class TelemetryNoise(BaseModel):
    """1-sigma errors written into the drone's telemetry; the rendered view uses the true pose."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gps_m: float = Field(default=1.5, ge=0, description="Horizontal position error, per axis (east, north)")
    height_m: float = Field(default=0.8, ge=0, description="Height (barometer) error")
    yaw_deg: float = Field(default=2.0, ge=0, description="Gimbal and aircraft heading error (compass)")
    pitch_deg: float = Field(default=0.5, ge=0, description="Gimbal pitch error")
    time_constant_s: float = Field(default=8.0, gt=0, description="How slowly the errors wander (correlation time)")


class FlightSettings(BaseModel):
    """How the drone flies and films."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    altitude_m: float = Field(default=60.0, ge=30, le=120, description="Height above the take-off ground")
    gimbal_pitch_deg: float = Field(default=-60.0, ge=-90, le=-45, description="Gimbal pitch; -90 looks down")
    speed_m_s: float = Field(default=8.0, gt=0, le=15, description="Ground speed along the path")
    turn_s: float = Field(default=6.0, ge=0, description="Seconds to turn round on the spot at a reversal")
    focal_35mm_mm: float = Field(default=24.0, gt=0, description="35 mm equivalent focal length (DJI Mini/Air)")
    ground_abs_alt_m: float = Field(default=45.0, description="Altitude of the take-off ground above sea level")
    noise: TelemetryNoise = Field(default_factory=TelemetryNoise, description="Errors in the written telemetry")

    def profile(self) -> CameraProfile:
        return CameraProfile(name="sim-drone", focal_35mm_mm=self.focal_35mm_mm)


@dataclass(frozen=True)
class DronePose:
    """The true pose at one instant. Yaw clockwise from north; the gimbal yaw follows the aircraft heading."""

    t_s: float
    east_m: float
    north_m: float
    altitude_m: float
    yaw_deg: float
    gimbal_pitch_deg: float
    aircraft_pitch_deg: float


@dataclass(frozen=True)
class _Leg:
    t0: float
    t1: float
    start: Float64Array
    end: Float64Array
    yaw0: float
    yaw1: float


def _yaw_of(direction: Float64Array) -> float:
    return math.degrees(math.atan2(direction[0], direction[1]))


def _wrap(angle_deg: float) -> float:
    return (angle_deg + 180.0) % 360.0 - 180.0


class Flight:
    """A flight along ENU waypoints at constant speed and height, turning on the spot between legs."""

    def __init__(self, waypoints_en: Sequence[tuple[float, float]], settings: FlightSettings) -> None:
        points = [np.asarray(p, np.float64) for p in waypoints_en]
        if len(points) < 2:
            raise ValueError("a flight needs at least two waypoints")
        self.settings = settings
        legs: list[_Leg] = []
        t = 0.0
        for a, b in itertools.pairwise(points):
            yaw = _yaw_of(b - a)
            if legs and settings.turn_s > 0 and abs(_wrap(yaw - legs[-1].yaw1)) > 1.0:
                legs.append(_Leg(t, t + settings.turn_s, a, a, legs[-1].yaw1, yaw))
                t += settings.turn_s
            duration = float(np.linalg.norm(b - a)) / settings.speed_m_s
            legs.append(_Leg(t, t + duration, a, b, yaw, yaw))
            t += duration
        self._legs = legs
        self.duration_s = t
        self.length_m = sum(float(np.linalg.norm(b - a)) for a, b in itertools.pairwise(points))

    def pose(self, t_s: float) -> DronePose:
        t = min(max(t_s, 0.0), self.duration_s)
        leg = next((g for g in self._legs if g.t0 <= t <= g.t1), self._legs[-1])
        w = 0.0 if leg.t1 <= leg.t0 else (t - leg.t0) / (leg.t1 - leg.t0)
        position = leg.start + w * (leg.end - leg.start)
        yaw = _wrap(leg.yaw0 + w * _wrap(leg.yaw1 - leg.yaw0))
        moving = bool(np.any(leg.start != leg.end))
        s = self.settings
        return DronePose(
            t, float(position[0]), float(position[1]), s.altitude_m, yaw, s.gimbal_pitch_deg, -6.0 if moving else 0.0
        )  # fmt: skip  nose down in forward flight

    def camera(self, pose: DronePose, width_px: int, height_px: int) -> PinholeCamera:
        """The true camera: the same construction as detector/geo's DroneProjector for an absolute gimbal."""
        intrinsics = self.settings.profile().intrinsics(width_px, height_px)
        gimbal = Attitude(pose.yaw_deg, pose.gimbal_pitch_deg, 0.0)
        position = (pose.east_m, pose.north_m, pose.altitude_m)
        return PinholeCamera.from_angles(intrinsics, position, gimbal, reference=GimbalReference.ABSOLUTE)


def gauss_markov(rng: np.random.Generator, times_s: Float64Array, sigma: float, tau_s: float) -> Float64Array:
    """A stationary first-order Gauss-Markov sequence at the given times: std ``sigma``, correlation time ``tau``."""
    out = np.zeros(len(times_s))
    if sigma <= 0 or len(times_s) == 0:
        return out
    out[0] = rng.normal(0.0, sigma)
    for i in range(1, len(times_s)):
        a = math.exp(-(times_s[i] - times_s[i - 1]) / tau_s)
        out[i] = a * out[i - 1] + math.sqrt(1.0 - a * a) * rng.normal(0.0, sigma)
    return out


def telemetry_cues(
    flight: Flight, world: World, times_s: Float64Array, frame_s: float, start: datetime, seed: int
) -> list[SrtCue]:
    """One DJI cue per frame: the pose at the frame's time plus the configured telemetry errors."""
    noise = flight.settings.noise
    rng = np.random.default_rng([seed, 11])
    tau = noise.time_constant_s
    de, dn, dh = (gauss_markov(rng, times_s, s, tau) for s in (noise.gps_m, noise.gps_m, noise.height_m))
    dyaw, dpitch = (gauss_markov(rng, times_s, s, tau) for s in (noise.yaw_deg, noise.pitch_deg))
    cues = []
    for i, t in enumerate(times_s):
        pose = flight.pose(float(t))
        lat, lon = world.to_geo(pose.east_m + de[i], pose.north_m + dn[i])
        height = pose.altitude_m + dh[i]
        yaw = _wrap(pose.yaw_deg + dyaw[i])
        cues.append(
            SrtCue(
                index=i + 1,
                start_s=float(t),
                end_s=float(t) + frame_s,
                local_time=start + timedelta(seconds=float(t)),
                lat=lat,
                lon=lon,
                rel_alt_m=height,
                abs_alt_m=height + flight.settings.ground_abs_alt_m,
                aircraft_yaw_deg=yaw,
                aircraft_pitch_deg=pose.aircraft_pitch_deg,
                aircraft_roll_deg=0.0,
                gimbal_yaw_deg=yaw,
                gimbal_pitch_deg=float(np.clip(pose.gimbal_pitch_deg + dpitch[i], -90.0, 0.0)),
                gimbal_roll_deg=0.0,
                focal_len_mm=flight.settings.focal_35mm_mm,
                fnum=2.8,
                iso=100,
                shutter_s=1 / 500,
                ev=0.0,
            )
        )
    return cues
