"""Geotagging: DJI telemetry, camera model, drone projection, fixed-camera calibration, zones, dedup."""

from __future__ import annotations

from detector.geo.calibration import CalibrationReport, ControlPoint, GroundCalibration
from detector.geo.camera import Attitude, CameraProfile, GimbalReference, Intrinsics, PinholeCamera
from detector.geo.config import CalibrationConfig, FixedPosition, GeoZoneConfig, SourceGeo
from detector.geo.dedup import Association, GeoAssociator, GeoObservation, GeoSite
from detector.geo.enu import LocalTangentPlane
from detector.geo.errors import CalibrationError, GeoError, SrtParseError, ZoneError
from detector.geo.pose import PoseError, check_pose
from detector.geo.projection import DroneProjector, ProjectionResult, ProjectionSigmas
from detector.geo.srt import SrtCue, SrtParseResult, parse_srt, read_srt, write_srt
from detector.geo.sync import TelemetryTrack
from detector.geo.zones import GeoZone, load_geo_zones

__all__ = [
    "Association",
    "Attitude",
    "CalibrationConfig",
    "CalibrationError",
    "CalibrationReport",
    "CameraProfile",
    "ControlPoint",
    "DroneProjector",
    "FixedPosition",
    "GeoAssociator",
    "GeoError",
    "GeoObservation",
    "GeoSite",
    "GeoZone",
    "GeoZoneConfig",
    "GimbalReference",
    "GroundCalibration",
    "Intrinsics",
    "LocalTangentPlane",
    "PinholeCamera",
    "PoseError",
    "ProjectionResult",
    "ProjectionSigmas",
    "SourceGeo",
    "SrtCue",
    "SrtParseError",
    "SrtParseResult",
    "TelemetryTrack",
    "ZoneError",
    "check_pose",
    "load_geo_zones",
    "parse_srt",
    "read_srt",
    "write_srt",
]
