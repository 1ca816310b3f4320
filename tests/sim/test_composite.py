"""Training composites: YOLO pairs whose labels hold the drawn objects, detector/train's SimRenderer protocol, and
real-photo backgrounds with their own labels kept."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from detector.sim.composite import render_composites
from detector.sim.effects import FrameEffects
from detector.sim.render import Renderer
from detector.train.config import SimSource, TrainConfig
from detector.train.dataset import SimRenderer, assemble, read_yolo_label

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
UNIFIED = ["garbage", "garbage_bin", "overflow", "pothole", "stall", "cart", "goods"]


def test_composites_are_yolo_pairs_of_the_asked_classes(tmp_path: Path) -> None:
    source = SimSource(name="sim", images=6, imgsz=192, classes=["stall", "cart", "goods"], seed=1)
    images = render_composites(source, UNIFIED, tmp_path, progress=False)
    assert len(images) == 6
    ids = {UNIFIED.index(c) for c in source.classes}
    seen = set()
    for item in images:
        image = cv2.imread(str(item.path))
        assert image is not None and image.shape == (192, 192, 3)
        label = tmp_path / "labels" / (item.path.stem + ".txt")
        on_disk = read_yolo_label(label, {i: i for i in range(len(UNIFIED))})
        assert np.allclose(np.array(on_disk).reshape(-1, 5), np.array(item.boxes).reshape(-1, 5), atol=1e-5)
        for c, cx, cy, w, h in item.boxes:
            assert c in ids
            assert cx - w / 2 >= 0 and cx + w / 2 <= 1 and cy - h / 2 >= 0 and cy + h / 2 <= 1
            seen.add(c)
    assert seen, "six composites aimed at objects should label some"


def test_each_label_is_the_tight_box_of_drawn_pixels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over a flat grey photo, without camera effects and shadows, every pixel that is not grey was drawn: each
    label's outermost rows and columns (give or take the one-pixel anti-aliased fringe) must hold drawn pixels,
    so a box shifted or scaled by two pixels fails. The images are taken before JPEG compression blurs them."""
    photos = tmp_path / "photos" / "images"
    photos.mkdir(parents=True)
    cv2.imwrite(str(photos / "grey.png"), np.full((100, 100, 3), 128, np.uint8))
    monkeypatch.setattr(FrameEffects, "apply", lambda self, image, index: image)
    monkeypatch.setattr(Renderer, "_shadows", lambda self, camera, objects, image: None)
    written: dict[str, np.ndarray] = {}
    imwrite = cv2.imwrite

    def keep(path: str, image: np.ndarray, params: Sequence[int] = ()) -> bool:
        written[path] = image.copy()
        return bool(imwrite(path, image, list(params)))

    monkeypatch.setattr(cv2, "imwrite", keep)
    source = SimSource(name="sim", images=8, imgsz=256, classes=["stall", "cart", "goods"], backgrounds=[photos])
    images = render_composites(source, UNIFIED, tmp_path / "out", progress=False)
    checked = 0
    for item in images:
        drawn = np.pad(np.any(written[str(item.path)] != 128, axis=2), 1)  # padded: index = pixel + 1
        for _, cx, cy, w, h in item.boxes:
            x1, x2 = round((cx - w / 2) * 256), round((cx + w / 2) * 256)
            y1, y2 = round((cy - h / 2) * 256), round((cy + h / 2) * 256)
            near = drawn[y1 : y2 + 2, x1 : x2 + 2]  # the box grown by one pixel each side
            assert near[:2].any() and near[-2:].any() and near[:, :2].any() and near[:, -2:].any()
            checked += 1
    assert checked >= 5


def test_render_composites_is_the_renderer_detector_train_asks_for(tmp_path: Path) -> None:
    renderer: SimRenderer = render_composites
    config = TrainConfig(
        name="t", classes=UNIFIED, output=tmp_path / "out.pt", work_dir=tmp_path / "work",
        sources=[SimSource(name="sim", images=8, imgsz=96, classes=["stall", "cart", "goods"], val_fraction=0.25)],
    )  # fmt: skip
    data_yaml = assemble(config, renderer)
    data = yaml.safe_load(data_yaml.read_text())
    assert data["names"] == dict(enumerate(UNIFIED))
    train = list((tmp_path / "work" / "dataset" / "images" / "train").iterdir())
    val = list((tmp_path / "work" / "dataset" / "images" / "val").iterdir())
    assert len(train) + len(val) == 8 and val


def test_photo_backgrounds_keep_their_labels_and_gain_ours(tmp_path: Path) -> None:
    folder = SHARED / "city-garbage" / "images" / "train"
    if not folder.is_dir():
        pytest.skip(f"needs the shared city-garbage photos at {folder} (the read-only ../shared checkout)")
    source = SimSource(name="photo", images=6, imgsz=256, classes=["stall", "cart"], backgrounds=[folder], seed=2)
    images = render_composites(source, UNIFIED, tmp_path, progress=False)
    classes = {UNIFIED[b[0]] for item in images for b in item.boxes}
    assert classes & {"garbage", "garbage_bin", "overflow"}, "the photos' own labels are carried over"
    assert classes & {"stall", "cart"}
    assert "CC BY 4.0" in (tmp_path / "ATTRIBUTION.txt").read_text()
    assert not any(p.is_symlink() or p.stat().st_size == 0 for p in (tmp_path / "images").iterdir())
