"""Ground textures from real photographs: asphalt and paving patches cut out of ../shared photos, for the
simulator's street raster (detector/sim/ground.py) to be made of instead of flat colours and noise (issue 19).

``harvest_textures`` scans photos for square patches of bare ground, away from every labelled box:

- **asphalt** from the pothole photos (street level, close up): grey, low saturation, and no large-scale
  structure (no kerb, wheel or shadow edge across it);
- **paving** from the street-vendors-aerial orthophotos (pavements and plazas seen from above, about 0.1 m a
  pixel): lighter ground that is not vegetation;
- **roof** from the same orthophotos: terracotta tiles, red-brown and striped (the renderer lays them on the flat
  tops of its buildings, which a drone sees).

A patch must also be free of the datasets' own augmentation (black borders from rotation, salt-and-pepper
noise) and of white watermarks and lane paint. Patches go to ``<bank>/textures/<material>/`` with a row each in
``<bank>/textures.json`` (source photo, place, metres per pixel, split): the same bank folder and the same
photo-name split as the people and vehicle cut-outs (detector/sim/sprites.py), so the demo's scenarios and the
training composites never share a source photo.

``TextureSet.surface`` lays patches of one material, all from one photo where it has enough, on a grid with
feathered overlaps and random flips into a tile, matched to one colour, and repeats the tile (mirrored) over the
band asked for. Scale is a stated guess, not measured: a pothole-photo patch is taken as 1 m of road, an
orthophoto pixel as 0.1 m.
"""

from __future__ import annotations

import copy
import json
import shutil
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from detector.paths import SHARED_ROOT
from detector.sim.realism import list_photos
from detector.train.dataset import label_path_of, read_yolo_label
from detector.train.neardup import copy_stem
from detector.types import ImageArray

MATERIALS = ("asphalt", "paving", "roof")
TEXTURES_VERSION = 1  # bump when the patch rules change (renders keyed on the bank's fingerprint then rebuild)


@dataclass(frozen=True)
class TextureSource:
    """Photos to cut materials from (a patch goes to the first that takes it): patch side in pixels, the metres
    one pixel is taken to cover, and the top fraction of each photo to skip (the far, foreshortened part of a
    street-level photo)."""

    folder: Path
    materials: tuple[str, ...]
    patch_px: int
    m_per_px: float
    skip_top: float = 0.0


DEFAULT_TEXTURE_SOURCES: tuple[TextureSource, ...] = (
    TextureSource(SHARED_ROOT / "datasets" / "potholes" / "images" / "train", ("asphalt",), 80, 1.0 / 80, 0.3),
    TextureSource(SHARED_ROOT / "datasets" / "street-vendors-aerial" / "images", ("roof", "paving"), 64, 0.1),
)
PER_PHOTO = 8  # patches kept per photo at most (the most uniform ones, overlapping by half at most)
GROUP = 8  # patches one surface is made of: one photo's, topped up with the nearest in colour from others


@dataclass(frozen=True)
class Texture:
    material: str
    path: str  # PNG, relative to the bank folder
    source: str  # the photo it was cut from
    x: int
    y: int
    size_px: int
    m_per_px: float
    split: str


@dataclass
class TextureReport:
    photos: int = 0
    kept: dict[str, int] = field(default_factory=dict)
    photos_used: dict[str, int] = field(default_factory=dict)

    def text(self) -> str:
        kept = ", ".join(f"{k} {v} from {self.photos_used.get(k, 0)} photos" for k, v in sorted(self.kept.items()))
        return f"{self.photos} photos read; textures kept: {kept or 'none'}"


def labelled_boxes(photo: Path, width: int, height: int) -> list[tuple[float, float, float, float]]:
    """Pixel boxes of every labelled object in ``photo`` (its YOLO label file; polygons as their boxes)."""
    return [((cx - bw / 2) * width, (cy - bh / 2) * height, (cx + bw / 2) * width, (cy + bh / 2) * height)
            for _, cx, cy, bw, bh in read_yolo_label(label_path_of(photo), None)]  # fmt: skip


