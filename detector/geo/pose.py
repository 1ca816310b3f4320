"""Plausibility of a pose (drone telemetry): angles and height in the ranges a real aircraft reports.

``Telemetry`` itself checks that every value is finite and that lat/lon/hfov are in range; this adds the
angles and the height, which a broken uplink or a damaged .SRT cue can garble. The live uplink and a recorded
flight apply the same check, so the same bad value gets the same answer on both paths.
"""

from __future__ import annotations

from detector.geo.errors import GeoError
from detector.types import Telemetry

# Yaw may be written -180..180 or 0..360; gimbal pitch goes past -90 on some payloads (looking backwards).
_RANGES = {
    "aircraft_yaw_deg": (-360.0, 360.0),
    "gimbal_yaw_deg": (-360.0, 360.0),
    "aircraft_pitch_deg": (-90.0, 90.0),
    "gimbal_pitch_deg": (-180.0, 180.0),
    "aircraft_roll_deg": (-180.0, 180.0),
    "gimbal_roll_deg": (-180.0, 180.0),
    "altitude_agl_m": (-1000.0, 10000.0),
}


class PoseError(GeoError):
    """A pose value is outside what any aircraft reports."""


def check_pose(pose: Telemetry) -> Telemetry:
    """``pose`` unchanged, or ``PoseError`` naming the first value out of range.

    >>> check_pose(Telemetry(gimbal_pitch_deg=-500.0))
    Traceback (most recent call last):
    ...
    detector.geo.pose.PoseError: gimbal_pitch_deg -500.0 is outside [-180, 180]
    """
    for name, (low, high) in _RANGES.items():
        value = getattr(pose, name)
        if value is not None and not low <= value <= high:
            raise PoseError(f"{name} {value} is outside [{low:g}, {high:g}]")
    return pose
