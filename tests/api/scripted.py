"""Scripted scenes for end-to-end runs of the incident chain through the real service.

The service runs the colour-blob engine (detector/inference/colour_engine.py) behind the production Engine
interface: a red patch is a "stall", a green one "garbage". The rules, tracker, store and gRPC are the real ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detector.api._gen.streetwatch.v1 import ingest_pb2 as pb
from detector.api.client import make_frame
from detector.types import DeliveryMode

RED, GREEN = (0, 0, 255), (0, 255, 0)
W, H = 320, 240
T0 = 1.76e9  # capture time of the first frame


def write_spec(path: Path) -> Path:
    path.write_text(
        "name: colour-blobs\ntolerance: 30\nmin_area_px: 40\nclasses:\n"
        "  - {name: stall, bgr: [0, 0, 255]}\n  - {name: garbage, bgr: [0, 255, 0]}\n"
    )
    return path


def scripted_overrides(spec: Path, data_dir: Path) -> list[str]:
    """Settings for the colour-blob engine, a no-vending zone over the lower half of cam-1's image, and a
    stall/garbage category table (cart and goods are not classes of this engine)."""
    rules = (
        "{categories: {ROAD_OCCUPYING_STALL: {classes: [stall], case_code: '200501', label: 无照经营游商, "
        "severity: medium, rule: dwell}, EXPOSED_GARBAGE: {classes: [garbage], case_code: '200102', "
        "label: 暴露垃圾, severity: medium, rule: confirm}}, default_source: {zones: [{id: no-vending, "
        f"polygon_px: [[0, 120], [{W}, 120], [{W}, {H}], [0, {H}]], prohibited_classes: [stall]}}], "
        "confirm: {garbage: {k: 3, n_s: 5, min_confidence: 0.4}}}}"
    )
    return [
        "model.backend=colour-blobs",
        f"model.weights={spec}",
        f"store.data_dir={data_dir}",
        f"rules={rules}",
        "model.warmup_batch_sizes=[1]",
        # No SOURCE_DOWN events from a test that pauses a source (a slow machine can pause one for 30 s); the
        # stream-health tests turn it back on with their own, later, override.
        "ingest.stale_after_s=0",
    ]


def scene(patches: list[tuple[tuple[int, int, int], tuple[int, int, int, int]]]) -> np.ndarray:
    image = np.full((H, W, 3), 90, dtype=np.uint8)
    for colour, (x1, y1, x2, y2) in patches:
        image[y1:y2, x1:x2] = colour
    return image


def stall_frames(
    source: str,
    seconds: float,
    fps: float,
    present: list[tuple[float, float]],
    box: tuple[int, int, int, int] = (100, 150, 140, 190),
    jitter_px: int = 2,
    seq0: int = 0,
    t0: float = 0.0,
) -> list[pb.Frame]:
    """A stall visible in the given [start, end) intervals of capture time, with a little box jitter."""
    frames = []
    n = int(seconds * fps)
    for i in range(n):
        t = t0 + i / fps
        visible = any(a <= t < b for a, b in present)
        dx = (i % 3 - 1) * jitter_px
        x1, y1, x2, y2 = box
        patches = [(RED, (x1 + dx, y1, x2 + dx, y2))] if visible else []
        frames.append(make_frame(source, seq0 + i + 1, T0 + t, image=scene(patches), mode=DeliveryMode.LOSSLESS))
    return frames
