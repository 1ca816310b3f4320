"""The Ingest servicer: frames in, what the model saw out, one result per frame and in order per stream.

A frame for a source the caller's token may not send ends the call with PERMISSION_DENIED (a gateway sending
another's camera is misconfigured or hostile, not unlucky); a frame over the source's rate gets a per-frame
RATE_LIMITED error; more open streams than a client may hold end with RESOURCE_EXHAUSTED.

``SubmitVideo`` takes a recorded flight (video + .SRT), decodes it here and runs each frame, with the telemetry
of its video time, down the same path as a streamed frame (see detector/geo/flight.py).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import grpc

from detector.api import convert
from detector.api._gen.streetwatch.v1 import ingest_pb2 as pb
from detector.api._gen.streetwatch.v1 import ingest_pb2_grpc
from detector.api.auth import require_source
from detector.api.limits import CallSlots, SourceRateLimit, client_key
from detector.api.upload import UploadLimits, UploadRejected, VideoUpload, receive_upload
from detector.geo.errors import SrtParseError
from detector.geo.flight import FlightFrame, FlightTelemetry, flight_frames
from detector.geo.pose import PoseError, check_pose
from detector.inference.batcher import CoreStopped, FrameDropped, InferenceCore
from detector.ingest.decode import FrameRejected, ImageLimits, RejectCode, decode_encoded, decode_raw
from detector.ingest.video import VideoError, probe
from detector.metrics import ServiceMetrics
from detector.types import DeliveryMode, Detections, Frame

T = TypeVar("T")

log = logging.getLogger(__name__)


class FrameStage(Protocol):
    """A step after the model (tracking, rules), called in capture order for each source."""

    async def process(self, frame: Frame, detections: Detections) -> Detections: ...


@dataclass(frozen=True)
class IngestSettings:
    limits: ImageLimits
    allowed_sources: frozenset[str]  # empty: any
    max_inflight_per_stream: int
    max_video_bytes: int = 4 * 1024**3
    max_srt_bytes: int = 64 * 1024**2
    upload_dir: Path | None = None  # where uploaded videos are spooled; None: the system's temp directory
    max_fps_per_source: float | None = None  # None: no rate limit
    max_streams_per_client: int = 16


class SourceForbidden(Exception):
    """The caller's token may not send frames for this source; ends the call with PERMISSION_DENIED."""


@dataclass
class _Processed:
    result: pb.FrameResult
    frame: Frame | None
    detections: Detections | None


