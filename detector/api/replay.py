"""`detector replay`: stream a video file (or a URL PyAV opens, or a folder of images) to the service as a camera
gateway would, and summarise what came back; ``views`` (detector/api/replay_view.py) show each answered frame.

With ``--srt`` the video is a recorded flight: each frame is sent with the telemetry of its video time (synced
here, as a drone uplink would send it live), or with ``--upload`` the video and the .SRT go to
``Ingest.SubmitVideo`` and the service syncs them. Both give the same results.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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
from detector.api.replay_view import FrameView, iso_time
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
    first_capture_ts: float | None = None  # capture time of the first frame sent (with --upload: the start time)
    last_capture_ts: float | None = None  # of the last frame sent (None with --upload: the service reads the file)
    interrupted: bool = False  # stopped by SIGINT/SIGTERM: the counts are of the frames sent until then
    unanswered: int = 0  # frames sent and never answered (the replay was stopped before their answers came)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def text(self) -> str:
        errors = ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items())) or "none"
        labels = ", ".join(f"{k} {v}" for k, v in sorted(self.detections_by_label.items())) or "none"
        span = ""
        if self.first_capture_ts is not None:
            span = f"\n  capture times {iso_time(self.first_capture_ts)}"
            if self.last_capture_ts is not None:
                span += f" to {iso_time(self.last_capture_ts)}"
        return (
            f"replay of {self.video} as {self.source_id!r} ({self.mode})"
            + (" INTERRUPTED: partial summary" if self.interrupted else "")
            + "\n"
            f"  frames sent {self.frames_sent}, answered {self.results}, ok {self.frames_ok}, "
            f"dropped {self.frames_dropped_total}, errors: {errors}"
            + (f", unanswered {self.unanswered}" if self.unanswered else "")
            + span
            + "\n"
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


def is_url(video: str | Path) -> bool:
    """A URL (``rtsp://``, ``http(s)://``, ``file://``, anything PyAV opens) rather than a local path."""
    return isinstance(video, str) and "://" in video


def video_target(text: str) -> Path | str:
    """What the command line names: a URL, kept as typed, or a path (a video file or a folder of images)."""
    return text if is_url(text) else Path(text)


def default_source_id(video: Path | str) -> str:
    """A file's stem; a URL's last path part (``rtsp://host/cam-7`` -> ``cam-7``), else its host."""
    if not is_url(video):
        return Path(video).stem
    parts = urlsplit(str(video))
    return Path(parts.path).stem or parts.hostname or "replay"


def shown(video: Path | str) -> str:
    """The video as the summary shows it: a URL with any password replaced by ``***``."""
    from detector.gateway.camera import redact_url

    return redact_url(video) if isinstance(video, str) else str(video)


async def replay(
    target: str | Sequence[str],
    video: Path | str,
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
    views: Sequence[FrameView] = (),
    stop: asyncio.Event | None = None,
    abort: asyncio.Event | None = None,
) -> ReplaySummary:
    """Send the video's frames (at most ``fps`` per second of video; 0 = all), or a folder's images at ``fps``
    (1 when 0) to ``target``: an address, or several replicas' (a cluster): a refusal naming the source's owner
    is followed, a replica that is UNAVAILABLE is left for the next (``IngestClient`` with ``follow_owner``).
    ``video`` is a local path or a URL string (kept as given: ``rtsp://``, ``http(s)://``, ``file://``).

    ``realtime`` paces sending to the video clock, as a live camera would; otherwise frames go as fast as the
    service takes them. Capture times are ``start_ts`` (default: now) plus the video time. ``srt``: the flight's
    DJI telemetry (``srt_offset_s`` added to its cue times); ``upload``: send the file (and SRT) with
    SubmitVideo instead of frame by frame. ``views`` are shown each answered frame (with its image when sent
    frame by frame) and closed at the end. Raises ``VideoError`` or ``SrtParseError`` on unusable files.

    ``stop`` set: no further frame is sent, the frames in flight are still answered, and the summary says
    ``interrupted`` (an upload cannot stop halfway, so it is abandoned at once). ``abort`` set: the call is
    abandoned now; frames sent and not answered are counted in ``unanswered``.
    """
    stop = stop or asyncio.Event()
    abort = abort or asyncio.Event()
    image_fps = fps if fps > 0 else 1.0
    url = is_url(video)
    if url and upload:
        raise VideoError(f"--upload sends a local file; {shown(video)} is a URL")
    rate = image_fps
    if isinstance(video, Path) and video.is_dir():
        if srt is not None or upload:
            raise VideoError(f"{video} is a folder of images; --srt and --upload need a video file")
        next(read_images(video, image_fps))  # a clear error before opening a stream
    else:
        info = await asyncio.to_thread(probe, video)
        rate = min(fps, info.fps) if fps > 0 and info.fps > 0 else (info.fps or image_fps)
    telemetry = FlightTelemetry(None, 0, None, ())
    if srt is not None:
        telemetry = await asyncio.to_thread(
            FlightTelemetry.from_srt, await asyncio.to_thread(srt.read_bytes), time_offset_s=srt_offset_s
        )
    start = time.time() if start_ts is None else start_ts
    summary = ReplaySummary(shown(video), source_id, "lossless" if upload else mode.value)
    summary.telemetry_cues = telemetry.cues
    summary.telemetry_warnings = list(telemetry.warnings)
    for view in views:
        view.begin(rate)
    keep_images = any(view.wants_images for view in views)
    tally = _Tally(summary, views, keep_images)
    try:
        async with IngestClient(target, security=security, follow_owner=True) as client:
            if upload:
                call = _upload(client, video, srt, source_id, start, fps, srt_offset_s, tally)
            else:
                frames = _frames(video, fps, image_fps, telemetry, realtime, summary, stop)
                call = _stream(client, _messages(frames, source_id, start, mode, jpeg_quality, tally), tally)
            abandoned = await _until_done_or(call, abort, stop if upload else None)
    finally:
        for view in views:
            view.close()
    summary.interrupted = summary.interrupted or abandoned  # _frames sets it when a stop cut the video short
    return tally.finish()


async def _until_done_or(call: Coroutine[Any, Any, None], abort: asyncio.Event, stop: asyncio.Event | None) -> bool:
    """Run the coroutine ``call`` until it ends (its errors raised) or ``abort`` (or ``stop``) is set, which
    cancels it; True when it was cancelled so."""
    task = asyncio.create_task(call)
    waiters = {asyncio.create_task(abort.wait())}
    if stop is not None:
        waiters.add(asyncio.create_task(stop.wait()))
    try:
        await asyncio.wait({task, *waiters}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
    if task.cancelled():
        return True
    task.result()  # the call's own error, if any
    return False


async def _stream(client: IngestClient, messages: AsyncIterator[pb.Frame], tally: _Tally) -> None:
    async for result in client.stream(messages):
        tally.add(result)


async def _upload(
    client: IngestClient,
    video: Path | str,
    srt: Path | None,
    source_id: str,
    start: float,
    fps: float,
    srt_offset_s: float,
    tally: _Tally,
) -> None:
    summary = tally.summary
    header = pb.VideoHeader(source_id=source_id, start_time=timestamp(start), fps=fps, telemetry_offset_s=srt_offset_s)
    srt_bytes = None if srt is None else await asyncio.to_thread(srt.read_bytes)
    summary.first_capture_ts = start
    async for response in client.submit_video(video_chunks(header, Path(video), srt_bytes)):
        if response.HasField("telemetry"):
            summary.telemetry_warnings = list(response.telemetry.warnings)
        else:
            summary.frames_sent += 1
            tally.add(response.frame)


async def replay_until_interrupted(
    target: str | Sequence[str], video: Path | str, source_id: str, **options: Any
) -> ReplaySummary:
    """``replay`` as a command runs it: the first SIGINT (Ctrl-C) or SIGTERM stops sending and waits for the
    answers to the frames in flight, a second one stops waiting; either way the (partial) summary comes back,
    with ``interrupted`` set."""
    loop = asyncio.get_running_loop()
    stop, abort = asyncio.Event(), asyncio.Event()

    def on_signal() -> None:
        (abort if stop.is_set() else stop).set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
            loop.add_signal_handler(signum, on_signal)
    try:
        return await replay(target, video, source_id, stop=stop, abort=abort, **options)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signum)


_Item = tuple[float, ImageArray, Telemetry | None]


async def _frames(
    video: Path | str,
    fps: float,
    image_fps: float,
    telemetry: FlightTelemetry,
    realtime: bool,
    summary: ReplaySummary,
    stop: asyncio.Event,
) -> AsyncIterator[_Item]:
    if isinstance(video, Path) and video.is_dir():
        reader: Iterator[_Item] = ((t, image, None) for t, image in read_images(video, image_fps))
    else:
        every_s = 1.0 / fps if fps > 0 else 0.0
        reader = ((f.video_s, f.image, f.telemetry) for f in flight_frames(video, telemetry.track, every_s))
    began = time.perf_counter()
    while True:
        if stop.is_set():
            summary.interrupted = True
            break
        item = await asyncio.to_thread(next, reader, None)
        if item is None:
            break
        if realtime and (delay := began + item[0] - time.perf_counter()) > 0:
            with contextlib.suppress(TimeoutError):  # pacing to the video clock; a stop ends the wait
                await asyncio.wait_for(stop.wait(), delay)
        if stop.is_set():
            summary.interrupted = True
            break
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
        tally.sent(seq, start + t, image)
        yield make_frame(source_id, seq, start + t, jpeg=jpeg, telemetry=pose, mode=mode)


class _Tally:
    """Adds up the results as they come back."""

    def __init__(self, summary: ReplaySummary, views: Sequence[FrameView] = (), keep_images: bool = False) -> None:
        self.summary = summary
        self._views = views
        self._keep_images = keep_images
        self._sent_at: dict[int, float] = {}
        self._pending: dict[int, tuple[float, ImageArray | None]] = {}  # seq -> capture time, image (views)
        self._latencies: list[float] = []
        self._queued: list[float] = []
        self._inference: list[float] = []
        self._errors: Counter[str] = Counter()
        self._labels: Counter[str] = Counter()
        self._began = time.perf_counter()

    def sent(self, seq: int, capture_ts: float, image: ImageArray) -> None:
        self._sent_at[seq] = time.perf_counter()
        summary = self.summary
        summary.frames_sent += 1
        if summary.first_capture_ts is None:
            summary.first_capture_ts = capture_ts
        summary.last_capture_ts = capture_ts
        if self._views:
            self._pending[seq] = (capture_ts, image if self._keep_images else None)

    def add(self, result: pb.FrameResult) -> None:
        summary = self.summary
        summary.results += 1
        now = time.perf_counter()
        if result.seq in self._sent_at:
            self._latencies.append((now - self._sent_at.pop(result.seq)) * 1e3)
        if self._views:
            capture_ts, image = self._pending.pop(result.seq, (None, None))
            for view in self._views:
                view.add(result, capture_ts, image)
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
        summary.unanswered = max(summary.frames_sent - summary.results, 0)
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
