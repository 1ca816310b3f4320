"""Labelled objects cut out of real photographs by their own labels, for the simulator to draw instead of its
meshes (issue 19: renders a real-world detector recognises, with goods and garbage taken from photos):

- **garbage, garbage_bin, overflow** from city-garbage (street level): each labelled box cut out with GrabCut
  seeded by the box (detector/sim/sprites.py ``cut_out``), standing where the mesh would stand;
- **pothole** from the pothole photos: the box and a margin, faded out at an ellipse's edge, laid flat on the road;
- **stall** from street-vendors-aerial (nadir): the box and a margin, faded out at its edges, laid on the stall's
  footprint at canopy height when a drone sees it from high above.

They go into the sprite bank's folder (``<bank>/objects/<class>/`` and ``<bank>/objects.json``, rows like the
people's cut-outs) and the bank serves them with the rest.

**Split, and why it differs from the people's.** A labelled object is what the detector is scored on, so the demo's
objects must be ones the model never trained on: the ``scenario`` split is the photos that the default training
config (weights/train.yaml, whose real sources and seeds streetwatch-v4 to -v7 share) holds out for validation
(detector/train/dataset.py ``real_validation_photos``); every other photo is ``train``. Training composites draw the
train split less any validation photo, as for people and vehicles.

**No selection by a model.** Every labelled box that is whole (not at the photo's border, not overlapped by another
label) and large enough is cut; only a failed segmentation drops one. The demo thus measures the detector on
objects that no detector chose.
"""

from __future__ import annotations

import json
import shutil
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from detector.paths import REPO_ROOT, SHARED_ROOT
from detector.sim.realism import Detection, list_photos
from detector.train.dataset import label_path_of, read_yolo_label
from detector.train.neardup import copy_stem
from detector.types import ImageArray

OBJECTS_VERSION = 1  # bump when the cut rules change (renders keyed on the bank's fingerprint then rebuild)
DEFAULT_TRAIN_CONFIG = REPO_ROOT / "weights" / "train.yaml"


@dataclass(frozen=True)
class ObjectSource:
    """Labelled photos to cut objects from: the training config's source name (whose validation photos form the
    scenario split), the image folders, label id -> sprite class, how the cut-outs are seen and drawn
    (``street``: standing; ``ground``: flat on the road; ``aerial``: from above) and the smallest box side."""

    name: str
    folders: tuple[Path, ...]
    classes: dict[int, str]
    view: str
    min_side_px: int


_DATA = SHARED_ROOT / "datasets"
DEFAULT_OBJECT_SOURCES: tuple[ObjectSource, ...] = (
    ObjectSource("city-garbage", (_DATA / "city-garbage" / "images" / "train",),
                 {0: "garbage", 1: "garbage_bin", 2: "overflow"}, "street", 32),
    ObjectSource("potholes", (_DATA / "potholes" / "images" / "train", _DATA / "potholes" / "images" / "val"),
                 {0: "pothole"}, "ground", 24),
    ObjectSource("street-vendors-aerial", (_DATA / "street-vendors-aerial" / "images" / "train",),
                 {0: "stall"}, "aerial", 20),
)  # fmt: skip
OBJECT_CLASSES = ("garbage", "garbage_bin", "overflow", "pothole", "stall")


@dataclass
class ObjectReport:
    photos: int = 0
    labels: int = 0
    kept: dict[str, int] = field(default_factory=dict)  # "<class> <split>" -> cut-outs
    rejected: dict[str, int] = field(default_factory=dict)

    def text(self) -> str:
        kept = ", ".join(f"{k} {v}" for k, v in sorted(self.kept.items())) or "none"
        rejected = ", ".join(f"{k} {v}" for k, v in sorted(self.rejected.items())) or "none"
        return f"{self.photos} photos, {self.labels} labelled boxes; kept {kept}; rejected {rejected}"


def default_held_out(config: Path = DEFAULT_TRAIN_CONFIG, progress: bool = True) -> dict[str, frozenset[Path]]:
    """The validation photos of ``config``'s real sources, per source name."""
    from detector.train.config import load_train_config
    from detector.train.dataset import real_validation_photos

    return real_validation_photos(load_train_config(config), progress=progress)


