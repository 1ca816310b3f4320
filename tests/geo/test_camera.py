"""The camera model: conventions, both directions, intrinsics sources and profile validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from detector.geo.camera import Attitude, CameraProfile, GimbalReference, Intrinsics, PinholeCamera

HD = Intrinsics.from_hfov(80.0, 1920, 1080)


def make_camera(
    yaw: float = 0.0, pitch: float = -90.0, roll: float = 0.0, height_m: float = 100.0, **kw: object
) -> PinholeCamera:
    return PinholeCamera.from_angles(HD, (0.0, 0.0, height_m), Attitude(yaw, pitch, roll), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("camera", "pixel", "direction"),
    [
        (make_camera(), (960, 540), (0, 0, -1)),  # nadir: centre straight down
        (make_camera(), (960, 0), (0, 1, -1)),  # nadir, yaw 0: image top is north
        (make_camera(), (1920, 540), (1, 0, -1)),  # ... and image right is east
        (make_camera(yaw=90.0), (960, 0), (1, 0, -1)),  # yaw 90: image top is east
        (make_camera(yaw=90.0, pitch=-45.0), (960, 540), (1, 0, -1)),  # looking east, 45 deg down
        (make_camera(yaw=180.0, pitch=0.0), (960, 540), (0, -1, 0)),  # looking south at the horizon
        (make_camera(yaw=0.0, pitch=-45.0, roll=90.0), (960, 540), (0, 1, -1)),  # roll keeps the optical axis
    ],
    ids=["nadir-centre", "nadir-top-north", "nadir-right-east", "yaw90-top-east", "east-45", "south-level", "roll"],
)
def test_conventions(camera: PinholeCamera, pixel: tuple[float, float], direction: tuple[float, float, float]) -> None:
    ray = camera.ray([pixel])[0]
    if pixel in ((960, 0), (1920, 540)):  # edge pixels: only the horizontal direction is fixed
        horizontal = np.array(direction[:2]) / np.linalg.norm(direction[:2])
        assert ray[:2] / np.linalg.norm(ray[:2]) == pytest.approx(horizontal, abs=1e-9)
    else:
        assert ray == pytest.approx(np.array(direction) / np.linalg.norm(direction), abs=1e-9)


def test_roll_right_side_down_turns_image_right_toward_the_ground() -> None:
    level = make_camera(pitch=0.0).ray([(1920, 540)])[0]
    rolled = make_camera(pitch=0.0, roll=20.0).ray([(1920, 540)])[0]
    assert rolled[2] < level[2] - 0.1


def test_project_and_ray_are_inverse() -> None:
    rng = np.random.default_rng(3)
    camera = make_camera(yaw=37.0, pitch=-52.0, roll=3.0)
    pixels = rng.uniform([0, 0], [1920, 1080], size=(200, 2))
    points = camera.position_enu_m + camera.ray(pixels) * rng.uniform(5, 500, size=(200, 1))
    back, in_front = camera.project(points)
    assert in_front.all()
    assert np.abs(back - pixels).max() < 1e-6


def test_points_behind_are_masked() -> None:
    pixels, in_front = make_camera().project([(0, 0, 0), (0, 0, 200)])
    assert in_front.tolist() == [True, False]
    assert np.isnan(pixels[1]).all()


def test_body_reference_adds_aircraft_attitude() -> None:
    aircraft = Attitude(90.0, 0.0, 0.0)
    gimbal = Attitude(0.0, -45.0, 0.0)
    body = make_camera(gimbal.yaw_deg, gimbal.pitch_deg, aircraft=aircraft, reference=GimbalReference.BODY)
    absolute = make_camera(gimbal.yaw_deg, gimbal.pitch_deg, aircraft=aircraft, reference=GimbalReference.ABSOLUTE)
    assert body.ray([(960, 540)])[0] == pytest.approx(np.array([1, 0, -1]) / math.sqrt(2))
    assert absolute.ray([(960, 540)])[0] == pytest.approx(np.array([0, 1, -1]) / math.sqrt(2))


@pytest.mark.parametrize(
    ("intrinsics", "hfov_deg"),
    [
        (Intrinsics.from_hfov(84.0, 4000, 3000), 84.0),
        (Intrinsics.from_focal_35mm(24.0, 4000, 3000), 71.56),  # diagonal 84 deg, as DJI lists 24 mm lenses
        (Intrinsics.from_focal_sensor(12.29, 17.3, 5280, 3956), 70.3),  # Mavic 3 Hasselblad, 4/3 sensor
        (Intrinsics.from_hfov(84.0, 4000, 3000).scaled(1280, 960), 84.0),
    ],
)
def test_intrinsics_sources(intrinsics: Intrinsics, hfov_deg: float) -> None:
    assert intrinsics.hfov_deg == pytest.approx(hfov_deg, abs=0.05)


def test_profile_intrinsics_follow_the_frame_size() -> None:
    profile = CameraProfile(name="mini3", focal_35mm_mm=24.0, image_width_px=4000, image_height_px=3000)
    assert profile.intrinsics().width_px == 4000
    assert profile.intrinsics(1920, 1440).hfov_deg == pytest.approx(profile.intrinsics().hfov_deg)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"name": "x"}, "give exactly one of hfov_deg"),
        ({"name": "x", "hfov_deg": 80, "focal_35mm_mm": 24}, "give exactly one of hfov_deg"),
        ({"name": "x", "focal_mm": 12.3}, "focal_mm and sensor_width_mm go together"),
        ({"name": "x", "hfov_deg": 200}, "less than 180"),
        ({"name": "x", "hfov_deg": 80, "fov": 3}, "Extra inputs are not permitted"),
        ({"name": "x", "hfov_deg": 80, "gimbal_reference": "sideways"}, "'absolute' or 'body'"),
    ],
)
def test_profile_validation_messages(config: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CameraProfile.model_validate(config)
