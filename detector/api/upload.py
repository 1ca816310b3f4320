"""Receiving a recorded flight for ``Ingest.SubmitVideo``: the header, then .SRT and video bytes in chunks.

The video is spooled to a file (PyAV needs to seek: an MP4's index is often at its end); the SRT is kept in
memory. Every limit is checked while the bytes arrive, so an oversized upload is refused before it fills a disk.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from detector.api import convert
from detector.api._gen.streetwatch.v1 import ingest_pb2 as pb
from detector.ingest.admission import check_source_id
from detector.ingest.decode import FrameRejected

MAX_TELEMETRY_OFFSET_S = 3600.0


class UploadRejected(Exception):
    """The upload cannot be used; ``code`` is the gRPC status to end the call with."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class UploadLimits:
    max_video_bytes: int
    max_srt_bytes: int
    allowed_sources: frozenset[str]  # empty: any


@dataclass
class VideoUpload:
    source_id: str
    start_ts: float
    every_s: float  # analyse at most one frame per this many seconds of video; 0: every frame
    telemetry_offset_s: float
    video_path: Path
    video_bytes: int = 0
    srt: bytearray | None = None  # None: no .SRT was sent


def _invalid(message: str) -> UploadRejected:
    return UploadRejected(grpc.StatusCode.INVALID_ARGUMENT, message)


def check_header(header: pb.VideoHeader, limits: UploadLimits, video_path: Path) -> VideoUpload:
    try:
        check_source_id(header.source_id)
        if not header.HasField("start_time"):
            raise _invalid("header.start_time is required: the capture time of the video's first frame")
        start_ts = convert.wall_clock_s(header.start_time, "header.start_time")
    except FrameRejected as exc:
        raise _invalid(f"header: {exc.message}") from None
    if limits.allowed_sources and header.source_id not in limits.allowed_sources:
        raise _invalid(f"source {header.source_id!r} is not configured (ingest.sources)")
    if not (math.isfinite(header.fps) and header.fps >= 0.0):
        raise _invalid(f"header.fps must be a finite number >= 0 (0 = every frame), got {header.fps}")
    offset = header.telemetry_offset_s
    if not (math.isfinite(offset) and abs(offset) <= MAX_TELEMETRY_OFFSET_S):
        raise _invalid(f"header.telemetry_offset_s must be finite and within +-{MAX_TELEMETRY_OFFSET_S:g} s")
    every_s = 1.0 / header.fps if header.fps > 0 else 0.0
    return VideoUpload(header.source_id, start_ts, every_s, offset, video_path)


async def receive_upload(chunks: AsyncIterator[pb.VideoChunk], limits: UploadLimits, video_path: Path) -> VideoUpload:
    """Read the whole upload; the video goes to ``video_path``. Raises ``UploadRejected``."""
    upload: VideoUpload | None = None
    with video_path.open("wb") as video:
        async for chunk in chunks:
            part = chunk.WhichOneof("part")
            if upload is None:
                if part != "header":
                    raise _invalid("the first message must carry the header (source_id, start_time)")
                upload = check_header(chunk.header, limits, video_path)
            elif part == "header":
                raise _invalid("only the first message may carry a header")
            elif part == "srt":
                _add_srt(upload, chunk.srt, limits)
            elif part == "video":
                upload.video_bytes += len(chunk.video)
                if upload.video_bytes > limits.max_video_bytes:
                    raise UploadRejected(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"video is larger than ingest.max_video_bytes ({limits.max_video_bytes} bytes)",
                    )
                await asyncio.to_thread(video.write, chunk.video)
            else:
                raise _invalid("a message carries neither header, srt nor video")
    if upload is None:
        raise _invalid("the upload is empty: send a header, then the video (and its .SRT)")
    if upload.video_bytes == 0:
        raise _invalid("the upload carries no video bytes")
    return upload


def _add_srt(upload: VideoUpload, data: bytes, limits: UploadLimits) -> None:
    if upload.srt is None:
        upload.srt = bytearray()
    upload.srt += data
    if len(upload.srt) > limits.max_srt_bytes:
        raise UploadRejected(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f".SRT is larger than ingest.max_srt_bytes ({limits.max_srt_bytes} bytes)",
        )
