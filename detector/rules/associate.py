"""Which detection is which candidate or incident: association by place, with track ids as a tie-breaker.

Stalls and hazards do not move, so place is the identity that survives a tracker's id switch or an occlusion.
Fixed cameras compare boxes in pixels (:class:`PixelPlaceAssociator`). Moving cameras (drones) compare ground
distance instead (:class:`detector.rules.geo_place.GroundPlaceAssociator`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from detector.types import GeoPoint, Telemetry

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Sighting:
    """One detection that a rule cares about, in the frame being evaluated."""

    index: int  # row in that frame's Detections
    class_name: str
    category: str
    box: Box
    confidence: float
    track_id: int  # -1: untracked
    zone_id: str  # "" when outside every prohibiting zone
    location: GeoPoint | None = None
    location_note: str = ""  # why it has no location, or what its location assumed
    pose: Telemetry | None = None  # the source's pose in this frame

    @property
    def bottom_centre(self) -> tuple[float, float]:
        x1, _, x2, y2 = self.box
        return ((x1 + x2) / 2.0, y2)


class Place(Protocol):
    """What an associator sees of a candidate or incident: its latest sighting."""

    @property
    def category(self) -> str: ...
    @property
    def box(self) -> Box: ...
    @property
    def track_id(self) -> int: ...
    @property
    def location(self) -> GeoPoint | None: ...


class Associator(Protocol):
    def similarity(self, place: Place, sighting: Sighting) -> float | None:
        """How surely ``sighting`` is the object at ``place`` (higher is surer); None when it is not."""
        ...


def box_iou(a: Box, b: Box) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0.0 or ih <= 0.0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0.0 else 0.0


class PixelPlaceAssociator:
    """Same category and boxes overlapping by ``match_iou``; the same track id with any overlap wins first.

    The track-id rule keeps two overlapping stalls apart; the IoU rule survives id switches and occlusions.
    """

    def __init__(self, match_iou: float) -> None:
        self.match_iou = match_iou

    def similarity(self, place: Place, sighting: Sighting) -> float | None:
        if place.category != sighting.category:
            return None
        iou = box_iou(place.box, sighting.box)
        if place.track_id >= 0 and place.track_id == sighting.track_id and iou > 0.0:
            return 1.0 + iou
        return iou if iou >= self.match_iou else None


def match_greedy(
    associator: Associator, places: Sequence[Place], sightings: Sequence[Sighting]
) -> list[tuple[int, int]]:
    """One-to-one (place index, sighting index) pairs, most similar first."""
    scored = [
        (score, p, s)
        for p, place in enumerate(places)
        for s, sighting in enumerate(sightings)
        if (score := associator.similarity(place, sighting)) is not None
    ]
    scored.sort(key=lambda item: -item[0])
    used_places: set[int] = set()
    used_sightings: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for _, p, s in scored:
        if p not in used_places and s not in used_sightings:
            used_places.add(p)
            used_sightings.add(s)
            pairs.append((p, s))
    return pairs
