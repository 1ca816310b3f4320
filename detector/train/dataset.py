"""Assemble one YOLO dataset with one unified class list from several sources.

The split is made per source, by source image, after grouping near-duplicates (dHash, see neardup.py) so that
no near-copy of a validation image is trained on. Images are linked, never copied: the shared datasets stay where
they are and only rewritten label files are written.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from detector.train.config import HardNegativeSource, SimSource, TrainConfig, YoloSource
from detector.train.neardup import copy_stem, dhash, group_near_duplicates

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@dataclass(frozen=True)
class LabelledImage:
    """One image of a source with its labels in unified class ids (cls, cx, cy, w, h; normalised)."""

    path: Path
    boxes: list[tuple[int, float, float, float, float]]
    given_val: bool = False


@dataclass
class SplitReport:
    """What the assembly did, written next to the dataset as manifest.json and quoted in the model card."""

    source: str
    images: dict[str, int] = field(default_factory=dict)
    instances: dict[str, dict[str, int]] = field(default_factory=dict)
    near_duplicate_groups: int = 0
    images_in_near_duplicate_groups: int = 0


def label_path_of(image: Path) -> Path:
    """The YOLO label file of an image in the images/ -> labels/ layout."""
    return Path(str(image.with_suffix(".txt")).replace("/images/", "/labels/"))


def read_yolo_label(path: Path, class_map: dict[int, int] | None) -> list[tuple[int, float, float, float, float]]:
    """Read a YOLO box or polygon label file; polygons become their bounding box. Unmapped classes are dropped;
    ``class_map`` None keeps every class under its own id."""
    boxes: list[tuple[int, float, float, float, float]] = []
    if not path.exists():
        return boxes
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        values = [float(v) for v in parts[1:]]
        source_cls = int(parts[0])
        if class_map is not None and source_cls not in class_map:
            continue
        if len(values) == 4:
            cx, cy, w, h = values
        elif len(values) >= 6 and len(values) % 2 == 0:
            xs, ys = np.array(values[0::2]), np.array(values[1::2])
            x1, x2 = float(np.clip(xs.min(), 0, 1)), float(np.clip(xs.max(), 0, 1))
            y1, y2 = float(np.clip(ys.min(), 0, 1)), float(np.clip(ys.max(), 0, 1))
            cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
        else:
            raise ValueError(f"{path}:{line_no}: expected 4 box values or a polygon, got {len(values)} values")
        if w > 0 and h > 0:
            boxes.append((source_cls if class_map is None else class_map[source_cls], cx, cy, w, h))
    return boxes


def list_yolo_source(source: YoloSource, unified: list[str]) -> list[LabelledImage]:
    data = yaml.safe_load((source.path / "data.yaml").read_text())
    names = data["names"]
    names = names if isinstance(names, dict) else dict(enumerate(names))
    class_map = {int(i): unified.index(source.classes[n]) for i, n in names.items() if n in source.classes}
    splits = [(data["train"], False)]
    if source.use_source_val and data.get("val") and data["val"] != data["train"]:
        splits.append((data["val"], True))
    images: list[LabelledImage] = []
    for rel, given_val in splits:
        image_dir = source.path / rel
        for image in sorted(image_dir.iterdir()):
            if image.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            label = source.path / str(rel).replace("images", "labels", 1) / (image.stem + ".txt")
            images.append(LabelledImage(image, read_yolo_label(label, class_map), given_val))
    return images


def list_hard_negatives(source: HardNegativeSource) -> list[LabelledImage]:
    """Every image in ``source.path/images`` as a background (no boxes). A label file with a box in it means
    someone labelled a hard negative: refused, since it belongs in a labelled source instead."""
    image_dir = source.path / "images"
    if not image_dir.is_dir():
        raise ValueError(f"hard negatives {source.name!r}: {image_dir} is not a folder of images")
    images: list[LabelledImage] = []
    for image in sorted(image_dir.iterdir()):
        if image.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        label = source.path / "labels" / (image.stem + ".txt")
        if label.exists() and label.read_text().strip():
            raise ValueError(
                f"{label}: a hard negative is a background and has no boxes; move the labelled image to a yolo "
                "source, or empty the file"
            )
        images.append(LabelledImage(image, []))
    return images


def split_by_group(images: list[LabelledImage], groups: np.ndarray, val_fraction: float, seed: int) -> list[bool]:
    """Decide val membership per image so that each near-duplicate group lies wholly on one side.

    A group that holds an image of the source's own val split goes to val; otherwise groups are drawn at random
    (seeded) until ``val_fraction`` of the images are held out.
    """
    members: dict[int, list[int]] = {}
    for index, group in enumerate(groups.tolist()):
        members.setdefault(group, []).append(index)
    is_val = [False] * len(images)
    forced = [g for g, idx in members.items() if any(images[i].given_val for i in idx)]
    for g in forced:
        for i in members[g]:
            is_val[i] = True
    if not forced and val_fraction > 0:
        order = sorted(members)
        random.Random(seed).shuffle(order)
        target = round(val_fraction * len(images))
        held = 0
        for g in order:
            if held >= target:
                break
            for i in members[g]:
                is_val[i] = True
            held += len(members[g])
    return is_val


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_symlink() or dst.exists():
        dst.unlink()
    os.symlink(src.resolve(), dst)


def write_split(
    out: Path,
    source_name: str,
    images: list[LabelledImage],
    is_val: list[bool],
    report: SplitReport,
    classes: list[str],
) -> None:
    for image, val in zip(images, is_val, strict=True):
        split = "val" if val else "train"
        stem = f"{source_name}__{image.path.stem}"
        _link(image.path, out / "images" / split / (stem + image.path.suffix.lower()))
        label = out / "labels" / split / (stem + ".txt")
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in image.boxes))
        report.images[split] = report.images.get(split, 0) + 1
        per_class = report.instances.setdefault(split, {})
        for c, *_ in image.boxes:
            per_class[classes[c]] = per_class.get(classes[c], 0) + 1


def write_source_val(out: Path, source_name: str, classes: list[str]) -> Path:
    """A data yaml whose val split is one source's val images only, for per-source evaluation."""
    listing = out / f"val_{source_name}.txt"
    images = sorted((out / "images" / "val").glob(f"{source_name}__*"))
    listing.write_text("".join(f"./images/val/{p.name}\n" for p in images))
    data = {"path": str(out), "train": "images/train", "val": listing.name, "names": dict(enumerate(classes))}
    path = out / f"data_val_{source_name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


