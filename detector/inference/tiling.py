"""Tiled inference for high-resolution frames (what SAHI and supervision's InferenceSlicer do), inside the core.

A drone frame of 1920x1080 shrunk to a 416-640 px model input turns a 2 m stall seen from 60 m into a few pixels.
A tiled source's frame is cut into overlapping tiles of ``tile_px`` (each goes through the model at its own scale)
plus, by default, one pass over the whole frame so that objects larger than a tile are still seen whole. The
batcher puts every tile into the batch as a separate item, counted against its source for fairness; this module
plans the tiles and merges the boxes back into one set in the frame's own pixels:

- boxes are shifted from tile to frame pixels;
- per class, boxes that overlap by at least ``match_ios`` of the smaller one (intersection over smaller, as SAHI
  merges) are one object, taken greedily from the most confident;
- a box that ends on a tile edge inside the frame is *cut* (it saw part of the object). In a group, the most
  confident whole box wins; if every box of the group is cut, the object is their union, so an object cut by a
  seam comes back as one box covering it.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from detector.ingest.decode import dct_scale
from detector.types import Detections, ImageArray

CUT_EDGE_PX = 2.0  # a box within this many pixels of an inner tile edge was cut by it


class TilingSpec(BaseModel):
    """Explicit tiles: ``tile_px`` squares overlapping by at least ``overlap_px``, plus a whole-frame pass."""

    model_config = ConfigDict(extra="forbid")

    tile_px: int = Field(ge=64, le=8192, description="Side of a tile in the frame's own pixels.")
    overlap_px: int = Field(ge=0, description="Least overlap of neighbouring tiles, frame pixels.")
    full_frame: bool = Field(True, description="Also run the whole frame, so that objects larger than a tile "
                             "are seen whole.")  # fmt: skip

    @model_validator(mode="after")
    def _overlap_smaller_than_tile(self) -> TilingSpec:
        if self.overlap_px >= self.tile_px:
            raise ValueError(f"overlap_px ({self.overlap_px}) must be smaller than tile_px ({self.tile_px})")
        return self

    @classmethod
    def parse(cls, text: str, full_frame: bool = True) -> TilingSpec:
        """``"960:192"`` (TILE_PX:OVERLAP_PX), as command lines take it; ValueError says what is wrong."""
        tile, sep, overlap = text.partition(":")
        try:
            if not sep:
                raise ValueError("no ':'")
            return cls(tile_px=int(tile), overlap_px=int(overlap), full_frame=full_frame)
        except ValueError as exc:  # int() or the checks above (pydantic's ValidationError is a ValueError)
            raise ValueError(f"expected TILE_PX:OVERLAP_PX with TILE_PX >= 64 and 0 <= OVERLAP_PX < TILE_PX, "
                             f"e.g. 960:192, got {text!r} ({exc})") from None  # fmt: skip


TilingChoice = Literal["off", "auto"] | TilingSpec


def _choice(value: Any) -> Any:
    # YAML reads a bare `off` as False and `on` as True.
    if value is False:
        return "off"
    if value is True:
        return "auto"
    return value


class TilingSettings(BaseModel):
    """Section ``tiling``: which sources are tiled and how.

    ``auto`` tiles a frame whose long side is more than twice the model input, with tiles of the model input's
    size (seen at full resolution) overlapping by a fifth of a tile, plus the whole-frame pass.
    """

    model_config = ConfigDict(extra="forbid")

    default: TilingChoice = Field("off", description="For sources not named in 'sources': off, auto or "
                                  "{tile_px, overlap_px, full_frame}.")  # fmt: skip
    sources: dict[str, TilingChoice] = Field(
        default_factory=dict,
        description="Per source id (or shell pattern such as 'drone-*'): off, auto or {tile_px, overlap_px, "
        "full_frame}. An exact id wins over a pattern; patterns are tried in the order given.",
    )
    match_ios: float = Field(
        0.5, gt=0.0, le=1.0, description="Boxes of one class overlapping by this share of the smaller are merged."
    )

    @field_validator("default", mode="before")
    @classmethod
    def _default_choice(cls, value: Any) -> Any:
        return _choice(value)

    @field_validator("sources", mode="before")
    @classmethod
    def _source_choices(cls, value: Any) -> Any:
        return {k: _choice(v) for k, v in value.items()} if isinstance(value, dict) else value


@dataclass(frozen=True)
class Tile:
    """One model input cut from a frame: pixels [y0:y1, x0:x1]; ``full`` is the whole-frame pass."""

    x0: int
    y0: int
    x1: int
    y1: int
    full: bool = False

    def crop(self, image: ImageArray, scale: int = 1) -> ImageArray:
        """This tile's pixels of ``image``, the frame decoded at ``scale`` (tiles are in full-frame pixels)."""
        if self.full:
            return image
        x0, y0 = self.x0 // scale, self.y0 // scale
        return image[y0 : -(-self.y1 // scale), x0 : -(-self.x1 // scale)]

    def unscale(self, det: Detections, scale: int, height: int, width: int) -> Detections:
        """Boxes found in :meth:`crop` of a frame decoded at ``scale`` -> this tile's full-resolution pixels, kept
        inside the ``height`` x ``width`` frame."""
        if scale == 1 or not len(det):
            return det
        x0, y0 = (self.x0 // scale) * scale, (self.y0 // scale) * scale  # the crop's corner, full pixels
        xyxy = det.xyxy * np.float32(scale)
        xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]] + x0, 0, width) - self.x0
        xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]] + y0, 0, height) - self.y0
        return Detections(xyxy=xyxy, confidence=det.confidence, class_id=det.class_id, track_id=det.track_id)


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Evenly spread tile starts covering ``length`` with neighbours overlapping by at least ``overlap``."""
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def plan_tiles(height: int, width: int, spec: TilingSpec | None) -> list[Tile]:
    """The model inputs of one frame: the whole frame alone when untiled or when one tile would cover it."""
    whole = Tile(0, 0, width, height, full=True)
    if spec is None or (height <= spec.tile_px and width <= spec.tile_px):
        return [whole]
    side_y, side_x = min(spec.tile_px, height), min(spec.tile_px, width)
    tiles = [
        Tile(x, y, x + side_x, y + side_y)
        for y in _starts(height, spec.tile_px, spec.overlap_px)
        for x in _starts(width, spec.tile_px, spec.overlap_px)
    ]
    return [*tiles, whole] if spec.full_frame else tiles


class TilingPolicy:
    """Decides per source and frame size which tiles a frame is cut into."""

    def __init__(self, settings: TilingSettings, imgsz: int) -> None:
        self.settings = settings
        self.imgsz = imgsz
        self._auto = TilingSpec(tile_px=imgsz, overlap_px=round(imgsz / 5))

    def choice(self, source_id: str) -> TilingChoice:
        sources = self.settings.sources
        if source_id in sources:
            return sources[source_id]
        for pattern, value in sources.items():
            if fnmatch.fnmatchcase(source_id, pattern):
                return value
        return self.settings.default

    def spec(self, source_id: str, height: int, width: int) -> TilingSpec | None:
        choice = self.choice(source_id)
        if choice == "off":
            return None
        if choice == "auto":
            return self._auto if max(height, width) > 2 * self.imgsz else None
        assert isinstance(choice, TilingSpec)
        return choice

    def tiles(self, source_id: str, height: int, width: int) -> list[Tile]:
        return plan_tiles(height, width, self.spec(source_id, height, width))

    def decode_scale(self, source_id: str, width: int, height: int) -> int:
        """The DCT scale a JPEG of this source and size can be decoded at without the model losing detail: the
        whole frame keeps at least the model input's long side, and a tile at least the model input's size
        (``auto`` tiles are the model input's size at full resolution, so a frame they cut is decoded whole)."""
        scale = dct_scale(width, height, self.imgsz)
        spec = self.spec(source_id, height, width)
        if spec is not None and len(plan_tiles(height, width, spec)) > 1:
            scale = min(scale, dct_scale(spec.tile_px, spec.tile_px, self.imgsz))
        return scale


def _cut_mask(xyxy: np.ndarray, tile: Tile, height: int, width: int) -> np.ndarray:
    """Which boxes (tile pixels) touch a tile edge that lies inside the frame."""
    cut = np.zeros(len(xyxy), dtype=bool)
    if tile.full:
        return cut
    w, h = tile.x1 - tile.x0, tile.y1 - tile.y0
    if tile.x0 > 0:
        cut |= xyxy[:, 0] <= CUT_EDGE_PX
    if tile.y0 > 0:
        cut |= xyxy[:, 1] <= CUT_EDGE_PX
    if tile.x1 < width:
        cut |= xyxy[:, 2] >= w - CUT_EDGE_PX
    if tile.y1 < height:
        cut |= xyxy[:, 3] >= h - CUT_EDGE_PX
    return cut


def merge_tiles(
    parts: Sequence[tuple[Tile, Detections]], height: int, width: int, match_ios: float = 0.5
) -> Detections:
    """One set of boxes in frame pixels from the detections of every tile of a frame (see the module docstring).

    A frame that went through as one whole-frame part comes back unchanged.
    """
    if len(parts) == 1 and parts[0][0].full:
        return parts[0][1]
    boxes, scores, classes, cuts = [], [], [], []
    for tile, det in parts:
        if not len(det):
            continue
        cuts.append(_cut_mask(det.xyxy, tile, height, width))
        boxes.append(det.xyxy + np.array([tile.x0, tile.y0, tile.x0, tile.y0], dtype=np.float32))
        scores.append(det.confidence)
        classes.append(det.class_id)
    if not boxes:
        return Detections()
    xyxy, conf = np.concatenate(boxes), np.concatenate(scores)
    cls, cut = np.concatenate(classes), np.concatenate(cuts)
    area = np.clip(xyxy[:, 2] - xyxy[:, 0], 0, None) * np.clip(xyxy[:, 3] - xyxy[:, 1], 0, None)
    order = np.argsort(-conf, kind="stable")
    free = np.ones(len(xyxy), dtype=bool)
    out_boxes, out_conf, out_cls = [], [], []
    for i in order:
        if not free[i]:
            continue
        group = np.array([i])
        free[i] = False
        reach = xyxy[i].copy()  # the union of the group so far: a fragment joins through its neighbours
        while True:
            candidates = np.nonzero(free & (cls == cls[i]))[0]
            if not len(candidates):
                break
            joined = candidates[_ios(xyxy[candidates], area[candidates], reach) >= match_ios]
            if not len(joined):
                break
            free[joined] = False
            group = np.concatenate([group, joined])
            reach = _union(xyxy[group])
        whole = group[~cut[group]]
        out_boxes.append(xyxy[whole[np.argmax(conf[whole])]] if len(whole) else _union(xyxy[group]))
        out_conf.append(conf[group].max())
        out_cls.append(cls[i])
    return Detections(xyxy=np.stack(out_boxes), confidence=np.array(out_conf), class_id=np.array(out_cls))


def _union(xyxy: np.ndarray) -> np.ndarray:
    return np.array([xyxy[:, 0].min(), xyxy[:, 1].min(), xyxy[:, 2].max(), xyxy[:, 3].max()], dtype=np.float32)


def _ios(xyxy: np.ndarray, area: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Intersection of each box with ``box`` over the smaller of the two areas."""
    iw = np.clip(np.minimum(xyxy[:, 2], box[2]) - np.maximum(xyxy[:, 0], box[0]), 0, None)
    ih = np.clip(np.minimum(xyxy[:, 3], box[3]) - np.maximum(xyxy[:, 1], box[1]), 0, None)
    box_area = max(float((box[2] - box[0]) * (box[3] - box[1])), 1e-6)
    return np.asarray(iw * ih / np.maximum(np.minimum(area, box_area), 1e-6))
