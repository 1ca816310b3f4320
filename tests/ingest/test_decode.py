"""Decoding checks sizes from the header before decoding, and rejects with a code that says what is wrong."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from detector.ingest.decode import (
    FrameRejected,
    ImageLimits,
    RejectCode,
    decode_encoded,
    decode_raw,
    header_size,
)

LIMITS = ImageLimits(max_pixels=1920 * 1080, max_side_px=4096)


def _encode(ext: str, w: int, h: int) -> bytes:
    image = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return bytes(buf.tobytes())


@pytest.mark.parametrize(("ext", "w", "h"), [(".jpg", 640, 480), (".png", 33, 17), (".jpg", 1, 1)])
def test_header_size_reads_jpeg_and_png(ext: str, w: int, h: int) -> None:
    data = _encode(ext, w, h)
    assert header_size(data) == (w, h)
    assert decode_encoded(data, LIMITS).shape == (h, w, 3)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", RejectCode.INVALID_IMAGE),
        (b"GIF89a....", RejectCode.UNDECODABLE),
        (b"\xff\xd8\xff", RejectCode.UNDECODABLE),
        (_encode(".jpg", 1921, 1081), RejectCode.IMAGE_TOO_LARGE),
        (_encode(".png", 5000, 2), RejectCode.IMAGE_TOO_LARGE),
        (_encode(".jpg", 64, 64)[:200], RejectCode.UNDECODABLE),
    ],
)
def test_bad_encoded_images_are_rejected_with_a_code(data: bytes, code: RejectCode) -> None:
    with pytest.raises(FrameRejected) as err:
        decode_encoded(data, LIMITS)
    assert err.value.code is code and err.value.message


def test_raw_rgb_is_converted_to_bgr_and_sizes_are_checked() -> None:
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[..., 0] = 255  # red
    bgr = decode_raw(3, 2, True, rgb.tobytes(), LIMITS)
    assert bgr[0, 0].tolist() == [0, 0, 255]
    with pytest.raises(FrameRejected, match="needs 18 bytes, got 17"):
        decode_raw(3, 2, False, b"\x00" * 17, LIMITS)
    with pytest.raises(FrameRejected) as err:
        decode_raw(100_000, 100_000, False, b"", LIMITS)
    assert err.value.code is RejectCode.IMAGE_TOO_LARGE
