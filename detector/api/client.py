"""A small Python client for the Ingest service, as a camera gateway or drone uplink would use it, and the one
place where every client of the service (replay, subscribe, incidents) opens its channel.

Replicas (``cluster.enabled``): ``IngestClient(["a:50051", "b:50051"], follow_owner=True)`` streams to the first,
follows a refusal naming the source's owner (FAILED_PRECONDITION with trailing metadata ``streetwatch-owner``)
to that address, fails over to the next target when one is UNAVAILABLE (a replica killed or stopping), and
resends the frames sent and not yet answered on the new call, so a stream survives a replica's death.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from detector.api._gen.streetwatch.v1 import ingest_pb2 as pb
from detector.api._gen.streetwatch.v1 import ingest_pb2_grpc
from detector.api.convert import telemetry_to_proto
from detector.api.flags import split_targets
from detector.ingest.decode import RejectCode
from detector.types import DeliveryMode, ImageArray, Telemetry

log = logging.getLogger(__name__)

OWNER_METADATA_KEY = "streetwatch-owner"
"""Trailing metadata of a FAILED_PRECONDITION refusal: the address of the replica that owns the source."""


def encode_jpeg(image: ImageArray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(buf.tobytes())


def timestamp(ts: float) -> Timestamp:
    seconds = int(ts // 1)
    return Timestamp(seconds=seconds, nanos=min(round((ts - seconds) * 1e9), 999_999_999))


def make_frame(
    source_id: str,
    seq: int,
    capture_ts: float,
    *,
    jpeg: bytes | None = None,
    image: ImageArray | None = None,
    telemetry: Telemetry | None = None,
    mode: DeliveryMode = DeliveryMode.LIVE,
) -> pb.Frame:
    """A Frame message: ``jpeg`` is sent as encoded bytes, ``image`` (BGR) as a raw image."""
    frame = pb.Frame(
        source_id=source_id,
        seq=seq,
        capture_time=timestamp(capture_ts),
        delivery_mode=pb.LOSSLESS if mode is DeliveryMode.LOSSLESS else pb.LIVE,
    )
    if jpeg is not None:
        frame.encoded = jpeg
    elif image is not None:
        frame.raw.CopyFrom(
            pb.RawImage(width=image.shape[1], height=image.shape[0], pixel_format=pb.BGR8, data=image.tobytes())
        )
    pose = None if telemetry is None else telemetry_to_proto(telemetry)
    if pose is not None and pose.ListFields():  # a pose with no field known is no pose
        frame.telemetry.CopyFrom(pose)
    return frame


@dataclass(frozen=True)
class OutgoingFrame:
    """One frame as a gateway sends it with ``IngestClient.send``: the fields of ``make_frame``, no proto."""

    source_id: str
    seq: int
    capture_ts: float
    jpeg: bytes | None = None  # sent as encoded bytes (JPEG or PNG)
    image: ImageArray | None = None  # else sent raw (BGR)
    telemetry: Telemetry | None = None
    mode: DeliveryMode = DeliveryMode.LIVE
    gap_before_s: float = 0.0  # capture time lost just before this frame because the source reconnected; 0: none


@dataclass(frozen=True)
class FrameAnswer:
    """The service's answer to one frame (a FrameResult), as internal values."""

    source_id: str
    seq: int
    error: RejectCode | None = None  # why the frame was not used (DROPPED: a LIVE frame a newer one replaced)
    error_message: str = ""
    frames_dropped_total: int = 0  # LIVE frames of this source dropped so far
    labels: tuple[str, ...] = ()  # the class label of each detection
    model: str = ""  # "name@version"
    batch_size: int = 0
    decode_ms: float = 0.0
    queued_ms: float = 0.0
    inference_ms: float = 0.0


def frame_message(frame: OutgoingFrame) -> pb.Frame:
    message = make_frame(
        frame.source_id,
        frame.seq,
        frame.capture_ts,
        jpeg=frame.jpeg,
        image=frame.image,
        telemetry=frame.telemetry,
        mode=frame.mode,
    )
    message.gap_before_s = frame.gap_before_s
    return message


def frame_answer(result: pb.FrameResult) -> FrameAnswer:
    """A FrameResult as a ``FrameAnswer``; an error code this client does not know reads as INTERNAL."""
    error = None
    if result.HasField("error"):
        name = pb.FrameErrorCode.Name(result.error.code)
        error = RejectCode[name] if name in RejectCode.__members__ else RejectCode.INTERNAL
    t = result.timings
    return FrameAnswer(
        source_id=result.source_id,
        seq=result.seq,
        error=error,
        error_message=result.error.message,
        frames_dropped_total=result.frames_dropped_total,
        labels=tuple(d.label for d in result.detections),
        model=f"{result.model.name}@{result.model.version}" if result.HasField("model") else "",
        batch_size=t.batch_size,
        decode_ms=t.decode_ms,
        queued_ms=t.queued_ms,
        inference_ms=t.inference_ms,
    )


