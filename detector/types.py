"""Internal types passed between stages: one value per boundary, plain dataclasses of numpy arrays.

The proto lives only in ``detector/api``; every other package speaks these types.
Time is seconds (``capture_ts``, float, from the capture timestamp), never a frame count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
ImageArray = npt.NDArray[np.uint8]


class DeliveryMode(Enum):
    """What the service does when a source sends faster than it can be served."""

    LIVE = "live"  # drop the oldest queued frame of that source
    LOSSLESS = "lossless"  # hold the sender (gRPC flow control) until there is room


@dataclass(frozen=True)
class Telemetry:
    """Drone pose at capture time. Angles in degrees; any field may be unknown (None).

    Aircraft yaw is clockwise from true north; pitch is positive nose-up; gimbal pitch -90 looks straight down.
    """

    lat: float | None = None
    lon: float | None = None
    altitude_agl_m: float | None = None
    aircraft_yaw_deg: float | None = None
    aircraft_pitch_deg: float | None = None
    aircraft_roll_deg: float | None = None
    gimbal_yaw_deg: float | None = None
    gimbal_pitch_deg: float | None = None
    gimbal_roll_deg: float | None = None
    hfov_deg: float | None = None

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if value is not None and not math.isfinite(value):
                raise ValueError(f"telemetry {name} must be finite, got {value}")
        if self.lat is not None and not -90.0 <= self.lat <= 90.0:
            raise ValueError(f"telemetry lat {self.lat} is outside [-90, 90]")
        if self.lon is not None and not -180.0 <= self.lon <= 180.0:
            raise ValueError(f"telemetry lon {self.lon} is outside [-180, 180]")
        if self.hfov_deg is not None and not 0.0 < self.hfov_deg < 180.0:
            raise ValueError(f"telemetry hfov_deg {self.hfov_deg} is outside (0, 180)")


@dataclass
class Frame:
    """One decoded image from a source: HxWx3 uint8 BGR.

    ``image`` is what the model sees. A large JPEG is decoded reduced in the DCT domain (``scale`` 2, 4 or 8:
    detector/ingest/decode.py); ``width`` and ``height`` are then still the full frame's, every box and zone
    stays in full-frame pixels, and :meth:`full_image` decodes the kept ``jpeg`` at full resolution for
    evidence. A JPEG decoded on the GPU (nvJPEG) is ``device_image``, HxWx3 BGR uint8 on the model's device,
    and ``image`` is then empty (0x0x3) until :meth:`full_image` decodes the JPEG on the CPU.
    """

    source_id: str
    seq: int
    capture_ts: float
    image: ImageArray
    telemetry: Telemetry | None = None
    scale: int = 1
    full_size: tuple[int, int] | None = None  # (width, height) of the full frame when ``scale`` > 1
    jpeg: bytes | None = None  # the frame's JPEG when ``scale`` > 1 or it was decoded on the GPU
    device_image: Any = None  # a torch.Tensor on CUDA when decoded there (this module does not import torch)

    def __post_init__(self) -> None:
        if self.image.dtype != np.uint8 or self.image.ndim != 3 or self.image.shape[2] != 3:
            raise ValueError(f"image must be HxWx3 uint8, got {self.image.dtype} {self.image.shape}")
        if not math.isfinite(self.capture_ts):
            raise ValueError("capture_ts must be finite")
        if (self.scale != 1 or self.device_image is not None) and (self.full_size is None or self.jpeg is None):
            raise ValueError("a frame decoded reduced or on the GPU needs its full size and its JPEG")

    @property
    def width(self) -> int:
        return self.full_size[0] if self.full_size is not None else int(self.image.shape[1])

    @property
    def height(self) -> int:
        return self.full_size[1] if self.full_size is not None else int(self.image.shape[0])

    @property
    def model_image(self) -> Any:
        """What the model is given: ``device_image`` when the frame was decoded on the GPU, else ``image`` (at
        ``scale``)."""
        return self.device_image if self.device_image is not None else self.image

    def full_image(self) -> ImageArray:
        """The frame at full resolution: ``image`` itself, or its JPEG decoded again (evidence, previews)."""
        if self.jpeg is None or (self.scale == 1 and self.device_image is None):
            return self.image
        import cv2

        decoded = cv2.imdecode(np.frombuffer(self.jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
        if decoded is None:  # decoded reduced once already, so this cannot fail short of memory corruption
            raise ValueError(f"frame {self.seq} of {self.source_id}: its JPEG no longer decodes")
        return np.asarray(decoded, dtype=np.uint8)


def _empty_f32(*shape: int) -> FloatArray:
    return np.zeros(shape, dtype=np.float32)


def _empty_i64() -> IntArray:
    return np.zeros((0,), dtype=np.int64)


@dataclass
class Detections:
    """Parallel arrays for N objects in one frame; boxes are x1 y1 x2 y2 in that frame's own pixels."""

    xyxy: FloatArray = field(default_factory=lambda: _empty_f32(0, 4))
    confidence: FloatArray = field(default_factory=lambda: _empty_f32(0))
    class_id: IntArray = field(default_factory=_empty_i64)
    track_id: IntArray | None = None  # -1 = not tracked; None until a tracker ran

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        self.confidence = np.asarray(self.confidence, dtype=np.float32).reshape(-1)
        self.class_id = np.asarray(self.class_id, dtype=np.int64).reshape(-1)
        n = len(self.xyxy)
        if len(self.confidence) != n or len(self.class_id) != n:
            raise ValueError(
                f"detections arrays disagree: {n} boxes, {len(self.confidence)} scores, {len(self.class_id)} ids"
            )
        if self.track_id is not None:
            self.track_id = np.asarray(self.track_id, dtype=np.int64).reshape(-1)
            if len(self.track_id) != n:
                raise ValueError(f"track_id has {len(self.track_id)} entries for {n} boxes")
        if n and not np.all(np.isfinite(self.xyxy)):
            raise ValueError("boxes must be finite")

    def __len__(self) -> int:
        return len(self.xyxy)

    def bottom_centres(self) -> FloatArray:
        """Ground-contact point of each box (bottom centre), Nx2 pixels."""
        x = (self.xyxy[:, 0] + self.xyxy[:, 2]) / 2.0
        return np.stack([x, self.xyxy[:, 3]], axis=1).astype(np.float32)

    def subset(self, keep: npt.NDArray[np.bool_] | IntArray) -> Detections:
        return Detections(
            xyxy=self.xyxy[keep],
            confidence=self.confidence[keep],
            class_id=self.class_id[keep],
            track_id=None if self.track_id is None else self.track_id[keep],
        )


