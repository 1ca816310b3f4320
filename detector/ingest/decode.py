"""Turn the bytes a gateway sent into a BGR image, or a rejection that says what is wrong with them.

Limits are checked from the image header before any pixels are decoded, so an absurd size never allocates.
"""

from __future__ import annotations

import struct
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


def decode_encoded(data: bytes, limits: ImageLimits) -> ImageArray:
    """Decode JPEG or PNG bytes to HxWx3 BGR uint8."""
    if not data:
        raise FrameRejected(RejectCode.INVALID_IMAGE, "frame carries no image bytes")
    size = header_size(data)
    if size is None:
        raise FrameRejected(RejectCode.UNDECODABLE, "image bytes are neither a JPEG nor a PNG")
    limits.check(*size)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise FrameRejected(RejectCode.UNDECODABLE, "image bytes could not be decoded (corrupt or truncated)")
    if (image.shape[1], image.shape[0]) != size:
        raise FrameRejected(RejectCode.UNDECODABLE, "decoded size differs from the image header")
    return np.asarray(image, dtype=np.uint8)


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
