"""IncidentEvent ⇄ database row. Box, location, pose and evidence are JSON text, so any SQL backend can use it.

Enums are stored as their values (severity "high", location method "HOMOGRAPHY", evidence kind "frame_jpeg"),
the text the store has always held, so databases written before the enums existed read back unchanged.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, replace
from typing import Any, Protocol

from detector.store.errors import DuplicateEvent, InvalidEvent, InvalidQuery, StoreCorrupt
from detector.store.model import IncidentRecord, IncidentState, severity_rank
from detector.types import (
    CaseState,
    EventType,
    Evidence,
    EvidenceKind,
    GeoPoint,
    IncidentEvent,
    LocationMethod,
    Severity,
    Telemetry,
)


class Row(Protocol):
    def __getitem__(self, column: str, /) -> Any: ...


EVENT_COLUMNS = (
    "sequence",
    "event_id",
    "incident_id",
    "type",
    "category",
    "case_code",
    "label",
    "severity",
    "severity_rank",
    "confidence",
    "source_id",
    "first_seen_ts",
    "last_seen_ts",
    "box",
    "zone_id",
    "rule",
    "model_version",
    "location",
    "evidence",
    "recorded_ts",
    "source_pose",
    "location_note",
    "case_state",
    "case_id",
    "note",
)


def event_to_row(event: IncidentEvent, recorded_ts: float) -> dict[str, Any]:
    location = None
    if event.location is not None:
        loc = event.location
        location = json.dumps(
            {"lat": loc.lat, "lon": loc.lon, "accuracy_m": loc.accuracy_m, "method": _location_method(loc.method).value}
        )
    return {
        "sequence": event.sequence,
        "event_id": event.event_id,
        "incident_id": event.incident_id,
        "type": event.type.value,
        "category": event.category,
        "case_code": event.case_code,
        "label": event.label,
        "severity": Severity(event.severity).value,
        "severity_rank": severity_rank(event.severity),
        "confidence": event.confidence,
        "source_id": event.source_id,
        "first_seen_ts": event.first_seen_ts,
        "last_seen_ts": event.last_seen_ts,
        "box": json.dumps(list(event.box_xyxy)),
        "zone_id": event.zone_id,
        "rule": event.rule,
        "model_version": event.model_version,
        "location": location,
        "evidence": json.dumps(
            [{"kind": EvidenceKind(e.kind).value, "sha256": e.sha256, "uri": e.uri} for e in event.evidence]
        ),
        "recorded_ts": recorded_ts,
        "source_pose": _pose_json(event.source_pose),
        "location_note": event.location_note,
        "case_state": "" if event.case_state is None else CaseState(event.case_state).value,
        "case_id": event.case_id,
        "note": event.note,
    }


def _pose_json(pose: Telemetry | None) -> str | None:
    if pose is None:
        return None
    return json.dumps({name: value for name, value in asdict(pose).items() if value is not None})


def _pose(pose_json: str | None) -> Telemetry | None:
    if pose_json is None:
        return None
    return Telemetry(**{str(name): float(value) for name, value in json.loads(pose_json).items()})


def row_to_event(row: Row) -> IncidentEvent:
    """Raises ValueError, KeyError or TypeError on a row that does not decode (the caller says corrupt)."""
    x1, y1, x2, y2 = (float(v) for v in json.loads(row["box"]))
    location = None
    if row["location"] is not None:
        loc = json.loads(row["location"])
        location = GeoPoint(
            lat=float(loc["lat"]),
            lon=float(loc["lon"]),
            accuracy_m=float(loc["accuracy_m"]),
            method=_location_method(loc["method"]),
        )
    return IncidentEvent(
        event_id=row["event_id"],
        incident_id=row["incident_id"],
        type=EventType(row["type"]),
        category=row["category"],
        case_code=row["case_code"],
        label=row["label"],
        severity=Severity(row["severity"]),
        confidence=float(row["confidence"]),
        source_id=row["source_id"],
        first_seen_ts=float(row["first_seen_ts"]),
        last_seen_ts=float(row["last_seen_ts"]),
        box_xyxy=(x1, y1, x2, y2),
        zone_id=row["zone_id"],
        rule=row["rule"],
        model_version=row["model_version"],
        location=location,
        evidence=decode_evidence(row["evidence"]),
        sequence=int(row["sequence"]),
        source_pose=_pose(row["source_pose"]),
        location_note=row["location_note"],
        case_state=CaseState(row["case_state"]) if row["case_state"] else None,
        case_id=row["case_id"],
        note=row["note"],
    )


def _location_method(text: str) -> LocationMethod:
    """The method named by ``text``, also in the lower-case or hyphenated spelling ("drone-projection") that
    clients could once write; ValueError on anything else."""
    return LocationMethod(text.upper().replace("-", "_"))


def decode_evidence(evidence_json: str) -> tuple[Evidence, ...]:
    return tuple(
        Evidence(kind=EvidenceKind(e["kind"]), sha256=e["sha256"], uri=e["uri"]) for e in json.loads(evidence_json)
    )


def check_appendable(event: IncidentEvent) -> None:
    if event.sequence != 0:
        raise InvalidEvent(f"event {event.event_id} already has sequence {event.sequence}; the store assigns it")
    if not event.event_id or not event.incident_id:
        raise InvalidEvent("events need an event_id and an incident_id")
    try:
        severity_rank(event.severity)
    except ValueError as exc:
        raise InvalidEvent(f"event {event.event_id}: {exc}") from None
    if (event.type is EventType.FEEDBACK) != (event.case_state is not None):
        raise InvalidEvent(f"event {event.event_id}: a FEEDBACK event, and only one, carries a case_state")


def already_stored(events: Sequence[IncidentEvent], found: Iterable[IncidentEvent]) -> dict[str, IncidentEvent]:
    """The stored copies (``found``: the log's events with ids of ``events``) of the events an append is handed
    again, by event_id. A retry of an append whose outcome was lost (the connection dropped while it committed)
    hands them again with the same content; an event_id re-used for other content raises ``DuplicateEvent``."""
    handed = {event.event_id: event for event in events}
    stored: dict[str, IncidentEvent] = {}
    for event in found:
        if _content(event) != _content(handed[event.event_id]):
            raise DuplicateEvent(
                f"event {event.event_id} is already in the log (sequence {event.sequence}) with other content"
            )
        stored[event.event_id] = event
    return stored


def numbered_on(
    events: Sequence[IncidentEvent], last_sequence: int, retried: dict[str, IncidentEvent]
) -> tuple[list[IncidentEvent], list[IncidentEvent]]:
    """What ``append`` returns for ``events`` on a log ending at ``last_sequence``, and the new events to store:
    the stored copy of each event in ``retried`` (see ``already_stored``), the others numbered on from the end."""
    returned: list[IncidentEvent] = []
    new: list[IncidentEvent] = []
    for event in events:
        if event.event_id not in retried:
            new.append(replace(event, sequence=last_sequence + len(new) + 1))
        returned.append(retried.get(event.event_id) or new[-1])
    return returned, new


def _content(event: IncidentEvent) -> dict[str, Any]:
    """What is stored of ``event``, less what the store adds itself (its sequence and the time it recorded it)."""
    row = event_to_row(event, 0.0)
    del row["sequence"], row["recorded_ts"]
    return row


def decode_event_row(row: Row) -> IncidentEvent:
    try:
        return row_to_event(row)
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreCorrupt(f"event row {row['sequence']} does not decode: {exc}") from exc


def incident_state_after(event: IncidentEvent, current: IncidentState | None) -> IncidentState:
    """The incident's state once ``event`` is applied (``current`` is None for an incident not yet stored)."""
    if event.type in (EventType.CLEARED, EventType.SOURCE_UP):
        return IncidentState.CLEARED
    if event.type is EventType.FEEDBACK:
        assert event.case_state is not None
        if CaseState(event.case_state).closes:
            return IncidentState.CLEARED
        return current if current is not None else IncidentState.OPEN
    return IncidentState.OPEN


def incident_columns(event: IncidentEvent, current: IncidentState | None) -> dict[str, Any]:
    """What ``event`` sets on its incident's row beyond its own columns (``UPSERT_INCIDENT``'s other parameters):
    the state after it, whether it (re)opens it, and its location as plain lat/lon (None when unlocated)."""
    location = event.location
    return {
        "state": incident_state_after(event, current).value,
        "opened": 1 if opens(event) else 0,
        "lat": None if location is None else location.lat,
        "lon": None if location is None else location.lon,
    }


def opens(event: IncidentEvent) -> bool:
    """Whether ``event`` (re)opens its incident (counted in ``opened_count``)."""
    return event.type in (EventType.OPENED, EventType.SOURCE_DOWN, EventType.SOURCE_DEGRADED)


def decode_incident_row(row: Row) -> IncidentRecord:
    event = decode_event_row(row)
    return IncidentRecord(
        incident_id=event.incident_id,
        state=IncidentState(row["incident_state"]),
        opened_count=int(row["opened_count"]),
        last_event=event,
        case_state=CaseState(row["incident_case_state"]) if row["incident_case_state"] else None,
        case_id=row["incident_case_id"],
        case_updated_ts=row["incident_case_updated_ts"],
    )


def encode_page_token(position: int) -> str:
    return base64.urlsafe_b64encode(f"incidents<{position}".encode()).decode()


def decode_page_token(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        prefix, _, number = text.partition("<")
        if prefix != "incidents":
            raise ValueError(prefix)
        return int(number)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidQuery(f"page token {token!r} was not issued by ListIncidents; start again without one") from None