class LocationMethod(StrEnum):
    """How an incident's ground position was obtained."""

    HOMOGRAPHY = "HOMOGRAPHY"  # a fixed camera's ground calibration
    DRONE_PROJECTION = "DRONE_PROJECTION"  # a moving camera's ray from its telemetry onto flat ground
    SOURCE_FIXED = "SOURCE_FIXED"  # the camera's own position (no calibration)


class EvidenceKind(StrEnum):
    """What an evidence file shows."""

    FRAME_JPEG = "frame_jpeg"  # the whole frame, the box drawn
    CROP_JPEG = "crop_jpeg"  # the box and its surroundings, nothing drawn (hard negatives are cut from it)


class Severity(StrEnum):
    """An incident category's severity, as the case system ranks it."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


@dataclass(frozen=True)
class GeoPoint:
    """A WGS84 position with its 1-sigma horizontal accuracy and how it was obtained."""

    lat: float
    lon: float
    accuracy_m: float
    method: LocationMethod


@dataclass(frozen=True)
class GroundFixes:
    """What the geo stage adds to one frame's detections: a ground position per detection row (or None), what to
    say about each, the source's pose, and (moving cameras) which ground points the frame shows, so that an
    absence means "gone" only where the camera looked."""

    locations: Sequence[GeoPoint | None]
    notes: Sequence[str]  # why a row is not located, or what its location assumed; "" when nothing
    pose: Telemetry | None = None
    in_view: Callable[[GeoPoint], bool] | None = None  # None: the frame's footprint is unknown

    @classmethod
    def unlocated(cls, n: int, note: str = "", pose: Telemetry | None = None) -> GroundFixes:
        return cls([None] * n, [note] * n, pose)


class EventType(Enum):
    """What happened to an incident: its lifecycle, the case system's verdict, or (category ``STREAM_HEALTH``)
    a source going down, degrading or coming back."""

    OPENED = "OPENED"
    UPDATED = "UPDATED"
    CLEARED = "CLEARED"
    FEEDBACK = "FEEDBACK"  # the case system's verdict: ``case_state``, ``case_id``, ``note``
    SOURCE_DOWN = "SOURCE_DOWN"  # no frame for ingest.stale_after_s; last_seen_ts is the last frame's capture time
    SOURCE_UP = "SOURCE_UP"  # frames are back; clears the SOURCE_DOWN / SOURCE_DEGRADED incident
    SOURCE_DEGRADED = "SOURCE_DEGRADED"  # frame rate below the source's expectation


# The category of SOURCE_DOWN / SOURCE_UP / SOURCE_DEGRADED events: each outage is an incident of its own.
STREAM_HEALTH = "STREAM_HEALTH"


class CaseState(StrEnum):
    """The case system's state of an incident (``Incidents.UpdateCase``, or a connector polling it)."""

    FILED = "FILED"  # a case exists; ``case_id`` is its id (e.g. an Open311 service_request_id)
    ACCEPTED = "ACCEPTED"
    DISPATCHED = "DISPATCHED"
    RESOLVED = "RESOLVED"  # closes the incident; seen again later, a new incident opens
    REJECTED = "REJECTED"  # a false alarm: closes it and suppresses its category at its place for a while

    @property
    def closes(self) -> bool:
        return self in (CaseState.RESOLVED, CaseState.REJECTED)


@dataclass(frozen=True)
class Evidence:
    """A stored evidence file (e.g. a JPEG crop), addressed by content hash."""

    kind: EvidenceKind
    sha256: str
    uri: str


@dataclass(frozen=True)
class IncidentEvent:
    """One change in an incident's life. ``sequence`` is assigned by the store (0 until appended).

    ``event_id`` is a UUID string, unique per event, so that a consumer can de-duplicate on redelivery.
    """

    event_id: str
    incident_id: str
    type: EventType
    category: str
    case_code: str
    label: str
    severity: Severity
    confidence: float
    source_id: str
    first_seen_ts: float
    last_seen_ts: float
    box_xyxy: tuple[float, float, float, float]
    zone_id: str
    rule: str
    model_version: str = ""
    location: GeoPoint | None = None
    evidence: tuple[Evidence, ...] = ()
    sequence: int = 0
    source_pose: Telemetry | None = None  # the source's pose at first sight (drone telemetry, camera position)
    location_note: str = ""  # why ``location`` is None, or what it assumed (e.g. nadir)
    case_state: CaseState | None = None  # FEEDBACK events: the verdict
    case_id: str = ""  # FEEDBACK events: the case system's id for the case
    note: str = ""  # the case system's note (FEEDBACK), or why the event was sent (e.g. the source is down)

    @property
    def duration_s(self) -> float:
        return self.last_seen_ts - self.first_seen_ts
