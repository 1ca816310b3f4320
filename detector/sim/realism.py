"""`detector sim realism`: a domain-gap measure for the simulator's renders.

A COCO-pretrained model (default ../shared/pretrained/yolo11n-coco.pt) knows cars, trucks and people from real
photos. Run over a rendered scenario, its recall on the simulator's distractors (the unlabelled cars, vans, trucks
and pedestrians whose boxes the truth carries, ``TruthFrame.distractors``) says how much the renders look like
the world it learned from; run over real street photos, its detections per image say how often those classes
appear, and how confidently, where the pictures are real. Real photos have no car/person truth, so they give
counts per image, not recall.

Rules:

- Frames: the decoded video.mp4 (with its compression), one every ``every_s`` seconds of capture time.
- A truth box counts when the distractor is at least ``min_visibility`` visible (0.5) and its visible box is at
  least ``min_height_px`` tall (16 px); it is matched on its visible box (COCO boxes bound what is seen).
- Recall: a truth box is found when a detection of the same COCO class overlaps it with IoU >= ``iou`` (0.5),
  greedy by confidence, each detection used once; ``recall_any`` accepts a detection of any reported class (a van
  called a truck). Detections over truth boxes too small or too hidden to count are neither hits nor misses.
- Unmatched: detections of a class that match no truth box of that class (counted or not); on a render they are
  false positives or objects the truth does not carry (stall umbrellas, for instance).

Example::

    detector sim realism --scenario-dir .cache/demo/market-street-seed0-1280x720-2fps --out report/market
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from tqdm import tqdm

from detector.paths import SHARED_ROOT
from detector.sim.score import iou
from detector.sim.truth import Box, DistractorBox, Truth
from detector.train.dataset import IMAGE_SUFFIXES
from detector.types import ImageArray

DEFAULT_WEIGHTS = SHARED_ROOT / "pretrained" / "yolo11n-coco.pt"
DEFAULT_PHOTOS = SHARED_ROOT / "datasets" / "city-garbage" / "images"
# The COCO classes of street life; the simulator draws the first three (objects.COCO_CLASSES), the rest are
# reported so that what the model sees in renders and photos can be compared.
CLASSES = ("car", "truck", "bus", "person", "bicycle", "motorcycle", "umbrella")
HEIGHT_BANDS = ((0.0, 32.0), (32.0, 64.0), (64.0, 128.0), (128.0, math.inf))  # visible box height, frame pixels


def band_name(lo: float, hi: float) -> str:
    return f"{lo:g}-{hi:g} px" if math.isfinite(hi) else f">= {lo:g} px"


@dataclass(frozen=True)
class Detection:
    cls: str
    box: Box
    conf: float


@dataclass
class ClassStats:
    """One COCO class: on the renders (truth, detections, matches) and on the photos (detections)."""

    truth: int = 0
    detections: int = 0
    matched: int = 0
    matched_any: int = 0
    unmatched: int = 0
    photo_detections: int = 0
    photos_with: int = 0
    # Per height band of the visible truth box (HEIGHT_BANDS): [truth, matched]. Small objects are where a COCO
    # model misses on real photos too, so recall per band separates the look of a render from its scale.
    by_height: list[list[int]] = field(default_factory=lambda: [[0, 0] for _ in HEIGHT_BANDS])

    def recall(self) -> float | None:
        return self.matched / self.truth if self.truth else None

    def recall_any(self) -> float | None:
        return self.matched_any / self.truth if self.truth else None


@dataclass
class RealismReport:
    scenario: str
    scenario_dir: str
    weights: str
    conf: float
    iou: float
    imgsz: int
    every_s: float
    min_visibility: float
    min_height_px: float
    frames: int = 0
    photos: list[str] = field(default_factory=list)
    classes: dict[str, ClassStats] = field(default_factory=lambda: {c: ClassStats() for c in CLASSES})
    header: list[str] = field(default_factory=list)  # machine, versions and command lines for the results file

    def to_dict(self) -> dict[str, Any]:
        per_class = {}
        for name, s in self.classes.items():
            per_class[name] = {
                "truth": s.truth,
                "detections": s.detections,
                "matched": s.matched,
                "recall": _round(s.recall()),
                "recall_any_class": _round(s.recall_any()),
                "unmatched_detections": s.unmatched,
                "detections_per_frame": _round(s.detections / self.frames if self.frames else None),
                "photo_detections": s.photo_detections,
                "photo_detections_per_image": _round(s.photo_detections / len(self.photos) if self.photos else None),
                "photos_with_class": s.photos_with,
                "recall_by_height": {
                    band_name(lo, hi): {"truth": t, "matched": m, "recall": _round(m / t if t else None)}
                    for (lo, hi), (t, m) in zip(HEIGHT_BANDS, s.by_height, strict=True)
                },
            }
        return {
            "scenario": self.scenario,
            "scenario_dir": self.scenario_dir,
            "weights": self.weights,
            "conf": self.conf,
            "iou": self.iou,
            "imgsz": self.imgsz,
            "every_s": self.every_s,
            "truth_rule": f"visibility >= {self.min_visibility:g} and visible box >= {self.min_height_px:g} px tall",
            "frames": self.frames,
            "photos": len(self.photos),
            "photo_files": self.photos,
            "classes": per_class,
        }

    def rows(self) -> list[list[str]]:
        header = ["class", "truth", "dets", "matched", "recall", "recall any", "unmatched", "dets/frame",
                  "photo dets/img", "photos with"]  # fmt: skip
        out = [header]
        for name, s in self.classes.items():
            d = self.to_dict()["classes"][name]
            out.append([name, str(s.truth), str(s.detections), str(s.matched), _pct(s.recall()), _pct(s.recall_any()),
                        str(s.unmatched), _num(d["detections_per_frame"]), _num(d["photo_detections_per_image"]),
                        f"{s.photos_with}/{len(self.photos)}"])  # fmt: skip
        return out

    def _lead(self) -> str:
        return (
            f"{self.scenario}: {self.frames} frames (one every {self.every_s:g} s) and {len(self.photos)} real "
            f"photos through {Path(self.weights).name} at conf {self.conf:g}, imgsz {self.imgsz}; recall at IoU >= "
            f"{self.iou:g} on truth boxes with visibility >= {self.min_visibility:g} and >= {self.min_height_px:g} "
            "px tall"
        )

    def text(self) -> str:
        rows = self.rows()
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [self._lead()]
        lines += ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
                  for r in rows]  # fmt: skip
        return "\n".join(lines)

    def markdown(self) -> str:
        rows = self.rows()
        lines = [f"# Simulator realism: {self.scenario}", "", *self.header, *([""] if self.header else [])]
        lines += [self._lead() + ".", ""]
        lines.append("| " + " | ".join(rows[0]) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(rows[0]) - 1)) + "|")
        lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        lines += ["", f"Scenario folder: `{self.scenario_dir}`. Real photos have no car/person truth: their columns "
                  "are detections per image and the photos with at least one.", ""]  # fmt: skip
        lines += ["Recall by the height of the visible truth box in the frame (matched / truth):", ""]
        lines.append("| class | " + " | ".join(band_name(lo, hi) for lo, hi in HEIGHT_BANDS) + " |")
        lines.append("|---|" + "---:|" * len(HEIGHT_BANDS))
        for name, st in self.classes.items():
            if st.truth:
                cells = [f"{_pct(m / t if t else None)} ({m}/{t})" for t, m in st.by_height]
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
        return "\n".join(lines)

    def write(self, out: Path) -> list[Path]:
        """``out`` with .json and .md suffixes (any suffix given is replaced)."""
        out.parent.mkdir(parents=True, exist_ok=True)
        paths = [out.with_suffix(".json"), out.with_suffix(".md")]
        paths[0].write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        paths[1].write_text(self.markdown())
        return paths


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def counted(d: DistractorBox, min_visibility: float, min_height_px: float) -> bool:
    """Whether a distractor is visible and large enough to be fair game for a detector."""
    vb = d.visible_box
    return vb is not None and d.visibility >= min_visibility and vb[3] - vb[1] >= min_height_px


def match(truths: Sequence[Box], detections: Sequence[Detection], iou_min: float) -> list[int | None]:
    """Greedy matching by confidence: for each truth box, the index of the detection it took (or None)."""
    taken: list[int | None] = [None] * len(truths)
    for k in sorted(range(len(detections)), key=lambda i: -detections[i].conf):
        best, best_iou = None, iou_min
        for t, box in enumerate(truths):
            if taken[t] is None:
                value = iou(box, detections[k].box)
                if value >= best_iou:
                    best, best_iou = t, value
        if best is not None:
            taken[best] = k
    return taken


class CocoModel:
    """A COCO-pretrained ultralytics checkpoint on the CPU, returning detections of ``CLASSES`` only."""

    def __init__(self, weights: Path, conf: float = 0.25, imgsz: int = 640) -> None:
        if not weights.is_file():
            raise ValueError(
                f"no COCO model at {weights}: give --weights PATH to a COCO-pretrained ultralytics checkpoint "
                "(the default is ../shared/pretrained/yolo11n-coco.pt, beside the repository)"
            )
        from detector import yolo_env

        yolo_env.prepare()
        from ultralytics.models.yolo.model import YOLO

        self._model: Any = YOLO(str(weights))
        self.names: dict[int, str] = {int(k): str(v) for k, v in self._model.names.items()}
        missing = [c for c in ("car", "person") if c not in self.names.values()]
        if missing:
            raise ValueError(f"{weights} is not a COCO model: it has no class {', '.join(missing)}")
        self.conf, self.imgsz = conf, imgsz

    def detect(self, image: ImageArray) -> list[Detection]:
        result = self._model.predict(image, conf=self.conf, imgsz=self.imgsz, device="cpu", verbose=False)[0]
        boxes = result.boxes
        xyxy = boxes.xyxy.cpu().numpy().astype(np.float64)
        classes = boxes.cls.cpu().numpy().astype(int)
        confs = boxes.conf.cpu().numpy().astype(np.float64)
        out = []
        for (x1, y1, x2, y2), c, p in zip(xyxy.tolist(), classes.tolist(), confs.tolist(), strict=True):
            name = self.names.get(c, str(c))
            if name in CLASSES:
                out.append(Detection(name, (x1, y1, x2, y2), p))
        return out


def sample_indices(truth: Truth, every_s: float) -> list[int]:
    """The truth frames sampled one every ``every_s`` seconds of scenario time (the first frame first)."""
    out, next_t = [], 0.0
    for k, frame in enumerate(truth.frames):
        if frame.t_s + 1e-6 >= next_t:
            out.append(k)
            next_t = frame.t_s + every_s
    return out


def sampled_frames(scenario_dir: Path, truth: Truth, every_s: float) -> Iterator[tuple[int, ImageArray]]:
    """(truth frame index, decoded BGR frame) for each of ``sample_indices``."""
    video = truth.files.get("video")
    if not video:
        raise ValueError(f"{scenario_dir} has no video (rendered with --no-video?)")
    wanted = set(sample_indices(truth, every_s))
    with av.open(str(scenario_dir / str(video))) as container:
        for k, frame in enumerate(container.decode(video=0)):
            if k >= len(truth.frames):
                break
            if k in wanted:
                yield k, np.asarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8)


def list_photos(folders: Sequence[Path], limit: int) -> list[Path]:
    """Up to ``limit`` images from the folders, evenly spread over their sorted files."""
    files: list[Path] = []
    for folder in folders:
        if not folder.exists():
            raise ValueError(f"photo folder {folder} does not exist")
        found = (
            [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        )
        files += found
    if len(files) > limit > 0:
        step = len(files) / limit
        files = [files[math.floor(i * step)] for i in range(limit)]
    return files


def measure_realism(
    scenario_dir: Path,
    *,
    weights: Path = DEFAULT_WEIGHTS,
    photos: Sequence[Path] = (DEFAULT_PHOTOS,),
    max_photos: int = 60,
    conf: float = 0.25,
    every_s: float = 1.0,
    imgsz: int = 640,
    iou_min: float = 0.5,
    min_visibility: float = 0.5,
    min_height_px: float = 16.0,
    progress: bool = True,
) -> RealismReport:
    if every_s <= 0:
        raise ValueError(f"--every-s must be positive, got {every_s}")
    if not 0 < conf < 1:
        raise ValueError(f"--conf must be within (0, 1), got {conf}")
    truth = Truth.load(scenario_dir / "truth.json")
    if not any(f.distractors for f in truth.frames):
        raise ValueError(
            f"{scenario_dir}/truth.json has no distractor boxes (rendered before they were written?): render the "
            "scenario again with `detector sim render`"
        )
    photo_files = list_photos(photos, max_photos)
    model = CocoModel(weights, conf, imgsz)
    report = RealismReport(truth.scenario, str(scenario_dir), str(weights), conf, iou_min, imgsz, every_s,
                           min_visibility, min_height_px, photos=[str(p) for p in photo_files])  # fmt: skip
    expected = len(sample_indices(truth, every_s))
    for k, image in tqdm(sampled_frames(scenario_dir, truth, every_s), total=expected, desc="renders",
                         unit="frame", disable=not progress):  # fmt: skip
        add_frame(report, truth.frames[k].distractors, model.detect(image))
    for path in tqdm(photo_files, desc="photos", unit="photo", disable=not progress):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"cannot read the photo {path}")
        add_photo(report, model.detect(np.asarray(image, dtype=np.uint8)))
    return report


def add_frame(report: RealismReport, distractors: Sequence[DistractorBox], detections: Sequence[Detection]) -> None:
    """Count one rendered frame into the report."""
    report.frames += 1
    fair = [d for d in distractors if counted(d, report.min_visibility, report.min_height_px)]
    any_taken = match([d.visible_box for d in fair if d.visible_box is not None], detections, report.iou)
    for name, stats in report.classes.items():
        truths = [d for d in fair if d.cls == name]
        dets = [d for d in detections if d.cls == name]
        taken = match([t.visible_box for t in truths if t.visible_box is not None], dets, report.iou)
        # Detections of this class over any truth box of the class (counted or not) are not false positives.
        everything = [d.visible_box for d in distractors if d.cls == name and d.visible_box is not None]
        over_truth = {k for k in match(everything, dets, report.iou) if k is not None}
        stats.truth += len(truths)
        stats.detections += len(dets)
        stats.matched += sum(1 for k in taken if k is not None)
        stats.matched_any += sum(1 for d, k in zip(fair, any_taken, strict=True) if d.cls == name and k is not None)
        for t, k in zip(truths, taken, strict=True):
            assert t.visible_box is not None  # counted() keeps only boxes with one
            height = t.visible_box[3] - t.visible_box[1]
            band = next(i for i, (lo, hi) in enumerate(HEIGHT_BANDS) if lo <= height < hi)
            stats.by_height[band][0] += 1
            stats.by_height[band][1] += k is not None
        stats.unmatched += len(dets) - len(over_truth)


def add_photo(report: RealismReport, detections: Sequence[Detection]) -> None:
    for name, stats in report.classes.items():
        n = sum(1 for d in detections if d.cls == name)
        stats.photo_detections += n
        stats.photos_with += n > 0
