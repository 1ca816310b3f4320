"""Evidence images for an incident event: the full frame with the box drawn, and a crop of the object.

Example::

    images = EvidenceRenderer().render(frame.full_image(), event.box_xyxy, f"{event.case_code} {event.category}")
    event = dataclasses.replace(event, evidence=store_evidence(store, images))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2

from detector.store.base import IncidentStore
from detector.types import Evidence, EvidenceKind, ImageArray

FRAME_JPEG = EvidenceKind.FRAME_JPEG
CROP_JPEG = EvidenceKind.CROP_JPEG

_BOX_COLOUR_BGR = (0, 0, 255)
_TEXT_COLOUR_BGR = (255, 255, 255)


@dataclass(frozen=True)
class EvidenceImages:
    frame_jpeg: bytes
    crop_jpeg: bytes


@dataclass(frozen=True)
class EvidenceRenderer:
    """Encodes evidence JPEGs; the margin keeps some context around the object in the crop."""

    jpeg_quality: int = 88
    crop_margin_frac: float = 0.25  # of the box's larger side, on every side
    crop_min_margin_px: int = 16

    def __post_init__(self) -> None:
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")
        if self.crop_margin_frac < 0 or self.crop_min_margin_px < 0:
            raise ValueError("crop margins must not be negative")

    def render(self, image: ImageArray, box_xyxy: tuple[float, float, float, float], caption: str) -> EvidenceImages:
        """``caption`` is drawn in OpenCV's Hershey font, which is ASCII only: pass the case code and
        category rather than the Chinese label (other characters become '?')."""
        x1, y1, x2, y2 = _clip_box(box_xyxy, width=image.shape[1], height=image.shape[0])
        return EvidenceImages(
            frame_jpeg=self._encode(self._annotated(image, (x1, y1, x2, y2), caption)),
            crop_jpeg=self._encode(self._crop(image, (x1, y1, x2, y2))),
        )

    def _annotated(self, image: ImageArray, box: tuple[int, int, int, int], caption: str) -> ImageArray:
        canvas = image.copy()
        x1, y1, x2, y2 = box
        thickness_px = max(2, round(max(canvas.shape[:2]) / 400))
        cv2.rectangle(canvas, (x1, y1), (x2, y2), _BOX_COLOUR_BGR, thickness_px)
        text = caption.encode("ascii", errors="replace").decode("ascii")
        if text:
            scale = max(0.5, max(canvas.shape[:2]) / 1600)
            (text_w, text_h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness_px)
            # Above the box when there is room, else inside its top edge.
            top = y1 - text_h - baseline - 4 if y1 - text_h - baseline - 4 >= 0 else y1
            cv2.rectangle(canvas, (x1, top), (x1 + text_w + 4, top + text_h + baseline + 4), _BOX_COLOUR_BGR, -1)
            cv2.putText(
                canvas,
                text,
                (x1 + 2, top + text_h + 2),
                cv2.FONT_HERSHEY_SIMPLEX,
                scale,
                _TEXT_COLOUR_BGR,
                thickness_px,
                cv2.LINE_AA,
            )
        return canvas

    def _crop(self, image: ImageArray, box: tuple[int, int, int, int]) -> ImageArray:
        x1, y1, x2, y2 = box
        margin_px = max(self.crop_min_margin_px, round(self.crop_margin_frac * max(x2 - x1, y2 - y1)))
        height, width = image.shape[:2]
        return image[
            max(0, y1 - margin_px) : min(height, y2 + margin_px),
            max(0, x1 - margin_px) : min(width, x2 + margin_px),
        ]

    def _encode(self, image: ImageArray) -> bytes:
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise ValueError(f"OpenCV could not encode a {image.shape} image as JPEG")
        return bytes(encoded.tobytes())


def store_evidence(store: IncidentStore, images: EvidenceImages) -> tuple[Evidence, Evidence]:
    """Put both images in the store; the result goes into ``IncidentEvent.evidence``."""
    return store.put_evidence(FRAME_JPEG, images.frame_jpeg), store.put_evidence(CROP_JPEG, images.crop_jpeg)


def _clip_box(box_xyxy: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    if not all(math.isfinite(v) for v in box_xyxy):
        raise ValueError(f"evidence box must be finite, got {box_xyxy}")
    x1 = min(max(math.floor(box_xyxy[0]), 0), width)
    y1 = min(max(math.floor(box_xyxy[1]), 0), height)
    x2 = min(max(math.ceil(box_xyxy[2]), 0), width)
    y2 = min(max(math.ceil(box_xyxy[3]), 0), height)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"evidence box {box_xyxy} has no area inside the {width}x{height} frame")
    return x1, y1, x2, y2
