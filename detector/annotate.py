"""Draw what the model saw on a frame: boxes, class labels with confidence, track ids, and prohibited zones.

Used wherever a person looks at detections: ``detector replay --annotate``, the operator console's latest frame
per source. Pure drawing on a copy of the image (BGR uint8); colours are fixed per class so that a class looks the
same in every view.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from detector.types import Detections, ImageArray

# Distinct BGR colours, picked per class id (cycled past the end).
_PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 255),
    (0, 200, 0),
    (255, 128, 0),
    (0, 215, 255),
    (255, 0, 255),
    (255, 255, 0),
    (128, 0, 255),
    (0, 128, 255),
)
ZONE_BGR = (0, 255, 255)


def class_colour(class_id: int) -> tuple[int, int, int]:
    return _PALETTE[class_id % len(_PALETTE)]


def annotate(
    image: ImageArray,
    detections: Detections,
    class_names: Sequence[str],
    zones: Sequence[tuple[str, Sequence[tuple[float, float]]]] = (),
) -> ImageArray:
    """A copy of ``image`` with ``zones`` (id, polygon in this image's pixels) outlined and every detection boxed
    and labelled ``class 0.87 #12`` (the track id when tracked)."""
    out = np.ascontiguousarray(image.copy())
    scale = max(out.shape[0], out.shape[1]) / 1000.0
    thickness = max(1, round(2 * scale))
    font_scale = max(0.4, 0.5 * scale)
    for zone_id, polygon in zones:
        points = np.round(np.asarray(polygon, np.float64)).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(out, [points], isClosed=True, color=ZONE_BGR, thickness=thickness)
        x, y = (int(v) for v in points[0, 0])
        _label(out, f"zone {zone_id}", (x, y), ZONE_BGR, font_scale, thickness)
    track_ids = detections.track_id
    for i in range(len(detections)):
        class_id = int(detections.class_id[i])
        colour = class_colour(class_id)
        x1, y1, x2, y2 = (round(float(v)) for v in detections.xyxy[i])
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness)
        name = class_names[class_id] if 0 <= class_id < len(class_names) else str(class_id)
        text = f"{name} {float(detections.confidence[i]):.2f}"
        if track_ids is not None and int(track_ids[i]) >= 0:
            text += f" #{int(track_ids[i])}"
        _label(out, text, (x1, y1), colour, font_scale, thickness)
    return out


def _label(
    image: ImageArray, text: str, at: tuple[int, int], colour: tuple[int, int, int], scale: float, thickness: int
) -> None:
    """Text on a filled box of ``colour`` just above ``at`` (inside the image when there is no room above)."""
    (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, thickness - 1))
    x = min(max(at[0], 0), max(image.shape[1] - width, 0))
    top = at[1] - height - baseline - 2
    if top < 0:
        top = min(at[1], max(image.shape[0] - height - baseline - 2, 0))
    cv2.rectangle(image, (x, top), (x + width + 2, top + height + baseline + 2), colour, -1)
    luminance = 0.114 * colour[0] + 0.587 * colour[1] + 0.299 * colour[2]
    ink = (0, 0, 0) if luminance > 128 else (255, 255, 255)
    cv2.putText(
        image, text, (x + 1, top + height + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, ink, max(1, thickness - 1), cv2.LINE_AA
    )