def bare_ground(patch: ImageArray, material: str) -> float | None:
    """How uniform ``patch`` is (the spread of its 4x4 block means; lower is better) when it looks like bare
    ``material``, else None."""
    if material not in MATERIALS:
        raise ValueError(f"material must be one of {MATERIALS}, got {material!r}")
    grey = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY).astype(np.float32)
    if (patch.max(axis=2) < 16).mean() > 0.002:  # black border of a rotated copy
        return None
    if (grey > 225).mean() > 0.01:  # watermark, lane paint, glare
        return None
    impulses = np.abs(grey - cv2.medianBlur(grey, 3)) > 40
    if impulses.mean() > 0.002:  # salt-and-pepper noise added by the dataset's augmentation
        return None
    large = float(cv2.resize(grey, (4, 4), interpolation=cv2.INTER_AREA).std())
    hsv = cv2.cvtColor(patch, cv2.COLOR_BGR2HSV).astype(np.float32)
    saturation, value = float(hsv[..., 1].mean()), float(hsv[..., 2].mean())
    if material == "roof":  # red-brown rows of tiles: striped, so no limit on fine edges
        hue = float(np.median(hsv[..., 0]))
        striped = cv2.Canny(patch, 60, 120).mean() / 255.0 > 0.10
        red = hue <= 14 or hue >= 170
        return large if red and 60 < saturation < 190 and 60 < value < 220 and striped and large < 12.0 else None
    if cv2.Canny(patch, 80, 160).mean() / 255.0 > 0.12:  # an object's outline, not a surface
        return None
    if large > 9.0:  # a kerb, a shadow edge or an object across it
        return None
    if material == "asphalt":
        return large if saturation < 40 and 45 < value < 150 else None
    b, g, r = (float(c) for c in patch.reshape(-1, 3).mean(axis=0))
    green = g - max(r, b) > 4.0  # grass, trees, their shade
    return large if value >= 120 and saturation < 110 and not green else None


def _split_of(photo: Path) -> str:
    from detector.sim.sprites import split_of

    return split_of(photo)


def harvest_textures(
    bank: Path,
    sources: Sequence[TextureSource] = DEFAULT_TEXTURE_SOURCES,
    *,
    exclude: frozenset[Path] = frozenset(),
    splits: Sequence[str] = ("scenario", "train"),
    max_photos: int = 0,
    progress: bool = True,
) -> TextureReport:
    """Cut bare-ground patches out of the photos of ``sources`` into ``bank/textures`` and ``bank/textures.json``
    (replacing what was there). Only photos of ``splits`` are read; ``exclude``: photos never to cut."""
    report = TextureReport()
    folder = bank / "textures"
    partial = bank / "textures.partial"
    shutil.rmtree(partial, ignore_errors=True)
    kept: list[Texture] = []
    listed = [(p, s, _split_of(p)) for s in sources for p in list_photos([s.folder], max_photos)]
    photos = [(p, s, split) for p, s, split in listed if split in splits and p.resolve() not in exclude]
    seen: set[str] = set()
    for photo, source, split in tqdm(photos, desc="textures", unit="photo", disable=not progress):
        scene = copy_stem(photo, ".rf.")  # the aerial export holds each scene three times, augmented
        if scene in seen:
            continue
        seen.add(scene)
        raw = cv2.imread(str(photo), cv2.IMREAD_COLOR)
        if raw is None:
            continue
        report.photos += 1
        image = np.asarray(raw, np.uint8)
        h, w = image.shape[:2]
        boxes = labelled_boxes(photo, w, h)
        size, step = source.patch_px, source.patch_px // 2
        found: dict[str, list[tuple[float, int, int]]] = {m: [] for m in source.materials}
        for y in range(int(h * source.skip_top), h - size + 1, step):
            for x in range(0, w - size + 1, step):
                if any(x < b[2] + 4 and x + size > b[0] - 4 and y < b[3] + 4 and y + size > b[1] - 4 for b in boxes):
                    continue
                for material in source.materials:
                    score = bare_ground(image[y : y + size, x : x + size], material)
                    if score is not None:
                        found[material].append((score, x, y))
                        break
        for material, candidates in found.items():
            chosen: list[tuple[float, int, int]] = []
            for score, x, y in sorted(candidates):  # the most uniform first, overlapping by half at most
                if len(chosen) < PER_PHOTO and all(abs(x - cx) >= step or abs(y - cy) >= step for _, cx, cy in chosen):
                    chosen.append((score, x, y))
            for _, x, y in chosen:
                name = f"{material}/{photo.stem[:60]}-{x}-{y}.png"
                (partial / material).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(partial / name), image[y : y + size, x : x + size])
                kept.append(Texture(material, f"textures/{name}", str(photo), x, y, size, source.m_per_px, split))
            if chosen:
                report.kept[material] = report.kept.get(material, 0) + len(chosen)
                report.photos_used[material] = report.photos_used.get(material, 0) + 1
    partial.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    manifest = {"version": TEXTURES_VERSION, "splits": list(splits), "sources": [str(s.folder) for s in sources],
                "textures": [asdict(t) for t in kept], "report": asdict(report)}  # fmt: skip
    (bank / "textures.json").write_text(json.dumps(manifest, indent=1))
    return report


def _feather(size: int, overlap: int) -> npt.NDArray[np.float32]:
    """A patch's blending weight: 1 inside, falling to 0 over ``overlap`` pixels at each edge."""
    ramp = np.ones(size, np.float32)
    if overlap > 0:
        edge = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        ramp[:overlap], ramp[-overlap:] = edge, edge[::-1]
    return np.minimum.outer(ramp, ramp)


