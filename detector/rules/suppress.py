"""Places the case system rejected: no new incident of the rejected category opens there for a while.

A REJECTED verdict says the detector was wrong about this category at this place (a parked delivery cart read as
a stall, a shadow read as a pothole). The object usually stays where it is, so without a memory of the verdict the
rules would open a fresh incident for it at once. "That place" is:

- fixed cameras: the rejected incident's own source, a box overlapping the rejected box by ``iou`` or more;
- moving cameras (drones): any moving source, a located sighting within ``radius_m`` of the rejected location
  (a drone sees the place from elsewhere on every pass, so only the ground point identifies it).

Time is wall-clock seconds (the verdict's time as the store recorded it): a verdict is an event of the case
system's clock, not of a source's capture clock (a replayed flight carries capture times from the past), and it
must outlive a restart, when the suppressions are rebuilt from the store.
"""

from __future__ import annotations

from dataclasses import dataclass

from detector.geo.dedup import ground_distance_m
from detector.rules.associate import Box, Sighting, box_iou
from detector.types import GeoPoint


@dataclass
class RejectedPlace:
    """One REJECTED incident's place, suppressed until ``until_ts`` (wall clock)."""

    incident_id: str
    category: str
    source_id: str
    box: Box
    location: GeoPoint | None
    moving: bool  # the rejected incident came from a moving camera: its place is its location
    until_ts: float
    suppressed: int = 0  # sightings kept from opening a candidate so far


class Suppressions:
    """The rejected places still in force; ``covering`` answers for one sighting."""

    def __init__(self, iou: float, radius_m: float) -> None:
        self.iou = iou
        self.radius_m = radius_m
        self._places: dict[str, RejectedPlace] = {}

    def __len__(self) -> int:
        return len(self._places)

    def add(self, place: RejectedPlace) -> None:
        """Add (or, for the same incident, replace) a rejected place."""
        self._places[place.incident_id] = place

    def covering(self, source_id: str, moving: bool, sighting: Sighting, now_ts: float) -> RejectedPlace | None:
        """The rejected place ``sighting`` (on ``source_id``, a moving camera or not) stands on, if any; places
        past their time are dropped."""
        expired = [key for key, place in self._places.items() if place.until_ts <= now_ts]
        for key in expired:
            del self._places[key]
        for place in self._places.values():
            if place.category == sighting.category and self._at(place, source_id, moving, sighting):
                return place
        return None

    def _at(self, place: RejectedPlace, source_id: str, moving: bool, sighting: Sighting) -> bool:
        if moving:
            if not place.moving or place.location is None or sighting.location is None:
                return False
            return ground_distance_m(place.location, sighting.location) <= self.radius_m
        return place.source_id == source_id and box_iou(place.box, sighting.box) >= self.iou
