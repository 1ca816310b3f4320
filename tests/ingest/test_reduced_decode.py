"""Reduced decoding: a JPEG far larger than the model needs is decoded at 1/2, 1/4 or 1/8 in the DCT domain,
a PNG always whole; the frame keeps its full size and its JPEG so that evidence is cut at full resolution."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from detector.ingest.decode import (
    FrameRejected,
    ImageLimits,
    RejectCode,
    dct_scale,
    decode_encoded,
    decode_scaled,
    reduced_size,
)
from detector.ingest.decoder import FrameDecoder
from detector.ingest.frames import EncodedImage, FrameInput
from detector.types import Frame
from tests.conftest import jpeg

LIMITS = ImageLimits(max_pixels=4096 * 4096, max_side_px=8192)
MAX_MEAN_ABS_DIFF = 1.5


def _scene(width: int, height: int) -> np.ndarray:
    """Smooth gradients and a few sharp-edged shapes, so that both blur and misplacement show."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    image = np.stack([np.broadcast_to(x, (height, width)), np.broadcast_to(y, (height, width)),
                      np.broadcast_to((x + y) / 2, (height, width))], axis=2).astype(np.uint8)  # fmt: skip
    cv2.rectangle(image, (width // 5, height // 4), (width // 3, height // 2), (0, 0, 255), -1)
    cv2.circle(image, (2 * width // 3, 2 * height // 3), height // 6, (255, 255, 255), -1)
    return image


def _needs(needed: int) -> Callable[[int, int], int]:
    return lambda width, height: dct_scale(width, height, needed)


@pytest.mark.parametrize(
    ("size", "needed", "scale"),
    [
        ((1280, 720), 640, 2),
        ((1920, 1080), 416, 4),
        ((1920, 1080), 640, 2),
        ((3840, 2160), 320, 8),
        ((8000, 100), 10, 8),  # never beyond 1/8, however large
        ((1279, 720), 640, 1),  # half would be 639.5 < 640: never below what the model needs
        ((720, 1280), 640, 2),  # the long side counts, whichever it is
        ((320, 240), 640, 1),  # smaller than needed: whole
    ],
)
def test_dct_scale_is_the_largest_reduction_that_keeps_the_long_side_needed(
    size: tuple[int, int], needed: int, scale: int
) -> None:
    assert dct_scale(*size, needed) == scale
    assert max(size) / scale >= needed or scale == 1


@pytest.mark.parametrize(
    ("size", "needed", "scale", "decoded"),
    [
        ((1280, 720), 640, 2, (640, 360)),
        ((1920, 1080), 416, 4, (480, 270)),
        ((1281, 721), 320, 4, (321, 181)),  # libjpeg rounds odd sizes up
        ((1281, 721), 640, 2, (641, 361)),
        ((1287, 727), 160, 8, (161, 91)),
    ],
)
def test_a_large_jpeg_is_decoded_reduced_to_the_rounded_up_size(
    size: tuple[int, int], needed: int, scale: int, decoded: tuple[int, int]
) -> None:
    data = jpeg(_scene(*size))
    image, got = decode_scaled(data, LIMITS, _needs(needed))
    assert got == scale
    assert (image.shape[1], image.shape[0]) == decoded == reduced_size(*size, scale)
    assert image.dtype == np.uint8 and image.shape[2] == 3


def test_without_a_policy_or_when_small_a_jpeg_is_decoded_whole() -> None:
    data = jpeg(_scene(1280, 720))
    assert decode_scaled(data, LIMITS)[1] == 1
    assert decode_encoded(data, LIMITS).shape == (720, 1280, 3)
    image, scale = decode_scaled(data, LIMITS, _needs(1000))
    assert (scale, image.shape) == (1, (720, 1280, 3))


def test_a_png_is_never_reduced() -> None:
    ok, buf = cv2.imencode(".png", _scene(1920, 1080))
    assert ok
    image, scale = decode_scaled(bytes(buf.tobytes()), LIMITS, lambda _w, _h: 4)
    assert scale == 1 and image.shape == (1080, 1920, 3)


@pytest.mark.parametrize("cut", ["header", "half"])
def test_a_corrupt_jpeg_is_still_rejected_as_undecodable_when_decoded_reduced(cut: str) -> None:
    data = jpeg(_scene(1920, 1080))
    broken = data[: data.find(b"\xff\xda") + 20] if cut == "header" else data[: len(data) // 2]
    for needed in (1000, 416, 200):  # scales 1, 4, 8
        with pytest.raises(FrameRejected) as err:
            decode_scaled(broken, LIMITS, _needs(needed))
        assert err.value.code is RejectCode.UNDECODABLE


def test_a_policy_asking_for_a_scale_libjpeg_cannot_do_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="DCT scale must be one of"):
        decode_scaled(jpeg(_scene(640, 480)), LIMITS, lambda _w, _h: 3)


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_the_reduced_image_is_the_full_one_shrunk(scale: int, street_photos: list[np.ndarray]) -> None:
    # A real street photo at 1920x1080: its reduced decode must show the same picture, in the same place, as the
    # full decode shrunk by area averaging (measured mean abs difference 0.22, 0.26, 0.28 grey levels at 1/2, 1/4,
    # 1/8; the same images one pixel apart differ by 4.3, 7.4 and 10.9).
    photo = cv2.resize(street_photos[0], (1920, 1080), interpolation=cv2.INTER_CUBIC)
    data = jpeg(photo, quality=92)
    full = decode_encoded(data, LIMITS)
    reduced, got = decode_scaled(data, LIMITS, lambda _w, _h: scale)
    assert got == scale
    shrunk = cv2.resize(full, (reduced.shape[1], reduced.shape[0]), interpolation=cv2.INTER_AREA)
    diff = np.abs(reduced.astype(np.float32) - shrunk.astype(np.float32)).mean()
    assert diff < MAX_MEAN_ABS_DIFF, f"mean abs difference {diff:.2f} at 1/{scale}"
    moved = np.abs(reduced[:, 1:].astype(np.float32) - shrunk[:, :-1].astype(np.float32)).mean()
    assert diff < moved, "the reduced image lines up with the shrunk full one, not one pixel off"


def test_the_decode_stage_keeps_the_full_size_and_the_jpeg_for_evidence() -> None:
    scene = _scene(1921, 1081)
    data = jpeg(scene, quality=95)
    scales: list[tuple[str, int, int]] = []

    def scale_for(source_id: str, width: int, height: int) -> int:
        scales.append((source_id, width, height))
        return 4

    async def decode(scale_for: Callable[[str, int, int], int] | None) -> tuple[Frame, float]:
        with ThreadPoolExecutor(1) as pool:
            decoder = FrameDecoder(LIMITS, pool, scale_for)
            return await decoder.decode(FrameInput("cam-1", 7, 1.76e9, EncodedImage(data)))

    frame, _ = asyncio.run(decode(scale_for))
    assert scales == [("cam-1", 1921, 1081)]
    assert frame.scale == 4 and frame.image.shape == (271, 481, 3)
    assert (frame.width, frame.height) == (1921, 1081), "a frame's size is the full frame's"
    full = frame.full_image()
    assert full.shape == (1081, 1921, 3)
    assert np.array_equal(full, decode_encoded(data, LIMITS)), "evidence is the JPEG decoded whole"

    whole, _ = asyncio.run(decode(None))
    assert whole.scale == 1 and whole.jpeg is None and whole.image.shape == (1081, 1921, 3)
    assert whole.full_image() is whole.image
