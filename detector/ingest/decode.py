"""Turn the bytes a gateway sent into a BGR image, or a rejection that says what is wrong with them.

Limits are checked from the image header before any pixels are decoded, so an absurd size never allocates.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import cv2
import numpy as np

from detector.types import ImageArray


class RejectCode(Enum):
    UNDECODABLE = "UNDECODABLE"
    INVALID_IMAGE = "INVALID_IMAGE"
    IMAGE_TOO_LARGE = "IMAGE_TOO_LARGE"
    INVALID_FRAME = "INVALID_FRAME"
    UNKNOWN_SOURCE = "UNKNOWN_SOURCE"
    OUT_OF_ORDER = "OUT_OF_ORDER"
    INTERNAL = "INTERNAL"
    DROPPED = "DROPPED"
    RATE_LIMITED = "RATE_LIMITED"
    PERMISSION_DENIED = "PERMISSION_DENIED"


class FrameRejected(Exception):
    """A frame that cannot be used; the stream it came on stays open."""

    def __init__(self, code: RejectCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ImageLimits:
    max_pixels: int
    max_side_px: int

    def check(self, width: int, height: int) -> None:
        if width <= 0 or height <= 0:
            raise FrameRejected(RejectCode.INVALID_IMAGE, f"image size {width}x{height} is empty")
        if width > self.max_side_px or height > self.max_side_px or width * height > self.max_pixels:
            raise FrameRejected(
                RejectCode.IMAGE_TOO_LARGE,
                f"image {width}x{height} exceeds the limit of {self.max_pixels} pixels "
                f"and {self.max_side_px} px per side",
            )


DCT_SCALES = (1, 2, 4, 8)
"""The reductions libjpeg decodes directly in the DCT domain (an 8x8 block becomes 4x4, 2x2 or 1x1)."""
_REDUCED_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                  8: cv2.IMREAD_REDUCED_COLOR_8}  # fmt: skip

ScalePolicy = Callable[[int, int], int]
"""(width, height) of an image -> the DCT scale to decode it at (1 = full resolution)."""


def dct_scale(width: int, height: int, needed_long_side: int) -> int:
    """The largest of 1, 2, 4 and 8 that keeps the decoded long side at least ``needed_long_side``: a JPEG at
    least twice the size the model needs is decoded reduced, never below it."""
    longest = max(width, height)
    scale = 1
    while scale < DCT_SCALES[-1] and longest / (scale * 2) >= needed_long_side:
        scale *= 2
    return scale


def reduced_size(width: int, height: int, scale: int) -> tuple[int, int]:
    """The size libjpeg decodes a ``width`` x ``height`` JPEG to at ``scale`` (it rounds up)."""
    return math.ceil(width / scale), math.ceil(height / scale)


def decode_encoded(data: bytes, limits: ImageLimits) -> ImageArray:
    """Decode JPEG or PNG bytes to HxWx3 BGR uint8, at full resolution."""
    return decode_scaled(data, limits)[0]


def decode_scaled(data: bytes, limits: ImageLimits, policy: ScalePolicy | None = None) -> tuple[ImageArray, int]:
    """Decode JPEG or PNG bytes to HxWx3 BGR uint8 and the scale they were decoded at.

    A JPEG is decoded reduced in the DCT domain by the scale ``policy`` picks for its size (pixel ``(x, y)`` of
    the result covers full-resolution pixels ``[x*scale, (x+1)*scale)``); a PNG always at full resolution.
    """
    if not data:
        raise FrameRejected(RejectCode.INVALID_IMAGE, "frame carries no image bytes")
    size = header_size(data)
    if size is None:
        raise FrameRejected(RejectCode.UNDECODABLE, "image bytes are neither a JPEG nor a PNG")
    limits.check(*size)
    scale = policy(*size) if policy is not None and data[:2] == b"\xff\xd8" else 1
    if scale not in _REDUCED_FLAGS:
        raise ValueError(f"DCT scale must be one of {DCT_SCALES}, got {scale}")
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), _REDUCED_FLAGS[scale])
    if image is None or image.size == 0:
        raise FrameRejected(RejectCode.UNDECODABLE, "image bytes could not be decoded (corrupt or truncated)")
    if (image.shape[1], image.shape[0]) != reduced_size(*size, scale):
        raise FrameRejected(RejectCode.UNDECODABLE, "decoded size differs from the image header")
    return np.asarray(image, dtype=np.uint8), scale


def decode_raw(width: int, height: int, rgb: bool, data: bytes, limits: ImageLimits) -> ImageArray:
    """Wrap raw 8-bit 3-channel pixels (rows top to bottom, no padding) as BGR."""
    limits.check(width, height)
    expected = width * height * 3
    if len(data) != expected:
        raise FrameRejected(
            RejectCode.INVALID_IMAGE,
            f"raw {width}x{height} image needs {expected} bytes, got {len(data)}",
        )
    image = np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)
    return np.ascontiguousarray(image[:, :, ::-1]) if rgb else image.copy()


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header without decoding pixels; None if neither."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return None


_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if length < 2:
            return None
        if marker in _SOF_MARKERS:
            if i + 9 > n:
                return None
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            return width, height
        i += 2 + length
    return None
