"""The Ingest servicer: proto frames in, proto results out. It only converts between the wire and the pipeline's
types (:mod:`detector.api.convert`), holds the call-level limits (open streams per client, the token's sources),
and hands each frame to :class:`detector.pipeline.FramePipeline`, which does everything else.

A frame for a source the caller's token may not send is answered with the per-frame error PERMISSION_DENIED and
the stream goes on (one multiplexed gateway stream carries many cameras; one misconfigured camera must not cost
the others their frames); more open streams than a client may hold end with RESOURCE_EXHAUSTED. Everything about
one frame (token's sources, rate, allow-list, decoding, order, drops) is a per-frame error.

In a cluster (``cluster.enabled``), a call for a source whose lease another live replica holds ends with
FAILED_PRECONDITION, the message naming that replica and the trailing metadata ``streetwatch-owner`` giving its
address: a StreamFrames call at the first frame of such a source (the answers to the frames before it come
first), Detect at once, SubmitVideo at its header. ``IngestClient`` with ``follow_owner`` resends there.

``SubmitVideo`` takes a recorded flight (video + .SRT), decodes it here and runs each frame, with the telemetry
of its video time, down the same pipeline as a streamed frame (see detector/geo/flight.py).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from detector.api import convert
from detector.api._gen.streetwatch.v1 import ingest_pb2 as pb
from detector.api._gen.streetwatch.v1 import ingest_pb2_grpc
from detector.api.auth import require_source
from detector.api.client import OWNER_METADATA_KEY
from detector.api.limits import CallSlots, client_key
from detector.api.upload import UploadLimits, UploadRejected, VideoUpload, receive_upload
from detector.cluster.ownership import SourceOwnedElsewhere
from detector.config import ServerSettings
from detector.geo.errors import SrtParseError
from detector.geo.flight import FlightTelemetry, flight_frames
from detector.geo.pose import PoseError, check_pose
from detector.inference.batcher import CoreStopped
from detector.ingest.admission import check_source_id
from detector.ingest.config import IngestSettings
from detector.ingest.decode import FrameRejected, RejectCode
from detector.ingest.frames import DecodedImage, FrameInput, Unreadable
from detector.ingest.video import VideoError, probe
from detector.metrics import ServiceMetrics
from detector.pipeline import FrameOutcome, FramePipeline
from detector.types import DeliveryMode

log = logging.getLogger(__name__)


class IngestService(ingest_pb2_grpc.IngestServicer):
    """Registered before the server starts; calls get UNAVAILABLE until :meth:`attach` hands it the pipeline."""

    def __init__(self, server: ServerSettings, ingest: IngestSettings, metrics: ServiceMetrics) -> None:
        self._pipeline_or_none: FramePipeline | None = None
        self._server = server
        self._ingest = ingest
        self._metrics = metrics
        self._model = pb.ModelInfo()
        self._streams = CallSlots(server.max_streams_per_client, "Ingest streams", "server.max_streams_per_client")

    def attach(self, pipeline: FramePipeline) -> None:
        """Start serving with the loaded model's pipeline."""
        engine = pipeline.core.engine
        self._model = pb.ModelInfo(name=engine.name, version=engine.version)
        self._pipeline_or_none = pipeline

    @property
    def _pipeline(self) -> FramePipeline:
        if self._pipeline_or_none is None:
            raise CoreStopped("the model is still loading")
        return self._pipeline_or_none

    def _result(self, outcome: FrameOutcome) -> pb.FrameResult:
        return convert.outcome_to_proto(outcome, self._model, self._pipeline.class_names)

    async def Detect(self, request: pb.Frame, context: grpc.aio.ServicerContext) -> pb.FrameResult:
        if (refusal := require_source(request.source_id)) is not None:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, refusal)
        try:
            outcome = await self._pipeline.process(convert.frame_input(request, DeliveryMode.LOSSLESS))
            return self._result(outcome)
        except SourceOwnedElsewhere as exc:
            await _refuse_foreign(context, exc)
            raise  # unreachable: abort raises
        except CoreStopped:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the service is not serving (starting or shutting down)")
            raise  # unreachable: abort raises

    async def StreamFrames(
        self, request_iterator: AsyncIterator[pb.Frame], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.FrameResult]:
        if self._pipeline_or_none is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the model is still loading; retry when health is SERVING")
        client = client_key(context.peer())
        if (refusal := self._streams.acquire(client)) is not None:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal)
        self._metrics.active_streams.inc()
        try:
            frames = _permitted_frames(request_iterator, client)
            async for outcome in self._pipeline.stream(frames, self._server.max_inflight_per_stream):
                yield self._result(outcome)
        except SourceOwnedElsewhere as exc:
            await _refuse_foreign(context, exc)
        except CoreStopped:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the service is shutting down; reconnect and resend")
        finally:
            self._metrics.active_streams.dec()
            self._streams.release(client)

    async def SubmitVideo(
        self, request_iterator: AsyncIterator[pb.VideoChunk], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.SubmitVideoResponse]:
        if self._pipeline_or_none is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the model is still loading; retry when health is SERVING")
        s = self._ingest
        limits = UploadLimits(s.max_video_bytes, s.max_srt_bytes, frozenset(s.sources))
        client = client_key(context.peer())
        if (refusal := self._streams.acquire(client)) is not None:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal)
        self._metrics.active_streams.inc()
        try:
            with tempfile.TemporaryDirectory(prefix="submit-video-", dir=s.upload_dir) as spool:
                chunks = _permitted_upload(request_iterator, self._pipeline)
                upload = await receive_upload(chunks, limits, Path(spool) / "video")
                telemetry = await asyncio.to_thread(self._open_flight, upload)
                yield pb.SubmitVideoResponse(telemetry=_telemetry_report(telemetry))
                frames = _flight_frames(upload, telemetry)
                async for outcome in self._pipeline.stream(frames, self._server.max_inflight_per_stream):
                    yield pb.SubmitVideoResponse(frame=self._result(outcome))
        except UploadRejected as exc:
            await context.abort(exc.code, exc.message)
        except SourceOwnedElsewhere as exc:
            await _refuse_foreign(context, exc)
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
            self._ingest.limits.check(info.width, info.height)
        except VideoError as exc:
            raise UploadRejected(grpc.StatusCode.INVALID_ARGUMENT, f"video: {exc}") from None
        except FrameRejected as exc:
            raise UploadRejected(grpc.StatusCode.INVALID_ARGUMENT, f"video: {exc.message}") from None
        return telemetry


