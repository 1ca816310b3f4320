"""The geo stage, between tracking and rules: where each detection stands on the map, per source.

Each source's kind is chosen once, from its rules (``camera: fixed`` or ``moving``):

- Fixed camera with a ground calibration: the bottom centre of the box through the fitted homography
  (HOMOGRAPHY). The calibration is fitted once per source, when the source is first seen.
- Fixed camera with only a position: every detection at the camera (SOURCE_FIXED), with a wide accuracy.
- Moving camera (drone): the bottom centre's ray from the frame's telemetry meets flat ground (DRONE_PROJECTION).
  A detection that cannot be located (no telemetry, ray above the horizon) gets a note saying why; one located
  under an assumption (no gimbal angles: nadir) gets a note saying which. Frames with no detections are located
  too, for the footprint the rules use to tell "gone" from "not looked at".

Example::

    geo = GeoStage(config.rules)
    fixes = geo.locate(frame, tracked)
    events = rules.update(frame.source_id, frame.capture_ts, tracked, (frame.width, frame.height), fixes)
"""

from __future__ import annotations

from functools import partial
from typing import Protocol

import numpy as np

from detector.geo.calibration import CalibrationReport, GroundCalibration
from detector.geo.camera import CameraProfile
from detector.geo.projection import DroneProjector
from detector.rules.config import FixedCamera, MovingCamera, RulesConfig, SourceRules
from detector.types import Detections, FloatArray, Frame, GeoPoint, GroundFixes, LocationMethod, Telemetry

NO_TELEMETRY = "frame has no telemetry: a drone's detections cannot be located without its pose"
NO_CAMERA_MODEL = "no geo.camera_profile for this source and the telemetry gives no hfov_deg"
ABOVE_HORIZON = "the box stands at or above the horizon of the calibrated ground plane"


class _Placer(Protocol):
    def place(self, detections: Detections, frame_size: tuple[int, int], telemetry: Telemetry | None) -> GroundFixes:
        """Ground positions of the detections' bottom centres."""


class _FixedPlacer:
    """A camera that stays put: its calibration's homography, or its position, or nothing."""

    def __init__(self, rules: FixedCamera) -> None:
        self.geo = rules.geo
        self.calibration: GroundCalibration | None = None
        if self.geo.calibration is not None:
            self.calibration = self.geo.calibration.fit()
        p = self.geo.position
        self.pose = None if p is None else Telemetry(lat=p.lat, lon=p.lon, altitude_agl_m=p.height_m)

    def place(self, detections: Detections, frame_size: tuple[int, int], telemetry: Telemetry | None) -> GroundFixes:
        n = len(detections)
        if n == 0:
            return GroundFixes.unlocated(0)
        if self.calibration is not None:
            return self._homography(detections.bottom_centres(), frame_size)
        if self.geo.position is not None:
            p = self.geo.position
            return GroundFixes(
                [GeoPoint(p.lat, p.lon, p.accuracy_m, LocationMethod.SOURCE_FIXED)] * n, [""] * n, self.pose
            )
        return GroundFixes.unlocated(n)

    def _homography(self, points_px: FloatArray, frame_size: tuple[int, int]) -> GroundFixes:
        assert self.calibration is not None and self.geo.calibration is not None
        pixels = np.asarray(points_px, np.float64)
        drawn = self.geo.calibration.frame_size_px
        if drawn is not None:
            # Control points were picked on an image of another size: scale the stream's pixels to it.
            pixels = pixels * (np.array(drawn, np.float64) / np.array(frame_size, np.float64))
        locations = self.calibration.pixel_to_geo(pixels)
        return GroundFixes(locations, ["" if loc is not None else ABOVE_HORIZON for loc in locations], self.pose)


class _MovingPlacer:
    """A drone: each frame's telemetry and the camera profile (or the telemetry's field of view)."""

    def __init__(self, rules: MovingCamera) -> None:
        self.geo = rules.geo
        self.projector = None
        if self.geo.camera_profile is not None:
            self.projector = DroneProjector(self.geo.camera_profile, self.geo.sigmas, self.geo.max_range_m)

    def place(self, detections: Detections, frame_size: tuple[int, int], telemetry: Telemetry | None) -> GroundFixes:
        n = len(detections)
        if telemetry is None:
            return GroundFixes.unlocated(n, NO_TELEMETRY)
        projector = self.projector
        if projector is None:
            if telemetry.hfov_deg is None:
                return GroundFixes.unlocated(n, NO_CAMERA_MODEL, telemetry)
            profile = CameraProfile(name="telemetry hfov", hfov_deg=telemetry.hfov_deg)
            projector = DroneProjector(profile, self.geo.sigmas, self.geo.max_range_m)
        width, height = frame_size
        results = projector.locate(detections.bottom_centres(), telemetry, width, height)
        notes = [r.reason if r.location is None else "; ".join(r.assumptions) for r in results]
        in_view = partial(projector.sees, telemetry=telemetry, width_px=width, height_px=height)
        return GroundFixes([r.location for r in results], notes, telemetry, in_view)


def _placer_for(rules: SourceRules) -> _Placer:
    if isinstance(rules, MovingCamera):
        return _MovingPlacer(rules)
    return _FixedPlacer(rules)


class GeoStage:
    """Locates the detections of every source with that source's geo settings (``rules.sources.<id>.geo``)."""

    def __init__(self, config: RulesConfig) -> None:
        self.config = config
        self._placers: dict[str, _Placer] = {}

    def calibration_reports(self) -> dict[str, CalibrationReport]:
        """Fit every listed source's calibration now and return its report (reprojection error in metres)."""
        reports = {}
        for source_id in self.config.sources:
            placer = self._placer(source_id)
            if isinstance(placer, _FixedPlacer) and placer.calibration is not None:
                reports[source_id] = placer.calibration.report
        return reports

    def locate(self, frame: Frame, detections: Detections) -> GroundFixes:
        """One frame's ground fixes, one per detection row."""
        return self.locate_at(frame.source_id, detections, (frame.width, frame.height), frame.telemetry)

    def locate_at(
        self,
        source_id: str,
        detections: Detections,
        frame_size: tuple[int, int],
        telemetry: Telemetry | None = None,
    ) -> GroundFixes:
        """As :meth:`locate`, for detections whose frame is known only by its size and telemetry."""
        return self._placer(source_id).place(detections, frame_size, telemetry)

    def _placer(self, source_id: str) -> _Placer:
        placer = self._placers.get(source_id)
        if placer is None:
            placer = self._placers[source_id] = _placer_for(self.config.for_source(source_id))
        return placer
