"""Photo sprites (detector/sim/sprites.py): cut-outs of people and vehicles drawn instead of their meshes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from detector.sim import objects
from detector.sim.render import Renderer
from detector.sim.scenery import place
from detector.sim.sprites import SPLITS, SpriteBank, cut_out, harvest, split_of
from detector.sim.views import PoleCamera
from tests.conftest import shared_path
from tests.sim.helpers import H, W, pole_at, renderer, small_world

FIGURE_BGR = (40, 200, 60)


def _figure(height: int = 120, width: int = 48) -> np.ndarray:
    """A BGRA cut-out: a green figure (head and body) with transparent corners."""
    rgba = np.zeros((height, width, 4), np.uint8)
    cv2.circle(rgba, (width // 2, height // 8), height // 8, (*FIGURE_BGR, 255), -1)
    cv2.rectangle(rgba, (width // 6, height // 4), (width - width // 6, height - 1), (*FIGURE_BGR, 255), -1)
    return rgba


def _bank(folder: Path, split: str = "scenario", source: str = "/photos/a.jpg") -> Path:
    (folder / "person").mkdir(parents=True)
    (folder / "car").mkdir(parents=True)
    figure = _figure()
    cv2.imwrite(str(folder / "person" / "fig.png"), figure)
    roof = np.zeros((40, 90, 4), np.uint8)  # a car seen from above, long side across the image
    roof[4:36, 2:88] = (200, 40, 40, 255)
    cv2.imwrite(str(folder / "car" / "roof.png"), roof)
    common = {"source": source, "conf": 0.9, "split": split}
    sprites = [
        {"cls": "person", "view": "street", "path": "person/fig.png", "width": 48, "height": 120,
         "box": [0, 0, 48, 120], **common},
        {"cls": "car", "view": "aerial", "path": "car/roof.png", "width": 90, "height": 40,
         "box": [0, 0, 90, 40], **common},
    ]  # fmt: skip
    (folder / "manifest.json").write_text(json.dumps({"version": 1, "splits": list(SPLITS), "sprites": sprites}))
    return folder


def test_a_pedestrian_is_drawn_as_its_cut_out_and_its_truth_box_is_the_cut_outs_pixels(tmp_path: Path) -> None:
    world = small_world()
    walker = place(world, objects.pedestrian(np.random.default_rng(4)), 20.0, 4.0)
    camera = pole_at(world, 2.0, 4.0, 4.0, 20.0, 4.0, pitch_deg=-10.0)
    meshes = renderer(world)
    meshes.distractors = True
    plain = meshes.render(camera, 0.0)
    plain_box = next(b for b in plain.distractors if b.object_id == walker.id)
    drawn = Renderer(world, meshes.ground, meshes.look, shadows=False, distractors=True,
                     sprites=SpriteBank(_bank(tmp_path / "bank"))).render(camera, 0.0)  # fmt: skip
    box = next(b for b in drawn.distractors if b.object_id == walker.id)
    mask = drawn.ids == walker.id
    ys, xs = np.nonzero(mask)
    # The truth box bounds exactly the pixels the cut-out covers, and they carry its colour (lit by the scene).
    assert box.visible_box == (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    colours = drawn.image[mask].astype(float)
    assert np.median(colours[:, 1]) > 1.5 * np.median(colours[:, 0]), "the figure is green"
    assert not np.array_equal(drawn.image, plain.image)
    # Standing where the mesh stood: same feet line and height, the photo's proportions for the width.
    assert abs(box.box[3] - plain_box.box[3]) <= 2 and abs(box.box[1] - plain_box.box[1]) <= 2
    height = box.box[3] - box.box[1]
    assert (box.box[2] - box.box[0]) / height == pytest.approx(32 / 120, abs=0.08)  # the body: 2/3 of its width
    assert box.visibility == pytest.approx(1.0, abs=0.02)


def test_a_labelled_stall_in_front_hides_the_cut_out_and_the_visibility_says_so(tmp_path: Path) -> None:
    world = small_world()
    walker = place(world, objects.pedestrian(np.random.default_rng(4)), 22.0, 4.0)
    stall = place(world, objects.stall(np.random.default_rng(5)), 14.0, 4.0, label="stall")
    camera = pole_at(world, 2.0, 4.0, 2.0, 22.0, 4.0, pitch_deg=-3.0)
    base = renderer(world)
    view = Renderer(world, base.ground, base.look, shadows=False, distractors=True,
                    sprites=SpriteBank(_bank(tmp_path / "bank"))).render(camera, 0.0)  # fmt: skip
    box = next(b for b in view.distractors if b.object_id == walker.id)
    assert stall.id in {b.object_id for b in view.boxes}
    assert box.visibility < 0.9
    seen = np.count_nonzero(view.ids == walker.id)
    x1, y1, x2, y2 = box.box
    assert seen < (x2 - x1) * (y2 - y1)


def test_splits_keep_a_photos_cut_outs_together_and_validation_photos_out(tmp_path: Path) -> None:
    copies = [Path(f"scene_{i}.rf.{h}.jpg") for i in range(40) for h in ("aa", "bb", "cc")]
    for i in range(40):
        assert len({split_of(p) for p in copies[3 * i : 3 * i + 3]}) == 1, "a scene's copies share a split"
    share = sum(split_of(Path(f"photo-{i}.jpg")) == "scenario" for i in range(2000)) / 2000
    assert 0.2 < share < 0.3
    bank = SpriteBank(_bank(tmp_path / "bank", split="train", source=str(tmp_path / "val.jpg")), "train")
    assert len(bank) == 2 and bank.has("person", "street") and bank.has("car", "aerial")
    assert len(bank.without(frozenset({(tmp_path / "val.jpg").resolve()}))) == 0
    assert len(SpriteBank(tmp_path / "bank", "scenario")) == 0
    with pytest.raises(ValueError, match="not a sprite bank"):
        SpriteBank(tmp_path / "nothing")


def test_grabcut_cuts_a_figure_out_of_a_textured_background() -> None:
    rng = np.random.default_rng(0)
    photo = rng.integers(90, 170, (200, 160, 3)).astype(np.uint8)
    photo = cv2.GaussianBlur(photo, (0, 0), 2.0)
    figure = _figure(120, 48)
    inside = figure[..., 3] > 0
    photo[40:160, 56:104][inside] = (20, 20, 160)
    cut = cut_out(photo, (54.0, 38.0, 106.0, 162.0))
    assert cut is not None and cut.shape[2] == 4
    alpha = cut[..., 3] > 127
    assert abs(cut.shape[0] - 120) <= 4 and abs(cut.shape[1] - 32) <= 4, "tight around the figure (body 32 px)"
    assert alpha.sum() == pytest.approx(inside.sum(), rel=0.1)
    assert np.median(cut[..., 2][alpha]) > 120, "the red figure, not the grey background"
    assert cut_out(np.full((100, 100, 3), 128, np.uint8), (20.0, 20.0, 80.0, 80.0)) is None, "nothing to cut"


def test_harvest_cuts_people_and_vehicles_out_of_real_photos(tmp_path: Path) -> None:
    photos = shared_path("datasets", "city-garbage", "images")
    shared_path("pretrained", "yolo11n-coco.pt")
    report = harvest([(photos, "street")], tmp_path / "bank", max_photos=80, progress=False)
    manifest = json.loads((tmp_path / "bank" / "manifest.json").read_text())
    assert report.photos == 80 and report.detections > 0
    assert manifest["sprites"], report.text()
    for s in manifest["sprites"]:
        assert s["cls"] in {"person", "car", "truck"} and s["split"] == split_of(Path(s["source"]))
        pixels = cv2.imread(str(tmp_path / "bank" / s["path"]), cv2.IMREAD_UNCHANGED)
        assert pixels.shape == (s["height"], s["width"], 4)
        assert 0.2 < (pixels[..., 3] > 127).mean() < 0.99
    assert "CC BY 4.0" in (tmp_path / "bank" / "ATTRIBUTION.txt").read_text()


def test_seen_from_above_a_car_is_its_nadir_cut_out_laid_on_its_footprint(tmp_path: Path) -> None:
    world = small_world()
    car = place(world, objects.vehicle(np.random.default_rng(3), "car"), 20.0, -1.6)
    (e, n) = world.street.to_enu(20.0, -1.6)[0]
    camera = PoleCamera(float(e), float(n) - 0.01, 30.0, 0.0, -89.9, 40.0).camera(W, H)
    base = renderer(world)
    view = Renderer(world, base.ground, base.look, shadows=False, distractors=True,
                    sprites=SpriteBank(_bank(tmp_path / "bank"))).render(camera, 0.0)  # fmt: skip
    mask = view.ids == car.id
    assert mask.any()
    colours = view.image[mask].astype(float)
    assert np.median(colours[:, 0]) > 2 * np.median(colours[:, 2]), "the blue roof cut-out, not the mesh"
    # Laid on the footprint: the drawn pixels sit inside the footprint's projected outline, and fill most of it.
    placed = car.placed(0.0)
    east, north, angle, hl, hw = placed.footprint
    c, s = np.cos(angle), np.sin(angle)
    top = float(placed.vertices[:, 2].max())
    local = np.array([[-hl, hw], [hl, hw], [hl, -hw], [-hl, -hw]])
    corners = np.c_[local @ np.array([[c, s], [-s, c]]) + [east, north], np.full(4, 0.8 * top)]
    outline = np.zeros_like(view.ids, np.uint8)
    cv2.fillPoly(outline, [np.round(camera.project(corners)[0]).astype(np.int32)], 1)
    assert (outline[mask] > 0).mean() > 0.95 and mask.sum() > 0.7 * outline.sum()
    box = next(b for b in view.distractors if b.object_id == car.id)
    ys, xs = np.nonzero(mask)
    assert box.visible_box == (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
