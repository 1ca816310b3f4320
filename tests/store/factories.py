"""Test data for the store tests (also used by the kill -9 writer subprocess)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from detector.store import IncidentStore, SqliteStore
from detector.types import EventType, Evidence, EvidenceKind, GeoPoint, IncidentEvent, LocationMethod


class FakeClock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# Every backend runs the same contract tests; a PostgreSQL backend adds its factory here.
STORE_FACTORIES: dict[str, Callable[[Path, FakeClock], IncidentStore]] = {
    "sqlite": lambda data_dir, clock: SqliteStore(data_dir, clock=clock),
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