class IngestService(ingest_pb2_grpc.IngestServicer):
    """Registered before the server starts; calls get UNAVAILABLE until :meth:`attach` hands it the core."""

    def __init__(
        self,
        settings: IngestSettings,
        metrics: ServiceMetrics,
        decoder: ThreadPoolExecutor,
    ) -> None:
        self._core_or_none: InferenceCore | None = None
        self._settings = settings
        self._metrics = metrics
        self._decoder = decoder
        self._stages: list[FrameStage] = []
        self._model = pb.ModelInfo()
        self._streams = CallSlots(settings.max_streams_per_client, "Ingest streams", "server.max_streams_per_client")
        self._rate = None if settings.max_fps_per_source is None else SourceRateLimit(settings.max_fps_per_source)

    def attach(self, core: InferenceCore, stages: Sequence[FrameStage] = ()) -> None:
        """Start serving with the loaded model and the stages that follow it (tracking, rules)."""
        self._model = pb.ModelInfo(name=core.engine.name, version=core.engine.version)
        self._stages = list(stages)
        self._core_or_none = core

    @property
    def _core(self) -> InferenceCore:
        if self._core_or_none is None:
            raise CoreStopped("the model is still loading")
        return self._core_or_none

    async def Detect(self, request: pb.Frame, context: grpc.aio.ServicerContext) -> pb.FrameResult:
        if (refusal := require_source(request.source_id)) is not None:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, refusal)
        try:
            self._core  # noqa: B018  (raises CoreStopped while the model loads)
            self._check_order(request, {})
            processed = await self._process(request, DeliveryMode.LOSSLESS)
            return await self._finish(processed)
        except CoreStopped:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the service is not serving (starting or shutting down)")
            raise  # unreachable: abort raises

    async def StreamFrames(
        self, request_iterator: AsyncIterator[pb.Frame], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.FrameResult]:
        if self._core_or_none is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the model is still loading; retry when health is SERVING")
        client = client_key(context.peer())
        if (refusal := self._streams.acquire(client)) is not None:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal)
        last_seq: dict[str, int] = {}
        self._metrics.active_streams.inc()
        try:
            frames = _permitted_frames(request_iterator)
            async for result in self._in_order(frames, lambda r: self._process_checked(r, last_seq)):
                yield result
        except CoreStopped:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the service is shutting down; reconnect and resend")
        except SourceForbidden as exc:
            log.warning("frame refused: %s", exc, extra={"client": client})
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        finally:
            self._metrics.active_streams.dec()
            self._streams.release(client)

    async def SubmitVideo(
        self, request_iterator: AsyncIterator[pb.VideoChunk], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.SubmitVideoResponse]:
        if self._core_or_none is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the model is still loading; retry when health is SERVING")
        s = self._settings
        limits = UploadLimits(s.max_video_bytes, s.max_srt_bytes, s.allowed_sources)
        client = client_key(context.peer())
        if (refusal := self._streams.acquire(client)) is not None:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal)
        self._metrics.active_streams.inc()
        try:
            with tempfile.TemporaryDirectory(prefix="submit-video-", dir=s.upload_dir) as spool:
                chunks = _permitted_upload(request_iterator)
                upload = await receive_upload(chunks, limits, Path(spool) / "video")
                telemetry = await asyncio.to_thread(self._open_flight, upload)
                yield pb.SubmitVideoResponse(telemetry=_telemetry_report(telemetry))
                frames = _flight_frames(upload, telemetry)
                async for result in self._in_order(frames, lambda f: self._process_flight_frame(upload, f)):
                    yield pb.SubmitVideoResponse(frame=result)
        except UploadRejected as exc:
            await context.abort(exc.code, exc.message)
        except CoreStopped:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the service is shutting down; submit the video again")
        finally:
            self._metrics.active_streams.dec()
            self._streams.release(client)

    def _open_flight(self, upload: VideoUpload) -> FlightTelemetry:
        """Parse the SRT and check that the video opens and fits the image limits, before any frame runs."""
        try:
            telemetry = FlightTelemetry.from_srt(
                None if upload.srt is None else bytes(upload.srt), time_offset_s=upload.telemetry_offset_s
            )
        except SrtParseError as exc:
            raise UploadRejected(grpc.StatusCode.INVALID_ARGUMENT, f".SRT: {exc}") from None
        try:
            info = probe(upload.video_path)
            self._settings.limits.check(info.width, info.height)
        except VideoError as exc:
            raise UploadRejected(grpc.StatusCode.INVALID_ARGUMENT, f"video: {exc}") from None
        except FrameRejected as exc:
            raise UploadRejected(grpc.StatusCode.INVALID_ARGUMENT, f"video: {exc.message}") from None
        return telemetry

    async def _process_flight_frame(self, upload: VideoUpload, item: tuple[int, FlightFrame, float]) -> _Processed:
        seq, flight_frame, decode_ms = item
        source_id = upload.source_id
        self._metrics.frames_received.labels(source_id[:64]).inc()
        try:
            telemetry = None if flight_frame.telemetry is None else check_pose(flight_frame.telemetry)
            frame = Frame(source_id, seq, upload.start_ts + flight_frame.video_s, flight_frame.image, telemetry)
        except PoseError as exc:
            error = FrameRejected(RejectCode.INVALID_FRAME, f"telemetry: {exc}")
            return self._rejected(source_id, seq, error)
        self._metrics.frames_decoded.labels(source_id[:64]).inc()
        return await self._infer(frame, DeliveryMode.LOSSLESS, decode_ms)

    async def _in_order(
        self, items: AsyncIterator[T], process: Callable[[T], Awaitable[_Processed]]
    ) -> AsyncIterator[pb.FrameResult]:
        """Process up to ``max_inflight_per_stream`` items at once (so that they can share batches) and
        yield their results in the order the items came."""
        pending: asyncio.Queue[asyncio.Task[_Processed] | None] = asyncio.Queue()
        slots = asyncio.Semaphore(self._settings.max_inflight_per_stream)

        async def read() -> None:
            try:
                async for item in items:
                    await slots.acquire()
                    await pending.put(asyncio.create_task(_awaited(process(item))))
            finally:
                await pending.put(None)

        reader = asyncio.create_task(read())
        try:
            while (task := await pending.get()) is not None:
                try:
                    processed = await task
                finally:
                    slots.release()
                yield await self._finish(processed)
            await reader  # surfaces a broken request stream (or an undecodable video) as this call's error
        finally:
            reader.cancel()
            while not pending.empty():
                left = pending.get_nowait()
                if left is not None:
                    left.cancel()

    async def _process_checked(self, request: pb.Frame, last_seq: dict[str, int]) -> _Processed:
        try:
            self._check_order(request, last_seq)
        except FrameRejected as exc:
            return self._rejected(request.source_id, request.seq, exc)
        return await self._process(request, convert.delivery_mode(request.delivery_mode))

    def _check_order(self, request: pb.Frame, last_seq: dict[str, int]) -> None:
        previous = last_seq.get(request.source_id)
        if previous is not None and request.seq <= previous:
            raise FrameRejected(
                RejectCode.OUT_OF_ORDER,
                f"seq {request.seq} is not after {previous}, the last frame of {request.source_id!r} on this stream",
            )
        last_seq[request.source_id] = request.seq

    async def _process(self, request: pb.Frame, mode: DeliveryMode) -> _Processed:
        self._metrics.frames_received.labels(request.source_id[:64]).inc()
        if self._rate is not None and (refusal := self._rate.admit(request.source_id)) is not None:
            self._metrics.frame_errors.labels("RATE_LIMITED").inc()
            error = pb.FrameError(code=pb.RATE_LIMITED, message=refusal)
            return _Processed(pb.FrameResult(source_id=request.source_id, seq=request.seq, error=error), None, None)
        started = time.perf_counter()
        try:
            frame = await self._to_frame(request)
        except FrameRejected as exc:
            return self._rejected(request.source_id, request.seq, exc)
        self._metrics.frames_decoded.labels(request.source_id[:64]).inc()
        return await self._infer(frame, mode, (time.perf_counter() - started) * 1e3)

    async def _infer(self, frame: Frame, mode: DeliveryMode, decode_ms: float) -> _Processed:
        source_id = frame.source_id
        try:
            inference = await self._core.submit(frame, mode)
        except FrameDropped as exc:
            return self._rejected(source_id, frame.seq, FrameRejected(RejectCode.DROPPED, str(exc)))
        except CoreStopped:
            raise
        except Exception as exc:  # the model failing on one batch must not end the stream
            log.exception("inference failed", extra={"source_id": source_id, "seq": frame.seq})
            return self._rejected(source_id, frame.seq, FrameRejected(RejectCode.INTERNAL, f"inference failed: {exc}"))
        self._metrics.frames_processed.labels(source_id[:64]).inc()
        self._metrics.stage_ms.labels("decode").observe(decode_ms)
        self._metrics.stage_ms.labels("queue").observe(inference.queued_ms)
        result = pb.FrameResult(
            source_id=source_id,
            seq=frame.seq,
            model=self._model,
            timings=pb.Timings(
                decode_ms=decode_ms,
                queued_ms=inference.queued_ms,
                inference_ms=inference.timings.total_ms,
                batch_size=inference.batch_size,
            ),
            image_width=frame.width,
            image_height=frame.height,
        )
        return _Processed(result, frame, inference.detections)

    async def _finish(self, processed: _Processed) -> pb.FrameResult:
        """Run the per-source stages (in stream order) and fill in the detections and the drop count."""
        if self._core_or_none is not None:
            processed.result.frames_dropped_total = self._core_or_none.dropped_total(processed.result.source_id)
        if processed.frame is None or processed.detections is None:
            return processed.result
        detections = processed.detections
        for stage in self._stages:
            detections = await stage.process(processed.frame, detections)
        processed.result.detections.extend(convert.detections_to_proto(detections, self._core.engine.class_names))
        return processed.result

    async def _to_frame(self, request: pb.Frame) -> Frame:
        convert.check_source_id(request.source_id)
        allowed = self._settings.allowed_sources
        if allowed and request.source_id not in allowed:
            raise FrameRejected(RejectCode.UNKNOWN_SOURCE, f"source {request.source_id!r} is not configured")
        ts = convert.capture_ts(request)
        telemetry = convert.telemetry(request)
        limits = self._settings.limits
        loop = asyncio.get_running_loop()
        kind = request.WhichOneof("image")
        if kind == "encoded":
            image = await loop.run_in_executor(self._decoder, decode_encoded, request.encoded, limits)
        elif kind == "raw":
            raw = request.raw
            if raw.pixel_format not in (pb.BGR8, pb.RGB8):
                raise FrameRejected(RejectCode.INVALID_IMAGE, "raw.pixel_format must be BGR8 or RGB8")
            image = await loop.run_in_executor(
                self._decoder,
                decode_raw,
                raw.width,
                raw.height,
                raw.pixel_format == pb.RGB8,
                raw.data,
                limits,
            )
        else:
            raise FrameRejected(RejectCode.INVALID_IMAGE, "frame carries no image (set encoded or raw)")
        return Frame(request.source_id, request.seq, ts, image, telemetry)

    def _rejected(self, source_id: str, seq: int, exc: FrameRejected) -> _Processed:
        self._metrics.frame_errors.labels(exc.code.value).inc()
        if exc.code is RejectCode.DROPPED:
            self._metrics.frames_dropped.labels(source_id[:64]).inc()
        log.debug("frame rejected", extra={"source_id": source_id, "seq": seq, "code": exc.code.value})
        return _Processed(convert.error_result(source_id, seq, exc.code, exc.message), None, None)


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


