"""Association by ground distance, for moving cameras (drones).

A drone sees a stall from many places in many frames: its box moves across the image and the tracker loses it
between passes, but its ground point stays put. A sighting is the place of its category whose location (the
robust mean of its sightings so far) is nearest, within ``dedup_radius_m``. A sighting that could not be
located (a frame without telemetry) falls back to the tracker: it is the place holding its track id.
"""

from __future__ import annotations

from detector.geo.dedup import ground_distance_m
from detector.rules.associate import Associator, PixelPlaceAssociator, Place, Sighting
from detector.rules.config import MovingCamera, SourceRules

_TRACK_FALLBACK = 0.5  # below every located match (1..2): a ground match is surer than a track id


class GroundPlaceAssociator:
    """Same category and within ``radius_m`` on the ground; 2 at the same spot, falling to 1 at the radius.

    >>> from detector.types import GeoPoint
    >>> from types import SimpleNamespace
    >>> a = GroundPlaceAssociator(radius_m=10.0)
    >>> seen = Sighting(0, "stall", "STALL", (0, 0, 1, 1), 0.9, -1, "", GeoPoint(39.9, 116.4, 2.0, "DRONE_PROJECTION"))
    >>> a.similarity(SimpleNamespace(category="STALL", box=(5, 5, 6, 6), track_id=7, location=seen.location), seen)
    2.0
    """

    def __init__(self, radius_m: float) -> None:
        self.radius_m = radius_m

    def similarity(self, place: Place, sighting: Sighting) -> float | None:
        if place.category != sighting.category:
            return None
        if place.location is not None and sighting.location is not None:
            distance = ground_distance_m(place.location, sighting.location)
            return None if distance > self.radius_m else 2.0 - distance / self.radius_m
        if place.track_id >= 0 and place.track_id == sighting.track_id:
            return _TRACK_FALLBACK
        return None


def place_associator(rules: SourceRules) -> Associator:
    """Ground distance for moving cameras, box overlap for fixed ones."""
    if isinstance(rules, MovingCamera):
        return GroundPlaceAssociator(rules.geo.dedup_radius_m)
    return PixelPlaceAssociator(rules.match_iou)
