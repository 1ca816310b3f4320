"""`detector eval`: mAP50, mAP50-95 and per-class precision/recall of a checkpoint on a YOLO data.yaml."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from detector import yolo_env


@dataclasses.dataclass(frozen=True)
class ClassScore:
    name: str
    images: int
    instances: int
    precision: float
    recall: float
    map50: float
    map50_95: float


@dataclasses.dataclass(frozen=True)
class EvalReport:
    weights: str
    data: str
    split: str
    imgsz: int
    images: int
    map50: float
    map50_95: float
    precision: float
    recall: float
    classes: list[ClassScore]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    def table(self) -> str:
        """A markdown table, one row per class plus the overall row."""
        rows = [
            "| class | images | instances | P | R | mAP50 | mAP50-95 |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for c in self.classes:
            rows.append(
                f"| {c.name} | {c.images} | {c.instances} | {c.precision:.3f} | {c.recall:.3f} | {c.map50:.3f} | "
                f"{c.map50_95:.3f} |"
            )
        total = sum(c.instances for c in self.classes)
        rows.append(
            f"| **all** | {self.images} | {total} | {self.precision:.3f} | {self.recall:.3f} | {self.map50:.3f} | "
            f"{self.map50_95:.3f} |"
        )
        return "\n".join(rows)


def evaluate(
    weights: Path, data: Path, imgsz: int = 320, device: str = "cpu", split: str = "val", batch: int = 16
) -> EvalReport:
    """Validate ``weights`` on ``data`` (a YOLO data.yaml) with ultralytics' own metric code.

    Classes of the data.yaml are matched to the model's by id, as ultralytics does; a class with no instances in
    the split is listed with zeros so that the table always covers the whole class list.
    """
    if not weights.is_file():
        raise FileNotFoundError(f"weights file not found: {weights}")
    if not data.is_file():
        raise FileNotFoundError(f"data file not found: {data}")
    yolo_env.prepare()
    from ultralytics.models.yolo.model import YOLO

    model = YOLO(str(weights))
    # Ultralytics logs progress to stdout; keep stdout for our report (``--json`` must be parseable).
    with contextlib.redirect_stdout(sys.stderr), _ultralytics_log_to_stderr():
        metrics = model.val(
            data=str(data), imgsz=imgsz, device=device, split=split, batch=batch, plots=False, verbose=False
        )
    box = metrics.box
    names: dict[int, str] = dict(metrics.names)
    instances = _per_class(metrics, "nt_per_class", len(names))
    images = _per_class(metrics, "nt_per_image", len(names))
    scored = {int(c): i for i, c in enumerate(metrics.ap_class_index)}
    classes = []
    for class_id, name in sorted(names.items()):
        i = scored.get(class_id)
        classes.append(
            ClassScore(
                name=name,
                images=images[class_id],
                instances=instances[class_id],
                precision=float(box.p[i]) if i is not None else 0.0,
                recall=float(box.r[i]) if i is not None else 0.0,
                map50=float(box.ap50[i]) if i is not None else 0.0,
                map50_95=float(box.ap[i]) if i is not None else 0.0,
            )
        )
    return EvalReport(
        weights=str(weights),
        data=str(data),
        split=split,
        imgsz=imgsz,
        images=_split_size(data, split),
        map50=float(box.map50),
        map50_95=float(box.map),
        precision=float(box.mp),
        recall=float(box.mr),
        classes=classes,
    )


@contextlib.contextmanager
def _ultralytics_log_to_stderr() -> Iterator[None]:
    handlers = [h for h in logging.getLogger("ultralytics").handlers if isinstance(h, logging.StreamHandler)]
    streams = [h.setStream(sys.stderr) for h in handlers]
    try:
        yield
    finally:
        for handler, stream in zip(handlers, streams, strict=True):
            if stream is not None:
                handler.setStream(stream)


def _per_class(metrics: Any, attribute: str, n: int) -> list[int]:
    counts = getattr(metrics, attribute, None)
    if counts is None:
        return [0] * n
    return [int(counts[i]) if i < len(counts) else 0 for i in range(n)]


def _split_size(data: Path, split: str) -> int:
    """Images in the split, counted the way ultralytics lists them (a folder, a list file, or a list of them)."""
    from ultralytics.data.utils import IMG_FORMATS, check_det_dataset

    entries = check_det_dataset(str(data))[split]
    total = 0
    for entry in entries if isinstance(entries, list) else [entries]:
        path = Path(entry)
        if path.is_dir():
            total += sum(1 for f in path.rglob("*") if f.suffix.lower().lstrip(".") in IMG_FORMATS)
        elif path.is_file():
            total += sum(1 for line in path.read_text().splitlines() if line.strip())
    return total