TOKEN_ENV = "STREETWATCH_TOKEN"
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ChannelSecurity:
    """How a client proves who it is and checks the service: a bearer token, the CA that signed the server's
    certificate (TLS), and a client certificate and key when the server asks for one (mTLS)."""

    token: str | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @classmethod
    def from_flags(
        cls,
        token: str | None,
        ca_file: Path | None,
        cert_file: Path | None = None,
        key_file: Path | None = None,
    ) -> ChannelSecurity:
        """The flags' values, with the token taken from $STREETWATCH_TOKEN when no flag gives one (a token on
        the command line shows in the process list)."""
        return cls(token or os.environ.get(TOKEN_ENV) or None, ca_file, cert_file, key_file)


NO_CREDENTIALS = ChannelSecurity()  # plain text, no token: the loopback default while auth is off


class InsecureChannel(ValueError):
    """The client would send its token in plain text over the network."""


def open_channel(
    target: str,
    security: ChannelSecurity = NO_CREDENTIALS,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> grpc.aio.Channel:
    """A channel to the service: TLS when ``security.ca_file`` is set, plain text otherwise.

    A token is sent on every call. Without TLS that is allowed only to a loopback address (gRPC's local
    credentials), so that a token never crosses a network in the clear; anything else raises ``InsecureChannel``.
    """
    options = [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]
    if (security.cert_file is None) != (security.key_file is None):
        raise ValueError("a client certificate needs its key, and a key its certificate (--tls-cert with --tls-key)")
    if security.ca_file is not None:
        channel_credentials = grpc.ssl_channel_credentials(
            root_certificates=security.ca_file.read_bytes(),
            private_key=None if security.key_file is None else security.key_file.read_bytes(),
            certificate_chain=None if security.cert_file is None else security.cert_file.read_bytes(),
        )
    elif security.cert_file is not None:
        raise ValueError("a client certificate is only sent over TLS: also give the server's CA (--tls-ca)")
    elif security.token is None:
        return grpc.aio.insecure_channel(target, options=options)
    elif _is_loopback_target(target):
        channel_credentials = grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP)
    else:
        raise InsecureChannel(f"refusing to send a token to {target} in plain text: give the server's CA with --tls-ca")
    if security.token is not None:
        channel_credentials = grpc.composite_channel_credentials(
            channel_credentials, grpc.access_token_call_credentials(security.token)
        )
    return grpc.aio.secure_channel(target, channel_credentials, options=options)


def _is_loopback_target(target: str) -> bool:
    host = target.rsplit(":", 1)[0] if target.count(":") == 1 or target.startswith("[") else target
    return is_loopback_host(host)


def is_loopback_host(host: str) -> bool:
    """``127.0.0.1``, ``::1`` (bracketed or not) or ``localhost``; ``0.0.0.0`` and names are not."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def owner_address(exc: grpc.aio.AioRpcError) -> str | None:
    """The owning replica's address when ``exc`` refused a source another replica of a cluster holds."""
    if exc.code() is not grpc.StatusCode.FAILED_PRECONDITION:
        return None
    for key, value in exc.trailing_metadata() or ():
        if key == OWNER_METADATA_KEY:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


@dataclass(frozen=True)
class FollowSettings:
    """How a following client moves between replicas: at once after a call that was answered, then with an
    exponential backoff while no replica answers, giving up (the last error raised) after ``give_up_after_s``
    without an answer. Leave it longer than the cluster's ``lease_s``: a dead owner's sources are taken over only
    when its leases expire."""

    give_up_after_s: float = 60.0
    initial_backoff_s: float = 0.05
    max_backoff_s: float = 1.0


