"""The decode stage of the frame pipeline."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

import numpy as np

from detector.ingest.decode import FrameRejected, ImageLimits, RejectCode, decode_raw, decode_scaled, header_size
from detector.ingest.frames import DecodedImage, EncodedImage, FrameInput, RawPixels
from detector.types import Frame

if TYPE_CHECKING:
    import torch

_NO_PIXELS = np.empty((0, 0, 3), dtype=np.uint8)
"""``Frame.image`` of a frame decoded on the GPU: its pixels are ``Frame.device_image``."""


class FrameDecoder:
    """The decode stage: a :class:`FrameInput`'s image, checked against the ingest limits, decoded in a thread
    pool (JPEG/PNG decoding releases the GIL) into a :class:`Frame`.

    ``scale_for(source_id, width, height)`` picks the DCT scale a JPEG is decoded at (the inference core's
    :meth:`TilingPolicy.decode_scale`: no more pixels than the model needs); without it, every frame is decoded
    at full resolution.

    ``gpu``: the CUDA device the model runs on, to decode JPEGs there with nvJPEG (at full resolution, as
    ``Frame.device_image``; a JPEG nvJPEG cannot decode is decoded on the CPU); None: every frame on the CPU. PNGs
    and raw pixels are always decoded on the CPU."""

    def __init__(
        self,
        limits: ImageLimits,
        executor: Executor,
        scale_for: Callable[[str, int, int], int] | None = None,
        gpu: torch.device | None = None,
    ) -> None:
        self.limits = limits
        self._executor = executor
        self._scale_for = scale_for
        self._gpu = gpu

    async def decode(self, item: FrameInput) -> tuple[Frame, float]:
        """The frame and the milliseconds its decoding took; :class:`FrameRejected` when it cannot be used."""
        started = time.perf_counter()
        payload = item.image
        loop = asyncio.get_running_loop()
        scale, jpeg, full_size = 1, None, None
        device_image: Any = None
        if isinstance(payload, EncodedImage) and self._gpu is not None and payload.data[:2] == b"\xff\xd8":
            from detector.inference.gpu_decode import decode_checked

            device_image = await loop.run_in_executor(
                self._executor, decode_checked, self._gpu, payload.data, self.limits
            )
            if device_image is not None:
                jpeg, full_size = payload.data, (int(device_image.shape[1]), int(device_image.shape[0]))
        if device_image is not None:
            image = _NO_PIXELS
        elif isinstance(payload, EncodedImage):
            policy = functools.partial(self._scale_for, item.source_id) if self._scale_for is not None else None
            image, scale = await loop.run_in_executor(self._executor, decode_scaled, payload.data, self.limits, policy)
            if scale > 1:
                jpeg, full_size = payload.data, header_size(payload.data)
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
            frame = Frame(
                item.source_id, item.seq, item.capture_ts, image, item.telemetry, scale, full_size, jpeg, device_image
            )
        except ValueError as exc:
            raise FrameRejected(RejectCode.INVALID_FRAME, str(exc)) from None
        return frame, decode_ms