async def _permitted_frames(frames: AsyncIterator[pb.Frame]) -> AsyncIterator[pb.Frame]:
    async for frame in frames:
        if (refusal := require_source(frame.source_id)) is not None:
            raise SourceForbidden(refusal)
        yield frame


async def _permitted_upload(chunks: AsyncIterator[pb.VideoChunk]) -> AsyncIterator[pb.VideoChunk]:
    """Refuse an upload for a source the token may not send as soon as its header arrives, not after 4 GB."""
    async for chunk in chunks:
        if chunk.HasField("header") and (refusal := require_source(chunk.header.source_id)) is not None:
            raise UploadRejected(grpc.StatusCode.PERMISSION_DENIED, refusal)
        yield chunk


async def _flight_frames(
    upload: VideoUpload, telemetry: FlightTelemetry
) -> AsyncIterator[tuple[int, FlightFrame, float]]:
    """(seq from 1, frame, decode ms): decoded in a worker thread; a decoding failure ends the call."""
    reader = flight_frames(upload.video_path, telemetry.track, upload.every_s)
    seq = 0
    while True:
        started = time.perf_counter()
        try:
            item = await asyncio.to_thread(next, reader, None)
        except VideoError as exc:
            raise UploadRejected(grpc.StatusCode.INVALID_ARGUMENT, f"video: {exc}") from None
        if item is None:
            return
        seq += 1
        yield seq, item, (time.perf_counter() - started) * 1e3


def _telemetry_report(telemetry: FlightTelemetry) -> pb.TelemetryReport:
    first_s, last_s = telemetry.span_s
    return pb.TelemetryReport(
        cues=telemetry.cues,
        gps_order=telemetry.gps_order or "",
        warnings=list(telemetry.warnings),
        first_s=first_s,
        last_s=last_s,
    )
