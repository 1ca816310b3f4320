"""Named scenarios: a world, a view of it and a script of what happens when.

- ``market-street``: a fixed pole camera over a market street for 10 minutes. Stalls arrive, stay past the
  dwell time and leave; one stall is hidden for a while by a delivery truck that stops in front of it; a stall
  that leaves before the dwell time is up (not an incident); goods spread outside a shop; a garbage pile; a bin
  that overflows and is emptied; potholes.
- ``drone-patrol``: a drone flies about 1 km along an avenue with stalls and hazards and comes back over one
  stretch, so that those are seen on two passes, from opposite directions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Literal

import numpy as np

from detector.sim import objects
from detector.sim.effects import Look
from detector.sim.ground import GroundMap
from detector.sim.scenery import clear_sightlines, drive, furnish, make_room, place, traffic
from detector.sim.views import Flight, FlightSettings, PoleCamera
from detector.sim.world import SimObject, Street, World

ANCHOR = (39.9087, 116.3975)  # Beijing; each seed moves the street a little
LOCAL_TZ = timezone(timedelta(hours=8))
START_LOCAL = datetime(2025, 6, 3, 9, 30, 0)


@dataclass
class Plan:
    """Everything needed to render a scenario, and what its ground truth must carry besides the boxes."""

    name: str
    world: World
    ground: GroundMap
    look: Look
    duration_s: float
    fps: float
    camera: Literal["fixed", "moving"]
    pole: PoleCamera | None = None
    flight: Flight | None = None
    dwell_s: float = 120.0
    control_points_en: list[tuple[float, float]] = field(default_factory=list)
    zone_en: list[tuple[float, float]] = field(default_factory=list)
    script: list[str] = field(default_factory=list)  # what happens, in words, for the truth file and the summary

    @property
    def start_local(self) -> datetime:
        return START_LOCAL

    @property
    def start_ts(self) -> float:
        """Capture time (UNIX seconds) of the first frame."""
        return START_LOCAL.replace(tzinfo=LOCAL_TZ).astimezone(UTC).timestamp()


def _anchor(rng: np.random.Generator) -> tuple[float, float]:
    return ANCHOR[0] + float(rng.uniform(-0.02, 0.02)), ANCHOR[1] + float(rng.uniform(-0.02, 0.02))


def _violation(world: World, kind: str, s: float, d: float, appear: float, leave: float, rng: np.random.Generator,
               reverse: bool = False) -> SimObject:  # fmt: skip
    model = objects.BUILDERS[kind](rng)
    return place(world, model, s, d, reverse=reverse, label=kind, appear_s=appear, leave_s=leave)


def _en(street: Street, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(float(e), float(n)) for e, n in street.to_enu([p[0] for p in points], [p[1] for p in points])]


def market_street(seed: int, minutes: float | None, flight: FlightSettings | None = None) -> Plan:
    duration = 60.0 * (10.0 if minutes is None else minutes)
    if duration < 240.0:
        raise ValueError("market-street needs --minutes 4 or more: its stalls must stay past the 120 s dwell time")
    rng = np.random.default_rng([seed, 1])
    street = Street(length_m=140.0, bearing_deg=float(rng.uniform(0, 360)), lanes=2, parking_m=2.3, pavement_m=4.5)
    world = World(*_anchor(rng), street)
    crossing = 48.0
    furnishing = furnish(world, rng, crossings_s=[crossing], bin_every_m=30.0)
    right_kerb, left_kerb = street.kerbs
    right_line, left_line = street.building_lines
    f = duration / 600.0

    def stay(start: float, share: float, at_least: float) -> tuple[float, float]:
        return start, min(duration + 60.0, start + max(share * duration, at_least))

    a0, a1 = stay(0.03 * duration, 0.45, 200.0)
    b0, b1 = stay(0.08 * duration, 0.7, 210.0)
    c0, c1 = stay(0.2 * duration, 0.4, 190.0)
    violations = [
        _violation(world, "stall", 22.0, left_kerb + 1.3, a0, a1, rng),
        _violation(world, "stall", 34.0, left_kerb + 1.3, b0, b1, rng),  # hidden by the truck, below
        _violation(world, "cart", 16.0, right_kerb - 1.0, c0, c1, rng, reverse=True),
        _violation(world, "goods", 30.0, right_line + 0.8, 0.1 * duration, math.inf, rng),  # clear of the stalls
        _violation(world, "stall", 62.0, left_kerb + 1.3, 0.5 * duration, 0.5 * duration + 70.0, rng),
        _violation(world, "garbage", 40.5, left_kerb + 0.9, 0.15 * duration, 0.75 * duration, rng),
        _violation(world, "pothole", 28.0, -street.lane_m / 2 + 0.3, -math.inf, math.inf, rng),
        _violation(world, "pothole", 55.0, street.lane_m / 2 - 0.2, -math.inf, math.inf, rng),
    ]
    # A bin on the far pavement overflows for a while and is then emptied (a fresh bin object after).
    bin_s, bin_d = 58.0, left_kerb + 0.6
    full_from, emptied_at = 0.4 * duration, 0.85 * duration
    violations.append(place(world, objects.garbage_bin(rng), bin_s, bin_d, label="garbage_bin", leave_s=full_from))
    violations.append(_violation(world, "overflow", bin_s, bin_d, full_from, emptied_at, rng))
    violations.append(place(world, objects.garbage_bin(rng), bin_s, bin_d, label="garbage_bin", appear_s=emptied_at))
    make_room(world, violations)
    cam_e, cam_n = (float(v) for v in street.to_enu(2.0, right_kerb - 1.0)[0])  # the pole's foot
    clear_sightlines(world, (cam_e, cam_n), violations, near_m=16.0)
    for stall in (violations[0], violations[1], violations[4]):  # vendors behind their stalls
        e, n = stall.east_m, stall.north_m
        vendor = objects.pedestrian(rng)
        _, left = street.axes()
        world.add(vendor, (e + left[0] * 1.4, n + left[1] * 1.4), street.angle_rad() - math.pi / 2, None,
                  stall.appear_s, stall.leave_s)  # fmt: skip
    # The truck stops where the camera's line of sight to stall B crosses the lane next to the far pavement.
    lane = street.lane_m / 2
    cam_s, cam_d, b_s, b_d = 2.0, right_kerb - 1.0, 34.0, left_kerb + 1.3
    stop_s = cam_s + (lane - cam_d) / (b_d - cam_d) * (b_s - cam_s)
    truck_at = b0 + 70.0 * max(f, 0.5)  # hidden before its dwell is up: the dwell must survive the occlusion
    speed = 8.0
    t_in = truck_at - (street.length_m + 40.0 - stop_s) / speed
    drive(world, objects.vehicle(rng, "truck", cargo_height_m=4.0), lane,
          [(t_in, street.length_m + 40.0, 0.0), (truck_at, stop_s, 12.0),
           (truck_at + 12.0 + (stop_s + 40.0) / speed, -40.0, 0.0)], forward=False)  # fmt: skip
    traffic(world, rng, 0.0, duration, vehicles_per_min=8.0, pedestrians_per_min=10.0, lane_d=furnishing.lane_d,
            quiet=[("backward", truck_at - 40.0, truck_at + 40.0)])  # fmt: skip
    look = Look.random(rng)
    ground = GroundMap.paint(street, look, rng, furnishing.tree_pits_sd, [crossing])
    pole = PoleCamera(cam_e, cam_n, 7.0, street.bearing_deg - 18.0, -18.0, 72.0)
    control = [(crossing, left_kerb), (crossing + 5.0, left_kerb), (crossing, -street.road_half_m),
               (crossing + 5.0, -street.road_half_m), (20.0, left_kerb), (10.0, right_kerb)]  # fmt: skip
    control += [(s, d) for s, d in furnishing.tree_pits_sd if 8.0 < s < 60.0][:3]
    zone = [(6.0, right_line), (100.0, right_line), (100.0, left_line), (6.0, left_line)]
    script = [
        f"stall #{violations[0].id} from {a0:.0f} s to {a1:.0f} s",
        f"stall #{violations[1].id} from {b0:.0f} s to {b1:.0f} s, hidden by a truck stopping in front of it "
        f"from {truck_at:.0f} s for 12 s",
        f"cart #{violations[2].id} from {c0:.0f} s to {c1:.0f} s",
        f"stall #{violations[4].id} stays only 70 s (under the dwell time: no incident expected)",
        f"bin overflows from {0.4 * duration:.0f} s to {0.85 * duration:.0f} s",
    ]
    return Plan("market-street", world, ground, look, duration, 2.0, "fixed", pole=pole,
                control_points_en=_en(street, control), zone_en=_en(street, zone), script=script)  # fmt: skip


def drone_patrol(seed: int, minutes: float | None, flight: FlightSettings | None = None) -> Plan:
    rng = np.random.default_rng([seed, 2])
    street = Street(length_m=650.0, bearing_deg=float(rng.uniform(0, 360)), lanes=4, parking_m=2.3, pavement_m=5.0)
    world = World(*_anchor(rng), street)
    crossings = [150.0, 430.0]
    furnishing = furnish(world, rng, crossings_s=crossings)
    right_kerb, left_kerb = street.kerbs
    right_line, left_line = street.building_lines
    stalls = [(100.0, 1), (300.0, 1), (345.0, -1), (520.0, 1)]
    violations = [_violation(world, "stall", s, (left_kerb + 1.3) if side > 0 else (right_kerb - 1.3), -math.inf,
                             math.inf, rng) for s, side in stalls]  # fmt: skip
    spots = [("cart", 380.0, right_kerb - 1.0), ("cart", 560.0, left_kerb + 1.2), ("goods", 320.0, left_line - 0.8),
             ("garbage", 200.0, right_kerb - 0.9), ("garbage", 470.0, left_kerb + 0.9),
             ("garbage", 590.0, right_line + 1.0), ("overflow", 410.0, left_kerb + 0.6),
             ("pothole", 80.0, -street.lane_m * 1.5), ("pothole", 290.0, street.lane_m / 2),
             ("pothole", 500.0, -street.lane_m / 2)]  # fmt: skip
    violations += [_violation(world, kind, s, d, -math.inf, math.inf, rng) for kind, s, d in spots]
    make_room(world, violations)
    # A vendor behind each stall, facing the road. Own generator: the flight, traffic and look stay as they were.
    vendors = np.random.default_rng([seed, 2, 1])
    _, left = street.axes()
    for stall, (_, side) in zip(violations[: len(stalls)], stalls, strict=True):
        e, n = stall.east_m + side * left[0] * 1.4, stall.north_m + side * left[1] * 1.4
        world.add(objects.pedestrian(vendors), (e, n), street.angle_rad() - side * math.pi / 2, None)
    settings = flight or FlightSettings()
    # Out along the avenue, then back over the stretch from 260 m to 620 m: about 1 km in all.
    waypoints = [street.to_enu(s, 0.0)[0] for s in (-20.0, 620.0, 260.0)]
    path = Flight([(float(e), float(n)) for e, n in waypoints], settings)
    duration = path.duration_s if minutes is None else min(path.duration_s, 60.0 * minutes)
    traffic(world, rng, 0.0, duration, vehicles_per_min=14.0, pedestrians_per_min=20.0, lane_d=furnishing.lane_d)
    look = Look.random(rng)
    ground = GroundMap.paint(street, look, rng, furnishing.tree_pits_sd, crossings)
    script = [f"flight of {path.length_m:.0f} m at {settings.speed_m_s:g} m/s, {settings.altitude_m:g} m high, "
              f"gimbal {settings.gimbal_pitch_deg:g} deg; the stretch 260-620 m is passed twice"]  # fmt: skip
    return Plan("drone-patrol", world, ground, look, duration, 4.0, "moving", flight=path, script=script)


SCENARIOS: dict[str, Callable[[int, float | None, FlightSettings | None], Plan]] = {
    "market-street": market_street,
    "drone-patrol": drone_patrol,
}
