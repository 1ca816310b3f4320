"""`detector replay`: stream a video file to the service as a camera gateway would, and summarise what came back."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from detector.api._gen.streetwatch.v1 import ingest_pb2 as pb
from detector.api.client import IngestClient, encode_jpeg, make_frame
from detector.ingest.video import probe, read_frames, read_images
from detector.types import DeliveryMode


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
) -> ReplaySummary:
    """Send the video's frames (at most ``fps`` per second of video; 0 = all), or a folder's images at ``fps``
    (1 when 0).

    ``realtime`` paces sending to the video clock, as a live camera would; otherwise frames go as fast as the
    service takes them. Capture times are ``start_ts`` (default: now) plus the video time.
    """
    image_fps = fps if fps > 0 else 1.0
    if video.is_dir():
        next(read_images(video, image_fps))  # a clear error before opening a stream
    else:
        probe(video)
    start = time.time() if start_ts is None else start_ts
    sent_at: dict[int, float] = {}
    summary = ReplaySummary(str(video), source_id, mode.value)

    async def frames() -> AsyncIterator[pb.Frame]:
        if video.is_dir():
            reader = read_images(video, image_fps)
        else:
            reader = read_frames(video, every_s=1.0 / fps if fps > 0 else 0.0)
        began = time.perf_counter()
        seq = 0
        while (item := await asyncio.to_thread(next, reader, None)) is not None:
            t, image = item
            jpeg = await asyncio.to_thread(encode_jpeg, image, jpeg_quality)
            if realtime and (delay := began + t - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            seq += 1
            sent_at[seq] = time.perf_counter()
            summary.frames_sent += 1
            yield make_frame(source_id, seq, start + t, jpeg=jpeg, mode=mode)

    latencies: list[float] = []
    queued: list[float] = []
    inference: list[float] = []
    errors: Counter[str] = Counter()
    labels: Counter[str] = Counter()
    began = time.perf_counter()
    async with IngestClient(target) as client:
        async for result in client.stream(frames()):
            summary.results += 1
            latencies.append((time.perf_counter() - sent_at.pop(result.seq, time.perf_counter())) * 1e3)
            summary.frames_dropped_total = max(summary.frames_dropped_total, result.frames_dropped_total)
            if result.HasField("error"):
                errors[pb.FrameErrorCode.Name(result.error.code)] += 1
                continue
            summary.frames_ok += 1
            summary.model = f"{result.model.name}@{result.model.version}"
            queued.append(result.timings.queued_ms)
            inference.append(result.timings.inference_ms)
            for det in result.detections:
                labels[det.label] += 1
    summary.wall_s = time.perf_counter() - began
    summary.fps = summary.results / summary.wall_s if summary.wall_s > 0 else 0.0
    summary.errors = dict(errors)
    summary.detections = sum(labels.values())
    summary.detections_by_label = dict(labels)
    if latencies:
        summary.latency_ms_p50, summary.latency_ms_p95 = (float(v) for v in np.percentile(latencies, [50, 95]))
    if queued:
        summary.queued_ms_p50 = float(np.median(queued))
        summary.inference_ms_p50 = float(np.median(inference))
    return summary
