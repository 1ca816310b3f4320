"""The decode stage of the frame pipeline."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor

from detector.ingest.decode import FrameRejected, ImageLimits, RejectCode, decode_encoded, decode_raw
from detector.ingest.frames import DecodedImage, EncodedImage, FrameInput, RawPixels
from detector.types import Frame


class FrameDecoder:
    """The decode stage: a :class:`FrameInput`'s image, checked against the ingest limits, decoded in a thread
    pool (JPEG/PNG decoding releases the GIL) into a :class:`Frame`."""

    def __init__(self, limits: ImageLimits, executor: Executor) -> None:
        self.limits = limits
        self._executor = executor

    async def decode(self, item: FrameInput) -> tuple[Frame, float]:
        """The frame and the milliseconds its decoding took; :class:`FrameRejected` when it cannot be used."""
        started = time.perf_counter()
        payload = item.image
        loop = asyncio.get_running_loop()
        if isinstance(payload, EncodedImage):
            image = await loop.run_in_executor(self._executor, decode_encoded, payload.data, self.limits)
        elif isinstance(payload, RawPixels):
            image = await loop.run_in_executor(
                self._executor, decode_raw, payload.width, payload.height, payload.rgb, payload.data, self.limits
            )
        else:
            height, width = payload.image.shape[:2]
            self.limits.check(width, height)
            image = payload.image
        decode_ms = (time.perf_counter() - started) * 1e3
        if isinstance(payload, DecodedImage):
            decode_ms = payload.decode_ms
        try:
            frame = Frame(item.source_id, item.seq, item.capture_ts, image, item.telemetry)
        except ValueError as exc:
            raise FrameRejected(RejectCode.INVALID_FRAME, str(exc)) from None
        return frame, decode_ms
