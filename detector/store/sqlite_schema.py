"""SQLite schema, as an ordered list of migrations. Append a new entry to change it; never edit an old one."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from detector.store.errors import IncompatibleSchema

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: event log, incidents, consumer offsets, evidence index.
    (
        """CREATE TABLE log_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            last_sequence INTEGER NOT NULL
        )""",
        "INSERT INTO log_state (id, last_sequence) VALUES (1, 0)",
        """CREATE TABLE events (
            sequence INTEGER PRIMARY KEY,
            event_id TEXT NOT NULL UNIQUE,
            incident_id TEXT NOT NULL,
            type TEXT NOT NULL,
            category TEXT NOT NULL,
            case_code TEXT NOT NULL,
            label TEXT NOT NULL,
            severity TEXT NOT NULL,
            severity_rank INTEGER NOT NULL,
            confidence REAL NOT NULL,
            source_id TEXT NOT NULL,
            first_seen_ts REAL NOT NULL,
            last_seen_ts REAL NOT NULL,
            box TEXT NOT NULL,
            zone_id TEXT NOT NULL,
            rule TEXT NOT NULL,
            model_version TEXT NOT NULL,
            location TEXT,
            evidence TEXT NOT NULL,
            recorded_ts REAL NOT NULL
        )""",
        "CREATE INDEX events_by_incident ON events (incident_id, sequence)",
        # The log is append-only: sequences handed to consumers must never change meaning or be re-used.
        """CREATE TRIGGER events_no_update BEFORE UPDATE ON events
            BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END""",
        """CREATE TRIGGER events_no_delete BEFORE DELETE ON events
            BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END""",
        """CREATE TABLE incidents (
            incident_no INTEGER PRIMARY KEY,
            incident_id TEXT NOT NULL UNIQUE,
            state TEXT NOT NULL CHECK (state IN ('open', 'cleared')),
            category TEXT NOT NULL,
            case_code TEXT NOT NULL,
            label TEXT NOT NULL,
            severity TEXT NOT NULL,
            severity_rank INTEGER NOT NULL,
            source_id TEXT NOT NULL,
            first_seen_ts REAL NOT NULL,
            last_seen_ts REAL NOT NULL,
            box TEXT NOT NULL,
            zone_id TEXT NOT NULL,
            location TEXT,
            last_sequence INTEGER NOT NULL REFERENCES events (sequence),
            opened_count INTEGER NOT NULL,
            updated_ts REAL NOT NULL
        )""",
        "CREATE INDEX incidents_by_state ON incidents (state, incident_no)",
        """CREATE TABLE consumer_offsets (
            consumer TEXT PRIMARY KEY,
            sequence INTEGER NOT NULL,
            updated_ts REAL NOT NULL
        )""",
        """CREATE TABLE evidence (
            sha256 TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            size_bytes INTEGER NOT NULL,
            created_ts REAL NOT NULL,
            path TEXT NOT NULL
        )""",
        "CREATE INDEX evidence_by_age ON evidence (created_ts)",
    ),
    # 2: geotagging: the source's pose at first sight and the note on the location (JSON text, '' = none).
    (
        "ALTER TABLE events ADD COLUMN source_pose TEXT",
        "ALTER TABLE events ADD COLUMN location_note TEXT NOT NULL DEFAULT ''",
    ),
    # 3: delivery: events a consumer gave up on (one row per consumer and event).
    (
        """CREATE TABLE dead_letters (
            consumer TEXT NOT NULL,
            event_sequence INTEGER NOT NULL,
            event_id TEXT NOT NULL,
            reason TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            created_ts REAL NOT NULL,
            PRIMARY KEY (consumer, event_sequence)
        )""",
    ),
    # 4: case feedback and stream health: the verdict on each event ('' = none) and the latest one per incident.
    (
        "ALTER TABLE events ADD COLUMN case_state TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE events ADD COLUMN case_id TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE events ADD COLUMN note TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE incidents ADD COLUMN case_state TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE incidents ADD COLUMN case_id TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE incidents ADD COLUMN case_updated_ts REAL",
        "CREATE INDEX incidents_by_case_state ON incidents (case_state, case_updated_ts)",
    ),
    # 5: one incident per place across sources: each incident's lat/lon as columns, indexed for open ones, so
    # open_incidents_near is a range scan (the location JSON stays the full record).
    (
        "ALTER TABLE incidents ADD COLUMN lat REAL",
        "ALTER TABLE incidents ADD COLUMN lon REAL",
        "UPDATE incidents SET lat = json_extract(location, '$.lat'), lon = json_extract(location, '$.lon') "
        "WHERE location IS NOT NULL",
        "CREATE INDEX incidents_open_near ON incidents (category, lat, lon) WHERE state = 'open'",
    ),
)

LATEST_VERSION = len(MIGRATIONS)


@contextmanager
def immediate_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` takes the write lock up front, so reads inside the transaction are current."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def migrate(conn: sqlite3.Connection, db_path: Path, now_ts: float) -> None:
    """Bring the schema to ``LATEST_VERSION`` in one transaction; refuse a database from a newer build."""
    with immediate_transaction(conn):
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version "
            "(id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL, migrated_ts REAL NOT NULL)"
        )
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        current = 0 if row is None else int(row[0])
        if current > LATEST_VERSION:
            raise IncompatibleSchema(f"{db_path} has schema version {current}; this build knows up to {LATEST_VERSION}")
        for statements in MIGRATIONS[current:]:
            for statement in statements:
                conn.execute(statement)
        if current != LATEST_VERSION:
            conn.execute(
                "INSERT OR REPLACE INTO schema_version (id, version, migrated_ts) VALUES (1, ?, ?)",
                (LATEST_VERSION, now_ts),
            )
