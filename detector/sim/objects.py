"""Object models built from primitives, each in its own frame: origin at the footprint centre on the ground,
x along the object's length (its front), y across, z up. Shapes, sizes and colours are drawn from the generator
so that no two stalls look alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from detector.sim.primitives import (
    Colour,
    Mesh,
    box,
    circle,
    cylinder,
    decal,
    frustum,
    panel,
    pitched_roof,
    rect,
    umbrella,
    wheel,
)

Rng = np.random.Generator

# Unified detection classes the simulator labels (detector/train class names); scenery has no label.
LABELLED = ("stall", "cart", "goods", "garbage", "garbage_bin", "overflow", "pothole")

# Unlabelled movers that a COCO detector has a class for: their boxes are written to the truth as distractors
# (``TruthFrame.distractors``), so that a COCO model's recall on them measures how real the renders look. A van is
# what COCO annotates as a car; a box truck is a truck. Stall umbrellas and cargo tricycles are parts of labelled
# objects (stall, cart), not distractors; the simulator draws no bus, bicycle or motorcycle.
COCO_CLASSES: dict[str, str] = {"car": "car", "van": "car", "truck": "truck", "pedestrian": "person"}


@dataclass(frozen=True)
class Model:
    """An object's meshes and its footprint half-extents (metres) in its own frame."""

    kind: str
    meshes: tuple[Mesh, ...]
    half_length_m: float
    half_width_m: float
    height_m: float


def _colour(rng: Rng, palette: list[Colour], spread: float = 18.0) -> Colour:
    base = np.asarray(palette[int(rng.integers(len(palette)))], np.float64)
    b, g, r = np.clip(base + rng.normal(0.0, spread, 3), 0, 255)
    return float(b), float(g), float(r)


BRIGHT: list[Colour] = [(40, 40, 200), (40, 160, 230), (40, 200, 220), (60, 170, 60), (180, 90, 40), (160, 60, 150),
                        (230, 230, 230), (30, 120, 240), (90, 200, 120), (200, 170, 60)]  # fmt: skip
DULL: list[Colour] = [(70, 80, 90), (110, 110, 110), (60, 70, 60), (150, 150, 140), (90, 100, 120), (40, 40, 45)]
CAR: list[Colour] = [(235, 235, 235), (25, 25, 30), (160, 160, 165), (40, 40, 160), (130, 80, 30), (90, 90, 95),
                     (50, 110, 170), (200, 200, 205)]  # fmt: skip
BAGS: list[Colour] = [(30, 30, 32), (45, 70, 40), (215, 215, 210), (150, 90, 40), (60, 60, 150), (90, 150, 170)]
BINS: list[Colour] = [(50, 120, 40), (100, 100, 100), (150, 80, 20), (30, 110, 210), (60, 60, 60)]


def _goods_on(rng: Rng, sx: float, sy: float, z0: float, count: int, max_h: float) -> list[Mesh]:
    """Small boxes and heaps spread over an ``sx`` x ``sy`` surface at height ``z0``."""
    out: list[Mesh] = []
    for _ in range(count):
        w, d = rng.uniform(0.12, 0.4, 2)
        h = rng.uniform(0.05, max_h)
        x, y = rng.uniform(-(sx - w) / 2, (sx - w) / 2), rng.uniform(-(sy - d) / 2, (sy - d) / 2)
        colour = _colour(rng, BRIGHT, 30)
        if rng.random() < 0.4:  # a heap of fruit or vegetables
            out.append(frustum(circle(x, y, max(w, d) / 2, 7), z0, z0 + h, rng.uniform(0.2, 0.6), colour))
        else:
            out.append(box(x, y, z0, w, d, h, colour))
    return out


