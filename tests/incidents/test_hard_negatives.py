"""A REJECTED incident becomes a hard negative: the undrawn crop around its box, an empty label file and a manifest
line, in a folder that `detector train` assembles as background images. Real store, real evidence stage."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from detector.incidents import EvidenceStage
from detector.incidents.feedback import record_case_update
from detector.incidents.hard_negatives import HardNegatives
from detector.store import SqliteStore
from detector.train.config import load_train_config
from detector.train.dataset import assemble
from detector.types import CaseState, EvidenceKind, Frame, IncidentEvent
from tests.store.factories import make_event

BOX = (300.0, 200.0, 380.0, 280.0)
MARGIN_PX = 20  # EvidenceRenderer: 0.25 of the box's larger side (80 px), at least 16


def _frame() -> Frame:
    """A smooth gradient street (JPEG keeps it close) with a blue object inside BOX."""
    ys, xs = np.mgrid[0:480, 0:640]
    image = np.stack([(xs // 4) % 256, (ys // 3) % 256, np.full_like(xs, 120)], axis=2).astype(np.uint8)
    x1, y1, x2, y2 = (int(v) for v in BOX)
    image[y1 + 10 : y2 - 10, x1 + 10 : x2 - 10] = (200, 60, 20)
    return Frame("cam-1", 1, 1000.0, image)


def _red_pixels(image: np.ndarray) -> int:
    """Pixels of the evidence box colour (BGR 0, 0, 255), allowing for JPEG."""
    b, g, r = (image[:, :, i].astype(int) for i in range(3))
    return int(np.sum((r > 180) & (g < 90) & (b < 90)))


def _decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


@pytest.fixture
def rejected(tmp_path: Path) -> tuple[SqliteStore, IncidentEvent, Frame]:
    """An OPENED event with its evidence, stored, then REJECTED: returns the store and the FEEDBACK event."""
    store = SqliteStore(tmp_path / "data")
    frame = _frame()
    opened = make_event("inc-rejected", category="EXPOSED_GARBAGE", box_xyxy=BOX)
    [with_evidence] = asyncio.run(EvidenceStage(store).attach(frame, [opened]))
    store.append([with_evidence])
    record = record_case_update(store, "inc-rejected", CaseState.REJECTED, case_id="SR-9", note="a blue tarp")
    yield store, record.last_event, frame
    store.close()


def test_the_hard_negative_is_the_undrawn_crop_with_an_empty_label_and_a_manifest_line(rejected, tmp_path):
    store, feedback, frame = rejected
    folder = tmp_path / "hard_negatives"
    kinds = {e.kind: e for e in feedback.evidence}
    drawn = _decode(store.open_evidence(kinds[EvidenceKind.FRAME_JPEG].sha256).read())
    assert _red_pixels(drawn) > 200, "the frame evidence has its box drawn (what must not be trained on)"

    path = HardNegatives(store, folder).save(feedback, verdict_ts=1.75e9)

    assert path == folder / "images" / "inc-rejected.jpg"
    saved = _decode(path.read_bytes())
    assert _red_pixels(saved) == 0, "no drawn box or caption in the training image"
    x1, y1, x2, y2 = (int(v) for v in BOX)
    region = frame.image[y1 - MARGIN_PX : y2 + MARGIN_PX, x1 - MARGIN_PX : x2 + MARGIN_PX]
    assert saved.shape == region.shape, "the rejected box with its margin, not the whole frame"
    assert float(np.abs(saved.astype(int) - region.astype(int)).mean()) < 4.0, "the original pixels (JPEG aside)"
    assert (folder / "labels" / "inc-rejected.txt").read_text() == "", "a background: no box of any class"
    [entry] = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    assert entry == {
        "incident_id": "inc-rejected",
        "category": "EXPOSED_GARBAGE",
        "source_id": "cam-1",
        "box": list(BOX),
        "image": "images/inc-rejected.jpg",
        "image_size": [region.shape[1], region.shape[0]],
        "case_id": "SR-9",
        "note": "a blue tarp",
        "verdict_ts": 1.75e9,
        "evidence_sha256": kinds[EvidenceKind.CROP_JPEG].sha256,
    }

    assert HardNegatives(store, folder).save(feedback, verdict_ts=1.8e9) == path
    assert len((folder / "manifest.jsonl").read_text().splitlines()) == 1, "saving it again adds nothing"


def test_an_incident_without_a_crop_saves_nothing(rejected, tmp_path):
    store, feedback, _ = rejected
    folder = tmp_path / "hard_negatives"
    no_photo = replace(feedback, evidence=())
    assert HardNegatives(store, folder).save(no_photo, verdict_ts=1.75e9) is None
    assert not folder.exists()


def test_detector_train_assembles_the_folder_as_background_images(rejected, tmp_path):
    store, feedback, _ = rejected
    folder = tmp_path / "hard_negatives"
    HardNegatives(store, folder).save(feedback, verdict_ts=1.75e9)
    config_path = tmp_path / "train.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "name": "t",
                "classes": ["garbage", "pothole"],
                "output": "out.pt",
                "work_dir": "work",
                "sources": [{"kind": "hard_negatives", "name": "rejected", "path": "hard_negatives"}],
            }
        )
    )

    data_yaml = assemble(load_train_config(config_path))  # relative paths are the config file's

    dataset = data_yaml.parent
    image = dataset / "images" / "train" / "rejected__inc-rejected.jpg"
    assert image.resolve() == (folder / "images" / "inc-rejected.jpg").resolve()
    assert (dataset / "labels" / "train" / "rejected__inc-rejected.txt").read_text() == ""
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert manifest["sources"][0]["source"] == "rejected" and manifest["sources"][0]["images"] == {"train": 1}
    assert yaml.safe_load(data_yaml.read_text())["names"] == {0: "garbage", 1: "pothole"}
