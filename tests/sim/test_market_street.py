"""market-street: the script (dwell, the truck, the overflowing bin), and the camera metadata a city would
configure from (control points, zone) agreeing with the pixels."""

from __future__ import annotations

import math

import pytest
import shapely

from detector.geo.calibration import ControlPoint, GroundCalibration
from detector.geo.enu import offset_m
from detector.sim.runner import RenderSummary, render_scenario
from detector.sim.truth import Truth

Market = tuple[RenderSummary, Truth]


def _runs(times: list[float], step: float) -> list[tuple[float, float]]:
    """Contiguous runs of sample times (gaps of more than ``step`` split them)."""
    runs: list[tuple[float, float]] = []
    for t in times:
        if runs and t - runs[-1][1] <= step + 1e-6:
            runs[-1] = (runs[-1][0], t)
        else:
            runs.append((t, t))
    return runs


def test_stalls_arrive_stay_past_the_dwell_and_leave(market: Market) -> None:
    _, truth = market
    stalls = [o for o in truth.objects if o.cls == "stall"]
    assert all(o.appear_s is not None and o.leave_s is not None for o in stalls)
    stays = sorted((o.leave_s or 0.0) - (o.appear_s or 0.0) for o in stalls)
    assert stays[0] < truth.dwell_s, "one stall leaves before the dwell is up"
    assert sum(s > truth.dwell_s + 30 for s in stays) >= 2
    for o in stalls:
        seen = [f.t_s for f, _ in truth.sightings(o.id, 0.3)]
        assert seen, f"stall {o.id} is never seen"
        assert (o.appear_s or 0.0) <= seen[0] <= (o.appear_s or 0.0) + 2.0, "seen from its arrival"
        assert seen[-1] < (o.leave_s or math.inf), "not seen after it left"


def test_no_object_is_in_a_frame_outside_its_life(market: Market) -> None:
    _, truth = market
    life = {o.id: o for o in truth.objects}
    for frame in truth.frames:
        for box in frame.objects:
            assert life[box.id].present(frame.t_s), (frame.t_s, box.id)


def test_a_truck_hides_one_stall_for_a_while_and_it_comes_back(market: Market) -> None:
    _, truth = market
    hidden = []
    for o in (o for o in truth.objects if o.cls == "stall"):
        present = [f for f in truth.frames if o.present(f.t_s)]
        seen = {f.t_s for f, _ in truth.sightings(o.id, 0.2)}
        gaps = _runs([f.t_s for f in present if f.t_s not in seen], 1.0)
        hidden += [(o.id, a, b) for a, b in gaps if 8.0 <= b - a <= 30.0]
    assert len(hidden) == 1, f"expected one stall hidden for 8-30 s, got {hidden}"
    oid, start, end = hidden[0]
    assert truth.sightings(oid, 0.9)[0][0].t_s < start and any(f.t_s > end for f, _ in truth.sightings(oid, 0.9))
    assert any(f"#{oid} " in line and "truck" in line for line in truth.script)


def test_the_bin_overflows_and_is_emptied_at_the_same_place(market: Market) -> None:
    _, truth = market
    (overflow,) = [o for o in truth.objects if o.cls == "overflow"]
    same_place = [o for o in truth.objects if o.cls == "garbage_bin" and
                  math.hypot(o.east_m - overflow.east_m, o.north_m - overflow.north_m) < 0.01]  # fmt: skip
    assert [(o.appear_s, o.leave_s) for o in same_place] == [(None, overflow.appear_s), (overflow.leave_s, None)]


def test_control_points_calibrate_the_camera_to_the_rendered_ground(market: Market) -> None:
    _, truth = market
    points = [ControlPoint(**p) for p in truth.control_points]
    assert len(points) >= 6
    calibration = GroundCalibration.fit(points)
    assert calibration.report.rms_error_m < 0.05
    checked = 0
    for o in (o for o in truth.objects if o.cls == "pothole"):  # flat: the box centre is on the object
        for frame, box in truth.sightings(o.id, 0.99)[::20]:
            x1, y1, x2, y2 = box.box
            centre = ((x1 + x2) / 2, (y1 + y2) / 2)
            (fix,) = calibration.pixel_to_geo([centre])
            assert fix is not None
            error = math.hypot(*offset_m(o.lat, o.lon, fix.lat, fix.lon))
            # Boxes are whole pixels: allow a pixel's worth of ground (over a metre far off, at 320x180).
            pixel_m = float(calibration.metres_per_pixel([centre])[0])
            assert error < max(o.length_m, o.width_m) / 2 + pixel_m, (o.id, frame.t_s, error, pixel_m)
            checked += 1
    assert checked >= 4


def test_the_zone_holds_every_stall_cart_and_goods_where_it_stands(market: Market) -> None:
    _, truth = market
    (zone,) = truth.zones
    polygon = shapely.Polygon(zone["polygon_px"])
    classes = {o.id: o.cls for o in truth.objects}
    feet = [((b.box[0] + b.box[2]) / 2, b.box[3]) for f in truth.frames for b in f.objects
            if classes[b.id] in zone["prohibited_classes"] and b.visibility > 0.9 and not b.truncated]  # fmt: skip
    assert len(feet) > 100
    assert all(polygon.buffer(1.0).covers(shapely.Point(p)) for p in feet)


def test_market_street_needs_time_for_the_dwell(tmp_path: object) -> None:
    with pytest.raises(ValueError, match="4 or more"):
        render_scenario("market-street", tmp_path, minutes=2, video=False, progress=False)  # type: ignore[arg-type]