def stall(rng: Rng) -> Model:
    """A vendor's table with goods, under an umbrella, a canopy, or nothing."""
    sx, sy, table_z = rng.uniform(1.4, 2.4), rng.uniform(0.7, 1.2), rng.uniform(0.7, 0.9)
    leg = _colour(rng, DULL)
    meshes = [box(px * (sx / 2 - 0.05), py * (sy / 2 - 0.05), 0.0, 0.05, 0.05, table_z, leg)
              for px in (-1, 1) for py in (-1, 1)]  # fmt: skip
    cloth = _colour(rng, BRIGHT + DULL)
    meshes.append(box(0.0, 0.0, table_z - 0.04, sx, sy, 0.04, cloth))
    if rng.random() < 0.5:  # cloth hanging to the ground in front
        meshes.append(box(0.0, -sy / 2 + 0.01, 0.05, sx, 0.02, table_z - 0.09, cloth))
    meshes += _goods_on(rng, sx, sy, table_z, int(rng.integers(6, 18)), 0.35)
    meshes += [
        box(rng.uniform(-sx / 3, sx / 3), rng.uniform(-0.1, 0.1), 0.0, 0.5, 0.35, 0.3, _colour(rng, DULL))
        for _ in range(int(rng.integers(0, 3)))
    ]  # fmt: skip  crates under the table
    height = table_z + 0.35
    half_l, half_w = sx / 2, sy / 2
    cover = rng.random()
    if cover < 0.45:
        radius, rim = rng.uniform(1.1, 1.6), rng.uniform(1.9, 2.3)
        meshes.append(cylinder(0.0, 0.0, 0.0, 0.025, rim + 0.3, (60, 60, 60), 6))
        panels = [_colour(rng, BRIGHT), _colour(rng, BRIGHT)] if rng.random() < 0.6 else [_colour(rng, BRIGHT)]
        meshes.append(umbrella(0.0, 0.0, rim, radius, rng.uniform(0.3, 0.5), panels, int(rng.choice([6, 8, 10]))))
        height, half_l, half_w = rim + 0.5, max(half_l, radius), max(half_w, radius)
    elif cover < 0.85:
        cx, cy, eave = sx + 0.4, sy + 0.6, rng.uniform(2.0, 2.3)
        meshes += [box(px * cx / 2, py * cy / 2, 0.0, 0.04, 0.04, eave, (150, 150, 150)) for px in (-1, 1)
                   for py in (-1, 1)]  # fmt: skip
        colours = [_colour(rng, BRIGHT)] * 2 + [_colour(rng, BRIGHT + DULL)] * 2
        rise = rng.uniform(0.0, 0.5)
        meshes.append(pitched_roof(0.0, 0.0, eave, cx, cy, max(rise, 0.05), colours))
        height, half_l, half_w = eave + rise, max(half_l, cx / 2), max(half_w, cy / 2)
    return Model("stall", tuple(meshes), half_l, half_w, height)


def cart(rng: Rng) -> Model:
    """A push cart, or a cargo tricycle, loaded with goods."""
    body = _colour(rng, BRIGHT + DULL)
    sx, sy = rng.uniform(1.0, 1.6), rng.uniform(0.6, 0.9)
    tricycle = rng.random() < 0.5
    deck = rng.uniform(0.6, 0.8)
    meshes = [box(0.0, 0.0, deck, sx, sy, rng.uniform(0.25, 0.5), body, top=_colour(rng, BRIGHT))]
    meshes += [wheel(0.0, s * (sy / 2 + 0.04), deck * 0.45, 0.06, (30, 30, 30)) for s in (-1, 1)]
    meshes.append(box(-0.05, 0.0, 0.2, 0.06, 0.06, deck - 0.2, (60, 60, 60)))
    length = sx
    if tricycle:  # the rider's frame and front wheel ahead of the cargo box
        meshes.append(wheel(sx / 2 + 0.7, 0.0, 0.3, 0.05, (30, 30, 30)))
        meshes.append(box(sx / 2 + 0.35, 0.0, 0.35, 0.7, 0.06, 0.08, body))
        meshes.append(box(sx / 2 + 0.3, 0.0, 0.8, 0.25, 0.2, 0.08, (20, 20, 20)))
        meshes.append(box(sx / 2 + 0.75, 0.0, 0.3, 0.05, 0.5, 0.7, (60, 60, 60)))
        length = sx + 1.1
    else:  # handles
        meshes.append(box(-sx / 2 - 0.3, 0.0, deck + 0.2, 0.6, sy * 0.8, 0.04, (70, 70, 70)))
    top_z = deck + 0.5
    meshes += _goods_on(rng, sx * 0.9, sy * 0.8, top_z, int(rng.integers(3, 10)), 0.3)
    shift = (length - sx) / 2.0
    moved = tuple(m.moved(-shift) for m in meshes)
    return Model("tricycle" if tricycle else "cart", moved, length / 2 + 0.1, sy / 2 + 0.1, top_z + 0.3)


