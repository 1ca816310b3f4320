"""Geographic association for moving cameras: many sightings of one place become one site.

A drone passing over a stall sees it in many frames, and again on a later pass or flight. Each sighting is
associated by category and ground distance (``radius_m``), not by track id, to the nearest site that has
no sighting from the same frame (same ``ts``); the
site's location is a robust (Huber) weighted mean of its sightings. Pure logic: the rules engine decides
what a site means (confirmation across frames and passes).

Example::

    associator = GeoAssociator(radius_m=10.0)
    association = associator.update(GeoObservation(ts, geo_point, "stall", 0.9))
    association.site.location, association.site.passes, association.created
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from detector.geo.enu import offset_m, shifted
from detector.types import GeoPoint

Float64Array = npt.NDArray[np.float64]

_HUBER_ITERATIONS = 10


@dataclass(frozen=True)
class GeoObservation:
    """One located sighting."""

    ts: float
    location: GeoPoint
    category: str
    confidence: float


@dataclass
class GeoSite:
    """One place with one category, seen ``len(observations)`` times over ``passes`` passes."""

    site_id: str
    category: str
    location: GeoPoint
    first_seen_ts: float
    last_seen_ts: float
    passes: int = 1
    observations: list[GeoObservation] = field(default_factory=list)  # the most recent, bounded

    @classmethod
    def start(cls, site_id: str, observation: GeoObservation) -> GeoSite:
        """A site seen once."""
        ts = observation.ts
        return cls(site_id, observation.category, observation.location, ts, ts, observations=[observation])

    def add(
        self,
        observation: GeoObservation,
        *,
        pass_gap_s: float,
        max_observations: int,
        huber_k: float = 1.5,
        min_accuracy_m: float = 0.5,
    ) -> None:
        """Take one more sighting: count a new pass after a gap of ``pass_gap_s``, keep the latest
        ``max_observations``, and move the location to the robust mean."""
        if observation.ts > self.last_seen_ts + pass_gap_s or observation.ts < self.first_seen_ts - pass_gap_s:
            self.passes += 1
        self.first_seen_ts = min(self.first_seen_ts, observation.ts)
        self.last_seen_ts = max(self.last_seen_ts, observation.ts)
        self.observations.append(observation)
        del self.observations[:-max_observations]
        self.location = robust_location(self.observations, self.passes, huber_k, min_accuracy_m)


@dataclass(frozen=True)
class Association:
    """The site a sighting joined; ``created`` when it opened a new one. ``distance_m`` is to the site's
    location before the update (0 when created)."""

    site: GeoSite
    created: bool
    distance_m: float


def ground_distance_m(a: GeoPoint, b: GeoPoint) -> float:
    """Metres between two nearby points (error < 0.1 % under 10 km)."""
    return math.hypot(*offset_m(a.lat, a.lon, b.lat, b.lon))


def _weighted_median(values: Float64Array, weights: Float64Array) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, cumulative[-1] / 2.0)])


def robust_location(
    observations: list[GeoObservation], passes: int = 1, huber_k: float = 1.5, min_accuracy_m: float = 0.5
) -> GeoPoint:
    """Huber mean of the observations, weighted by confidence / accuracy^2, started from the weighted median.

    Its accuracy is the larger of the typical observation accuracy and the observed scatter, divided by
    sqrt(passes): sightings of one pass share that pass's pose error, so only passes average out.
    """
    origin = observations[0].location
    points = np.array([offset_m(origin.lat, origin.lon, o.location.lat, o.location.lon) for o in observations])
    sigma = np.array([max(o.location.accuracy_m, min_accuracy_m) for o in observations])
    base = np.array([max(o.confidence, 1e-6) for o in observations]) / sigma**2
    centre = np.array([_weighted_median(points[:, k], base) for k in (0, 1)])
    huber = np.ones(len(points))
    for _ in range(_HUBER_ITERATIONS):
        residual = np.hypot(*(points - centre).T)
        huber = np.minimum(1.0, huber_k * sigma / np.maximum(residual, 1e-12))
        weights = base * huber
        centre = weights @ points / weights.sum()
    residual = np.hypot(*(points - centre).T)
    weights = base * huber
    scatter = math.sqrt(float(weights @ residual**2 / weights.sum()))
    typical = math.sqrt(len(sigma) / float(np.sum(huber / sigma**2)))
    accuracy = max(max(typical, scatter) / math.sqrt(max(passes, 1)), min_accuracy_m)
    lat, lon = shifted(origin.lat, origin.lon, float(centre[0]), float(centre[1]))
    method = Counter(o.location.method for o in observations).most_common(1)[0][0]
    return GeoPoint(lat, lon, accuracy, method)


class GeoAssociator:
    """Keeps the sites seen so far and associates each new sighting to one of them, or to a new one."""

    def __init__(
        self,
        radius_m: float = 10.0,
        pass_gap_s: float = 20.0,
        max_observations: int = 256,
        huber_k: float = 1.5,
        min_accuracy_m: float = 0.5,
        id_prefix: str = "site-",
    ) -> None:
        """``radius_m``: join the nearest site of the same category within this distance. About 3.5x the
        per-axis location noise keeps one place one site; distinct places closer than twice the radius are
        still kept apart by the nearest-site choice once both exist (10 m: 2 m noise, stalls 15 m apart).
        ``pass_gap_s``: a sighting this long after (or before) a site's others starts a new pass."""
        if radius_m <= 0.0 or pass_gap_s < 0.0 or max_observations < 1:
            raise ValueError("radius_m must be > 0, pass_gap_s >= 0 and max_observations >= 1")
        self.radius_m = radius_m
        self.pass_gap_s = pass_gap_s
        self.max_observations = max_observations
        self.huber_k = huber_k
        self.min_accuracy_m = min_accuracy_m
        self._id_prefix = id_prefix
        self._sites: list[GeoSite] = []
        self._next_id = 1

    @property
    def sites(self) -> list[GeoSite]:
        return list(self._sites)

    def update(self, observation: GeoObservation) -> Association:
        """Associate one sighting; returns the site it joined or opened."""
        best: GeoSite | None = None
        best_m = math.inf
        for site in self._sites:
            # Two sightings in one frame are two things, so a site takes at most one per frame.
            if site.category != observation.category or site.observations[-1].ts == observation.ts:
                continue
            distance = ground_distance_m(site.location, observation.location)
            if distance <= self.radius_m and distance < best_m:
                best, best_m = site, distance
        if best is None:
            site = GeoSite.start(f"{self._id_prefix}{self._next_id}", observation)
            self._next_id += 1
            self._sites.append(site)
            return Association(site, True, 0.0)
        best.add(
            observation,
            pass_gap_s=self.pass_gap_s,
            max_observations=self.max_observations,
            huber_k=self.huber_k,
            min_accuracy_m=self.min_accuracy_m,
        )
        return Association(best, False, best_m)
