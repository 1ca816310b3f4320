from __future__ import annotations

import numpy as np
import pytest

from detector.rules import FixedCamera
from detector.rules.zones import Zone, build_zones, prohibiting_zone

from .helpers import ZONE, Obj, make_detections

SQUARE = Zone("sq", [(0, 0), (100, 0), (100, 100), (0, 100)], ["stall"])


@pytest.mark.parametrize(
    ("point", "inside"),
    [((50, 50), True), ((100, 50), True), ((50, 100), True), ((101, 50), False), ((-1, -1), False)],
)
def test_contains_counts_the_edge_as_inside(point: tuple[float, float], inside: bool) -> None:
    assert SQUARE.contains(np.array([point], dtype=np.float32)).tolist() == [inside]


def test_bottom_centre_decides() -> None:
    # The box reaches into the square, but it stands below it.
    dets = make_detections([Obj(box=(40.0, 50.0, 60.0, 150.0)), Obj(box=(40.0, -50.0, 60.0, 90.0))])
    assert SQUARE.contains(dets.bottom_centres()).tolist() == [False, True]


def test_prohibiting_zone_needs_the_class_to_be_prohibited() -> None:
    garbage_only = Zone("g", [(0, 0), (100, 0), (100, 100), (0, 100)], ["garbage"])
    points = np.array([[50, 50], [50, 50], [500, 500]], dtype=np.float32)
    assert prohibiting_zone([garbage_only, SQUARE], ["stall", "garbage", "stall"], points) == [
        "sq",
        "g",
        None,
    ]


@pytest.mark.parametrize(
    ("drawn", "stream", "point", "inside"),
    [
        (None, (1920, 1080), (900, 520), True),
        ((1920, 1080), (960, 540), (450, 260), True),
        ((1920, 1080), (960, 540), (450, 240), False),
    ],
)
def test_build_zones_scales_to_the_stream(
    drawn: tuple[int, int] | None, stream: tuple[int, int], point: tuple[float, float], inside: bool
) -> None:
    rules = FixedCamera(zones=[ZONE], zones_frame_size_px=drawn)
    (zone,) = build_zones(rules, stream)
    assert zone.contains(np.array([point], dtype=np.float32)).tolist() == [inside]


def test_a_camera_without_zones_has_its_whole_frame_as_one_zone_for_the_dwell_classes() -> None:
    from detector.rules import RulesConfig
    from detector.rules.zones import dwell_classes

    classes = dwell_classes(RulesConfig())
    assert classes == ["cart", "goods", "stall"]
    (zone,) = build_zones(FixedCamera(), (1280, 720), classes)
    assert zone.id == "whole-view" and zone.prohibited == {"stall", "cart", "goods"}
    corners = np.array([[0, 0], [1280, 720], [640, 360], [1281, 720]], dtype=np.float32)
    assert zone.contains(corners).tolist() == [True, True, True, False]
    assert build_zones(FixedCamera(no_zones="off"), (1280, 720), classes) == []
    assert [z.id for z in build_zones(FixedCamera(zones=[ZONE]), (1920, 1080), classes)] == ["no-vending"]


def test_geo_zones_replace_the_whole_view_too() -> None:
    from tests.geo.synthetic import control_points, geo_square

    geo = {
        "calibration": {"control_points": control_points()},
        "zones": [{"id": "market", "geometry": geo_square(0.0, 15.0, 5.0), "prohibited_classes": ["stall"]}],
    }
    assert build_zones(FixedCamera.model_validate({"geo": geo}), (1280, 720), ["stall"]) == []


def test_the_start_up_summary_says_where_stalls_can_open_for_every_source() -> None:
    from detector.rules import MovingCamera, RulesConfig
    from detector.rules.zones import zone_summaries

    config = RulesConfig(
        sources={
            "cam-zoned": FixedCamera(zones=[ZONE], dwell_s=60),
            "cam-off": FixedCamera(no_zones="off"),
            "drone-1": MovingCamera(camera="moving"),
        }
    )
    off, zoned, drone, default = zone_summaries(config)
    assert off.startswith("cam-off: no zones and no_zones: off") and "never open incidents" in off
    assert zoned == "cam-zoned: 1 prohibited zone(s) (no-vending) for dwell (dwell 60 s)"
    assert drone.startswith("drone-1: moving camera")
    assert default.startswith("default_source (sources not listed): no zones configured, so the whole view")
    assert "('whole-view') for cart, goods, stall (dwell 120 s)" in default
