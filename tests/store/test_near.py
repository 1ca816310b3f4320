"""``open_incidents_near``: the open incidents of a category around a ground point, nearest first (every backend).

The rules ask it before opening an incident from a drone, so that replicas share one incident per stall.
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import psycopg
import pytest

from detector.store import IncidentStore, InvalidQuery, PostgresStore
from detector.store.sqlite import DB_FILENAME
from detector.types import EventType, GeoPoint, LocationMethod
from tests.store.factories import STORE_FACTORIES, FakeClock, make_event, postgres_url

LAT, LON = 39.9042, 116.4074
METRES_PER_DEGREE_LAT = 111_000.0  # near enough at this latitude for placing test points a few metres apart


def at(north_m: float, east_m: float, lat: float = LAT, lon: float = LON) -> GeoPoint:
    return GeoPoint(
        lat + north_m / METRES_PER_DEGREE_LAT,
        lon + east_m / (METRES_PER_DEGREE_LAT * math.cos(math.radians(lat))),
        2.0,
        LocationMethod.DRONE_PROJECTION,
    )


def test_finds_open_incidents_of_the_category_within_the_radius_nearest_first(store: IncidentStore) -> None:
    store.append(
        [
            make_event("far", location=at(0.0, 14.0)),
            make_event("near", location=at(3.0, 0.0)),
            make_event("outside", location=at(0.0, 16.5)),
            make_event("other-category", category="ROAD_DAMAGE", location=at(1.0, 0.0)),
            make_event("unlocated", location=None),
            make_event("cleared", location=at(1.0, 1.0)),
            make_event("cleared", type=EventType.CLEARED, location=at(1.0, 1.0)),
        ]
    )
    found = store.open_incidents_near("ROAD_OCCUPYING_STALL", LAT, LON, 15.0)
    assert [record.incident_id for record in found] == ["near", "far"]
    assert found[0].last_event.location == at(3.0, 0.0)


def test_an_incident_is_found_where_its_last_event_put_it(store: IncidentStore) -> None:
    store.append([make_event("moved", location=at(100.0, 0.0))])
    assert store.open_incidents_near("ROAD_OCCUPYING_STALL", LAT, LON, 10.0) == []
    store.append([make_event("moved", type=EventType.UPDATED, location=at(2.0, 2.0))])
    assert [r.incident_id for r in store.open_incidents_near("ROAD_OCCUPYING_STALL", LAT, LON, 10.0)] == ["moved"]


@pytest.mark.parametrize(("lat", "lon"), [(0.0, 0.0), (-33.8688, 151.2093), (69.6492, 18.9553)])
def test_the_radius_is_ground_metres_at_any_latitude(store: IncidentStore, lat: float, lon: float) -> None:
    store.append(
        [
            make_event("east-9m", location=at(0.0, 9.0, lat, lon)),
            make_event("north-9m", location=at(9.0, 0.0, lat, lon)),
            make_event("diagonal-11m", location=at(7.8, 7.8, lat, lon)),
        ]
    )
    found = {record.incident_id for record in store.open_incidents_near("ROAD_OCCUPYING_STALL", lat, lon, 10.0)}
    assert found == {"east-9m", "north-9m"}


@pytest.mark.parametrize(
    ("lat", "lon", "radius_m"), [(LAT, LON, 0.0), (LAT, LON, -5.0), (LAT, LON, 200_000.0), (91.0, LON, 10.0)]
)
def test_a_malformed_query_says_what_is_wrong(store: IncidentStore, lat: float, lon: float, radius_m: float) -> None:
    with pytest.raises(InvalidQuery):
        store.open_incidents_near("ROAD_OCCUPYING_STALL", lat, lon, radius_m)


def test_postgres_answers_it_from_the_index(tmp_path: Path) -> None:
    url = postgres_url(tmp_path)
    with PostgresStore(url) as store:
        store.append([make_event(f"inc-{i}", location=at(i * 50.0, 0.0)) for i in range(50)])
    with psycopg.connect(url) as conn:
        conn.execute("SET enable_seqscan = off")  # a table this small would be scanned; is the index usable?
        plan = "\n".join(
            row[0]
            for row in conn.execute(
                "EXPLAIN SELECT incident_id FROM incidents WHERE state = 'open' AND category = 'X' "
                "AND lat BETWEEN 1 AND 2 AND lon BETWEEN 3 AND 4"
            )
        )
    assert "incidents_open_near" in plan


def _downgrade_to_version_4(backend: str, data_dir: Path) -> None:
    """As schema version 4 left the database: incidents without lat/lon columns and their index."""
    statements = (
        "DROP INDEX incidents_open_near",
        "ALTER TABLE incidents DROP COLUMN lat",
        "ALTER TABLE incidents DROP COLUMN lon",
        "UPDATE schema_version SET version = 4",
    )
    if backend == "sqlite":
        with sqlite3.connect(data_dir / DB_FILENAME) as lite:
            for statement in statements:
                lite.execute(statement)
        return
    with psycopg.connect(postgres_url(data_dir), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def test_migrating_from_version_4_places_the_open_incidents_it_has(
    backend: str, tmp_path: Path, clock: FakeClock
) -> None:
    data_dir = tmp_path / "data"
    with STORE_FACTORIES[backend](data_dir, clock) as store:
        store.append([make_event("before", location=at(2.0, 0.0)), make_event("unlocated", location=None)])
    _downgrade_to_version_4(backend, data_dir)

    with STORE_FACTORIES[backend](data_dir, clock) as store:
        assert store.schema_version() == 5
        found = store.open_incidents_near("ROAD_OCCUPYING_STALL", LAT, LON, 10.0)
    assert [record.incident_id for record in found] == ["before"]
