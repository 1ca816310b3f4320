"""PostgreSQL schema, as an ordered list of migrations. Append a new entry to change it; never edit an old one.

Version N holds the same tables and columns as version N of the SQLite schema (``sqlite_schema.MIGRATIONS``),
so both backends read and write the same rows through ``codec.py``; only evidence differs: its bytes live in
the ``evidence.data`` column (every replica reads them) instead of a file named by ``evidence.path``.
"""

from __future__ import annotations

from typing import Any

import psycopg

from detector.store.errors import IncompatibleSchema, StoreError

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: event log, incidents, consumer offsets, evidence.
    (
        """CREATE TABLE log_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            last_sequence BIGINT NOT NULL
        )""",
        "INSERT INTO log_state (id, last_sequence) VALUES (1, 0)",
        """CREATE TABLE events (
            sequence BIGINT PRIMARY KEY,
            event_id TEXT NOT NULL UNIQUE,
            incident_id TEXT NOT NULL,
            type TEXT NOT NULL,
            category TEXT NOT NULL,
            case_code TEXT NOT NULL,
            label TEXT NOT NULL,
            severity TEXT NOT NULL,
            severity_rank INTEGER NOT NULL,
            confidence DOUBLE PRECISION NOT NULL,
            source_id TEXT NOT NULL,
            first_seen_ts DOUBLE PRECISION NOT NULL,
            last_seen_ts DOUBLE PRECISION NOT NULL,
            box TEXT NOT NULL,
            zone_id TEXT NOT NULL,
            rule TEXT NOT NULL,
            model_version TEXT NOT NULL,
            location TEXT,
            evidence TEXT NOT NULL,
            recorded_ts DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX events_by_incident ON events (incident_id, sequence)",
        # The log is append-only: sequences handed to consumers must never change meaning or be re-used.
        """CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'the event log is append-only'; END $$""",
        """CREATE TRIGGER events_no_update_or_delete BEFORE UPDATE OR DELETE ON events
            FOR EACH ROW EXECUTE FUNCTION events_append_only()""",
        """CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
            FOR EACH STATEMENT EXECUTE FUNCTION events_append_only()""",
        """CREATE TABLE incidents (
            incident_no BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            incident_id TEXT NOT NULL UNIQUE,
            state TEXT NOT NULL CHECK (state IN ('open', 'cleared')),
            category TEXT NOT NULL,
            case_code TEXT NOT NULL,
            label TEXT NOT NULL,
            severity TEXT NOT NULL,
            severity_rank INTEGER NOT NULL,
            source_id TEXT NOT NULL,
            first_seen_ts DOUBLE PRECISION NOT NULL,
            last_seen_ts DOUBLE PRECISION NOT NULL,
            box TEXT NOT NULL,
            zone_id TEXT NOT NULL,
            location TEXT,
            last_sequence BIGINT NOT NULL REFERENCES events (sequence),
            opened_count INTEGER NOT NULL,
            updated_ts DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX incidents_by_state ON incidents (state, incident_no)",
        """CREATE TABLE consumer_offsets (
            consumer TEXT PRIMARY KEY,
            sequence BIGINT NOT NULL,
            updated_ts DOUBLE PRECISION NOT NULL
        )""",
        """CREATE TABLE evidence (
            sha256 TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            size_bytes BIGINT NOT NULL,
            created_ts DOUBLE PRECISION NOT NULL,
            data BYTEA NOT NULL
        )""",
        # JPEGs do not compress: store them out of line without trying.
        "ALTER TABLE evidence ALTER COLUMN data SET STORAGE EXTERNAL",
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
            event_sequence BIGINT NOT NULL,
            event_id TEXT NOT NULL,
            reason TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            created_ts DOUBLE PRECISION NOT NULL,
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
        "ALTER TABLE incidents ADD COLUMN case_updated_ts DOUBLE PRECISION",
        "CREATE INDEX incidents_by_case_state ON incidents (case_state, case_updated_ts)",
    ),
    # 5: one incident per place across replicas: each incident's lat/lon as columns, indexed for open ones, so
    # open_incidents_near is a range scan (the location JSON stays the full record).
    (
        "ALTER TABLE incidents ADD COLUMN lat DOUBLE PRECISION",
        "ALTER TABLE incidents ADD COLUMN lon DOUBLE PRECISION",
        "UPDATE incidents SET lat = (location::jsonb ->> 'lat')::double precision, "
        "lon = (location::jsonb ->> 'lon')::double precision WHERE location IS NOT NULL",
        "CREATE INDEX incidents_open_near ON incidents (category, lat, lon) WHERE state = 'open'",
    ),
)

LATEST_VERSION = len(MIGRATIONS)

# pg_advisory_xact_lock(MIGRATION_LOCK, hashtext(schema)): one migrating process per database schema.
MIGRATION_LOCK = 0x53574D47  # "SWMG"

_CREATE_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version "
    "(id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL, migrated_ts DOUBLE PRECISION NOT NULL)"
)


def migrate(conn: psycopg.Connection[Any], now_ts: float) -> tuple[int, int]:
    """Bring the schema (the first one on the connection's search_path) to ``LATEST_VERSION`` in one
    transaction under an advisory lock, so processes starting together migrate once; refuse a database from a
    newer build. Returns the version found and the version now."""
    with conn.transaction():
        # The lock comes first: two processes running CREATE TABLE IF NOT EXISTS at once can both try to create.
        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(COALESCE(current_schema(), '')))", (MIGRATION_LOCK,))
        row = conn.execute("SELECT current_schema()").fetchone()
        if row is None or _first(row) is None:
            raise StoreError("no schema on the search_path exists: create it, or fix the URL's search_path option")
        conn.execute(_CREATE_VERSION_TABLE)
        found = schema_version(conn)
        if found > LATEST_VERSION:
            raise IncompatibleSchema(
                f"the database has schema version {found}; this build knows up to {LATEST_VERSION}"
            )
        for statements in MIGRATIONS[found:]:
            for statement in statements:
                conn.execute(statement)
        if found != LATEST_VERSION:
            conn.execute(
                "INSERT INTO schema_version (id, version, migrated_ts) VALUES (1, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET version = excluded.version, migrated_ts = excluded.migrated_ts",
                (LATEST_VERSION, now_ts),
            )
    return found, LATEST_VERSION


def schema_version(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()
    return 0 if row is None else int(_first(row))


def _first(row: Any) -> Any:
    """The first column of a row from a connection with any row factory (tuples or dicts)."""
    return next(iter(row.values())) if isinstance(row, dict) else row[0]
