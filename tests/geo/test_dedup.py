"""Geographic association: sightings from several passes become one site per place and category."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detector.geo.dedup import GeoAssociator, GeoObservation
from detector.geo.enu import offset_m, shifted
from detector.types import GeoPoint

LAT, LON = 41.3851, 2.1734


def make_observations(
    rng: np.random.Generator,
    east_m: float,
    north_m: float,
    *,
    passes: int = 3,
    per_pass: int = 15,
    noise_m: float = 2.0,
    category: str = "stall",
    pass_start_s: float = 0.0,
) -> list[GeoObservation]:
    """Noisy sightings of the place ``east_m``/``north_m`` from the origin, over several passes 60 s apart.

    ``noise_m`` is the per-axis 1-sigma error of one sighting: half of its variance is a pose bias shared
    by the whole pass (as on a real pass), half is per-frame noise.
    """
    out = []
    for p in range(passes):
        bias = rng.normal(0.0, noise_m / math.sqrt(2), size=2)
        for k in range(per_pass):
            e, n = np.array([east_m, north_m]) + bias + rng.normal(0.0, noise_m / math.sqrt(2), size=2)
            lat, lon = shifted(LAT, LON, e, n)
            ts = pass_start_s + p * 60.0 + k / 10.0
            out.append(GeoObservation(ts, GeoPoint(lat, lon, noise_m, "DRONE_PROJECTION"), category, 0.8))
    return out


def run(observations: list[GeoObservation], **kw: float) -> GeoAssociator:
    associator = GeoAssociator(**kw)  # type: ignore[arg-type]
    for observation in sorted(observations, key=lambda o: o.ts):
        associator.update(observation)
    return associator


def error_m(point: GeoPoint, east_m: float, north_m: float) -> float:
    e, n = offset_m(LAT, LON, point.lat, point.lon)
    return math.hypot(e - east_m, n - north_m)


@pytest.mark.parametrize("seed", range(20))
def test_one_stall_three_passes_is_one_site(seed: int) -> None:
    sites = run(make_observations(np.random.default_rng(seed), 5.0, -3.0)).sites
    assert len(sites) == 1
    site = sites[0]
    assert site.passes == 3
    assert len(site.observations) == 45
    assert error_m(site.location, 5.0, -3.0) < 3.0
    assert site.location.method == "DRONE_PROJECTION"


@pytest.mark.parametrize("seed", range(20))
def test_two_stalls_15m_apart_are_two_sites(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    observations = make_observations(rng, 0.0, 0.0) + make_observations(rng, 15.0, 0.0)
    sites = run(observations).sites
    assert len(sites) == 2
    a, b = sorted(sites, key=lambda s: offset_m(LAT, LON, s.location.lat, s.location.lon)[0])
    assert error_m(a.location, 0.0, 0.0) < 3.0 and error_m(b.location, 15.0, 0.0) < 3.0
    assert len(a.observations) == len(b.observations) == 45


def test_two_sightings_in_one_frame_are_two_sites() -> None:
    lat, lon = shifted(LAT, LON, 6.0, 0.0)
    frame = [
        GeoObservation(5.0, GeoPoint(la, lo, 2.0, "DRONE_PROJECTION"), "stall", 0.9)
        for la, lo in ((LAT, LON), (lat, lon))
    ]
    assert len(run(frame).sites) == 2


def test_other_category_at_the_same_place_is_another_site() -> None:
    rng = np.random.default_rng(5)
    observations = make_observations(rng, 0.0, 0.0) + make_observations(rng, 0.0, 0.0, category="garbage")
    assert sorted(s.category for s in run(observations).sites) == ["garbage", "stall"]


def test_robust_to_a_few_wild_sightings() -> None:
    rng = np.random.default_rng(9)
    observations = make_observations(rng, 0.0, 0.0, noise_m=1.0)
    wild_lat, wild_lon = shifted(LAT, LON, 7.0, 0.0)
    observations += [
        GeoObservation(10.0 + k, GeoPoint(wild_lat, wild_lon, 1.0, "DRONE_PROJECTION"), "stall", 0.9) for k in range(4)
    ]
    (site,) = run(observations).sites
    assert error_m(site.location, 0.0, 0.0) < 1.0  # a plain mean would be pulled ~0.5 m; Huber stays put
    assert site.location.accuracy_m >= 0.5


def test_radius_is_configurable_and_accuracy_shrinks_with_passes() -> None:
    observations = make_observations(np.random.default_rng(3), 0.0, 0.0)
    assert len(run(observations, radius_m=10.0).sites) == 1
    assert len(run(observations, radius_m=2.0).sites) > 3
    one_pass = run(make_observations(np.random.default_rng(1), 0.0, 0.0, passes=1)).sites[0]
    four_passes = run(make_observations(np.random.default_rng(1), 0.0, 0.0, passes=4)).sites[0]
    assert four_passes.location.accuracy_m < one_pass.location.accuracy_m


def test_association_reports_creation_and_distance() -> None:
    associator = GeoAssociator(radius_m=8.0)
    first = associator.update(GeoObservation(0.0, GeoPoint(LAT, LON, 2.0, "HOMOGRAPHY"), "stall", 0.9))
    lat, lon = shifted(LAT, LON, 3.0, 4.0)
    second = associator.update(GeoObservation(1.0, GeoPoint(lat, lon, 2.0, "HOMOGRAPHY"), "stall", 0.9))
    assert first.created and not second.created
    assert second.site is first.site and second.distance_m == pytest.approx(5.0, abs=0.01)


def test_observation_window_is_bounded() -> None:
    site = run(make_observations(np.random.default_rng(2), 0.0, 0.0, passes=2, per_pass=40), max_observations=50).sites[
        0
    ]
    assert len(site.observations) == 50 and site.passes == 2


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="radius_m must be > 0"):
        GeoAssociator(radius_m=0.0)
