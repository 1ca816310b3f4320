from __future__ import annotations

from dataclasses import dataclass

import pytest

from detector.rules.associate import Box, PixelPlaceAssociator, Sighting, box_iou, match_greedy
from detector.types import GeoPoint


@dataclass
class FakePlace:
    category: str
    box: Box
    track_id: int = -1
    location: GeoPoint | None = None


def sighting(box: Box, track_id: int = -1, category: str = "STALL") -> Sighting:
    return Sighting(0, "stall", category, box, 0.9, track_id, "z")


@pytest.mark.parametrize(
    ("a", "b", "iou"),
    [
        ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),
        ((0, 0, 10, 10), (5, 0, 15, 10), 1 / 3),
        ((0, 0, 10, 10), (10, 0, 20, 10), 0.0),
        ((0, 0, 10, 10), (20, 20, 30, 30), 0.0),
    ],
)
def test_box_iou(a: Box, b: Box, iou: float) -> None:
    assert box_iou(a, b) == pytest.approx(iou)


@pytest.mark.parametrize(
    ("place", "seen", "similarity"),
    [
        (FakePlace("STALL", (0, 0, 10, 10), 1), sighting((0, 0, 10, 10), 2), 1.0),  # id switch, same place
        (FakePlace("STALL", (0, 0, 10, 10), 1), sighting((0, 0, 10, 10), 1), 2.0),  # same id wins ties
        (FakePlace("STALL", (0, 0, 10, 10), 1), sighting((8, 0, 18, 10), 1), 1.0 + 2 / 18),  # moved, same id
        (FakePlace("STALL", (0, 0, 10, 10), 1), sighting((8, 0, 18, 10), 2), None),  # neighbour
        (FakePlace("STALL", (0, 0, 10, 10), 1), sighting((0, 0, 10, 10), 1, "GARBAGE"), None),
        (FakePlace("STALL", (0, 0, 10, 10), 1), sighting((50, 0, 60, 10), 1), None),  # no overlap at all
    ],
)
def test_pixel_place_similarity(place: FakePlace, seen: Sighting, similarity: float | None) -> None:
    got = PixelPlaceAssociator(match_iou=0.3).similarity(place, seen)
    assert got == (None if similarity is None else pytest.approx(similarity))


def test_match_greedy_is_one_to_one_and_best_first() -> None:
    places = [FakePlace("STALL", (0, 0, 10, 10)), FakePlace("STALL", (12, 0, 22, 10))]
    seen = [sighting((11, 0, 21, 10)), sighting((1, 0, 11, 10)), sighting((2, 0, 12, 10))]
    assert sorted(match_greedy(PixelPlaceAssociator(0.3), places, seen)) == [(0, 1), (1, 0)]
