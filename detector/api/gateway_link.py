"""The gateway's side of ``Ingest.StreamFrames``: the only gateway code that knows gRPC.

``detector.gateway`` speaks :class:`~detector.api.client.OutgoingFrame` and
:class:`~detector.api.client.FrameAnswer` (internal values; ``frame_message`` and ``frame_answer`` convert them,
``gap_before_s`` included); this module drives one call frame by frame, and turns a failed call into a
:class:`LinkError`. The channel is opened with :func:`detector.api.client.open_channel` (TLS, token, loopback
rule) like every other client of the service.
"""

from __future__ import annotations

import asyncio

import grpc

from detector.api._gen.streetwatch.v1 import ingest_pb2_grpc
from detector.api.client import (
    NO_CREDENTIALS,
    OWNER_METADATA_KEY,
    ChannelSecurity,
    FrameAnswer,
    OutgoingFrame,
    frame_answer,
    frame_message,
    open_channel,
    owner_address,
)

# Retrying cannot help: a bad or missing token, a source this token may not send, no such service or method.
FATAL_CODES = frozenset(
    {
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INVALID_ARGUMENT,
    }
)


class LinkError(Exception):
    """The StreamFrames call failed or ended early. ``code`` is the gRPC status name (``UNAVAILABLE``, ...);
    ``fatal`` is set when retrying cannot help (bad token, source not allowed, wrong service); ``owner`` is the
    address of the replica that owns a source this one refused (a cluster), where the frames should go."""

    def __init__(self, code: str, details: str, *, fatal: bool = False, owner: str | None = None) -> None:
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details
        self.fatal = fatal
        self.owner = owner


def link_error(code: grpc.StatusCode, details: str | None, owner: str | None = None) -> LinkError:
    return LinkError(code.name, details or "", fatal=code in FATAL_CODES, owner=owner)


def failed_call(exc: grpc.aio.AioRpcError) -> LinkError:
    return link_error(exc.code(), exc.details(), owner_address(exc))


class FrameStream:
    """One StreamFrames call, driven frame by frame: ``send``, ``receive`` (``None`` once the service ended the
    call normally), ``finish`` (no more frames), ``cancel``. A failed call raises ``LinkError``."""

    def __init__(self, call: grpc.aio.StreamStreamCall) -> None:
        self._call = call

    async def send(self, frame: OutgoingFrame) -> None:
        try:
            await self._call.write(frame_message(frame))
        except grpc.aio.AioRpcError as exc:
            raise failed_call(exc) from None
        except asyncio.InvalidStateError:  # the call already ended: say how
            raise await self._ended() from None

    async def receive(self) -> FrameAnswer | None:
        try:
            result = await self._call.read()
        except grpc.aio.AioRpcError as exc:
            raise failed_call(exc) from None
        if result is grpc.aio.EOF:
            code = await self._call.code()
            if code is not grpc.StatusCode.OK:
                raise await self._ended()
            return None
        return frame_answer(result)

    async def finish(self) -> None:
        try:
            await self._call.done_writing()
        except grpc.aio.AioRpcError as exc:
            raise failed_call(exc) from None

    def cancel(self) -> None:
        self._call.cancel()

    async def _ended(self) -> LinkError:
        code = await self._call.code()
        if code is grpc.StatusCode.OK:
            return LinkError("OK", "the service ended the call")
        owner = dict(await self._call.trailing_metadata() or ()).get(OWNER_METADATA_KEY)
        return link_error(code, await self._call.details(), None if owner is None else str(owner))


class ServiceLink:
    """A channel to the service for one connection of the gateway. The gateway opens a new one after a failure
    (rather than waiting out gRPC's own reconnect backoff, up to two minutes), so a restarted service is reached
    as soon as the gateway's backoff allows."""

    def __init__(self, target: str, security: ChannelSecurity = NO_CREDENTIALS) -> None:
        self.target = target
        self._channel = open_channel(target, security)
        self._stub = ingest_pb2_grpc.IngestStub(self._channel)

    def open_stream(self) -> FrameStream:
        return FrameStream(self._stub.StreamFrames())

    async def close(self) -> None:
        await self._channel.close()
