"""One pinhole camera model for both directions: world -> pixel (the simulator renders with it) and
pixel -> ray (ground projection).

Conventions:

- World frame: local ENU metres (x east, y north, z up); the ground is z = 0.
- Pixels: (u, v) with (0, 0) the top-left corner of the image, u right, v down; the principal point is the
  image centre. No lens distortion (DJI video is already undistorted).
- Angles in degrees, as DJI writes them: yaw clockwise from north, pitch positive up (gimbal pitch -90 looks
  straight down), roll positive right side down. A yaw, pitch, roll triple is applied in that order
  (intrinsic Z-Y-X in north-east-down, the aerospace convention), for aircraft and gimbal alike.
- ``GimbalReference.ABSOLUTE`` (DJI default: ``gb_yaw/gb_pitch/gb_roll`` and ``G.PRY`` are relative to the
  horizon and north): the camera attitude is the gimbal attitude; the aircraft attitude is ignored because the
  gimbal cancels it. ``GimbalReference.BODY`` (a fixed or body-referenced mount): camera = aircraft attitude
  followed by the gimbal angles in the airframe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

Float64Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)
# Camera axes (x right, y down, z forward) in body axes (forward, right, down); and NED -> ENU.
_CAM_IN_BODY = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
_NED_TO_ENU = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])


class GimbalReference(StrEnum):
    """What the gimbal angles are measured from."""

    ABSOLUTE = "absolute"
    BODY = "body"


@dataclass(frozen=True)
class Attitude:
    """Yaw (clockwise from north), pitch (up positive), roll (right side down positive), degrees."""

    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    roll_deg: float = 0.0

    def matrix_ned(self) -> Float64Array:
        """Rotation from this body's (forward, right, down) axes to north-east-down."""
        y, p, r = (math.radians(a) for a in (self.yaw_deg, self.pitch_deg, self.roll_deg))
        rz = np.array([[math.cos(y), -math.sin(y), 0.0], [math.sin(y), math.cos(y), 0.0], [0.0, 0.0, 1.0]])
        ry = np.array([[math.cos(p), 0.0, math.sin(p)], [0.0, 1.0, 0.0], [-math.sin(p), 0.0, math.cos(p)]])
        rx = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(r), -math.sin(r)], [0.0, math.sin(r), math.cos(r)]])
        result: Float64Array = rz @ ry @ rx
        return result


