"""Pose plausibility: angles and heights no aircraft reports are refused, naming the value."""

from __future__ import annotations

import pytest

from detector.geo.pose import PoseError, check_pose
from detector.types import Telemetry


@pytest.mark.parametrize(
    "pose",
    [
        Telemetry(),
        Telemetry(gimbal_pitch_deg=-90.0, gimbal_yaw_deg=359.9, gimbal_roll_deg=0.0),
        Telemetry(aircraft_yaw_deg=-180.0, aircraft_pitch_deg=-25.0, aircraft_roll_deg=30.0),
        Telemetry(gimbal_pitch_deg=-120.0, altitude_agl_m=-2.4),  # payloads look backwards; take-off below home
    ],
)
def test_plausible_poses_pass_unchanged(pose: Telemetry) -> None:
    assert check_pose(pose) is pose


@pytest.mark.parametrize(
    ("pose", "message"),
    [
        (Telemetry(gimbal_pitch_deg=-500.0), "gimbal_pitch_deg -500.0 is outside [-180, 180]"),
        (Telemetry(aircraft_pitch_deg=95.0), "aircraft_pitch_deg 95.0 is outside [-90, 90]"),
        (Telemetry(gimbal_yaw_deg=720.0), "gimbal_yaw_deg 720.0 is outside [-360, 360]"),
        (Telemetry(aircraft_roll_deg=-181.0), "aircraft_roll_deg -181.0 is outside [-180, 180]"),
        (Telemetry(altitude_agl_m=25000.0), "altitude_agl_m 25000.0 is outside [-1000, 10000]"),
    ],
)
def test_implausible_poses_are_refused_naming_the_value(pose: Telemetry, message: str) -> None:
    with pytest.raises(PoseError) as info:
        check_pose(pose)
    assert str(info.value) == message
