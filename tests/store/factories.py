"""Test data for the store tests (also used by the kill -9 writer subprocess)."""

from __future__ import annotations

import functools
import hashlib
import os
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from detector.store import IncidentStore, PostgresStore, SqliteStore
from detector.types import EventType, Evidence, EvidenceKind, GeoPoint, IncidentEvent, LocationMethod


class FakeClock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# The server the postgres tests use (CI starts it, see .ci/run); they skip, saying why, when it does not answer.
POSTGRES_URL = os.environ.get("STREETWATCH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
_schemas_made: set[str] = set()


@functools.cache
def postgres_missing() -> str:
    """Why the postgres tests cannot run here; "" when the server answers."""
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split())  # one line in pytest's summary
        return f"no PostgreSQL at {POSTGRES_URL} (start it, or set STREETWATCH_TEST_POSTGRES): {reason}"
    return ""


def postgres_url(data_dir: Path) -> str:
    """A database URL whose search_path is a schema of its own for ``data_dir`` (the same one when a test
    reopens the store); ``drop_postgres_schemas`` removes it after the test."""
    if reason := postgres_missing():
        pytest.skip(reason)
    schema = "sw_test_" + hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    if schema not in _schemas_made:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        _schemas_made.add(schema)
    separator = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"


def drop_postgres_schemas() -> None:
    if not _schemas_made:
        return
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        for schema in sorted(_schemas_made):
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    _schemas_made.clear()


# Every backend runs the same contract tests; each test gets its own SQLite directory or PostgreSQL schema.
STORE_FACTORIES: dict[str, Callable[[Path, FakeClock], IncidentStore]] = {
    "sqlite": lambda data_dir, clock: SqliteStore(data_dir, clock=clock),
    "postgres": lambda data_dir, clock: PostgresStore(postgres_url(data_dir), pool_max_size=4, clock=clock),
}


def _damage_evidence_file(data_dir: Path, sha256: str, damage: Callable[[bytes], bytes]) -> None:
    path = data_dir / "evidence" / sha256[:2] / f"{sha256}.jpg"
    path.write_bytes(damage(path.read_bytes()))


def _damage_evidence_row(data_dir: Path, sha256: str, damage: Callable[[bytes], bytes]) -> None:
    with psycopg.connect(postgres_url(data_dir), autocommit=True) as conn:
        row = conn.execute("SELECT data FROM evidence WHERE sha256 = %s", (sha256,)).fetchone()
        assert row is not None
        conn.execute("UPDATE evidence SET data = %s WHERE sha256 = %s", (damage(bytes(row[0])), sha256))


# How a test alters stored evidence bytes behind the store's back (a disk error, a hand edit), per backend.
EVIDENCE_DAMAGERS: dict[str, Callable[[Path, str, Callable[[bytes], bytes]], None]] = {
    "sqlite": _damage_evidence_file,
    "postgres": _damage_evidence_row,
}


def make_event(
    incident_id: str = "inc-1",
    type: EventType = EventType.OPENED,
    category: str = "ROAD_OCCUPYING_STALL",
    severity: str = "medium",
    source_id: str = "cam-1",
    **overrides: object,
) -> IncidentEvent:
    event = IncidentEvent(
        event_id=str(uuid.uuid4()),
        incident_id=incident_id,
        type=type,
        category=category,
        case_code="200501",
        label="无照经营游商",
        severity=severity,
        confidence=0.87,
        source_id=source_id,
        first_seen_ts=100.0,
        last_seen_ts=250.5,
        box_xyxy=(10.0, 20.5, 110.0, 220.25),
        zone_id="zone-a",
        rule="dwell",
        model_version="yolo-test",
        location=GeoPoint(lat=39.9042, lon=116.4074, accuracy_m=3.5, method=LocationMethod.HOMOGRAPHY),
        evidence=(Evidence(kind=EvidenceKind.CROP_JPEG, sha256="ab" * 32, uri="evidence/ab/" + "ab" * 32 + ".jpg"),),
    )
    return replace(event, **overrides)  # type: ignore[arg-type]
