"""Engine backends in the suite: ONNX export into a cache, and the correctness check against torch.

torch is the reference. Another backend passes when, on the bench frames, every box torch finds with some
margin above the threshold is found by it too: same class, within ``box_tol_px`` pixels and ``conf_tol`` in
confidence, and it finds no confident box that torch does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from detector.inference.engine import Engine
from detector.types import Detections, ImageArray


@dataclass(frozen=True)
class Agreement:
    """How closely a backend's boxes match torch's on the same frames."""

    backend: str
    frames: int
    reference_boxes: int  # confident torch boxes, which must all be found
    matched: int
    missing: int  # confident torch boxes the backend did not find
    extra: int  # confident backend boxes torch did not find
    max_box_px: float
    max_conf_diff: float
    box_tol_px: float
    conf_tol: float

    @property
    def ok(self) -> bool:
        return (
            self.missing == 0
            and self.extra == 0
            and self.max_box_px <= self.box_tol_px
            and self.max_conf_diff <= self.conf_tol
        )


def check_agreement(
    reference: Engine,
    candidate: Engine,
    images: Sequence[ImageArray],
    conf: float,
    margin: float = 0.02,
    box_tol_px: float = 2.0,
    conf_tol: float = 0.01,
) -> Agreement:
    """Run both engines one frame at a time and compare; ``conf`` is the threshold both engines were built with.

    Boxes within ``margin`` of the threshold may appear in one backend and not the other (a score of 0.049 vs
    0.051); they are matched when present but not required.
    """
    required = conf + margin
    matched = missing = extra = reference_boxes = 0
    max_px = max_conf = 0.0
    for image in images:
        ref = reference.infer([image])[0][0]
        got = candidate.infer([image])[0][0]
        pairs = match_boxes(ref, got)
        paired_ref = {i for i, _ in pairs}
        paired_got = {j for _, j in pairs}
        reference_boxes += int(np.sum(ref.confidence >= required))
        missing += sum(1 for i in range(len(ref)) if i not in paired_ref and ref.confidence[i] >= required)
        extra += sum(1 for j in range(len(got)) if j not in paired_got and got.confidence[j] >= required)
        for i, j in pairs:
            matched += 1
            max_px = max(max_px, float(np.abs(ref.xyxy[i] - got.xyxy[j]).max()))
            max_conf = max(max_conf, abs(float(ref.confidence[i] - got.confidence[j])))
    return Agreement(
        candidate.backend, len(images), reference_boxes, matched, missing, extra, max_px, max_conf, box_tol_px, conf_tol
    )


def match_boxes(a: Detections, b: Detections, min_iou: float = 0.5) -> list[tuple[int, int]]:
    """Greedy one-to-one pairs of the same class, best IoU first."""
    candidates = []
    for i in range(len(a)):
        for j in range(len(b)):
            if a.class_id[i] == b.class_id[j]:
                overlap = iou(a.xyxy[i].tolist(), b.xyxy[j].tolist())
                if overlap >= min_iou:
                    candidates.append((overlap, i, j))
    pairs: list[tuple[int, int]] = []
    used_a: set[int] = set()
    used_b: set[int] = set()
    for _, i, j in sorted(candidates, reverse=True):
        if i not in used_a and j not in used_b:
            pairs.append((i, j))
            used_a.add(i)
            used_b.add(j)
    return pairs


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two x1 y1 x2 y2 boxes."""
    w = max(0.0, float(min(a[2], b[2]) - max(a[0], b[0])))
    h = max(0.0, float(min(a[3], b[3]) - max(a[1], b[1])))
    inter = w * h
    union = float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) - inter
    return inter / union if union > 0 else 0.0
