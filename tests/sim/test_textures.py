"""Ground textures from real photos (detector/sim/textures.py) and the ground painted with them."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from detector.sim import objects
from detector.sim.effects import Look
from detector.sim.ground import GroundMap
from detector.sim.render import Renderer
from detector.sim.scenery import place
from detector.sim.sprites import SpriteBank, split_of
from detector.sim.textures import TextureSet, bare_ground, harvest_textures, labelled_boxes
from detector.sim.world import Street
from tests.conftest import shared_path
from tests.sim.helpers import pole_at, renderer, small_world


def _asphalt(seed: int = 0, size: int = 80) -> np.ndarray:
    """Grey grit: fine noise around one grey, no structure larger than a few pixels."""
    rng = np.random.default_rng(seed)
    grit = rng.normal(100.0, 12.0, (size, size, 1)) + rng.normal(0.0, 3.0, (size, size, 3))
    return np.asarray(np.clip(cv2.GaussianBlur(grit, (0, 0), 0.8), 0, 255), np.uint8)


def _bank(folder: Path, split: str = "scenario") -> Path:
    """A bank with no cut-outs and four asphalt, paving and roof patches, each material from one photo."""
    rows = []
    for material, colour in (("asphalt", (1.0, 1.0, 1.0)), ("paving", (1.2, 1.4, 1.6)), ("roof", (0.5, 0.7, 1.9))):
        (folder / "textures" / material).mkdir(parents=True)
        for k in range(4):
            pixels = np.clip(_asphalt(k).astype(np.float32) * colour, 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / "textures" / material / f"{k}.png"), pixels)
            rows.append({"material": material, "path": f"textures/{material}/{k}.png", "source": f"/{material}.jpg",
                         "x": 0, "y": 0, "size_px": 80, "m_per_px": 0.0125, "split": split})  # fmt: skip
    (folder / "textures.json").write_text(json.dumps({"version": 1, "textures": rows}))
    (folder / "manifest.json").write_text(json.dumps({"version": 2, "splits": ["scenario", "train"], "sprites": []}))
    return folder


def test_bare_ground_takes_uniform_grit_and_rejects_borders_noise_edges_and_grass() -> None:
    assert bare_ground(_asphalt(), "asphalt") is not None
    bordered = _asphalt()
    bordered[:, :6] = 0  # the black wedge of a rotated copy
    assert bare_ground(bordered, "asphalt") is None
    salted = _asphalt()
    salted[np.random.default_rng(1).random((80, 80)) < 0.01] = 255
    assert bare_ground(salted, "asphalt") is None, "salt-and-pepper augmentation"
    kerb = _asphalt()
    kerb[:, 40:] = np.clip(kerb[:, 40:].astype(int) + 60, 0, 255).astype(np.uint8)
    assert bare_ground(kerb, "asphalt") is None, "an edge across the patch"
    grass = np.clip(_asphalt().astype(np.float32) * (0.9, 1.5, 1.0), 0, 255).astype(np.uint8)
    assert bare_ground(grass, "paving") is None and bare_ground(grass, "asphalt") is None
    light = np.clip(_asphalt().astype(np.float32) * (1.3, 1.45, 1.6), 0, 255).astype(np.uint8)
    assert bare_ground(light, "paving") is not None and bare_ground(light, "asphalt") is None
    with pytest.raises(ValueError, match="material"):
        bare_ground(light, "marble")


def test_a_surface_is_made_of_its_patches_colour_and_grain_the_same_for_the_same_generator(tmp_path: Path) -> None:
    textures = TextureSet(_bank(tmp_path / "bank"), "scenario")
    assert textures.count("asphalt") == 4 and textures.has("paving")
    surface = textures.surface("asphalt", (300, 2000), 0.04, np.random.default_rng(3))
    assert surface.shape == (300, 2000, 3) and np.isfinite(surface).all()
    assert np.abs(surface.reshape(-1, 3).mean(axis=0) - 100.0).max() < 6.0, "the photos' grey"
    assert 1.0 < float(surface[..., 0].std()) < 12.0, "grit, blended but not flattened"
    again = textures.surface("asphalt", (300, 2000), 0.04, np.random.default_rng(3))
    assert np.array_equal(surface, again)
    paving = textures.surface("paving", (50, 60), 0.04, np.random.default_rng(3))
    assert paving[..., 2].mean() > paving[..., 0].mean() + 30, "the paving photos' colour"
    assert len(TextureSet(tmp_path / "bank", "train").textures) == 0, "another split"
    assert not textures.without(frozenset({Path("/asphalt.jpg").resolve()})).has("asphalt")
    with pytest.raises(ValueError, match="no cobbles"):
        textures.surface("cobbles", (10, 10), 0.04, np.random.default_rng(0))


def test_a_roof_sized_surface_is_one_piece_with_no_mirrored_seam_across_it(tmp_path: Path) -> None:
    textures = TextureSet(_bank(tmp_path / "bank"), "scenario")
    for seed in range(5):
        roof = textures.surface("roof", (100, 150), 0.1, np.random.default_rng(seed))
        assert roof.shape == (100, 150, 3)
        for grid in (roof, roof.transpose(1, 0, 2)):  # columns, then rows
            for c in range(6, grid.shape[1] - 6):  # a mirror at c: the 6 columns before it are the 6 after, reversed
                assert not np.array_equal(grid[:, c - 6 : c], grid[:, c : c + 6][:, ::-1]), f"seam at {c}"


def test_a_textured_ground_keeps_the_streets_markings_and_draws_and_changes_only_the_surfaces(tmp_path: Path) -> None:
    street = Street(length_m=60.0, bearing_deg=0.0, lanes=2, pavement_m=4.0)
    flat = GroundMap.paint(street, Look(), np.random.default_rng(5), margin_m=10.0, res_m=0.05)
    assert np.array_equal(flat.textured(TextureSet(tmp_path / "none", "scenario")).image, flat.image), (
        "without textures the replayed painting is the same painting"
    )
    textured = flat.textured(TextureSet(_bank(tmp_path / "bank"), "scenario"))
    centre = flat.row(0.12)  # the double yellow line
    assert np.abs(textured.image[centre].astype(int) - flat.image[centre].astype(int)).mean() < 25
    assert textured.image[centre, :, 2].mean() > textured.image[centre, :, 0].mean() + 60, "still yellow"
    road = flat.row(street.lane_m / 2)  # mid-lane: bare asphalt in both
    assert not np.array_equal(textured.image[road], flat.image[road])
    _, left_kerb = street.kerbs
    _, left_line = street.building_lines
    pavement = flat.row((left_kerb + left_line) / 2 + 0.13)
    assert textured.image[pavement, :, 2].mean() > textured.image[road, :, 2].mean() + 30, "paving, not asphalt"
    assert textured.image.shape == flat.image.shape and textured.res_m == flat.res_m


def test_harvest_cuts_bare_asphalt_and_paving_away_from_every_labelled_box(tmp_path: Path) -> None:
    shared_path("datasets", "potholes", "images", "train")
    shared_path("datasets", "street-vendors-aerial", "images")
    (tmp_path / "bank").mkdir()
    report = harvest_textures(tmp_path / "bank", max_photos=40, progress=False)
    manifest = json.loads((tmp_path / "bank" / "textures.json").read_text())
    assert report.kept.get("asphalt", 0) > 0 and report.kept.get("paving", 0) > 0, report.text()
    for t in manifest["textures"]:
        assert t["split"] == split_of(Path(t["source"]))
        patch = cv2.imread(str(tmp_path / "bank" / t["path"]), cv2.IMREAD_COLOR)
        assert patch.shape == (t["size_px"], t["size_px"], 3)
        photo = cv2.imread(t["source"], cv2.IMREAD_COLOR)
        assert np.array_equal(photo[t["y"] : t["y"] + t["size_px"], t["x"] : t["x"] + t["size_px"]], patch)
        h, w = photo.shape[:2]
        x, y, s = t["x"], t["y"], t["size_px"]
        for bx1, by1, bx2, by2 in labelled_boxes(Path(t["source"]), w, h):
            assert x >= bx2 or x + s <= bx1 or y >= by2 or y + s <= by1, "a patch never touches a pothole or stall"
    textures = TextureSet(tmp_path / "bank", "all")
    assert textures.count("asphalt") == report.kept["asphalt"] and textures.fingerprint.startswith("t1-")


def test_seen_from_above_a_buildings_flat_top_is_laid_with_roof_tiles_and_its_truth_is_unchanged(
    tmp_path: Path,
) -> None:
    world = small_world()
    houses = [place(world, objects.building(np.random.default_rng(k), 10.0, 8.0), 8.0 + 13.0 * k, 9.0)
              for k in range(3)]  # fmt: skip
    camera = pole_at(world, 20.0, -12.0, 45.0, 20.0, 9.0, pitch_deg=-75.0)
    flat = renderer(world)
    bank = SpriteBank(_bank(tmp_path / "bank"), "scenario")
    tiled = Renderer(world, flat.ground, flat.look, shadows=False, sprites=bank)
    plain, roofed = flat.render(camera, 0.0), tiled.render(camera, 0.0)
    assert np.array_equal(plain.ids, roofed.ids), "the roof is painted over the face already in the id buffer"
    top_z = [max(float(v[2]) for m in h.model.meshes for v in m.vertices) for h in houses]
    reddened = 0
    for house, z in zip(houses, top_z, strict=True):
        centre = camera.project(np.array([[house.east_m, house.north_m, z]]))[0][0]
        u, v = (round(c) for c in centre)
        patch = (slice(v - 3, v + 4), slice(u - 3, u + 4))
        assert (roofed.ids[patch] == house.id).all(), "the middle of the roof is the building's"
        red = roofed.image[patch][..., 2].astype(int) - roofed.image[patch][..., 0].astype(int)
        grey = plain.image[patch][..., 2].astype(int) - plain.image[patch][..., 0].astype(int)
        reddened += int(red.mean() > grey.mean() + 40)
    assert reddened >= 1, "roof tiles on at least one of the three (about 3 in 10 keep a grey concrete top)"
    no_roofs = Renderer(world, flat.ground, flat.look, shadows=False, sprites=bank, roofs=False)
    assert np.array_equal(no_roofs.render(camera, 0.0).image, plain.image)
