"""Rendering: the ground truth describes exactly the pixels drawn, occlusion lowers visibility, the ground warp
agrees with the camera model, and the same world renders the same pixels."""

from __future__ import annotations

import numpy as np
import pytest

from detector.sim.ground import below_horizon, ground_homography
from detector.sim.objects import LABELLED
from tests.sim.helpers import add, pole_at, renderer, small_world


@pytest.mark.parametrize("kind", LABELLED)
@pytest.mark.parametrize("view", ["pole", "drone"])
def test_truth_box_is_the_box_of_the_pixels_the_object_changed(kind: str, view: str) -> None:
    world = small_world()
    obj = add(world, kind, 20.0, 4.5, seed=3)
    if view == "pole":
        camera = pole_at(world, 5.0, -6.0, 6.0, 20.0, 4.5)
    else:
        camera = pole_at(world, 10.0, 4.5, 30.0, 20.0, 4.5, pitch_deg=-70.0)
    draw = renderer(world)
    with_it = draw.render(camera, 0.0)
    obj.leave_s = -1.0  # the same world without it
    without = draw.render(camera, 0.0)
    changed = np.argwhere(np.any(with_it.image != without.image, axis=2))
    assert len(changed) > 20, "the object should cover some pixels"
    (box,) = [b for b in with_it.boxes if b.object_id == obj.id]
    x1, y1, x2, y2 = box.box
    # Anti-aliased edges may touch one pixel beyond the id buffer's polygon fill.
    assert changed[:, 1].min() >= x1 - 1 and changed[:, 1].max() <= x2
    assert changed[:, 0].min() >= y1 - 1 and changed[:, 0].max() <= y2
    assert changed[:, 1].min() <= x1 + 1 and changed[:, 1].max() >= x2 - 2, "the box is tight"
    assert changed[:, 0].min() <= y1 + 1 and changed[:, 0].max() >= y2 - 2, "the box is tight"
    assert box.visibility == pytest.approx(1.0, abs=0.02) and box.visible_box == box.box
    assert without.boxes == []


def test_a_truck_in_front_hides_a_stall_and_the_truth_says_how_much() -> None:
    world = small_world()
    stall = add(world, "stall", 22.0, 4.5, seed=1)
    camera = pole_at(world, 4.0, -6.0, 5.0, 22.0, 4.5, pitch_deg=-12.0)
    draw = renderer(world)
    alone = draw.render(camera, 0.0)
    (whole,) = alone.boxes
    add(world, "truck", 13.0, 1.65, seed=2)  # in the lane, on the line of sight
    view = draw.render(camera, 0.0)
    seen_alone = np.count_nonzero(alone.ids == stall.id)
    seen_now = np.count_nonzero(view.ids == stall.id)
    assert seen_now < 0.5 * seen_alone, "the truck should hide most of the stall"
    hidden = [b for b in view.boxes if b.object_id == stall.id]
    if seen_now == 0:
        assert hidden == [], "a wholly hidden object is not in the frame's truth"
    else:
        (box,) = hidden
        assert box.box == whole.box, "the whole box does not change with occlusion"
        assert box.visibility == pytest.approx(seen_now / seen_alone, abs=0.01)


def test_nearer_objects_are_drawn_over_farther_ones() -> None:
    world = small_world()
    far = add(world, "garbage_bin", 25.0, 0.0, seed=1)
    near = add(world, "garbage_bin", 15.0, 0.0, seed=1)
    camera = pole_at(world, 5.0, 0.0, 1.0, 25.0, 0.0, pitch_deg=0.0)  # low and straight along the line
    view = renderer(world).render(camera, 0.0)
    centre = view.ids[camera.intrinsics.height_px // 2 + 5, camera.intrinsics.width_px // 2]
    assert centre == near.id
    visibility = {b.object_id: b.visibility for b in view.boxes}
    assert visibility[near.id] == pytest.approx(1.0, abs=0.02)
    assert visibility.get(far.id, 0.0) < 0.5


def test_ground_warp_uses_the_camera_model() -> None:
    world = small_world()
    camera = pole_at(world, 5.0, -6.0, 6.0, 20.0, 4.5)
    rng = np.random.default_rng(0)
    ground = np.c_[rng.uniform(-20, 20, (50, 2)), np.zeros(50)] + np.r_[camera.position_enu_m[:2], 0.0]
    pixels, in_front = camera.project(ground)
    hom = np.c_[ground[:, :2], np.ones(50)] @ ground_homography(camera).T
    ok = in_front & (hom[:, 2] > 0)
    assert np.allclose(hom[ok, :2] / hom[ok, 2:3], pixels[ok], atol=1e-6)
    mask = below_horizon(camera)
    inside = ok & (pixels[:, 0] >= 0) & (pixels[:, 0] < 320) & (pixels[:, 1] >= 0) & (pixels[:, 1] < 240)
    assert mask[pixels[inside, 1].astype(int), pixels[inside, 0].astype(int)].all()
    assert not mask[0].all(), "a camera pitched 25 deg down with a 70 deg lens sees the sky at the top"


def test_the_same_world_renders_the_same_pixels() -> None:
    images = []
    for _ in range(2):
        world = small_world()
        add(world, "stall", 20.0, 4.5, seed=5)
        add(world, "overflow", 24.0, 4.5, seed=6)
        images.append(renderer(world, shadows=True).render(pole_at(world, 5.0, -6.0, 6.0, 20.0, 4.5), 0.0).image)
    assert np.array_equal(images[0], images[1])