# (source, unified classes, output folder, photos that must not be used as backgrounds) -> labelled images
SimRenderer = Callable[[SimSource, list[str], Path, frozenset[Path]], list[LabelledImage]]


def _split_source(
    source: YoloSource | HardNegativeSource | SimSource,
    images: list[LabelledImage],
    val_fraction: float,
    config: TrainConfig,
    progress: bool = True,
) -> tuple[list[bool], np.ndarray]:
    """Val membership of one source's images, and their near-duplicate groups."""
    hashes = [dhash(i.path) for i in tqdm(images, desc=f"hash {source.name}", unit="img", disable=not progress)]
    scenes = None
    if isinstance(source, YoloSource) and source.copy_separator:
        scenes = [copy_stem(i.path, source.copy_separator) for i in images]
    groups = group_near_duplicates(hashes, config.near_duplicate_max_hamming, scenes)
    return split_by_group(images, groups, val_fraction, config.seed), groups


def real_validation_photos(config: TrainConfig, progress: bool = True) -> dict[str, frozenset[Path]]:
    """Per real (YOLO) source of ``config``, the photos ``assemble`` holds out for validation (resolved paths),
    computed the same way without building the dataset: what a model trained with this config never saw."""
    out: dict[str, frozenset[Path]] = {}
    for source in config.sources:
        if isinstance(source, YoloSource):
            images = list_yolo_source(source, config.classes)
            is_val, _ = _split_source(source, images, source.val_fraction, config, progress)
            out[source.name] = frozenset(i.path.resolve() for i, val in zip(images, is_val, strict=True) if val)
    return out


def assemble(config: TrainConfig, render_sim: SimRenderer | None = None) -> Path:
    """Build ``work_dir/dataset`` (links + labels + data.yaml + manifest.json) and return the data.yaml path."""
    out = config.work_dir / "dataset"
    for sub in ("images", "labels"):
        for path in sorted((out / sub).rglob("*"), reverse=True) if (out / sub).exists() else []:
            path.unlink() if not path.is_dir() else path.rmdir()
    reports: list[SplitReport] = []
    held_out: set[Path] = set()  # validation photos of the sources so far: never a composite's background
    for source in config.sources:
        if isinstance(source, YoloSource):
            images = list_yolo_source(source, config.classes)
            val_fraction = source.val_fraction
        elif isinstance(source, HardNegativeSource):
            images = list_hard_negatives(source)
            val_fraction = source.val_fraction
            if not images:  # none rejected yet: nothing to add, nothing to hash
                reports.append(SplitReport(source.name))
                continue
        else:
            if render_sim is None:
                raise ValueError(f"source {source.name!r} needs the simulator's composite renderer")
            images = render_sim(source, config.classes, config.work_dir / "sim" / source.name, frozenset(held_out))
            val_fraction = source.val_fraction
        is_val, groups = _split_source(source, images, val_fraction, config)
        report = SplitReport(source.name)
        sizes = np.bincount(np.unique(groups, return_inverse=True)[1])
        report.near_duplicate_groups = int((sizes > 1).sum())
        report.images_in_near_duplicate_groups = int(sizes[sizes > 1].sum())
        write_split(out, source.name, images, is_val, report, config.classes)
        held_out.update(i.path.resolve() for i, val in zip(images, is_val, strict=True) if val)
        write_source_val(out, source.name, config.classes)
        reports.append(report)
    data_yaml = out / "data.yaml"
    data_yaml.write_text(
        yaml.safe_dump(
            {
                "path": str(out),
                "train": "images/train",
                "val": "images/val",
                "names": dict(enumerate(config.classes)),
            },
            sort_keys=False,
            allow_unicode=True,
        )
    )
    manifest = {
        "near_duplicate_max_hamming": config.near_duplicate_max_hamming,
        "sources": [r.__dict__ for r in reports],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return data_yaml