class TextureSet:
    """The texture patches of one bank folder and one split, loaded on first use."""

    def __init__(self, bank: Path, split: str) -> None:
        manifest = bank / "textures.json"
        data: dict[str, Any] = json.loads(manifest.read_text()) if manifest.is_file() else {"textures": []}
        self.folder = bank
        self.version = int(data.get("version", 0))
        self.textures = [Texture(**t) for t in data["textures"] if split == "all" or t["split"] == split]
        self.fingerprint = f"t{self.version}-{zlib.crc32(manifest.read_bytes()) if manifest.is_file() else 0:08x}"
        self._pixels: dict[str, ImageArray] = {}

    def without(self, photos: frozenset[Path]) -> TextureSet:
        kept = copy.copy(self)
        kept.textures = [t for t in self.textures if Path(t.source).resolve() not in photos]
        kept._pixels = {}
        return kept

    def has(self, material: str) -> bool:
        return any(t.material == material for t in self.textures)

    def count(self, material: str) -> int:
        return sum(t.material == material for t in self.textures)

    def _load(self, t: Texture) -> ImageArray:
        if t.path not in self._pixels:
            pixels = cv2.imread(str(self.folder / t.path), cv2.IMREAD_COLOR)
            if pixels is None:
                raise ValueError(f"texture {self.folder / t.path} is missing or unreadable")
            self._pixels[t.path] = np.asarray(pixels, np.uint8)
        return self._pixels[t.path]

    def _mean(self, t: Texture) -> npt.NDArray[np.float64]:
        return np.asarray(self._load(t).reshape(-1, 3).mean(axis=0), np.float64)

    def surface(
        self, material: str, shape: tuple[int, int], res_m: float, rng: np.random.Generator, tile_px: int = 768
    ) -> npt.NDArray[np.float32]:
        """A ``shape`` (rows, cols) BGR float surface of ``material`` at ``res_m`` metres a pixel."""
        choices = [t for t in self.textures if t.material == material]
        if not choices:
            raise ValueError(f"no {material} textures in {self.folder} (build them with `detector sim sprites`)")
        first = choices[int(rng.integers(len(choices)))]
        own = [t for t in choices if t.source == first.source]
        if len(own) < GROUP:  # topped up with the patches nearest in colour, from other photos
            colour = self._mean(first)
            others = sorted((t for t in choices if t.source != first.source),
                            key=lambda t: float(np.abs(self._mean(t) - colour).sum()))  # fmt: skip
            own += others[: GROUP - len(own)]
        group = own[:GROUP]
        side = max(4, round(group[0].size_px * group[0].m_per_px / res_m))
        overlap = max(1, side // 3)
        patches = [cv2.resize(self._load(t), (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)
                   for t in group]  # fmt: skip
        target = np.mean([p.reshape(-1, 3).mean(axis=0) for p in patches], axis=0)
        patches = [p * (target / np.maximum(p.reshape(-1, 3).mean(axis=0), 1.0)) for p in patches]
        tile = min(tile_px, max(shape)) if max(shape) > 0 else tile_px
        acc = np.zeros((tile + side, tile + side, 3), np.float32)
        weight = np.full((tile + side, tile + side), 1e-6, np.float32)
        feather = _feather(side, overlap)
        stride = side - overlap
        for y in range(-overlap, tile, stride):
            for x in range(-overlap, tile, stride):
                patch = patches[int(rng.integers(len(patches)))]
                patch = np.rot90(patch, int(rng.integers(4)) * (2 if material == "roof" else 1))  # tiles run one way
                y0, x0 = max(y, 0), max(x, 0)
                py, px = y0 - y, x0 - x
                h_, w_ = side - py, side - px
                acc[y0 : y0 + h_, x0 : x0 + w_] += patch[py:, px:] * feather[py:, px:, None]
                weight[y0 : y0 + h_, x0 : x0 + w_] += feather[py:, px:]
        block = (acc / weight[..., None])[:tile, :tile]
        rows, cols = shape
        if rows <= tile and cols <= tile:  # one tile covers it (a roof): no repeat, so no mirrored seam across it
            whole: npt.NDArray[np.float32] = np.ascontiguousarray(block[:rows, :cols])
            return whole
        reps = (rows // (2 * tile) + 1, cols // (2 * tile) + 1)
        mirrored = np.concatenate([block, block[:, ::-1]], axis=1)  # mirrored, so the repeats meet without seams
        mirrored = np.concatenate([mirrored, mirrored[::-1]], axis=0)
        big = np.tile(mirrored, (reps[0], reps[1], 1))
        oy, ox = int(rng.integers(tile)), int(rng.integers(tile))
        big = np.roll(big, (-oy, -ox), axis=(0, 1))
        result: npt.NDArray[np.float32] = np.ascontiguousarray(big[:rows, :cols])
        return result


__all__ = [
    "DEFAULT_TEXTURE_SOURCES",
    "MATERIALS",
    "TextureReport",
    "TextureSet",
    "TextureSource",
    "bare_ground",
    "harvest_textures",
    "labelled_boxes",
]