async def _permitted_frames(frames: AsyncIterator[pb.Frame], client: str) -> AsyncIterator[FrameInput | Unreadable]:
    """The stream's frames; one for a source the token does not list becomes a per-frame PERMISSION_DENIED (logged
    once per source and stream), and the frames of the other sources go on."""
    refused: set[str] = set()
    async for frame in frames:
        if (refusal := require_source(frame.source_id)) is not None:
            if frame.source_id not in refused:
                refused.add(frame.source_id)
                log.warning("frame refused: %s", refusal, extra={"client": client})
            yield Unreadable(frame.source_id, frame.seq, FrameRejected(RejectCode.PERMISSION_DENIED, refusal))
            continue
        yield convert.frame_input(frame)


async def _permitted_upload(
    chunks: AsyncIterator[pb.VideoChunk], pipeline: FramePipeline
) -> AsyncIterator[pb.VideoChunk]:
    """Refuse an upload for a source the token may not send, or (a cluster) one another replica holds, as soon as
    its header arrives, not after 4 GB."""
    async for chunk in chunks:
        if chunk.HasField("header"):
            source_id = chunk.header.source_id
            if (refusal := require_source(source_id)) is not None:
                raise UploadRejected(grpc.StatusCode.PERMISSION_DENIED, refusal)
            try:
                check_source_id(source_id)
                await pipeline.claim(source_id)
            except FrameRejected:
                pass  # a bad id is refused with its reason when the upload is read; a lease error at the first frame
        yield chunk


async def _refuse_foreign(context: grpc.aio.ServicerContext, exc: SourceOwnedElsewhere) -> None:
    """End the call with FAILED_PRECONDITION and the owner's address in the trailing metadata."""
    log.info("call sent to the source's owner", extra={"source_id": exc.source_id, "owner": exc.owner})
    await context.abort(
        grpc.StatusCode.FAILED_PRECONDITION, str(exc), trailing_metadata=((OWNER_METADATA_KEY, exc.address),)
    )


async def _flight_frames(upload: VideoUpload, telemetry: FlightTelemetry) -> AsyncIterator[FrameInput | Unreadable]:
    """The flight's frames (seq from 1), decoded in a worker thread, each with the telemetry of its video time;
    a decoding failure ends the call."""
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
        decode_ms = (time.perf_counter() - started) * 1e3
        try:
            pose = None if item.telemetry is None else check_pose(item.telemetry)
        except PoseError as exc:
            yield Unreadable(upload.source_id, seq, FrameRejected(RejectCode.INVALID_FRAME, f"telemetry: {exc}"))
            continue
        image = DecodedImage(item.image, decode_ms)
        ts = upload.start_ts + item.video_s
        yield FrameInput(upload.source_id, seq, ts, image, pose, DeliveryMode.LOSSLESS, recorded=True)


def _telemetry_report(telemetry: FlightTelemetry) -> pb.TelemetryReport:
    first_s, last_s = telemetry.span_s
    return pb.TelemetryReport(
        cues=telemetry.cues,
        gps_order=telemetry.gps_order or "",
        warnings=list(telemetry.warnings),
        first_s=first_s,
        last_s=last_s,
    )
