"""Another backend passes only when it finds torch's boxes: same class, within 2 px and 0.01 confidence."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from detector.bench.backends import check_agreement
from detector.inference.engine import BatchTimings, Engine
from detector.types import Detections, ImageArray


class FixedEngine(Engine):
    """Answers every frame with the same detections."""

    def __init__(self, backend: str, detections: Detections) -> None:
        self.backend = backend
        self.name, self.version, self.device, self.class_names = "fixed", "0" * 12, "cpu", ["a", "b"]
        self._detections = detections

    def infer(self, images: Sequence[ImageArray]) -> tuple[list[Detections], BatchTimings]:
        return [self._detections for _ in images], BatchTimings()


def make_detections(*rows: tuple[float, float, float, float, float, int]) -> Detections:
    arr = np.array(rows, dtype=np.float32).reshape(-1, 6)
    return Detections(xyxy=arr[:, :4], confidence=arr[:, 4], class_id=arr[:, 5].astype(np.int64))


TORCH = make_detections((10, 10, 50, 50, 0.9, 0), (100, 100, 140, 160, 0.5, 1), (200, 10, 230, 40, 0.055, 0))


@pytest.mark.parametrize(
    ("candidate", "ok", "missing", "extra"),
    [
        (TORCH, True, 0, 0),
        # 1 px off and a little less confident: fine.
        (make_detections((11, 10, 50, 51, 0.895, 0), (100, 100, 140, 160, 0.5, 1)), True, 0, 0),
        # A box near the threshold (0.055 < 0.05 + margin) may be missing.
        (make_detections((10, 10, 50, 50, 0.9, 0), (100, 100, 140, 160, 0.5, 1)), True, 0, 0),
        # A confident box missing, or of another class: fails.
        (make_detections((10, 10, 50, 50, 0.9, 0)), False, 1, 0),
        (make_detections((10, 10, 50, 50, 0.9, 0), (100, 100, 140, 160, 0.5, 0)), False, 1, 1),
        # Too far off or too different in confidence: fails.
        (make_detections((14, 10, 50, 50, 0.9, 0), (100, 100, 140, 160, 0.5, 1)), False, 0, 0),
        (make_detections((10, 10, 50, 50, 0.8, 0), (100, 100, 140, 160, 0.5, 1)), False, 0, 0),
    ],
)
def test_agreement(candidate, ok, missing, extra):
    image = np.zeros((64, 64, 3), np.uint8)
    agreement = check_agreement(FixedEngine("torch", TORCH), FixedEngine("other", candidate), [image] * 2, conf=0.05)
    assert agreement.ok is ok
    assert (agreement.missing, agreement.extra) == (2 * missing, 2 * extra)
    assert agreement.frames == 2
