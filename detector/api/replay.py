"""`detector replay`: stream a video file to the service as a camera gateway would, and summarise what came back.

With ``--srt`` the video is a recorded flight: each frame is sent with the telemetry of its video time (synced
here, as a drone uplink would send it live), or with ``--upload`` the video and the .SRT go to
``Ingest.SubmitVideo`` and the service syncs them. Both give the same results.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from detector.api._gen.streetwatch.v1 import ingest_pb2 as pb
from detector.api.client import (
    NO_CREDENTIALS,
    ChannelSecurity,
    IngestClient,
    encode_jpeg,
    make_frame,
    timestamp,
    video_chunks,
)
from detector.geo.flight import FlightTelemetry, flight_frames
from detector.ingest.video import VideoError, probe, read_images
from detector.types import DeliveryMode, ImageArray, Telemetry


@dataclass
class ReplaySummary:
    video: str
    source_id: str
    mode: str
    frames_sent: int = 0
    results: int = 0
    frames_ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    frames_dropped_total: int = 0
    detections: int = 0
    detections_by_label: dict[str, int] = field(default_factory=dict)
    model: str = ""
    wall_s: float = 0.0
    fps: float = 0.0
    latency_ms_p50: float = 0.0
    latency_ms_p95: float = 0.0
    queued_ms_p50: float = 0.0
    inference_ms_p50: float = 0.0
    telemetry_cues: int = 0
    telemetry_warnings: list[str] = field(default_factory=list)
    frames_with_telemetry: int = 0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def text(self) -> str:
        errors = ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items())) or "none"
        labels = ", ".join(f"{k} {v}" for k, v in sorted(self.detections_by_label.items())) or "none"
        return (
            f"replay of {self.video} as {self.source_id!r} ({self.mode})\n"
            f"  frames sent {self.frames_sent}, answered {self.results}, ok {self.frames_ok}, "
            f"dropped {self.frames_dropped_total}, errors: {errors}\n"
            f"  detections {self.detections}: {labels}\n"
            f"  model {self.model}\n"
            f"  {self.fps:.1f} frames/s over {self.wall_s:.1f} s; latency p50 {self.latency_ms_p50:.0f} ms, "
            f"p95 {self.latency_ms_p95:.0f} ms (queued p50 {self.queued_ms_p50:.0f} ms, "
            f"inference p50 {self.inference_ms_p50:.0f} ms)"
            + (
                f"\n  telemetry: {self.telemetry_cues} SRT cues, {self.frames_with_telemetry} frames with a pose, "
                f"{len(self.telemetry_warnings)} warnings"
                if self.telemetry_cues or self.telemetry_warnings
                else ""
            )
        )


async def replay(
    target: str,
    video: Path,
    source_id: str,
    fps: float = 0.0,
    mode: DeliveryMode = DeliveryMode.LIVE,
    realtime: bool = False,
    start_ts: float | None = None,
    jpeg_quality: int = 90,
    srt: Path | None = None,
    srt_offset_s: float = 0.0,
    upload: bool = False,
    security: ChannelSecurity = NO_CREDENTIALS,
) -> ReplaySummary:
    """Send the video's frames (at most ``fps`` per second of video; 0 = all), or a folder's images at ``fps``
    (1 when 0).

    ``realtime`` paces sending to the video clock, as a live camera would; otherwise frames go as fast as the
    service takes them. Capture times are ``start_ts`` (default: now) plus the video time. ``srt``: the flight's
    DJI telemetry (``srt_offset_s`` added to its cue times); ``upload``: send the file (and SRT) with
    SubmitVideo instead of frame by frame. Raises ``VideoError`` or ``SrtParseError`` on unusable files.
    """
    image_fps = fps if fps > 0 else 1.0
    if video.is_dir():
        if srt is not None or upload:
            raise VideoError(f"{video} is a folder of images; --srt and --upload need a video file")
        next(read_images(video, image_fps))  # a clear error before opening a stream
    else:
        probe(video)
    telemetry = FlightTelemetry(None, 0, None, ())
    if srt is not None:
        telemetry = await asyncio.to_thread(
            FlightTelemetry.from_srt, await asyncio.to_thread(srt.read_bytes), time_offset_s=srt_offset_s
        )
    start = time.time() if start_ts is None else start_ts
    summary = ReplaySummary(str(video), source_id, "lossless" if upload else mode.value)
    summary.telemetry_cues = telemetry.cues
    summary.telemetry_warnings = list(telemetry.warnings)
    tally = _Tally(summary)
    async with IngestClient(target, security=security) as client:
        if upload:
            header = pb.VideoHeader(
                source_id=source_id, start_time=timestamp(start), fps=fps, telemetry_offset_s=srt_offset_s
            )
            srt_bytes = None if srt is None else await asyncio.to_thread(srt.read_bytes)
            async for response in client.submit_video(video_chunks(header, video, srt_bytes)):
                if response.HasField("telemetry"):
                    summary.telemetry_warnings = list(response.telemetry.warnings)
                else:
                    summary.frames_sent += 1
                    tally.add(response.frame)
        else:
            frames = _frames(video, fps, image_fps, telemetry, realtime, summary)
            async for result in client.stream(_messages(frames, source_id, start, mode, jpeg_quality, tally)):
                tally.add(result)
    return tally.finish()


_Item = tuple[float, ImageArray, Telemetry | None]


async def _frames(
    video: Path,
    fps: float,
    image_fps: float,
    telemetry: FlightTelemetry,
    realtime: bool,
    summary: ReplaySummary,
) -> AsyncIterator[_Item]:
    if video.is_dir():
        reader: Iterator[_Item] = ((t, image, None) for t, image in read_images(video, image_fps))
    else:
        every_s = 1.0 / fps if fps > 0 else 0.0
        reader = ((f.video_s, f.image, f.telemetry) for f in flight_frames(video, telemetry.track, every_s))
    began = time.perf_counter()
    while (item := await asyncio.to_thread(next, reader, None)) is not None:
        if realtime and (delay := began + item[0] - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        summary.frames_with_telemetry += item[2] is not None
        yield item


async def _messages(
    frames: AsyncIterator[_Item],
    source_id: str,
    start: float,
    mode: DeliveryMode,
    jpeg_quality: int,
    tally: _Tally,
) -> AsyncIterator[pb.Frame]:
    seq = 0
    async for t, image, pose in frames:
        jpeg = await asyncio.to_thread(encode_jpeg, image, jpeg_quality)
        seq += 1
        tally.sent(seq)
        yield make_frame(source_id, seq, start + t, jpeg=jpeg, telemetry=pose, mode=mode)


class _Tally:
    """Adds up the results as they come back."""

    def __init__(self, summary: ReplaySummary) -> None:
        self.summary = summary
        self._sent_at: dict[int, float] = {}
        self._latencies: list[float] = []
        self._queued: list[float] = []
        self._inference: list[float] = []
        self._errors: Counter[str] = Counter()
        self._labels: Counter[str] = Counter()
        self._began = time.perf_counter()

    def sent(self, seq: int) -> None:
        self._sent_at[seq] = time.perf_counter()
        self.summary.frames_sent += 1

    def add(self, result: pb.FrameResult) -> None:
        summary = self.summary
        summary.results += 1
        now = time.perf_counter()
        if result.seq in self._sent_at:
            self._latencies.append((now - self._sent_at.pop(result.seq)) * 1e3)
        summary.frames_dropped_total = max(summary.frames_dropped_total, result.frames_dropped_total)
        if result.HasField("error"):
            self._errors[pb.FrameErrorCode.Name(result.error.code)] += 1
            return
        summary.frames_ok += 1
        summary.model = f"{result.model.name}@{result.model.version}"
        self._queued.append(result.timings.queued_ms)
        self._inference.append(result.timings.inference_ms)
        for det in result.detections:
            self._labels[det.label] += 1

    def finish(self) -> ReplaySummary:
        summary = self.summary
        summary.wall_s = time.perf_counter() - self._began
        summary.fps = summary.results / summary.wall_s if summary.wall_s > 0 else 0.0
        summary.errors = dict(self._errors)
        summary.detections = sum(self._labels.values())
        summary.detections_by_label = dict(self._labels)
        if self._latencies:
            p50, p95 = np.percentile(self._latencies, [50, 95])
            summary.latency_ms_p50, summary.latency_ms_p95 = float(p50), float(p95)
        if self._queued:
            summary.queued_ms_p50 = float(np.median(self._queued))
            summary.inference_ms_p50 = float(np.median(self._inference))
        return summary
