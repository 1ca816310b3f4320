"""Small worlds and hand-built truths for the simulator tests."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from detector.geo.camera import PinholeCamera
from detector.sim import objects
from detector.sim.effects import Look
from detector.sim.ground import GroundMap
from detector.sim.render import Renderer
from detector.sim.scenery import place
from detector.sim.truth import Truth, TruthBox, TruthFrame, TruthObject
from detector.sim.views import PoleCamera
from detector.sim.world import SimObject, Street, World

W, H = 320, 240


def small_world(seed: int = 0) -> World:
    return World(39.9, 116.4, Street(length_m=40.0, bearing_deg=30.0, lanes=2, pavement_m=4.0))


def add(world: World, kind: str, s: float, d: float, seed: int = 0, **kw: Any) -> SimObject:
    rng = np.random.default_rng(seed)
    model = objects.vehicle(rng, "truck") if kind == "truck" else objects.BUILDERS[kind](rng)
    return place(world, model, s, d, label=kind if kind in objects.LABELLED else None, **kw)


def pole_at(world: World, s: float, d: float, height_m: float, target_s: float, target_d: float,
            pitch_deg: float = -25.0) -> PinholeCamera:  # fmt: skip
    """A pole camera at street (s, d) aimed horizontally at (target_s, target_d)."""
    (e, n), (te, tn) = world.street.to_enu([s, target_s], [d, target_d])
    yaw = math.degrees(math.atan2(te - e, tn - n))
    return PoleCamera(float(e), float(n), height_m, yaw, pitch_deg, 70.0).camera(W, H)


def renderer(world: World, shadows: bool = False) -> Renderer:
    look = Look(sun=0.4, ambient=0.6)
    ground = GroundMap.paint(world.street, look, np.random.default_rng(0), margin_m=10.0, res_m=0.1)
    return Renderer(world, ground, look, shadows=shadows)


def truth_of(objects_: list[TruthObject], frames: list[TruthFrame], camera: str = "fixed", **kw: Any) -> Truth:
    return Truth("hand", 0, "cam-1", camera, 1000, 1000, 1.0, 600.0, 1_000_000.0, 120.0, 39.9, 116.4,
                 objects=objects_, frames=frames, **kw)  # fmt: skip


def truth_object(oid: int, cls: str, east_m: float = 0.0, appear: float | None = 0.0,
                 leave: float | None = None) -> TruthObject:  # fmt: skip
    lat, lon = World(39.9, 116.4, Street(10.0, 0.0)).to_geo(east_m, 0.0)
    return TruthObject(oid, cls, cls, lat, lon, east_m, 0.0, 0.0, 2.0, 1.0, 2.0, appear, leave)


def frames_with(boxes: dict[int, tuple[float, float, float, float]], spans: dict[int, tuple[float, float]],
                until_s: float) -> list[TruthFrame]:  # fmt: skip
    """One frame a second; object ``oid`` is seen (fully) at ``boxes[oid]`` while ``spans[oid]`` holds."""
    frames = []
    for i, t in enumerate(np.arange(0.0, until_s, 1.0)):
        seen = tuple(TruthBox(oid, box, box, 1.0, False) for oid, box in boxes.items()
                     if spans[oid][0] <= t < spans[oid][1])  # fmt: skip
        frames.append(TruthFrame(i, float(t), seen))
    return frames
