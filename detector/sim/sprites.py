"""Photo sprites: people and vehicles cut out of real photographs, for the simulator to draw instead of its boxy
meshes (issue 19: renders a real-world detector recognises).

``harvest`` runs a COCO-pretrained model over real photos (../shared/datasets: street-level city-garbage and
potholes, nadir street-vendors-aerial), keeps whole, unoccluded people, cars and trucks, and cuts each out with
OpenCV's GrabCut seeded by its box. Each cut-out is an RGBA PNG under ``out/<class>/`` and a row of
``out/manifest.json`` (source photo, box, confidence, view, split). The bank is derived from CC BY 4.0 photos:
``out/ATTRIBUTION.txt`` says so, and it lives in the ignored ``.cache`` (never committed).

Selection bias, said plainly: a sprite is kept only when the same COCO model found it in its photo at
``min_conf``, and found it again in the cut-out alone on plain grey (``recognised``: drops cut-outs that lost
the object's shape); the realism measure (``detector sim realism``) then runs that model over renders that contain these
sprites. What the measure still tests is the rest of the chain: the sprite's size, placement, occlusion, lighting,
background and the camera effects of the render.

Splits: a source photo's sprites all go to one split by a hash of its name (aerial copies of one scene grouped by
the stem before ``.rf.``): ``scenario`` (a quarter, for the rendered scenarios and the demo) or ``train`` (for
training composites), so a model never meets in the demo the very cut-outs it saw as background in training.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from detector.paths import REPO_ROOT, SHARED_ROOT
from detector.sim.photo_objects import harvest_objects, object_sprites
from detector.sim.realism import DEFAULT_PHOTOS, DEFAULT_WEIGHTS, CocoModel, Detection, list_photos
from detector.sim.score import iou
from detector.sim.textures import TextureSet, harvest_textures
from detector.train.neardup import copy_stem
from detector.types import ImageArray

DEFAULT_BANK = REPO_ROOT / ".cache" / "sprites"
# (folder, view): street-level photos give side and oblique views; nadir tiles give views from above.
DEFAULT_SOURCES: tuple[tuple[Path, str], ...] = (
    (SHARED_ROOT / "datasets" / "city-garbage" / "images", "street"),
    (SHARED_ROOT / "datasets" / "potholes" / "images" / "train", "street"),
    (SHARED_ROOT / "datasets" / "street-vendors-aerial" / "images", "aerial"),
)
SPRITE_CLASSES = ("person", "car", "truck")
# Smallest cut-out worth keeping. From above, COCO's "person" on these tiles is mostly an umbrella or a stall:
# no aerial person sprites (the renderer draws its own meshes for people seen from above).
MIN_HEIGHT_PX = {"street": {"person": 40, "car": 24, "truck": 32}, "aerial": {"person": 10**6, "car": 14, "truck": 18}}
SPLITS = ("scenario", "train")
VERSION = 2  # bump when the cut-out rules change: caches keyed on the bank then rebuild (2: recognised alone)
MODEL_IMGSZ_CHECK = 320  # a cut-out on grey is small: the check runs the model at this input size


@dataclass(frozen=True)
class Sprite:
    cls: str  # COCO class: person, car, truck
    view: str  # street or aerial
    path: str  # PNG, relative to the bank folder
    width: int
    height: int
    source: str  # the photo it was cut from
    box: tuple[float, float, float, float]  # in the photo
    conf: float
    split: str


@dataclass
class HarvestReport:
    photos: int = 0
    detections: int = 0
    kept: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    textures: str = ""  # what the ground-texture harvest into the same bank kept (detector/sim/textures.py)
    objects: str = ""  # what the labelled-object harvest kept (detector/sim/photo_objects.py)

    def text(self) -> str:
        kept = ", ".join(f"{k} {v}" for k, v in sorted(self.kept.items())) or "none"
        rejected = ", ".join(f"{k} {v}" for k, v in sorted(self.rejected.items())) or "none"
        return (
            f"{self.photos} photos, {self.detections} COCO detections of {'/'.join(SPRITE_CLASSES)}; "
            f"kept {kept}; rejected {rejected}"
            + (f"; ground textures: {self.textures}" if self.textures else "")
            + (f"; labelled objects: {self.objects}" if self.objects else "")
        )


def split_of(photo: Path) -> str:
    """``scenario`` for about a quarter of the source photos (by name), ``train`` for the rest."""
    return SPLITS[0] if zlib.crc32(copy_stem(photo, ".rf.").encode()) % 4 == 0 else SPLITS[1]


def alone(det: Detection, others: Sequence[Detection], image_w: int, image_h: int, margin: int = 3) -> str | None:
    """Why a detection cannot be a sprite (cut by the border, or touching another object), or None."""
    x1, y1, x2, y2 = det.box
    if x1 < margin or y1 < margin or x2 > image_w - margin or y2 > image_h - margin:
        return "at the border"
    area = (x2 - x1) * (y2 - y1)
    for o in others:
        if o is det:
            continue
        ox1, oy1, ox2, oy2 = o.box
        overlap = max(0.0, min(x2, ox2) - max(x1, ox1)) * max(0.0, min(y2, oy2) - max(y1, oy1))
        if overlap > 0.1 * area:  # another object over a tenth of it: the cut-out would carry part of it
            return "overlaps another object"
    return None


def cut_out(image: ImageArray, box: tuple[float, float, float, float], iterations: int = 4) -> ImageArray | None:
    """The object inside ``box`` as a tight BGRA crop (alpha from GrabCut seeded by the box), or None when the
    segmentation does not look like one whole object (too little or too much of the box, or cut short)."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (round(v) for v in box)
    bw, bh = x2 - x1, y2 - y1
    px, py = max(4, bw // 4), max(4, bh // 6)
    cx1, cy1, cx2, cy2 = max(x1 - px, 0), max(y1 - py, 0), min(x2 + px, w), min(y2 + py, h)
    crop = np.ascontiguousarray(image[cy1:cy2, cx1:cx2])
    mask = np.zeros(crop.shape[:2], np.uint8)
    rect = (x1 - cx1, y1 - cy1, bw, bh)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(crop, mask, rect, bgd, fgd, iterations, cv2.GC_INIT_WITH_RECT)
    except cv2.error:
        return None
    fg = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if count < 2:
        return None
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    fg = (labels == biggest).astype(np.uint8)
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    area = int(fg.sum())
    if not 0.2 <= area / max(bw * bh, 1) <= 0.97:
        return None
    ys, xs = np.nonzero(fg)
    fx1, fy1, fx2, fy2 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    if (fy2 - fy1) < 0.75 * bh or (fx2 - fx1) < 0.6 * bw:
        return None  # GrabCut lost a head, the feet or a bumper
    alpha = cv2.GaussianBlur(fg.astype(np.float32), (0, 0), 0.8)  # a feathered, not a jagged, edge
    out = np.dstack([crop, np.clip(alpha * 255.0, 0, 255).astype(np.uint8)])
    result: ImageArray = np.ascontiguousarray(out[fy1:fy2, fx1:fx2])
    return result


def recognised(model: CocoModel, rgba: ImageArray, cls: str) -> bool:
    """Whether ``model`` still finds a ``cls`` in the cut-out alone, on plain grey with a margin: a cut-out that
    lost the object's shape (a white car on a white wall, half a person) fails and is dropped."""
    h, w = rgba.shape[:2]
    mx, my = max(8, w // 2), max(8, h // 4)
    canvas = np.full((h + 2 * my, w + 2 * mx, 3), 128.0, np.float32)
    alpha = rgba[..., 3:].astype(np.float32) / 255.0
    canvas[my : my + h, mx : mx + w] = rgba[..., :3] * alpha + canvas[my : my + h, mx : mx + w] * (1.0 - alpha)
    where = (float(mx), float(my), float(mx + w), float(my + h))
    found = model.detect(np.clip(canvas, 0, 255).astype(np.uint8))
    return any(d.cls == cls and iou(d.box, where) >= 0.5 for d in found)


def recheck(folder: Path, weights: Path = DEFAULT_WEIGHTS, min_conf: float = 0.4) -> tuple[int, int]:
    """Drop from an existing bank the cut-outs that ``recognised`` rejects; returns (kept, dropped)."""
    model = CocoModel(weights, conf=min_conf, imgsz=MODEL_IMGSZ_CHECK)
    manifest = folder / "manifest.json"
    data = json.loads(manifest.read_text())
    kept, dropped = [], 0
    for row in tqdm(data["sprites"], desc="recheck", unit="sprite"):
        pixels = cv2.imread(str(folder / row["path"]), cv2.IMREAD_UNCHANGED)
        if pixels is not None and recognised(model, np.asarray(pixels, np.uint8), row["cls"]):
            kept.append(row)
        else:
            (folder / row["path"]).unlink(missing_ok=True)
            dropped += 1
    data.update(sprites=kept, version=VERSION, checked=True)
    data["report"]["rejected"]["not recognised alone"] = dropped
    manifest.write_text(json.dumps(data, indent=1))
    return len(kept), dropped


def harvest(
    sources: Sequence[tuple[Path, str]],
    out: Path,
    *,
    weights: Path = DEFAULT_WEIGHTS,
    min_conf: float = 0.5,
    imgsz: int = 640,
    max_photos: int = 0,
    exclude: frozenset[Path] = frozenset(),
    splits: Sequence[str] = SPLITS,
    progress: bool = True,
) -> HarvestReport:
    """Cut people, cars and trucks out of the photos of ``sources`` into the bank folder ``out``; only photos of
    ``splits`` are read (the demo builds the ``scenario`` split alone, a quarter of the work)."""
    model = CocoModel(weights, conf=min_conf, imgsz=imgsz)
    check = CocoModel(weights, conf=min_conf, imgsz=MODEL_IMGSZ_CHECK)
    photos: list[tuple[Path, str]] = []
    for folder, view in sources:
        if view not in MIN_HEIGHT_PX:
            raise ValueError(f"view must be one of {sorted(MIN_HEIGHT_PX)}, got {view!r}")
        photos += [
            (p, view) for p in list_photos([folder], max_photos) if p.resolve() not in exclude and split_of(p) in splits
        ]
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    report = HarvestReport()
    sprites: list[Sprite] = []
    for photo, view in tqdm(photos, desc="sprites", unit="photo", disable=not progress):
        raw = cv2.imread(str(photo), cv2.IMREAD_COLOR)
        if raw is None:
            report.rejected["unreadable photo"] = report.rejected.get("unreadable photo", 0) + 1
            continue
        report.photos += 1
        image = np.asarray(raw, np.uint8)
        found = model.detect(image)
        h, w = image.shape[:2]
        for k, det in enumerate(found):
            if det.cls not in SPRITE_CLASSES:
                continue
            report.detections += 1
            why = alone(det, found, w, h)
            if why is None and det.box[3] - det.box[1] < MIN_HEIGHT_PX[view][det.cls]:
                why = "too small"
            rgba = cut_out(image, det.box) if why is None else None
            if why is None and rgba is None:
                why = "segmentation failed"
            if why is None and rgba is not None and not recognised(check, rgba, det.cls):
                why = "not recognised alone"
            if why is not None or rgba is None:
                report.rejected[why or "?"] = report.rejected.get(why or "?", 0) + 1
                continue
            rel = f"{det.cls}/{view}-{photo.stem[:60]}-{k}.png"
            (partial / det.cls).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(partial / rel), rgba)
            sprites.append(Sprite(det.cls, view, rel, int(rgba.shape[1]), int(rgba.shape[0]), str(photo),
                                  tuple(round(v, 1) for v in det.box), round(det.conf, 3), split_of(photo)))  # type: ignore[arg-type]  # fmt: skip
            key = f"{det.cls} {view}"
            report.kept[key] = report.kept.get(key, 0) + 1
    partial.mkdir(parents=True, exist_ok=True)
    folders = sorted({str(f) for f, _ in sources})
    (partial / "ATTRIBUTION.txt").write_text(
        "Cut-outs from photos in these folders (see each dataset's SOURCE.md; CC BY 4.0 requires attribution):\n"
        + "".join(f"- {f}\n" for f in folders)
    )
    manifest = {"version": VERSION, "weights": str(weights), "min_conf": min_conf, "imgsz": imgsz,
                "splits": list(splits),
                "sprites": [asdict(s) for s in sprites], "report": asdict(report)}  # fmt: skip
    (partial / "manifest.json").write_text(json.dumps(manifest, indent=1))
    textures = harvest_textures(partial, exclude=exclude, splits=splits, max_photos=max_photos, progress=progress)
    report.textures = textures.text()
    objects = harvest_objects(partial, exclude=exclude, splits=splits, max_photos=max_photos, progress=progress)
    report.objects = objects.text()
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    return report


class SplitNotBuilt(ValueError):
    """The bank was built without the split asked for (the demo builds only ``scenario``)."""


def _by_class_and_view(sprites: Sequence[Sprite]) -> dict[tuple[str, str], list[Sprite]]:
    out: dict[tuple[str, str], list[Sprite]] = {}
    for s in sprites:
        out.setdefault((s.cls, s.view), []).append(s)
    return out


class SpriteBank:
    """The cut-outs of one bank folder and one split, loaded on first use and picked per object."""

    def __init__(self, folder: Path, split: str = "scenario") -> None:
        if split not in (*SPLITS, "all"):
            raise ValueError(f"split must be one of {[*SPLITS, 'all']}, got {split!r}")
        manifest = folder / "manifest.json"
        if not manifest.is_file():
            raise ValueError(f"{folder} is not a sprite bank (no manifest.json): build one with `detector sim sprites`")
        data = json.loads(manifest.read_text())
        built = data.get("splits", list(SPLITS))
        if split != "all" and split not in built:
            raise SplitNotBuilt(f"sprite bank {folder} holds the {built} split(s), not {split!r}: rebuild it with "
                                "`detector sim sprites`")  # fmt: skip
        self.folder = folder
        self.split = split
        self.version = int(data.get("version", 0))
        objects, objects_fingerprint = object_sprites(folder)  # labelled objects, none in a bank built before them
        self.sprites = [
            Sprite(**{**s, "box": tuple(s["box"])})
            for s in [*data["sprites"], *objects]
            if split == "all" or s["split"] == split
        ]
        self._by = _by_class_and_view(self.sprites)
        self._pixels: dict[str, ImageArray] = {}
        self.textures = TextureSet(folder, split)  # ground textures, empty in a bank built before them
        self.fingerprint = f"v{self.version}-{split}-{zlib.crc32(manifest.read_bytes()):08x}"
        if self.textures.textures:
            self.fingerprint += f"-{self.textures.fingerprint}"
        self.objects_fingerprint = objects_fingerprint
        if objects_fingerprint:
            self.fingerprint += f"-{objects_fingerprint}"

    def without(self, photos: frozenset[Path]) -> SpriteBank:
        """This bank less the sprites cut from ``photos`` (a training run's validation photos)."""
        kept = copy.copy(self)
        kept.sprites = [s for s in self.sprites if Path(s.source).resolve() not in photos]
        kept._by = _by_class_and_view(kept.sprites)
        kept._pixels = {}
        kept.textures = self.textures.without(photos)
        return kept

    def without_objects(self) -> SpriteBank:
        """This bank less its labelled objects (``sim render --no-photo-objects``): garbage, bins, potholes and
        stalls are drawn as meshes, people, vehicles and the ground as with the whole bank."""
        kept = copy.copy(self)
        kept.sprites = [s for s in self.sprites if s.cls in SPRITE_CLASSES]
        kept._by = _by_class_and_view(kept.sprites)
        kept._pixels = {}
        if self.objects_fingerprint:
            kept.fingerprint = self.fingerprint.removesuffix(f"-{self.objects_fingerprint}")
            kept.objects_fingerprint = ""
        return kept

    def __len__(self) -> int:
        return len(self.sprites)

    def has(self, cls: str, view: str) -> bool:
        return bool(self._by.get((cls, view)))

    def pick(self, cls: str, view: str, key: int, aspect: float, height_px: float) -> tuple[Sprite, ImageArray]:
        """A sprite of ``cls`` seen from ``view`` for one object: among a handful chosen by ``key`` (the object,
        so it keeps its look from frame to frame unless its shape on screen changes a lot), the one whose
        width/height is nearest ``aspect``, preferring those not enlarged more than 1.5x (a blurred blob)."""
        choices = self._by[(cls, view)]
        rng = np.random.default_rng([key, 11])
        few = [choices[int(i)] for i in rng.choice(len(choices), size=min(6, len(choices)), replace=False)]

        def cost(s: Sprite) -> float:
            shape = abs(math.log(max(s.width / s.height, 1e-3) / max(aspect, 1e-3)))
            return shape + 0.5 * max(0.0, math.log(height_px / (1.5 * s.height)))  # enlarged: blurred

        best = min(few, key=cost)
        if best.path not in self._pixels:
            pixels = cv2.imread(str(self.folder / best.path), cv2.IMREAD_UNCHANGED)
            if pixels is None or pixels.ndim != 3 or pixels.shape[2] != 4:
                raise ValueError(f"sprite {self.folder / best.path} is missing or not an RGBA PNG")
            self._pixels[best.path] = np.asarray(pixels, np.uint8)
        return best, self._pixels[best.path]


def default_bank(split: str = "scenario", folder: Path = DEFAULT_BANK) -> SpriteBank | None:
    """The bank at ``folder`` if it has been built with ``split``, else None (renders then draw meshes)."""
    if not (folder / "manifest.json").is_file():
        return None
    try:
        return SpriteBank(folder, split)
    except SplitNotBuilt:
        return None


def ensure_bank(split: str = "scenario", folder: Path = DEFAULT_BANK, progress: bool = True) -> SpriteBank | None:
    """The default bank, built first (``split`` only) when it is missing and ../shared is there; None without
    ../shared (renders then draw people and vehicles as meshes, and say so)."""
    bank = default_bank(split, folder)
    if bank is not None:
        if not bank.objects_fingerprint:
            print(f"the sprite bank {folder} predates the labelled objects: garbage, bins, potholes and stalls are "
                  "drawn as meshes until `detector sim sprites --objects-only` adds them", flush=True)  # fmt: skip
        return bank
    if not DEFAULT_WEIGHTS.is_file() or not all(f.exists() for f, _ in DEFAULT_SOURCES):
        print(f"no sprite bank and no ../shared ({SHARED_ROOT}): people and vehicles are drawn as meshes", flush=True)
        return None
    print(f"building the sprite bank's {split} split in {folder} (first run only)", flush=True)
    report = harvest(DEFAULT_SOURCES, folder, exclude=realism_photos_excluded(), splits=(split,), progress=progress)
    print(f"sprite bank: {report.text()}", flush=True)
    return SpriteBank(folder, split)


def realism_photos_excluded(limit: int = 60) -> frozenset[Path]:
    """The photos `detector sim realism` measures on by default: never cut into sprites, so that the real-photo
    column of the measure and the bank share no picture."""
    if not DEFAULT_PHOTOS.exists():
        return frozenset()
    return frozenset(p.resolve() for p in list_photos([DEFAULT_PHOTOS], limit))


__all__ = [
    "DEFAULT_BANK",
    "DEFAULT_SOURCES",
    "HarvestReport",
    "SplitNotBuilt",
    "Sprite",
    "SpriteBank",
    "alone",
    "cut_out",
    "default_bank",
    "ensure_bank",
    "harvest",
    "realism_photos_excluded",
    "recheck",
    "recognised",
    "split_of",
]
