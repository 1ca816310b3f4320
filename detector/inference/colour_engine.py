"""A model-free engine that detects solid colour patches: for scripted end-to-end runs of the incident chain.

Tests and demos of tracking, rules and the event log need detections that they control exactly. This engine
gives them through the same Engine interface and the same decode, batching and gRPC path as the YOLO engines:
paint a patch of a class's colour into a frame and it is detected there. Its "weights" file is YAML::

    name: colour-blobs
    tolerance: 30          # per channel
    min_area_px: 40
    classes:
      - {name: stall, bgr: [0, 0, 255]}
      - {name: garbage, bgr: [0, 255, 0]}
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import cv2
import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from detector.inference.engine import (
    FALLBACK_IMGSZ,
    BatchTimings,
    Engine,
    EngineError,
    InferenceThreads,
    ModelSettings,
    register_engine,
    weights_version,
)
from detector.types import Detections, ImageArray


class _Class(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    bgr: tuple[int, int, int]


class ColourBlobSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field("colour-blobs", description="Model name reported to clients.")
    tolerance: int = Field(30, ge=0, le=255, description="Allowed difference per channel.")
    min_area_px: int = Field(40, ge=1, description="Smallest patch reported.")
    confidence: float = Field(0.9, gt=0, le=1, description="Confidence given to every patch.")
    classes: list[_Class] = Field(min_length=1, description="Class names in id order, each with its colour.")


class ColourBlobEngine(Engine):
    def __init__(self, settings: ModelSettings) -> None:
        try:
            spec = ColourBlobSpec.model_validate(yaml.safe_load(settings.weights.read_text()))
        except (OSError, yaml.YAMLError, ValidationError) as exc:
            raise EngineError(f"cannot load colour-blob spec {settings.weights}: {exc}") from exc
        self._spec = spec
        self.name = spec.name
        self.settings = settings
        self.imgsz = settings.imgsz or FALLBACK_IMGSZ  # it draws no letterbox; tiling's auto size reads this
        self.version = weights_version(settings.weights)
        self.class_names = [c.name for c in spec.classes]
        self.device = "cpu"
        self.backend = "colour-blobs"

    def infer(self, images: Sequence[ImageArray]) -> tuple[list[Detections], BatchTimings]:
        started = time.perf_counter()
        results = [self._detect(im) for im in images]
        return results, BatchTimings(forward_ms=(time.perf_counter() - started) * 1e3)

    def _detect(self, image: ImageArray) -> Detections:
        boxes: list[list[float]] = []
        classes: list[int] = []
        tol = self._spec.tolerance
        for class_id, cls in enumerate(self._spec.classes):
            colour = np.array(cls.bgr, dtype=np.int16)
            lower = np.clip(colour - tol, 0, 255).astype(np.uint8)
            upper = np.clip(colour + tol, 0, 255).astype(np.uint8)
            mask = cv2.inRange(image, lower, upper)
            # Outer contours, not cv2.connectedComponentsWithStats: OpenCV's parallel labelling raised SIGFPE
            # under concurrent threads here (seen in the sim tests). A blob's area is its mask pixels in its box.
            contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            for contour in contours:
                x, y, w, h = cv2.boundingRect(contour)
                if cv2.countNonZero(mask[y : y + h, x : x + w]) >= self._spec.min_area_px:
                    boxes.append([x, y, x + w, y + h])
                    classes.append(class_id)
        return Detections(
            xyxy=np.array(boxes, dtype=np.float32).reshape(-1, 4),
            confidence=np.full(len(boxes), self._spec.confidence, dtype=np.float32),
            class_id=np.array(classes, dtype=np.int64),
        )


@register_engine("colour-blobs")
def _colour_engine(settings: ModelSettings, threads: InferenceThreads | None) -> Engine:
    return ColourBlobEngine(settings)  # numpy only: no thread pool of its own