class IngestClient:
    """The Ingest API. ``target``: one address, or several replicas' (a list, or comma-separated; the first is
    used first). With
    ``follow_owner``, ``stream``, ``send`` and ``detect`` follow owner refusals and fail over between the
    targets (see the module's doc); ``target`` is where the next call goes."""

    def __init__(
        self,
        target: str | Sequence[str],
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        security: ChannelSecurity = NO_CREDENTIALS,
        follow_owner: bool = False,
        follow: FollowSettings = FollowSettings(),
    ) -> None:
        self.targets = split_targets([target] if isinstance(target, str) else target)
        if not self.targets:
            raise ValueError("no target: give the service's address (host:port)")
        self.target = self.targets[0]
        self.follow_owner = follow_owner
        self._follow = follow
        self._security = security
        self._max_message_bytes = max_message_bytes
        self._configured = 0  # index in targets of the last configured target used
        self._stalled_since: float | None = None  # monotonic time of the first failure since the last answer
        self._backoff_s = 0.0
        self._channel = open_channel(self.target, security, max_message_bytes)
        self._stub = ingest_pb2_grpc.IngestStub(self._channel)

    async def __aenter__(self) -> IngestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def wait_ready(self, timeout_s: float) -> None:
        await self._channel.channel_ready() if timeout_s <= 0 else await _wait(self._channel, timeout_s)

    def stream(self, frames: AsyncIterable[pb.Frame]) -> AsyncIterator[pb.FrameResult]:
        """One result per frame. With ``follow_owner`` the frames may travel over several calls, to several
        replicas; a frame is resent when its call failed before it was answered (so, after a replica died, a
        frame may have been processed twice)."""
        if self.follow_owner:
            return self._stream_following(frames)
        call = self._stub.StreamFrames(frames)
        return call.__aiter__()  # type: ignore[no-any-return]

    async def _stream_following(self, frames: AsyncIterable[pb.Frame]) -> AsyncIterator[pb.FrameResult]:
        source = _Pull(frames)
        try:
            async for result in self._calls_following(source):
                yield result
        finally:
            source.close()

    async def _calls_following(self, source: _Pull) -> AsyncIterator[pb.FrameResult]:
        pending: dict[tuple[str, int], pb.Frame] = {}  # sent and not answered, in the order sent
        while True:
            call = self._stub.StreamFrames()
            writing = _CallWriter(call, pending, source)
            writer = asyncio.create_task(writing.run())
            reading: asyncio.Future[Any] = asyncio.ensure_future(call.read())
            try:
                while True:
                    await asyncio.wait({reading, writer}, return_when=asyncio.FIRST_COMPLETED)
                    if writer.done() and (error := writer.exception()) is not None:
                        raise error  # the caller's frames failed
                    if not reading.done():
                        continue
                    result = reading.result()  # AioRpcError when the call failed
                    if result is grpc.aio.EOF:
                        return
                    assert isinstance(result, pb.FrameResult)
                    pending.pop((result.source_id, result.seq), None)
                    writing.answered.set()
                    self._answered()
                    yield result
                    reading = asyncio.ensure_future(call.read())
            except grpc.aio.AioRpcError as exc:
                # A write that raced the call's end makes gRPC report INTERNAL, hiding the real status: ask again.
                await self._move_on(exc, again=exc.code() is grpc.StatusCode.INTERNAL and writing.write_failed)
            finally:
                call.cancel()
                for task in (reading, writer):
                    task.cancel()
                await asyncio.gather(reading, writer, return_exceptions=True)

    async def _move_on(self, exc: grpc.aio.AioRpcError, again: bool = False) -> None:
        """After a failed call: follow the owner it names, or fail over to the next target when this one is
        UNAVAILABLE (given several), or (``again``) call the same target again; re-raise anything else, or once
        no replica answered for ``give_up_after_s``."""
        owner = owner_address(exc)
        fail_over = exc.code() is grpc.StatusCode.UNAVAILABLE and len(self.targets) > 1
        if owner is None and not fail_over and not again:
            raise exc
        now = time.monotonic()
        if self._stalled_since is None:
            self._stalled_since, self._backoff_s = now, 0.0
        elif now - self._stalled_since > self._follow.give_up_after_s:
            raise exc
        else:
            self._backoff_s = min(self._follow.max_backoff_s, max(self._follow.initial_backoff_s, 2 * self._backoff_s))
        if again:
            target = self.target
        elif owner is not None:
            target = owner
            log.warning(
                "redirected to the source's owner",
                extra={"target": self.target, "owner": owner, "details": exc.details()},
            )
        else:
            self._configured = (self._configured + 1) % len(self.targets)
            if self.targets[self._configured] == self.target:  # the owner followed was this one: skip it
                self._configured = (self._configured + 1) % len(self.targets)
            target = self.targets[self._configured]
            log.warning(
                "replica unavailable; failing over",
                extra={"target": self.target, "next_target": target, "details": exc.details()},
            )
        await asyncio.sleep(self._backoff_s)
        await self._reconnect(target)

    def _answered(self) -> None:
        self._stalled_since = None

    async def _reconnect(self, target: str) -> None:
        if target == self.target:
            return  # the same channel reconnects by itself
        await self._channel.close()
        self.target = target
        self._channel = open_channel(target, self._security, self._max_message_bytes)
        self._stub = ingest_pb2_grpc.IngestStub(self._channel)

    def submit_video(self, chunks: AsyncIterable[pb.VideoChunk]) -> AsyncIterator[pb.SubmitVideoResponse]:
        """A recorded flight (see ``video_chunks``): the telemetry report, then one FrameResult per frame."""
        call = self._stub.SubmitVideo(chunks)
        return call.__aiter__()  # type: ignore[no-any-return]

    async def send(self, frames: AsyncIterable[OutgoingFrame]) -> AsyncIterator[FrameAnswer]:
        """``stream`` in internal types: one StreamFrames call (several when following replicas), one answer per
        frame, in order per source."""

        async def messages() -> AsyncIterator[pb.Frame]:
            async for frame in frames:
                yield frame_message(frame)

        async for result in self.stream(messages()):
            yield frame_answer(result)

    async def detect(self, frame: pb.Frame, timeout_s: float | None = None) -> pb.FrameResult:
        while True:
            try:
                result: pb.FrameResult = await self._stub.Detect(frame, timeout=timeout_s)
            except grpc.aio.AioRpcError as exc:
                if not self.follow_owner:
                    raise
                await self._move_on(exc)
                continue
            self._answered()
            return result