def goods(rng: Rng) -> Model:
    """Goods spread on the pavement on a mat or cardboard: shoes, clothes, boxes, buckets."""
    sx, sy = rng.uniform(1.2, 3.0), rng.uniform(0.8, 1.8)
    meshes = [decal(rect(0.0, 0.0, sx, sy), _colour(rng, [(60, 100, 140), (200, 160, 60), (50, 50, 140)]))]
    meshes += _goods_on(rng, sx, sy, 0.01, int(rng.integers(8, 24)), 0.4)
    for _ in range(int(rng.integers(0, 3))):  # buckets
        bx, by = rng.uniform(-0.4, 0.4, 2) * (sx, sy)
        meshes.append(cylinder(float(bx), float(by), 0.0, 0.18, 0.3, _colour(rng, BRIGHT), 8))
    return Model("goods", tuple(meshes), sx / 2, sy / 2, 0.45)


def _bags(rng: Rng, count: int, radius: float, z0: float) -> list[Mesh]:
    out = []
    for _ in range(count):
        r, a = radius * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
        size = rng.uniform(0.18, 0.35)
        ring = circle(r * math.cos(a), r * math.sin(a), size, 7, rng.uniform(-0.15, 0.15, 7))
        out.append(frustum(ring, z0, z0 + size * rng.uniform(1.0, 1.6), rng.uniform(0.3, 0.7), _colour(rng, BAGS)))
    return out


def garbage(rng: Rng) -> Model:
    """A pile of bags, boxes and loose litter on a stain."""
    radius = rng.uniform(0.5, 1.3)
    stain = circle(0.0, 0.0, radius * 1.2, 9, rng.uniform(-0.25, 0.25, 9))
    meshes = [decal(stain, _colour(rng, [(55, 65, 70), (70, 80, 85)], 8))]
    meshes += _bags(rng, int(rng.integers(5, 16)), radius, 0.0)
    for _ in range(int(rng.integers(0, 4))):  # cardboard boxes
        (bx, by), (sx, sy, sz) = rng.uniform(-radius, radius, 2), rng.uniform(0.2, 0.5, 3)
        meshes.append(box(float(bx), float(by), 0.0, float(sx), float(sy), float(sz), _colour(rng, [(80, 130, 170)])))
    return Model("garbage", tuple(meshes), radius * 1.2, radius * 1.2, 0.6)


def _bin(rng: Rng) -> tuple[list[Mesh], float, float]:
    colour = _colour(rng, BINS, 10)
    if rng.random() < 0.6:  # wheelie bin with a darker lid
        sx, sy, h = rng.uniform(0.55, 0.8), rng.uniform(0.6, 1.0), rng.uniform(0.95, 1.1)
        lid = tuple(c * 0.7 for c in colour)
        return [box(0.0, 0.0, 0.0, sx, sy, h, colour, top=(lid[0], lid[1], lid[2]))], max(sx, sy) / 2, h
    r, h = rng.uniform(0.25, 0.4), rng.uniform(0.7, 1.0)
    return [cylinder(0.0, 0.0, 0.0, r, h, colour, 10)], r, h


def garbage_bin(rng: Rng) -> Model:
    meshes, half, h = _bin(rng)
    return Model("garbage_bin", tuple(meshes), half, half, h)


def overflow(rng: Rng) -> Model:
    """A bin with bags heaped above its rim and dumped around its foot."""
    meshes, half, h = _bin(rng)
    meshes += _bags(rng, int(rng.integers(2, 5)), half * 0.6, h - 0.05)
    meshes += [m.moved(half + 0.3) for m in _bags(rng, int(rng.integers(2, 6)), 0.45, 0.0)]
    return Model("overflow", tuple(meshes), half + 0.75, max(half, 0.6), h + 0.4)


