"""How much boxes move when a JPEG is decoded reduced in the DCT domain instead of whole.

The service decodes a JPEG at least twice the model input at 1/2, 1/4 or 1/8 of its size (``ingest.reduced_decode``)
and maps the boxes back to full-frame pixels. The model then sees a slightly different picture than the letterbox
of the full decode would have given it (libjpeg's reduced IDCT instead of an area resize), so boxes move a little
and a few near the threshold come and go. This check measures that on the bench frames with one engine: the boxes
of the full decode are the reference, matched one to one with the reduced decode's (same class, IoU >= 0.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from detector.bench.backends import iou, match_boxes
from detector.inference.engine import Engine
from detector.inference.tiling import Tile
from detector.ingest.decode import ImageLimits, dct_scale, decode_scaled, header_size


@dataclass(frozen=True)
class DecodeShift:
    """Boxes of the reduced decode against the full decode's, on the same frames and engine."""

    backend: str
    resolution: str
    scale: int  # the DCT scale of the reduced decode
    frames: int
    full_boxes: int  # boxes of the full decode with a confidence ``margin`` above the threshold
    matched: int  # of those, found in the reduced decode (same class, IoU >= 0.5)
    missing: int  # full_boxes - matched
    extra: int  # confident reduced-decode boxes the full decode did not find
    median_shift_px: float  # per matched box the largest of its 4 coordinates' moves, full-frame pixels
    max_shift_px: float
    median_iou: float
    conf: float  # the threshold the engine was built with

    @property
    def matched_share(self) -> float:
        return self.matched / self.full_boxes if self.full_boxes else 1.0


def check_decode_shift(
    engine: Engine,
    jpegs: Sequence[bytes],
    limits: ImageLimits,
    resolution: str = "",
    conf: float = 0.05,
    margin: float = 0.02,
) -> DecodeShift | None:
    """Compare a full and a reduced decode of each of ``jpegs`` (one frame at a time); ``conf`` is the threshold
    ``engine`` was built with. None when the frames are too small to be decoded reduced (scale 1)."""
    if not jpegs:
        return None
    size = header_size(jpegs[0])
    if size is None:
        return None
    width, height = size
    scale = dct_scale(width, height, engine.imgsz)
    if scale == 1:
        return None
    required = conf + margin
    whole = Tile(0, 0, width, height, full=True)
    full_boxes = matched = extra = 0
    shifts: list[float] = []
    overlaps: list[float] = []
    for data in jpegs:
        full_image, _ = decode_scaled(data, limits)
        reduced_image, used = decode_scaled(data, limits, lambda w, h: dct_scale(w, h, engine.imgsz))
        ref = engine.infer([full_image])[0][0]
        got = whole.unscale(engine.infer([reduced_image])[0][0], used, height, width)
        pairs = match_boxes(ref, got)
        paired_got = {j for _, j in pairs}
        confident = ref.confidence >= required
        full_boxes += int(np.sum(confident))
        for i, j in pairs:
            if not confident[i]:
                continue
            matched += 1
            shifts.append(float(np.abs(ref.xyxy[i] - got.xyxy[j]).max()))
            overlaps.append(iou(ref.xyxy[i].tolist(), got.xyxy[j].tolist()))
        extra += sum(1 for j in range(len(got)) if j not in paired_got and got.confidence[j] >= required)
    return DecodeShift(
        backend=engine.backend,
        resolution=resolution,
        scale=scale,
        frames=len(jpegs),
        full_boxes=full_boxes,
        matched=matched,
        missing=full_boxes - matched,
        extra=extra,
        median_shift_px=float(np.median(shifts)) if shifts else 0.0,
        max_shift_px=max(shifts, default=0.0),
        median_iou=float(np.median(overlaps)) if overlaps else 1.0,
        conf=conf,
    )
