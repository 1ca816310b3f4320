"""Street furniture and life: buildings with shopfronts, trees, lamps, benches, bins, parked cars, traffic and
pedestrians, placed along a ``Street`` by a seeded generator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from detector.sim import objects
from detector.sim.objects import Model
from detector.sim.world import Keyframe, SimObject, World

Rng = np.random.Generator


def place(
    world: World,
    model: Model,
    s: float,
    d: float,
    *,
    reverse: bool = False,
    turn_rad: float = 0.0,
    label: str | None = None,
    appear_s: float = -math.inf,
    leave_s: float = math.inf,
) -> SimObject:
    """Put a model at street coordinates, its +x along the street (against it when ``reverse``)."""
    angle = world.street.angle_rad(reverse) + turn_rad
    return world.add(model, world.street.to_enu(s, d)[0], angle, label, appear_s, leave_s)


@dataclass
class Furnishing:
    """What ``furnish`` placed that the ground map and the scenarios need to know about."""

    tree_pits_sd: list[tuple[float, float]] = field(default_factory=list)
    bins: list[SimObject] = field(default_factory=list)
    lane_d: dict[str, float] = field(default_factory=dict)  # 'forward' / 'backward' lane centre lines


def furnish(world: World, rng: Rng, crossings_s: Sequence[float] = (), bin_every_m: float = 45.0) -> Furnishing:
    st = world.street
    out = Furnishing()
    right_kerb, left_kerb = st.kerbs
    right_line, left_line = st.building_lines
    for side, line in ((1.0, left_line), (-1.0, right_line)):
        s = -20.0
        while s < st.length_m + 20.0:
            width = float(rng.uniform(6.0, 12.0))
            depth = float(rng.uniform(8.0, 14.0))
            model = objects.building(rng, width, depth)
            place(world, model, s + width / 2, line + side * depth / 2, reverse=side < 0)
            s += width + float(rng.choice([0.0, 0.0, 0.0, rng.uniform(1.0, 4.0)]))

    def near_crossing(s: float) -> bool:
        return any(c - 4.0 < s < c + 9.0 for c in crossings_s)

    for kerb, side in ((left_kerb, 1.0), (right_kerb, -1.0)):
        s = float(rng.uniform(2.0, 8.0))
        while s < st.length_m:
            if not near_crossing(s):
                d = kerb + side * 0.8
                place(world, objects.tree(rng), s, d, turn_rad=float(rng.uniform(0, 2 * math.pi)))
                out.tree_pits_sd.append((s, d))
            s += float(rng.uniform(9.0, 14.0))
        for s in np.arange(float(rng.uniform(5, 20)), st.length_m, 25.0):
            place(world, objects.lamp(rng), float(s), kerb + side * 0.35, reverse=side < 0, turn_rad=math.pi)
        for s in np.arange(float(rng.uniform(10, 30)), st.length_m, bin_every_m):
            out.bins.append(place(world, objects.garbage_bin(rng), float(s), kerb + side * 0.6, label="garbage_bin"))
        for s in np.arange(float(rng.uniform(15, 40)), st.length_m, 60.0):
            place(world, objects.bench(rng), float(s), kerb + side * 1.5, reverse=side > 0)
    for c in crossings_s:  # bollards where the crossings meet the pavements
        for kerb, side in ((left_kerb, 1.0), (right_kerb, -1.0)):
            for ds in (-0.5, 5.5):
                place(world, objects.bollard(rng), c + ds, kerb + side * 0.3)
    if st.parking_m > 0:
        d = -st.road_half_m - st.parking_m / 2
        for s in np.arange(3.0, st.length_m, 6.0):
            if rng.random() < 0.45 and not near_crossing(float(s)):
                place(world, objects.vehicle(rng, str(rng.choice(["car", "car", "van"]))), float(s) + 3.0, d)
    out.lane_d = {"forward": -st.lane_m / 2, "backward": st.lane_m / 2}
    return out


def drive(
    world: World,
    model: Model,
    d: float,
    stops: Sequence[tuple[float, float, float]],
    forward: bool,
) -> SimObject:
    """A mover along the street at lateral offset ``d``: ``stops`` are (t_s, s_m, dwell_s) it passes in order;
    between them it moves in a straight line, and at each it waits ``dwell_s``."""
    st = world.street
    angle = st.angle_rad(reverse=not forward)
    keyframes = []
    for t, s, dwell in stops:
        e, n = st.to_enu(s, d)[0]
        keyframes.append(Keyframe(t, float(e), float(n), angle))
        if dwell > 0:
            keyframes.append(Keyframe(t + dwell, float(e), float(n), angle))
    obj = world.add(model, (keyframes[0].east_m, keyframes[0].north_m), angle, keyframes=tuple(keyframes))
    return obj


def traffic(
    world: World,
    rng: Rng,
    start_s: float,
    end_s: float,
    vehicles_per_min: float,
    pedestrians_per_min: float,
    lane_d: dict[str, float],
    quiet: Sequence[tuple[str, float, float]] = (),
) -> None:
    """Cars and vans in both directions at each lane's own speed (so none drive through another), and walkers on
    both pavements. ``quiet``: (lane, from_s, to_s) windows kept free for a scripted vehicle."""
    st = world.street
    span = st.length_m + 80.0
    for lane, forward in (("forward", True), ("backward", False)):
        speed = float(rng.uniform(7.0, 11.0))
        t = start_s - span / speed + float(rng.exponential(60.0 / vehicles_per_min))
        while t < end_s:
            if not any(q == lane and a <= t + span / speed and t <= b for q, a, b in quiet):
                kind = str(rng.choice(["car", "car", "car", "van", "truck"]))
                s0, s1 = (-40.0, st.length_m + 40.0) if forward else (st.length_m + 40.0, -40.0)
                drive(world, objects.vehicle(rng, kind), lane_d[lane], [(t, s0, 0), (t + span / speed, s1, 0)], forward)
            t += max(3.5, float(rng.exponential(60.0 / vehicles_per_min)))
    right_kerb, left_kerb = st.kerbs
    right_line, left_line = st.building_lines
    walk_lines = [(left_kerb + left_line) / 2 + 0.4, (right_kerb + right_line) / 2 - 0.4]
    t = start_s - (st.length_m + 20.0) / 1.0  # so that walkers fill the whole street at the start
    while t < end_s:
        d = float(rng.choice(walk_lines)) + float(rng.normal(0.0, 0.25))
        forward = bool(rng.random() < 0.5)
        speed = float(rng.uniform(1.0, 1.6))
        s0, s1 = (-10.0, st.length_m + 10.0) if forward else (st.length_m + 10.0, -10.0)
        duration = abs(s1 - s0) / speed
        drive(world, objects.pedestrian(rng), d, [(t, s0, 0), (t + duration, s1, 0)], forward)
        t += float(rng.exponential(60.0 / pedestrians_per_min))


def make_room(world: World, keep: Sequence[SimObject], clearance_m: float = 0.4) -> None:
    """Remove scenery (trees, lamps, benches, bins, parked cars) that would stand inside the given objects."""
    footprints = [(o.east_m, o.north_m, math.hypot(o.model.half_length_m, o.model.half_width_m)) for o in keep]
    kept_ids = {o.id for o in keep}

    def clashes(o: SimObject) -> bool:
        if o.id in kept_ids or o.keyframes or o.model.kind == "building":
            return False
        r = math.hypot(o.model.half_length_m, o.model.half_width_m) if o.model.kind != "tree" else 0.3
        return any(math.hypot(o.east_m - e, o.north_m - n) < r + r2 + clearance_m for e, n, r2 in footprints)

    world.objects = [o for o in world.objects if not clashes(o)]


def clear_sightlines(
    world: World, eye_en: tuple[float, float], targets: Sequence[SimObject], near_m: float = 10.0
) -> None:
    """Remove static scenery standing on the ground line from a fixed camera to each target, and any within
    ``near_m`` of the camera's foot: a pole camera is mounted where its view of the street is clear."""
    ex, ey = eye_en
    keep_ids = {o.id for o in targets}

    def blocks(o: SimObject) -> bool:
        if o.id in keep_ids or o.keyframes or o.model.kind == "building":
            return False
        if math.hypot(o.east_m - ex, o.north_m - ey) < near_m:
            return True
        r = 0.6 * max(o.model.half_length_m, o.model.half_width_m)
        for t in targets:
            dx, dy = t.east_m - ex, t.north_m - ey
            length2 = dx * dx + dy * dy
            w = min(max(((o.east_m - ex) * dx + (o.north_m - ey) * dy) / length2, 0.0), 1.0) if length2 else 0.0
            if w < 1.0 and math.hypot(ex + w * dx - o.east_m, ey + w * dy - o.north_m) < r + 0.5:
                return True
        return False

    world.objects = [o for o in world.objects if not blocks(o)]
