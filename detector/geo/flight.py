"""A recorded flight: a video file and its DJI .SRT, as frames with the telemetry of their video time.

The service (``Ingest.SubmitVideo``) and the client (``detector replay VIDEO --srt FILE``) both read a flight
through here, so a frame gets the same telemetry whichever side syncs it: the results of an upload equal those
of a live uplink sending the same frames with the same telemetry.

Example::

    telemetry = FlightTelemetry.from_srt(Path("DJI_0001.SRT").read_bytes())
    for frame in flight_frames(Path("DJI_0001.MP4"), telemetry.track):
        frame.video_s, frame.image, frame.telemetry  # telemetry interpolated between 1 Hz cues
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from detector.geo.srt import GpsOrder, parse_srt
from detector.geo.sync import TelemetryTrack
from detector.ingest.video import read_frames
from detector.types import ImageArray, Telemetry

NO_SRT = "no .SRT telemetry was given: frames carry no pose, so drone detections get no location"


@dataclass(frozen=True)
class FlightTelemetry:
    """The telemetry track of a flight (None without an SRT) and what reading it found."""

    track: TelemetryTrack | None
    cues: int
    gps_order: GpsOrder | None
    warnings: tuple[str, ...]

    @classmethod
    def from_srt(cls, srt: bytes | str | None, *, time_offset_s: float = 0.0) -> FlightTelemetry:
        """Parse ``srt`` (raises ``SrtParseError`` when it holds no telemetry); ``None``: a flight without."""
        if srt is None:
            return cls(None, 0, None, (NO_SRT,))
        parsed = parse_srt(srt)
        track = TelemetryTrack.from_srt(parsed.cues, time_offset_s=time_offset_s)
        return cls(track, len(parsed.cues), parsed.gps_order, tuple(parsed.warnings))

    @property
    def span_s(self) -> tuple[float, float]:
        """Video time (first, last) the telemetry covers; (0, 0) without."""
        return (0.0, 0.0) if self.track is None else self.track.span_s


@dataclass(frozen=True)
class FlightFrame:
    video_s: float
    image: ImageArray
    telemetry: Telemetry | None


def flight_frames(video: Path | str, track: TelemetryTrack | None, every_s: float = 0.0) -> Iterator[FlightFrame]:
    """The video's frames (at most one per ``every_s`` of video), each with the telemetry of its video time.

    Raises ``detector.ingest.video.VideoError`` when the file cannot be opened or decoded.
    """
    for video_s, image in read_frames(video, every_s):
        yield FlightFrame(video_s, image, None if track is None else track.at(video_s))
