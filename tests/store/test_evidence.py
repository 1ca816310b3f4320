"""Evidence JPEGs: annotated frame and object crop."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from detector.store import IncidentStore
from detector.store.evidence import CROP_JPEG, FRAME_JPEG, EvidenceRenderer, store_evidence
from detector.types import ImageArray


def make_frame(height: int = 480, width: int = 640) -> ImageArray:
    image = np.full((height, width, 3), 90, dtype=np.uint8)
    image[200:300, 300:400] = (0, 200, 0)
    return image


def decode(jpeg: bytes) -> ImageArray:
    image = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return np.asarray(image, dtype=np.uint8)


@pytest.mark.parametrize(
    ("box", "crop_shape"),
    [
        ((300.0, 200.0, 400.0, 300.0), (150, 150)),  # 25 px margin on each side
        ((0.0, 0.0, 40.0, 40.0), (56, 56)),  # clipped at the top-left, 16 px minimum margin
        ((600.0, 440.0, 700.0, 500.0), (56, 56)),  # clipped to 40x40 first, then the minimum margin
    ],
)
def test_render_frame_and_crop(box: tuple[float, float, float, float], crop_shape: tuple[int, int]) -> None:
    images = EvidenceRenderer().render(make_frame(), box, "200501 ROAD_OCCUPYING_STALL")

    frame = decode(images.frame_jpeg)
    crop = decode(images.crop_jpeg)
    assert frame.shape == (480, 640, 3)
    assert crop.shape[:2] == crop_shape


def test_box_is_drawn_in_red() -> None:
    frame = decode(EvidenceRenderer().render(make_frame(), (300.0, 200.0, 400.0, 300.0), "").frame_jpeg)
    b, g, r = frame[250, 300].astype(int)
    assert r > 180 and g < 80 and b < 80


def test_non_ascii_caption_is_drawn_without_failing() -> None:
    images = EvidenceRenderer().render(make_frame(), (300.0, 200.0, 400.0, 300.0), "无照经营游商")
    assert decode(images.frame_jpeg).shape == (480, 640, 3)


@pytest.mark.parametrize("box", [(700.0, 10.0, 800.0, 50.0), (10.0, 10.0, 10.0, 50.0), (float("nan"), 0.0, 5.0, 5.0)])
def test_box_without_area_in_frame_is_refused(box: tuple[float, float, float, float]) -> None:
    with pytest.raises(ValueError, match="evidence box"):
        EvidenceRenderer().render(make_frame(), box, "x")


def test_stored_evidence_reads_back(store: IncidentStore) -> None:
    images = EvidenceRenderer().render(make_frame(), (300.0, 200.0, 400.0, 300.0), "200102 EXPOSED_GARBAGE")
    frame_ref, crop_ref = store_evidence(store, images)

    assert (frame_ref.kind, crop_ref.kind) == (FRAME_JPEG, CROP_JPEG)
    assert store.open_evidence(frame_ref.sha256).read() == images.frame_jpeg
    assert store.open_evidence(crop_ref.sha256).read() == images.crop_jpeg
