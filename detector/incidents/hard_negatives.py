"""Hard negatives: what the case system REJECTED, saved as background images that ``detector train`` takes as a
source (``kind: hard_negatives``, :class:`detector.train.config.HardNegativeSource`).

The folder holds ``images/<incident_id>.jpg``, an empty YOLO label file ``labels/<incident_id>.txt`` for each
(a background: nothing of any class is there) and ``manifest.jsonl``, one line per image: incident_id,
category, source_id, box (the rejected box in the frame's pixels), case_id, note, verdict_ts (wall clock) and
the evidence sha256 it was made of.

Why the crop and not the frame: the event's ``frame_jpeg`` has the box and caption drawn on it, which must never
become training pixels; and the whole frame, even undrawn, may show true objects elsewhere (a real stall two
metres away), which an empty label file would teach the model to ignore. The ``crop_jpeg`` evidence is the
rejected box with a margin around it, cut from the undrawn frame (``EvidenceRenderer`` crops the original
image), so it shows what fooled the model and little else: the safer background. What it costs: the object
fills more of a crop than of a frame, a scale the deployed view rarely has; the training's scale augmentation
covers part of that.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from detector.store.base import IncidentStore
from detector.types import EvidenceKind, IncidentEvent

log = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"


class HardNegativeSettings(BaseModel):
    """The ``hard_negatives`` section: where REJECTED incidents' crops are saved for training."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Save each REJECTED incident's crop as a background training image.")
    dir: Path | None = Field(
        None,
        description="Folder of images/, labels/ and manifest.jsonl (a `detector train` source of kind "
        "hard_negatives); None: <store.data_dir>/hard_negatives.",
    )


class HardNegatives:
    """Writes one rejected incident at a time into ``folder``; saving the same incident again does nothing."""

    def __init__(self, store: IncidentStore, folder: Path) -> None:
        self._store = store
        self.folder = folder

    def save(self, event: IncidentEvent, verdict_ts: float) -> Path | None:
        """Save the crop of a REJECTED incident's event (its FEEDBACK event, or its last event); returns the
        image path, or None when the event has no crop to save (evidence never stored, or pruned).

        Written image first, manifest line next, label file last: a label file means the entry is complete,
        so a save cut short is redone (its manifest line may then appear twice; readers key on incident_id).
        """
        label = self.folder / "labels" / f"{event.incident_id}.txt"
        image_path = self.folder / "images" / f"{event.incident_id}.jpg"
        if label.exists():
            return image_path
        crop = next((e for e in event.evidence if e.kind is EvidenceKind.CROP_JPEG), None)
        if crop is None:
            log.warning("rejected incident has no crop to keep as a hard negative", extra=_ids(event))
            return None
        with self._store.open_evidence(crop.sha256) as handle:
            data = handle.read()
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"evidence {crop.sha256} of incident {event.incident_id} is not a readable JPEG")
        image_path.parent.mkdir(parents=True, exist_ok=True)
        label.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(image_path, data)
        entry = {
            "incident_id": event.incident_id,
            "category": event.category,
            "source_id": event.source_id,
            "box": list(event.box_xyxy),
            "image": f"images/{image_path.name}",
            "image_size": [int(image.shape[1]), int(image.shape[0])],
            "case_id": event.case_id,
            "note": event.note,
            "verdict_ts": verdict_ts,
            "evidence_sha256": crop.sha256,
        }
        with (self.folder / MANIFEST).open("a", encoding="utf-8") as manifest:
            manifest.write(json.dumps(entry, ensure_ascii=False) + "\n")
        _write_atomically(label, b"")
        log.info("hard negative saved", extra={**_ids(event), "path": str(image_path)})
        return image_path


def _ids(event: IncidentEvent) -> dict[str, str]:
    return {"incident_id": event.incident_id, "category": event.category, "source_id": event.source_id}


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)
