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
