"""Frames painted from the ground truth alone, for end-to-end runs without a model.

Each object seen in a frame becomes a flat patch of its class's colour over its visible box, drawn far to near
with a dark outline so that neighbours of one class stay separate blobs. Fed to the service's colour-blob engine
(detector/inference/colour_engine.py) they give exactly the truth's detections through the real decode,
tracking, rules, store and gRPC path.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from detector.sim.truth import Truth
from detector.types import ImageArray

# Class -> BGR, far apart so that a tolerance of 30 per channel never confuses two of them.
CLASS_COLOURS: dict[str, tuple[int, int, int]] = {
    "stall": (0, 0, 255),
    "cart": (255, 0, 255),
    "goods": (255, 255, 0),
    "garbage": (0, 255, 0),
    "overflow": (0, 255, 255),
    "pothole": (255, 0, 0),
    "garbage_bin": (0, 128, 255),
}
BACKGROUND = (90, 90, 90)


def colour_blob_spec(tolerance: int = 30, min_area_px: int = 20) -> str:
    """The colour-blob engine's YAML "weights" for ``CLASS_COLOURS``."""
    rows = "".join(f"  - {{name: {name}, bgr: [{b}, {g}, {r}]}}\n" for name, (b, g, r) in CLASS_COLOURS.items())
    return f"name: sim-truth\ntolerance: {tolerance}\nmin_area_px: {min_area_px}\nclasses:\n{rows}"


def painted_frames(truth: Truth, min_visibility: float = 0.3) -> Iterator[tuple[float, ImageArray]]:
    """(scenario seconds, image) per truth frame, with the objects seen at ``min_visibility`` or more painted."""
    classes = {o.id: o.cls for o in truth.objects}
    for frame in truth.frames:
        image = np.full((truth.height, truth.width, 3), BACKGROUND, np.uint8)
        seen = [b for b in frame.objects if b.visibility >= min_visibility and b.visible_box is not None]
        for b in sorted(seen, key=lambda b: b.box[3]):  # lower in the image is nearer the camera: drawn later
            assert b.visible_box is not None
            x1, y1, x2, y2 = (round(v) for v in b.visible_box)
            cv2.rectangle(image, (x1 - 1, y1 - 1), (x2, y2), (20, 20, 20), 1)
            cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), CLASS_COLOURS[classes[b.id]], -1)
        yield frame.t_s, image