def pothole(rng: Rng) -> Model:
    """A hole in the asphalt: a dark, ragged patch with a lighter broken rim."""
    sx, sy = rng.uniform(0.4, 1.4), rng.uniform(0.3, 1.0)
    jitter = rng.uniform(-0.22, 0.22, 11)
    ring = circle(0.0, 0.0, 1.0, 11, jitter) * (sx / 2, sy / 2)
    meshes = [
        decal(ring * 1.12, _colour(rng, [(120, 125, 128)], 10), 0.004),
        decal(ring, _colour(rng, [(38, 40, 44), (52, 55, 60)], 6), 0.005),
        decal(ring * 0.6 + rng.uniform(-0.05, 0.05, 2), _colour(rng, [(25, 27, 30)], 5), 0.006),
    ]
    return Model("pothole", tuple(meshes), sx * 0.56, sy * 0.56, 0.0)


def vehicle(rng: Rng, kind: str = "car", cargo_height_m: float | None = None) -> Model:
    """A car, van or truck: wheels, body and a cabin with dark glass. ``cargo_height_m``: a truck's box height."""
    paint = _colour(rng, CAR, 8)
    glass = (55.0, 45.0, 40.0)
    if kind == "truck":
        length, width = rng.uniform(7.0, 9.0), 2.45
        cargo_h = cargo_height_m if cargo_height_m is not None else rng.uniform(3.2, 3.8)
        cab = 2.0
        cargo = _colour(rng, CAR + BRIGHT)
        meshes = [box(length / 2 - cab / 2, 0, 0.45, cab, width, 2.4, paint),
                  box(length / 2 - cab + 0.02, 0, 1.6, 0.02, width * 0.9, 0.8, glass),
                  box(-cab / 2, 0, 0.7, length - cab - 0.1, width, cargo_h - 0.7, cargo)]  # fmt: skip
        axles: tuple[float, ...] = (length / 2 - 1.0, -length / 2 + 1.5, -length / 2 + 2.7)
        radius, height = 0.5, cargo_h
    else:
        length = rng.uniform(4.0, 4.8) if kind == "car" else rng.uniform(4.8, 5.6)
        width, base_h = rng.uniform(1.7, 1.9), 0.35
        body_h = 0.65 if kind == "car" else 1.4
        meshes = [box(0, 0, base_h, length, width, body_h, paint)]
        cabin_len = length * (0.5 if kind == "car" else 0.75)
        ring = rect(-length * 0.05, 0.0, cabin_len, width * 0.96)
        meshes.append(frustum(ring, base_h + body_h, base_h + body_h + 0.55, 0.82, glass))
        meshes.append(box(-length * 0.05, 0, base_h + body_h + 0.55, cabin_len * 0.8, width * 0.8, 0.02, paint))
        axles, radius, height = (length / 2 - 0.8, -length / 2 + 0.8), 0.32, base_h + body_h + 0.57
    meshes += [wheel(x, s * (width / 2 - 0.1), radius, 0.22, (25, 25, 25)) for x in axles for s in (-1, 1)]
    return Model(kind, tuple(meshes), length / 2, width / 2, height)


def pedestrian(rng: Rng) -> Model:
    height = rng.uniform(1.55, 1.85)
    legs, torso = height * 0.47, height * 0.35
    trousers, shirt = _colour(rng, DULL), _colour(rng, BRIGHT + DULL)
    skin = _colour(rng, [(120, 150, 190), (90, 120, 160), (150, 180, 215)], 10)
    meshes = [box(0, 0, 0, 0.22, 0.36, legs, trousers), box(0, 0, legs, 0.26, 0.44, torso, shirt)]
    meshes.append(box(0, 0, legs + torso + 0.02, 0.2, 0.18, height - legs - torso - 0.02, skin))
    if rng.random() < 0.3:  # a bag or an umbrella-less parcel
        meshes.append(box(0.05, 0.28, legs - 0.2, 0.25, 0.12, 0.3, _colour(rng, BRIGHT)))
    return Model("pedestrian", tuple(meshes), 0.2, 0.3, height)


def tree(rng: Rng) -> Model:
    trunk_h, crown_r = rng.uniform(1.8, 3.0), rng.uniform(1.5, 3.2)
    green = _colour(rng, [(50, 110, 50), (40, 90, 60), (70, 130, 80), (60, 120, 100)])
    dark = (green[0] * 0.75, green[1] * 0.75, green[2] * 0.75)
    crown_h = crown_r * rng.uniform(1.2, 1.8)
    jitter = rng.uniform(-0.12, 0.12, 9)
    meshes = [
        cylinder(0, 0, 0, 0.14, trunk_h + 0.5, (50, 70, 90), 7),
        frustum(circle(0, 0, crown_r * 0.7, 9, jitter), trunk_h, trunk_h + crown_h * 0.45, 1.4, dark),
        frustum(circle(0, 0, crown_r * 0.98, 9, jitter), trunk_h + crown_h * 0.45, trunk_h + crown_h, 0.35, green),
    ]
    return Model("tree", tuple(meshes), crown_r, crown_r, trunk_h + crown_h)


