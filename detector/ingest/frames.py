"""What a way in (gRPC, a recorded video, an RTSP puller) hands the frame pipeline: one frame as it arrived.

The image is still in the form it came in (encoded bytes, raw pixels, or already decoded by a video reader);
the decode stage turns it into a :class:`detector.types.Frame`.
"""

from __future__ import annotations

from dataclasses import dataclass

from detector.ingest.decode import FrameRejected
from detector.types import DeliveryMode, ImageArray, Telemetry


@dataclass(frozen=True)
class EncodedImage:
    """JPEG or PNG bytes."""

    data: bytes


@dataclass(frozen=True)
class RawPixels:
    """8-bit 3-channel pixels, rows top to bottom, no padding."""

    width: int
    height: int
    rgb: bool  # False: BGR
    data: bytes


@dataclass(frozen=True)
class DecodedImage:
    """Pixels a video reader already decoded (HxWx3 BGR), and what decoding them cost."""

    image: ImageArray
    decode_ms: float = 0.0


ImagePayload = EncodedImage | RawPixels | DecodedImage


@dataclass(frozen=True)
class FrameInput:
    """One frame as it arrived. ``capture_ts`` is seconds since the epoch, from the capture clock."""

    source_id: str
    seq: int
    capture_ts: float
    image: ImagePayload
    telemetry: Telemetry | None = None
    mode: DeliveryMode = DeliveryMode.LIVE
    gap_before_s: float = 0.0  # capture time lost before this frame (the source reconnected); 0: none
    recorded: bool = False  # a recorded video's frame (SubmitVideo): not held to the live frame-rate cap


@dataclass(frozen=True)
class Unreadable:
    """A message that could not even become a :class:`FrameInput` (no capture time, malformed telemetry...):
    it still gets its per-frame error, in order with the others."""

    source_id: str
    seq: int
    error: FrameRejected
