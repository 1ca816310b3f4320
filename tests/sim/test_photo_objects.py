"""Labelled objects cut out of real photos by their labels (detector/sim/photo_objects.py), and drawn by the
renderer instead of their meshes: garbage bins standing, potholes laid on the road, stalls seen from above."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from detector.sim import objects
from detector.sim.photo_objects import DEFAULT_OBJECT_SOURCES, default_held_out, faded, harvest_objects
from detector.sim.render import Renderer
from detector.sim.scenery import place
from detector.sim.sprites import SPLITS, SpriteBank, ensure_bank
from detector.sim.views import PoleCamera
from tests.conftest import shared_path
from tests.sim.helpers import pole_at, renderer, small_world

RED, BLUE, ORANGE = (30, 30, 220), (220, 60, 30), (40, 140, 250)


def _bank(folder: Path) -> SpriteBank:
    """A bank holding no people and one labelled object cut-out per class and view: a red bin (street), a blue
    pothole (ground) and an orange canopy (aerial), each with transparent corners."""
    rows = []
    for cls, view, colour, (w, h) in (("garbage_bin", "street", RED, (60, 90)), ("pothole", "ground", BLUE, (80, 50)),
                                      ("stall", "aerial", ORANGE, (90, 70))):  # fmt: skip
        rgba = np.zeros((h, w, 4), np.uint8)
        cv2.ellipse(rgba, (w // 2, h // 2), (w // 2 - 1, h // 2 - 1), 0.0, 0.0, 360.0, (*colour, 255), -1)
        (folder / "objects" / cls).mkdir(parents=True)
        cv2.imwrite(str(folder / "objects" / cls / "a.png"), rgba)
        rows.append({"cls": cls, "view": view, "path": f"objects/{cls}/a.png", "width": w, "height": h,
                     "source": "/photos/val.jpg", "box": [0, 0, w, h], "conf": 1.0, "split": "scenario"})  # fmt: skip
    (folder / "manifest.json").write_text(json.dumps({"version": 2, "splits": list(SPLITS), "sprites": []}))
    (folder / "objects.json").write_text(json.dumps({"version": 1, "splits": list(SPLITS), "sprites": rows}))
    return SpriteBank(folder)


def _box_of(view_ids: np.ndarray, oid: int) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(view_ids == oid)
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def test_a_garbage_bin_is_its_photo_cut_out_standing_where_its_mesh_stood(tmp_path: Path) -> None:
    world = small_world()
    bin_ = place(world, objects.garbage_bin(np.random.default_rng(2)), 12.0, 4.0, label="garbage_bin")
    camera = pole_at(world, 2.0, 4.0, 3.0, 12.0, 4.0, pitch_deg=-12.0)
    meshes = renderer(world)
    mesh_view = meshes.render(camera, 0.0)
    plain = next(b for b in mesh_view.boxes if b.object_id == bin_.id)
    bank = _bank(tmp_path / "bank")
    assert "-o1-" in bank.fingerprint, "renders cached on the bank rebuild when its objects change"
    view = Renderer(world, meshes.ground, meshes.look, shadows=False, sprites=bank).render(camera, 0.0)
    box = next(b for b in view.boxes if b.object_id == bin_.id)
    # The truth box bounds exactly the cut-out's pixels, which carry its (red) colour.
    assert box.visible_box == _box_of(view.ids, bin_.id)
    colours = view.image[view.ids == bin_.id].astype(float)
    assert np.median(colours[:, 2]) > 2 * np.median(colours[:, 0]), "the red cut-out, not the mesh"
    # Standing on the mesh's foot line, inside its box, with the photo's proportions (60 x 90).
    assert abs(box.box[3] - plain.box[3]) <= 2
    assert box.box[0] >= plain.box[0] - 1 and box.box[2] <= plain.box[2] + 1 and box.box[1] >= plain.box[1] - 1
    assert (box.box[2] - box.box[0]) / (box.box[3] - box.box[1]) == pytest.approx(60 / 90, abs=0.08)
    # `sim render --no-photo-objects`: the same bank less its objects draws the mesh, and caches apart.
    without = bank.without_objects()
    again = Renderer(world, meshes.ground, meshes.look, shadows=False, sprites=without).render(camera, 0.0)
    assert np.array_equal(again.ids == bin_.id, mesh_view.ids == bin_.id)
    assert "-o1-" not in without.fingerprint and without.fingerprint == bank.fingerprint.split("-o1-")[0]


def test_a_pothole_is_laid_flat_on_the_road_and_a_walker_on_it_hides_part_of_it(tmp_path: Path) -> None:
    world = small_world()
    hole = place(world, objects.pothole(np.random.default_rng(1)), 12.0, -1.5, label="pothole")
    walker = place(world, objects.pedestrian(np.random.default_rng(4)), 12.0, -1.5)
    (e, n) = world.street.to_enu(12.0, -1.5)[0]
    camera = PoleCamera(float(e), float(n) - 6.0, 6.0, 0.0, -40.0, 60.0).camera(320, 240)
    meshes = renderer(world)
    view = Renderer(world, meshes.ground, meshes.look, shadows=False, sprites=_bank(tmp_path / "bank")).render(
        camera, 0.0
    )
    mask = view.ids == hole.id
    assert mask.any()
    colours = view.image[mask].astype(float)
    assert np.median(colours[:, 0]) > 2 * np.median(colours[:, 2]), "the blue cut-out, not the dark decal"
    # On the footprint at road level: every drawn pixel inside the footprint's projected outline.
    east, north, angle, hl, hw = hole.placed(0.0).footprint
    c, s = np.cos(angle), np.sin(angle)
    local = np.array([[-hl, hw], [hl, hw], [hl, -hw], [-hl, -hw]])
    corners = np.c_[local @ np.array([[c, s], [-s, c]]) + [east, north], np.zeros(4)]
    outline = np.zeros(view.ids.shape, np.uint8)
    cv2.fillPoly(outline, [np.round(camera.project(corners)[0]).astype(np.int32)], 1)
    cv2.dilate(outline, np.ones((5, 5), np.uint8), dst=outline)
    assert (outline[mask] > 0).mean() > 0.97
    # Drawn with the road, under the walker standing on it.
    assert (view.ids == walker.id).any() and (outline[view.ids == walker.id] > 0).any()
    box = next(b for b in view.boxes if b.object_id == hole.id)
    assert box.visibility < 0.98


def test_a_stall_is_its_canopy_cut_out_from_high_above_and_its_mesh_from_the_street(tmp_path: Path) -> None:
    world = small_world()
    stall = place(world, objects.stall(np.random.default_rng(5)), 20.0, 4.0, label="stall")
    (e, n) = world.street.to_enu(20.0, 4.0)[0]
    above = PoleCamera(float(e), float(n) - 8.0, 40.0, 0.0, -75.0, 40.0).camera(320, 240)
    street = pole_at(world, 2.0, 4.0, 3.0, 20.0, 4.0, pitch_deg=-6.0)
    meshes = renderer(world)
    drawn = Renderer(world, meshes.ground, meshes.look, shadows=False, sprites=_bank(tmp_path / "bank"))
    top = drawn.render(above, 0.0)
    colours = top.image[top.ids == stall.id].astype(float)
    assert len(colours) > 20
    assert np.median(colours[:, 2]) > 2 * np.median(colours[:, 0]), "the orange canopy from above"
    side = drawn.render(street, 0.0)
    mesh = meshes.render(street, 0.0)
    assert np.array_equal(side.ids == stall.id, mesh.ids == stall.id), "no street-level stall photo: its mesh"


def test_faded_keeps_the_box_solid_and_fades_to_nothing_at_the_crop_edge() -> None:
    image = np.full((200, 300, 3), 90, np.uint8)
    for ellipse in (True, False):
        rgba = faded(image, (100.0, 50.0, 200.0, 150.0), 0.15, ellipse)
        assert rgba.shape == (130, 130, 4)
        alpha = rgba[..., 3]
        assert alpha[65, 65] == 255 and alpha[0, 0] < 40 and alpha[65, 0] < 200
        assert (alpha[15:115, 15:115] >= 128).mean() > (0.75 if ellipse else 0.97)
    edge = faded(image, (0.0, 0.0, 60.0, 40.0), 0.15, True)  # cut by the photo's corner
    assert edge.shape == (46, 69, 4) and edge[20, 30, 3] == 255


def test_harvest_cuts_labelled_objects_and_keeps_the_models_validation_photos_for_the_scenario(
    tmp_path: Path,
) -> None:
    for source in DEFAULT_OBJECT_SOURCES:
        for folder in source.folders:
            shared_path(*folder.parts[-4:])
    photos = sorted((DEFAULT_OBJECT_SOURCES[0].folders[0]).iterdir())[:60:3]
    held = {"city-garbage": frozenset(p.resolve() for p in photos[:8])}
    never = frozenset({photos[9].resolve()})
    report = harvest_objects(tmp_path, held_out=held, exclude=never, max_photos=20, progress=False)
    rows = json.loads((tmp_path / "objects.json").read_text())["sprites"]
    assert rows and report.labels > len(rows), report.text()
    classes = {"garbage": "street", "garbage_bin": "street", "overflow": "street", "pothole": "ground",
               "stall": "aerial"}  # fmt: skip
    for row in rows:
        assert classes[row["cls"]] == row["view"]
        source = Path(row["source"]).resolve()
        assert source not in never
        assert (row["split"] == "scenario") == (source in held["city-garbage"]), row
        pixels = cv2.imread(str(tmp_path / row["path"]), cv2.IMREAD_UNCHANGED)
        assert pixels.shape == (row["height"], row["width"], 4)
        assert 0.2 < (pixels[..., 3] > 127).mean() <= 1.0
    assert {r["cls"] for r in rows} >= {"garbage_bin", "pothole", "stall"}
    bank_rows = {r["path"] for r in rows if r["split"] == "scenario"}
    (tmp_path / "manifest.json").write_text(json.dumps({"version": 2, "splits": list(SPLITS), "sprites": []}))
    assert {s.path for s in SpriteBank(tmp_path, "scenario").sprites} == bank_rows


def test_the_scenario_split_is_the_default_models_validation_photos() -> None:
    shared_path("datasets", "city-garbage", "images")
    held = default_held_out(progress=False)
    # The validation image counts weights/MODEL_CARD.md reports for streetwatch-v5's real sources.
    assert {k: len(v) for k, v in held.items()} == {"city-garbage": 402, "potholes": 107, "street-vendors-aerial": 144}
    val = Path(shared_path("datasets", "potholes", "images", "val"))
    assert {p.resolve() for p in val.iterdir()} <= held["potholes"], "the pothole set's own val split stays held out"


def test_the_demo_says_when_its_bank_predates_the_labelled_objects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bank = _bank(tmp_path / "bank")
    assert ensure_bank(folder=tmp_path / "bank", progress=False) is not None
    assert "predates the labelled objects" not in capsys.readouterr().out
    (tmp_path / "bank" / "objects.json").unlink()
    older = ensure_bank(folder=tmp_path / "bank", progress=False)
    assert older is not None and not older.has("garbage_bin", "street") and bank.has("garbage_bin", "street")
    assert "--objects-only" in capsys.readouterr().out