class _Pull:
    """An async iterator read by one call after another: a read cut short by a failed call (its writer
    cancelled) is not lost, the next call's writer gets its item."""

    def __init__(self, items: AsyncIterable[pb.Frame]) -> None:
        self._items = aiter(items)
        self._next: asyncio.Future[pb.Frame] | None = None

    async def next(self) -> pb.Frame | None:
        """The next item; None at the end."""
        if self._next is None:
            self._next = asyncio.ensure_future(anext(self._items))
        try:
            item = await asyncio.shield(self._next)
        except StopAsyncIteration:
            return None
        self._next = None
        return item

    def close(self) -> None:
        """Stop a read still running (the stream was abandoned)."""
        if self._next is not None:
            self._next.cancel()


class _CallWriter:
    """Writes one StreamFrames call: the frames still unanswered, then the rest of the source. The first frame
    goes alone, the rest once it is answered: a replica refuses a source another owns at its first frame, and a
    write racing that refusal would hide its status (gRPC reports the failed write as INTERNAL). A write refused
    because the call ended just stops: the reader learns why (``write_failed`` says it happened)."""

    def __init__(
        self, call: grpc.aio.StreamStreamCall, pending: dict[tuple[str, int], pb.Frame], source: _Pull
    ) -> None:
        self.answered = asyncio.Event()  # set by the reader at each answer on this call
        self.write_failed = False
        self._call = call
        self._pending = pending
        self._source = source
        self._sent = 0

    async def run(self) -> None:
        try:
            for unanswered in list(self._pending.values()):
                await self._send(unanswered)
            while (frame := await self._source.next()) is not None:
                self._pending[(frame.source_id, frame.seq)] = frame
                await self._send(frame)
            await self._call.done_writing()
        except grpc.aio.AioRpcError:
            self.write_failed = True
        except asyncio.InvalidStateError:  # the call had ended (its status is intact)
            return

    async def _send(self, frame: pb.Frame) -> None:
        if self._sent == 1:
            await self.answered.wait()
        await self._call.write(frame)
        self._sent += 1


async def _wait(channel: grpc.aio.Channel, timeout_s: float) -> None:
    await asyncio.wait_for(channel.channel_ready(), timeout_s)


CHUNK_BYTES = 1024 * 1024  # well under any sane max_message_bytes, and big enough to keep the link busy


async def video_chunks(
    header: pb.VideoHeader, video: Path, srt: bytes | None = None, chunk_bytes: int = CHUNK_BYTES
) -> AsyncIterator[pb.VideoChunk]:
    """The messages of a SubmitVideo call: the header, the .SRT, then the video, in ``chunk_bytes`` pieces."""
    yield pb.VideoChunk(header=header)
    for offset in range(0, len(srt or b""), chunk_bytes):
        yield pb.VideoChunk(srt=(srt or b"")[offset : offset + chunk_bytes])
    with video.open("rb") as file:
        while data := await asyncio.to_thread(file.read, chunk_bytes):
            yield pb.VideoChunk(video=data)
