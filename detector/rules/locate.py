"""Where each detection stands on the map, per source, from its geo settings (``SourceRules.geo``).

- Fixed camera with a ground calibration: the bottom centre of the box through the fitted homography
  (HOMOGRAPHY). The calibration is fitted once per source, when the source is first seen.
- Fixed camera with only a position: every detection at the camera (SOURCE_FIXED), with a wide accuracy.
- Moving camera (drone): the bottom centre's ray from the frame's telemetry meets flat ground (DRONE_PROJECTION).
  A detection that cannot be located (no telemetry, ray above the horizon) gets a note saying why; one located
  under an assumption (no gimbal angles: nadir) gets a note saying which.

Example::

    locator = SourceLocator(config.rules)
    engine = RulesEngine(config.rules, class_names, locate=locator.locate)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from detector.geo.calibration import CalibrationReport, GroundCalibration
from detector.geo.camera import CameraProfile
from detector.geo.config import SourceGeo
from detector.geo.projection import DroneProjector
from detector.rules.config import RulesConfig, SourceRules
from detector.types import Detections, FloatArray, Frame, GeoPoint, Telemetry

FIXED_METHOD = "SOURCE_FIXED"
NO_TELEMETRY = "frame has no telemetry: a drone's detections cannot be located without its pose"
NO_CAMERA_MODEL = "no geo.camera_profile for this source and the telemetry gives no hfov_deg"
ABOVE_HORIZON = "the box stands at or above the horizon of the calibrated ground plane"


@dataclass(frozen=True)
class GroundFixes:
    """One frame's ground positions (one per detection row), what to say about each, the source's pose, and
    (moving cameras) which ground points the frame shows: absence means "gone" only where the camera looked."""

    locations: Sequence[GeoPoint | None]
    notes: Sequence[str]  # why a row is not located, or what its location assumed; "" when nothing
    pose: Telemetry | None = None
    in_view: Callable[[GeoPoint], bool] | None = None  # None: the frame's footprint is unknown

    @classmethod
    def unlocated(cls, n: int, note: str = "", pose: Telemetry | None = None) -> GroundFixes:
        return cls([None] * n, [note] * n, pose)


Locate = Callable[[str, Detections, tuple[int, int], Frame | None], GroundFixes]
"""(source_id, detections, frame size (width, height), frame) -> GroundFixes for the detections."""


def _position_pose(geo: SourceGeo) -> Telemetry | None:
    p = geo.position
    return None if p is None else Telemetry(lat=p.lat, lon=p.lon, altitude_agl_m=p.height_m)


class _Placer:
    """Locates the detections of one source."""

    def __init__(self, rules: SourceRules) -> None:
        self.geo = rules.geo
        self.moving = rules.camera == "moving"
        self.calibration: GroundCalibration | None = None
        if not self.moving and self.geo.calibration is not None:
            self.calibration = self.geo.calibration.fit()
        self.projector = None
        if self.geo.camera_profile is not None:
            self.projector = DroneProjector(self.geo.camera_profile, self.geo.sigmas, self.geo.max_range_m)

    def place(self, points_px: FloatArray, frame_size: tuple[int, int], frame: Frame | None) -> GroundFixes:
        n = len(points_px)
        if self.moving:
            return self._project(points_px, frame_size, frame)
        pose = _position_pose(self.geo)
        if self.calibration is not None:
            return self._homography(points_px, frame_size, pose)
        if self.geo.position is not None:
            p = self.geo.position
            return GroundFixes([GeoPoint(p.lat, p.lon, p.accuracy_m, FIXED_METHOD)] * n, [""] * n, pose)
        return GroundFixes.unlocated(n)

    def _homography(self, points_px: FloatArray, frame_size: tuple[int, int], pose: Telemetry | None) -> GroundFixes:
        assert self.calibration is not None and self.geo.calibration is not None
        pixels = np.asarray(points_px, np.float64)
        drawn = self.geo.calibration.frame_size_px
        if drawn is not None:
            # Control points were picked on an image of another size: scale the stream's pixels to it.
            pixels = pixels * (np.array(drawn, np.float64) / np.array(frame_size, np.float64))
        locations = self.calibration.pixel_to_geo(pixels)
        return GroundFixes(locations, ["" if loc is not None else ABOVE_HORIZON for loc in locations], pose)

    def _project(self, points_px: FloatArray, frame_size: tuple[int, int], frame: Frame | None) -> GroundFixes:
        n = len(points_px)
        telemetry = None if frame is None else frame.telemetry
        if telemetry is None:
            return GroundFixes.unlocated(n, NO_TELEMETRY)
        projector = self.projector
        if projector is None:
            if telemetry.hfov_deg is None:
                return GroundFixes.unlocated(n, NO_CAMERA_MODEL, telemetry)
            profile = CameraProfile(name="telemetry hfov", hfov_deg=telemetry.hfov_deg)
            projector = DroneProjector(profile, self.geo.sigmas, self.geo.max_range_m)
        width, height = frame_size
        results = projector.locate(points_px, telemetry, width, height)
        notes = [r.reason if r.location is None else "; ".join(r.assumptions) for r in results]
        in_view = partial(projector.sees, telemetry=telemetry, width_px=width, height_px=height)
        return GroundFixes([r.location for r in results], notes, telemetry, in_view)


class SourceLocator:
    """Locates detections of every source with that source's geo settings; ``locate`` fits ``Locate``."""

    def __init__(self, config: RulesConfig) -> None:
        self._config = config
        self._placers: dict[str, _Placer] = {}

    def calibration_reports(self) -> dict[str, CalibrationReport]:
        """Fit every listed source's calibration now and return its report (reprojection error in metres)."""
        reports = {}
        for source_id, rules in self._config.sources.items():
            calibration = self._placer(source_id, rules).calibration
            if calibration is not None:
                reports[source_id] = calibration.report
        return reports

    def locate(
        self, source_id: str, detections: Detections, frame_size: tuple[int, int], frame: Frame | None
    ) -> GroundFixes:
        placer = self._placer(source_id, self._config.for_source(source_id))
        return placer.place(detections.bottom_centres(), frame_size, frame)

    def _placer(self, source_id: str, rules: SourceRules) -> _Placer:
        placer = self._placers.get(source_id)
        if placer is None:
            placer = self._placers[source_id] = _Placer(rules)
        return placer