def building(rng: Rng, width: float, depth: float) -> Model:
    """A building with its front (local -y face) on the building line: shop window, sign, upper windows."""
    floors = int(rng.integers(1, 6))
    height = 3.6 + floors * rng.uniform(2.8, 3.2)
    wall = _colour(rng, [(170, 190, 210), (140, 150, 160), (110, 130, 170), (200, 200, 200), (90, 110, 140)])
    meshes = [box(0.0, 0.0, 0.0, width, depth, height, wall, top=(95, 100, 105))]
    y = -depth / 2 - 0.01  # panels just in front of the facade
    glass = _colour(rng, [(90, 80, 70), (120, 110, 100), (70, 70, 60)], 10)
    shop_w = width * rng.uniform(0.55, 0.85)
    meshes.append(panel(np.array([[-shop_w / 2, y, 0.2], [shop_w / 2, y, 0.2], [shop_w / 2, y, 2.6],
                                  [-shop_w / 2, y, 2.6]]), glass))  # fmt: skip
    meshes.append(box(0.0, y - 0.1, 2.8, shop_w, 0.2, 0.7, _colour(rng, BRIGHT)))
    if rng.random() < 0.4:  # an awning over the shop window
        meshes.append(pitched_roof(0.0, y - 0.6, 2.5, shop_w, 1.2, 0.01, [_colour(rng, BRIGHT)] * 4))
    window = _colour(rng, [(80, 70, 60), (130, 120, 110)], 10)
    cols = max(1, int(width // 2.5))
    for floor in range(floors):
        z = 3.9 + floor * 3.0
        for c in range(cols):
            x = -width / 2 + (c + 0.5) * width / cols
            corners = np.array([[x - 0.6, y, z], [x + 0.6, y, z], [x + 0.6, y, z + 1.4], [x - 0.6, y, z + 1.4]])
            meshes.append(panel(corners, window))
    return Model("building", tuple(meshes), width / 2, depth / 2 + 1.2, height)


def lamp(rng: Rng) -> Model:
    h = rng.uniform(5.0, 7.0)
    grey = _colour(rng, [(80, 80, 80), (40, 60, 40)], 5)
    meshes = [cylinder(0, 0, 0, 0.07, h, grey, 6), box(0.0, 0.6, h - 0.1, 0.08, 1.2, 0.08, grey),
              box(0.0, 1.15, h - 0.25, 0.25, 0.4, 0.15, (200, 220, 230))]  # fmt: skip
    return Model("lamp", tuple(meshes), 0.2, 1.4, h)


def bench(rng: Rng) -> Model:
    wood = _colour(rng, [(40, 80, 120), (60, 60, 60)])
    meshes = [box(0, 0, 0.42, 1.6, 0.45, 0.05, wood), box(0, 0.2, 0.47, 1.6, 0.05, 0.4, wood)]
    meshes += [box(x, 0, 0, 0.06, 0.45, 0.42, (50, 50, 50)) for x in (-0.7, 0.7)]
    return Model("bench", tuple(meshes), 0.8, 0.25, 0.9)


def bollard(rng: Rng) -> Model:
    return Model("bollard", (cylinder(0, 0, 0, 0.08, 0.9, _colour(rng, [(60, 60, 60), (200, 200, 200)]), 8),), 0.1,
                 0.1, 0.9)  # fmt: skip


BUILDERS: dict[str, Callable[[Rng], Model]] = {
    "stall": stall,
    "cart": cart,
    "goods": goods,
    "garbage": garbage,
    "garbage_bin": garbage_bin,
    "overflow": overflow,
    "pothole": pothole,
    "pedestrian": pedestrian,
    "tree": tree,
    "lamp": lamp,
    "bench": bench,
    "bollard": bollard,
}