def faded(image: ImageArray, box: tuple[float, float, float, float], margin: float, ellipse: bool) -> ImageArray:
    """The box and ``margin`` (a fraction of its sides) around it as a BGRA crop whose alpha is 1 over the box and
    falls to 0 towards the crop's edge, in an ellipse or a rounded rectangle: an object that is a patch of its
    ground (a pothole, a stall seen from above) with no outline to cut along, blended into the render's ground."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    cx1, cy1 = max(round(x1 - mx), 0), max(round(y1 - my), 0)
    cx2, cy2 = min(round(x2 + mx), w), min(round(y2 + my), h)
    crop = image[cy1:cy2, cx1:cx2]
    ch, cw = crop.shape[:2]
    inner = np.zeros((ch, cw), np.uint8)
    px, py = (x1 + x2) / 2 - cx1, (y1 + y2) / 2 - cy1
    if ellipse:  # the box's inscribed ellipse grown by half the margin
        axes = (max(round((x2 - x1) / 2 + mx / 2), 1), max(round((y2 - y1) / 2 + my / 2), 1))
        cv2.ellipse(inner, (round(px), round(py)), axes, 0.0, 0.0, 360.0, 255, -1)
    else:
        cv2.rectangle(inner, (round(x1 - cx1), round(y1 - cy1)), (round(x2 - cx1) - 1, round(y2 - cy1) - 1), 255, -1)
    sigma = max(1.0, 0.4 * min(mx, my))
    alpha = cv2.GaussianBlur(inner, (0, 0), sigma)
    alpha[inner > 0] = np.maximum(alpha[inner > 0], 255 - (255 - alpha[inner > 0]) // 2)  # the box stays solid
    out: ImageArray = np.ascontiguousarray(np.dstack([crop, alpha]))
    return out


def harvest_objects(
    bank: Path,
    sources: Sequence[ObjectSource] = DEFAULT_OBJECT_SOURCES,
    *,
    held_out: dict[str, frozenset[Path]] | None = None,
    exclude: frozenset[Path] = frozenset(),
    splits: Sequence[str] = ("scenario", "train"),
    max_photos: int = 0,
    progress: bool = True,
) -> ObjectReport:
    """Cut the labelled objects of ``sources`` into ``bank/objects`` and ``bank/objects.json`` (replacing what was
    there). ``held_out``: per source name, the photos of the scenario split (default: the validation photos of
    weights/train.yaml); only photos of ``splits`` are read; ``exclude``: photos never to cut."""
    from detector.sim.sprites import Sprite, alone, cut_out

    held = default_held_out(progress=progress) if held_out is None else held_out
    report = ObjectReport()
    folder, partial = bank / "objects", bank / "objects.partial"
    shutil.rmtree(partial, ignore_errors=True)
    photos: list[tuple[Path, ObjectSource, str]] = []
    for source in sources:
        val = held.get(source.name, frozenset())
        for photo in list_photos(list(source.folders), max_photos):
            resolved = photo.resolve()
            split = "scenario" if resolved in val else "train"
            if split in splits and resolved not in exclude:
                photos.append((photo, source, split))
    kept: list[Sprite] = []
    seen: set[str] = set()
    for photo, source, split in tqdm(photos, desc="objects", unit="photo", disable=not progress):
        scene = f"{source.name}/{copy_stem(photo, '.rf.')}"  # the aerial export holds each scene three times
        if scene in seen:
            continue
        seen.add(scene)
        labels = [b for b in read_yolo_label(label_path_of(photo), None) if b[0] in source.classes]
        raw = cv2.imread(str(photo), cv2.IMREAD_COLOR) if labels else None
        if raw is None:
            continue
        report.photos += 1
        image = np.asarray(raw, np.uint8)
        h, w = image.shape[:2]
        boxes = [(source.classes[c], ((cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h))
                 for c, cx, cy, bw, bh in labels]  # fmt: skip
        others = [Detection(cls, box, 1.0) for cls, box in boxes]
        for k, (cls, box) in enumerate(boxes):
            report.labels += 1
            why = alone(others[k], others, w, h)
            if why is None and min(box[2] - box[0], box[3] - box[1]) < source.min_side_px:
                why = "too small"
            rgba = None
            if why is None:  # a standing object along its outline; a patch of ground (or a canopy) faded out
                ground = source.view == "ground"
                rgba = cut_out(image, box) if source.view == "street" else faded(image, box, 0.15, ellipse=ground)
                why = "segmentation failed" if rgba is None else None
            if why is not None or rgba is None:
                report.rejected[why or "?"] = report.rejected.get(why or "?", 0) + 1
                continue
            name = f"{cls}/{photo.stem[:60]}-{k}.png"
            (partial / cls).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(partial / name), rgba)
            rel = f"objects/{name}"
            x1, y1, x2, y2 = (round(v, 1) for v in box)
            kept.append(Sprite(cls, source.view, rel, int(rgba.shape[1]), int(rgba.shape[0]), str(photo),
                               (x1, y1, x2, y2), 1.0, split))  # fmt: skip
            report.kept[f"{cls} {split}"] = report.kept.get(f"{cls} {split}", 0) + 1
    partial.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    manifest = {"version": OBJECTS_VERSION, "splits": list(splits), "sources": [s.name for s in sources],
                "held_out": {k: len(v) for k, v in held.items()},
                "sprites": [asdict(s) for s in kept], "report": asdict(report)}  # fmt: skip
    (bank / "objects.json").write_text(json.dumps(manifest, indent=1))
    return report


def object_sprites(bank: Path) -> tuple[list[dict[str, object]], str]:
    """The rows of ``bank/objects.json`` and a fingerprint of them ("" without the file)."""
    manifest = bank / "objects.json"
    if not manifest.is_file():
        return [], ""
    data = json.loads(manifest.read_text())
    rows: list[dict[str, object]] = data["sprites"]
    return rows, f"o{int(data.get('version', 0))}-{zlib.crc32(manifest.read_bytes()):08x}"


__all__ = [
    "DEFAULT_OBJECT_SOURCES",
    "OBJECT_CLASSES",
    "ObjectReport",
    "ObjectSource",
    "default_held_out",
    "faded",
    "harvest_objects",
    "object_sprites",
]
