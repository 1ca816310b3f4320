"""Location, pose at first sight and the location note survive the SQLite event log, old databases included."""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from detector.store import SqliteStore
from detector.store.codec import event_to_row
from detector.store.sqlite import DB_FILENAME
from detector.store.sqlite_schema import LATEST_VERSION, MIGRATIONS
from detector.types import EventType, GeoPoint, IncidentEvent, Telemetry


def drone_event(**overrides: object) -> IncidentEvent:
    event = IncidentEvent(
        event_id=str(uuid.uuid4()),
        incident_id="inc-geo",
        type=EventType.OPENED,
        category="ROAD_OCCUPYING_STALL",
        case_code="200501",
        label="无照经营游商",
        severity="medium",
        confidence=0.8,
        source_id="drone-1",
        first_seen_ts=1.76e9,
        last_seen_ts=1.76e9 + 2.5,
        box_xyxy=(10.0, 20.0, 30.0, 40.0),
        zone_id="",
        rule="confirm>=2of3s|2passes",
        location=GeoPoint(39.90421234567, 116.40741234567, 1.75, "DRONE_PROJECTION"),
        source_pose=Telemetry(
            lat=39.9041, lon=116.4073, altitude_agl_m=41.5, aircraft_yaw_deg=12.0, gimbal_pitch_deg=-63.2
        ),
        location_note="gimbal pitch unknown: camera assumed to look straight down (nadir)",
    )
    return replace(event, **overrides)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "event",
    [
        drone_event(),
        drone_event(location=None, source_pose=None, location_note="ray is at or above the horizon"),
        drone_event(location=GeoPoint(39.9, 116.4, 50.0, "SOURCE_FIXED"), source_pose=Telemetry(lat=39.9, lon=116.4)),
    ],
)
def test_geo_fields_round_trip_through_sqlite(tmp_path: Path, event: IncidentEvent) -> None:
    store = SqliteStore(tmp_path)
    try:
        (stored,) = store.append([event])
        (read,) = store.read_events(0, 10)
        record = store.get_incident(event.incident_id)
    finally:
        store.close()
    assert read == stored == replace(event, sequence=1)
    assert record is not None and record.last_event == stored
    again = SqliteStore(tmp_path)  # and after reopening the file
    try:
        assert again.read_events(0, 10) == [stored]
    finally:
        again.close()


def test_a_database_from_before_geotagging_migrates_and_its_events_read_back(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / DB_FILENAME, isolation_level=None)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("CREATE TABLE schema_version (id INTEGER PRIMARY KEY, version INTEGER NOT NULL, migrated_ts REAL)")
    conn.execute("INSERT INTO schema_version VALUES (1, 1, 0)")
    old = replace(drone_event(), sequence=1, source_pose=None, location_note="")
    later = ("source_pose", "location_note", "case_state", "case_id", "note")
    row = {k: v for k, v in event_to_row(old, 5.0).items() if k not in later}
    conn.execute(f"INSERT INTO events ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
    conn.execute("UPDATE log_state SET last_sequence = 1")
    conn.close()

    store = SqliteStore(tmp_path)
    try:
        assert store.read_events(0, 10) == [old]
        (new,) = store.append([drone_event()])
        assert store.read_events(1, 10) == [new] and new.source_pose is not None
    finally:
        store.close()
    with sqlite3.connect(tmp_path / DB_FILENAME) as check:
        assert check.execute("SELECT version FROM schema_version").fetchone()[0] == LATEST_VERSION == 5
