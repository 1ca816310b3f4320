"""A rendered scenario as a YOLO dataset: its video frames with the truth's boxes, for `detector eval`.

This is how the model card measures per-class detection on a fresh scenario (a seed never trained on): the frames
are the decoded mp4 (with its compression), the labels the visible part of each object that is visible enough
to be fair game.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import yaml
from tqdm import tqdm

from detector.inference.tiling import Tile, TilingSpec, plan_tiles
from detector.sim.truth import Truth

MIN_SHARE_IN_TILE = 0.5  # a box is labelled in a tile that holds at least this share of its area


@dataclass
class ExportSummary:
    out_dir: Path
    images: int = 0
    instances: dict[str, int] = field(default_factory=dict)

    def text(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.instances.items())) or "none"
        return f"{self.images} frames written to {self.out_dir}; labelled instances: {counts}"


def export_yolo(
    scenario_dir: Path,
    out: Path,
    classes: list[str],
    every_s: float = 5.0,
    min_visibility: float = 0.5,
    min_side_px: float = 8.0,
    progress: bool = True,
    tile: TilingSpec | None = None,
) -> ExportSummary:
    """Write ``out/images/val``, ``out/labels/val`` and ``out/data.yaml`` (names = ``classes``, e.g. a model's).

    A frame every ``every_s`` seconds of scenario time. Objects of classes not in ``classes`` are left out; so are
    objects less visible than ``min_visibility`` or smaller than ``min_side_px`` (they are neither labelled nor
    can they count as false positives in ultralytics' matching, which is the known cost of this simplification).

    ``tile``: write each frame's tiles (as a tiled source cuts it, without the whole-frame pass) instead of the
    frame, each with the boxes that lie at least half inside it, clipped to it: per-class detection as the
    model sees a tiled drone's frames.
    """
    truth = Truth.load(scenario_dir / "truth.json")
    video = truth.files.get("video")
    if not video:
        raise ValueError(f"{scenario_dir} has no video (rendered with --no-video?)")
    if every_s <= 0:
        raise ValueError(f"every_s must be positive, got {every_s}")
    label_of = {o.id: o.cls for o in truth.objects}
    images_dir, labels_dir = out / "images" / "val", out / "labels" / "val"
    images_dir.mkdir(parents=True, exist_ok=True)
    labels_dir.mkdir(parents=True, exist_ok=True)
    summary = ExportSummary(out)
    next_t = 0.0
    with av.open(str(scenario_dir / str(video))) as container:
        decoded = container.decode(video=0)
        for frame_truth, frame in tqdm(
            zip(truth.frames, decoded, strict=False), total=len(truth.frames), desc="export", disable=not progress
        ):
            if frame_truth.t_s + 1e-6 < next_t:
                continue
            next_t = frame_truth.t_s + every_s
            image = frame.to_ndarray(format="bgr24")
            h, w = image.shape[:2]
            boxes = []
            for seen in frame_truth.objects:
                cls = label_of.get(seen.id)
                if cls not in classes or seen.visible_box is None or seen.visibility < min_visibility:
                    continue
                boxes.append((classes.index(cls), cls, seen.visible_box))
            # The tiles alone (a frame that one tile covers is written whole), or the whole frame when untiled.
            parts = plan_tiles(h, w, tile.model_copy(update={"full_frame": False}) if tile is not None else None)
            for k, part in enumerate(parts):
                lines = _tile_labels(boxes, part, min_side_px, summary)
                stem = f"{truth.scenario}_{frame_truth.index:06d}" + ("" if part.full else f"_t{k}")
                crop = part.crop(image)
                cv2.imwrite(str(images_dir / f"{stem}.jpg"), crop, [cv2.IMWRITE_JPEG_QUALITY, 95])
                (labels_dir / f"{stem}.txt").write_text("".join(lines))
                summary.images += 1
    (out / "data.yaml").write_text(
        yaml.safe_dump(
            {"path": str(out.resolve()), "train": "images/val", "val": "images/val", "names": dict(enumerate(classes))},
            sort_keys=False,
        )
    )
    return summary


def _tile_labels(
    boxes: list[tuple[int, str, tuple[float, float, float, float]]],
    tile: Tile,
    min_side_px: float,
    summary: ExportSummary,
) -> list[str]:
    """YOLO lines of the boxes mostly inside ``tile``, clipped to it and in its own normalised coordinates."""
    w, h = tile.x1 - tile.x0, tile.y1 - tile.y0
    lines = []
    for class_id, cls, (x1, y1, x2, y2) in boxes:
        cx1, cy1 = max(x1, tile.x0) - tile.x0, max(y1, tile.y0) - tile.y0
        cx2, cy2 = min(x2, tile.x1) - tile.x0, min(y2, tile.y1) - tile.y0
        area = max(x2 - x1, 0.0) * max(y2 - y1, 0.0)
        inside = max(cx2 - cx1, 0.0) * max(cy2 - cy1, 0.0)
        if area <= 0 or inside / area < MIN_SHARE_IN_TILE or min(cx2 - cx1, cy2 - cy1) < min_side_px:
            continue
        lines.append(f"{class_id} {(cx1 + cx2) / 2 / w:.6f} {(cy1 + cy2) / 2 / h:.6f} {(cx2 - cx1) / w:.6f} "
                     f"{(cy2 - cy1) / h:.6f}\n")  # fmt: skip
        summary.instances[cls] = summary.instances.get(cls, 0) + 1
    return lines