def camera_rotation(
    gimbal: Attitude, aircraft: Attitude | None = None, reference: GimbalReference = GimbalReference.ABSOLUTE
) -> Float64Array:
    """Rotation taking camera axes (x right, y down, z forward) to ENU; see the module conventions."""
    body_to_ned = gimbal.matrix_ned()
    if reference is GimbalReference.BODY and aircraft is not None:
        body_to_ned = aircraft.matrix_ned() @ body_to_ned
    result: Float64Array = _NED_TO_ENU @ body_to_ned @ _CAM_IN_BODY
    return result


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics for one image size, square pixels, principal point at the centre."""

    focal_px: float
    width_px: int
    height_px: int

    def __post_init__(self) -> None:
        if not (self.focal_px > 0.0 and self.width_px > 0 and self.height_px > 0):
            raise ValueError(f"invalid intrinsics {self}")

    @classmethod
    def from_hfov(cls, hfov_deg: float, width_px: int, height_px: int) -> Intrinsics:
        if not 0.0 < hfov_deg < 180.0:
            raise ValueError(f"hfov_deg {hfov_deg} is outside (0, 180)")
        return cls(width_px / 2.0 / math.tan(math.radians(hfov_deg) / 2.0), width_px, height_px)

    @classmethod
    def from_focal_35mm(cls, focal_35mm_mm: float, width_px: int, height_px: int) -> Intrinsics:
        """35 mm equivalent focal length, matched on the diagonal (CIPA, as DJI specifies its lenses)."""
        return cls(math.hypot(width_px, height_px) * focal_35mm_mm / _FULL_FRAME_DIAGONAL_MM, width_px, height_px)

    @classmethod
    def from_focal_sensor(cls, focal_mm: float, sensor_width_mm: float, width_px: int, height_px: int) -> Intrinsics:
        """Real focal length and the width of the sensor area that the image covers."""
        return cls(focal_mm * width_px / sensor_width_mm, width_px, height_px)

    @property
    def hfov_deg(self) -> float:
        return math.degrees(2.0 * math.atan(self.width_px / 2.0 / self.focal_px))

    @property
    def matrix(self) -> Float64Array:
        return np.array(
            [
                [self.focal_px, 0.0, self.width_px / 2.0],
                [0.0, self.focal_px, self.height_px / 2.0],
                [0, 0, 1.0],
            ]
        )

    def scaled(self, width_px: int, height_px: int) -> Intrinsics:
        """The same lens for a frame resized to ``width_px`` (the field of view is kept)."""
        return Intrinsics(self.focal_px * width_px / self.width_px, width_px, height_px)


def verify_one_intrinsics_source(profile: CameraProfile) -> None:
    sources = [
        profile.hfov_deg is not None,
        profile.focal_35mm_mm is not None,
        profile.focal_mm is not None or profile.sensor_width_mm is not None,
    ]
    if sum(sources) != 1:
        raise ValueError(
            f"camera profile {profile.name!r}: give exactly one of hfov_deg, focal_35mm_mm, "
            "or focal_mm with sensor_width_mm"
        )
    if (profile.focal_mm is None) != (profile.sensor_width_mm is None):
        raise ValueError(f"camera profile {profile.name!r}: focal_mm and sensor_width_mm go together")


class CameraProfile(BaseModel):
    """A drone camera. Example: ``CameraProfile(name="mini3", focal_35mm_mm=24)``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Profile name, e.g. the drone model")
    hfov_deg: float | None = Field(default=None, gt=0, lt=180, description="Horizontal field of view, degrees")
    focal_35mm_mm: float | None = Field(
        default=None, gt=0, description="35 mm equivalent focal length (diagonal match), as DJI lists it"
    )
    focal_mm: float | None = Field(default=None, gt=0, description="Real focal length; needs sensor_width_mm")
    sensor_width_mm: float | None = Field(
        default=None, gt=0, description="Width of the sensor area the image covers; needs focal_mm"
    )
    image_width_px: int = Field(default=3840, gt=0, description="Default image width when a frame gives none")
    image_height_px: int = Field(default=2160, gt=0, description="Default image height when a frame gives none")
    gimbal_reference: GimbalReference = Field(
        default=GimbalReference.ABSOLUTE,
        description="'absolute': gimbal angles relative to horizon and north (DJI); 'body': to the airframe",
    )

    @model_validator(mode="after")
    def _verify(self) -> CameraProfile:
        verify_one_intrinsics_source(self)
        return self

    def intrinsics(self, width_px: int | None = None, height_px: int | None = None) -> Intrinsics:
        """Intrinsics for a frame of the given size (the profile's default size when omitted)."""
        w, h = width_px or self.image_width_px, height_px or self.image_height_px
        if self.hfov_deg is not None:
            return Intrinsics.from_hfov(self.hfov_deg, w, h)
        if self.focal_35mm_mm is not None:
            return Intrinsics.from_focal_35mm(self.focal_35mm_mm, w, h)
        assert self.focal_mm is not None and self.sensor_width_mm is not None  # by verify_one_intrinsics_source
        return Intrinsics.from_focal_sensor(self.focal_mm, self.sensor_width_mm, w, h)


class PinholeCamera:
    """A posed camera: ``project`` world points to pixels, ``ray`` pixels to world directions."""

    def __init__(self, intrinsics: Intrinsics, rotation: Float64Array, position_enu_m: npt.ArrayLike) -> None:
        self.intrinsics = intrinsics
        self.rotation = np.asarray(rotation, np.float64).reshape(3, 3)
        self.position_enu_m = np.asarray(position_enu_m, np.float64).reshape(3)

    @classmethod
    def from_angles(
        cls,
        intrinsics: Intrinsics,
        position_enu_m: npt.ArrayLike,
        gimbal: Attitude,
        aircraft: Attitude | None = None,
        reference: GimbalReference = GimbalReference.ABSOLUTE,
    ) -> PinholeCamera:
        return cls(intrinsics, camera_rotation(gimbal, aircraft, reference), position_enu_m)

    def project(self, points_enu_m: npt.ArrayLike) -> tuple[Float64Array, BoolArray]:
        """Nx3 ENU points -> (Nx2 pixels, in-front mask). Points behind the camera get NaN pixels."""
        points = np.asarray(points_enu_m, np.float64).reshape(-1, 3)
        cam = (points - self.position_enu_m) @ self.rotation
        in_front = cam[:, 2] > 1e-9
        depth = np.where(in_front, cam[:, 2], np.nan)
        f = self.intrinsics.focal_px
        u = f * cam[:, 0] / depth + self.intrinsics.width_px / 2.0
        v = f * cam[:, 1] / depth + self.intrinsics.height_px / 2.0
        return np.stack([u, v], axis=1), in_front

    def ray(self, pixels_px: npt.ArrayLike) -> Float64Array:
        """Nx2 pixels -> Nx3 unit directions in ENU, from the camera centre."""
        pixels = np.asarray(pixels_px, np.float64).reshape(-1, 2)
        f = self.intrinsics.focal_px
        cam = np.stack(
            [
                (pixels[:, 0] - self.intrinsics.width_px / 2.0) / f,
                (pixels[:, 1] - self.intrinsics.height_px / 2.0) / f,
                np.ones(len(pixels)),
            ],
            axis=1,
        )
        world = cam @ self.rotation.T
        result: Float64Array = world / np.linalg.norm(world, axis=1, keepdims=True)
        return result
