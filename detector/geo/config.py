"""Per-source geo settings: how a source's detections get a place on the map.

One ``SourceGeo`` sits in each source's rules (``rules.sources.<id>.geo``). A fixed camera gives a ground
``calibration`` (control points, fitted at start-up), or only its ``position``, or both (the position is then
its pose). A drone (``camera: moving``) gives its ``camera_profile``; its pose comes with every frame. Example::

    rules:
      sources:
        cam-7:
          geo:
            calibration: {control_points: [{x_px: 102, y_px: 980, lat: 39.90421, lon: 116.40739}, ...]}
            zones: [{id: market-street, prohibited_classes: [stall],
                     geometry: {type: Polygon, coordinates: [[[116.4071, 39.9040], ...]]}}]
        drone-2:
          camera: moving
          geo: {camera_profile: {name: mavic3, focal_35mm_mm: 24}, dedup_radius_m: 10}
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from detector.geo.calibration import ControlPoint, GroundCalibration
from detector.geo.camera import CameraProfile
from detector.geo.errors import CalibrationError, ZoneError
from detector.geo.projection import ProjectionSigmas
from detector.geo.zones import GeoZone, zone_from_geometry


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CalibrationConfig(_Strict):
    """Control points of a fixed camera; the pixel -> ground homography is fitted from them with RANSAC."""

    control_points: list[ControlPoint] = Field(
        min_length=4, description="At least 4 surveyed points (pixel <-> lat/lon) on the ground, not on one line."
    )
    frame_size_px: tuple[PositiveInt, PositiveInt] | None = Field(
        default=None,
        description="(width, height) of the image the points were picked on; pixels of a stream of another "
        "size are scaled to it. None: the stream's own pixels.",
    )
    ransac_threshold_m: float = Field(
        default=1.0, gt=0, description="A control point farther than this from the fit is an outlier, metres."
    )
    pixel_sigma_px: float = Field(
        default=2.0, ge=0, description="Error of a box's bottom centre, pixels; part of each accuracy_m."
    )
    min_accuracy_m: float = Field(
        default=0.5, gt=0, description="Floor of every accuracy_m, for what the fit cannot see (survey error)."
    )

    @model_validator(mode="after")
    def _verify(self) -> Self:
        verify_calibration_fits(self)
        return self

    def fit(self) -> GroundCalibration:
        """The fitted calibration; raises ``CalibrationError`` on a degenerate set."""
        return GroundCalibration.fit(
            self.control_points,
            ransac_threshold_m=self.ransac_threshold_m,
            pixel_sigma_px=self.pixel_sigma_px,
            min_accuracy_m=self.min_accuracy_m,
        )


def verify_calibration_fits(config: CalibrationConfig) -> None:
    # Fitting is cheap (milliseconds), so a degenerate set fails when the settings load, under its source's key.
    try:
        config.fit()
    except CalibrationError as exc:
        raise ValueError(f"ground calibration: {exc}") from None


class FixedPosition(_Strict):
    """Where a fixed camera stands. Alone, it locates every detection at the camera (SOURCE_FIXED)."""

    lat: float = Field(ge=-90, le=90, description="WGS84 latitude of the camera, degrees.")
    lon: float = Field(ge=-180, le=180, description="WGS84 longitude of the camera, degrees.")
    height_m: float | None = Field(default=None, ge=0, description="Mounting height above the ground, metres.")
    accuracy_m: float = Field(
        default=50.0,
        gt=0,
        description="accuracy_m of SOURCE_FIXED locations: about how far from the camera what it sees may be.",
    )


class GeoZoneConfig(_Strict):
    """A prohibited area in lat/lon: a GeoJSON Polygon or MultiPolygon geometry ([lon, lat] order)."""

    id: str = Field(min_length=1, description="Zone id, reported as zone_id on events.")
    geometry: dict[str, Any] = Field(
        description="GeoJSON geometry, e.g. {type: Polygon, coordinates: [[[lon, lat], ...]]}, WGS84."
    )
    prohibited_classes: list[str] = Field(
        min_length=1, description="Detection classes whose located ground point may not be inside the area."
    )

    @model_validator(mode="after")
    def _verify(self) -> Self:
        try:
            self.area()
        except ZoneError as exc:
            raise ValueError(str(exc)) from None
        return self

    def area(self) -> GeoZone:
        return zone_from_geometry(self.geometry, self.id)


class SourceGeo(_Strict):
    """How one source is geotagged. All unset (the default): its events carry no location."""

    calibration: CalibrationConfig | None = Field(
        default=None, description="Fixed cameras: ground calibration; locations are HOMOGRAPHY."
    )
    position: FixedPosition | None = Field(
        default=None,
        description="Fixed cameras: the camera's position, its pose on events; without a calibration every "
        "location is this position (SOURCE_FIXED).",
    )
    camera_profile: CameraProfile | None = Field(
        default=None,
        description="Moving cameras (drones): the camera's field of view or focal length. Without it, frames "
        "must carry telemetry.hfov_deg to be located.",
    )
    sigmas: ProjectionSigmas = Field(
        default_factory=ProjectionSigmas, description="Moving cameras: assumed pose errors, which set accuracy_m."
    )
    max_range_m: float = Field(
        default=1000.0,
        gt=0,
        description="Moving cameras: ground points farther than this from the drone are not located.",
    )
    zones: list[GeoZoneConfig] = Field(
        default_factory=list,
        description="Prohibited areas in lat/lon, alongside pixel zones; need a calibration or a moving camera.",
    )
    dedup_radius_m: float = Field(
        default=10.0,
        gt=0,
        description="Moving cameras: a sighting within this ground distance of a place of its category is "
        "that place (about 3.5x the per-axis location noise).",
    )
    pass_gap_s: float = Field(
        default=20.0,
        gt=0,
        description="Moving cameras: a sighting this long after a place was last seen starts a new pass.",
    )
    confirm_passes: int | None = Field(
        default=2,
        ge=2,
        description="Moving cameras: a place seen on this many passes opens even when no single pass confirmed "
        "it (k of n seconds); None: passes do not add up.",
    )
    clear_after_in_view_s: float = Field(
        default=3.0,
        gt=0,
        description="Moving cameras: an open incident clears after its place was in view this long without a "
        "sighting (a drone flying elsewhere clears nothing; clear_after_s is for fixed cameras).",
    )
    max_observations: int = Field(
        default=256, ge=1, description="Moving cameras: most recent sightings a place's robust location uses."
    )
