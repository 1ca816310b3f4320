"""IncidentEvent and incident records <-> the Incidents proto, both ways: the service sends with ``*_to_proto``,
the client (``detector.api.incidents_client``) reads with ``*_from_proto``."""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from detector.api._gen.streetwatch.v1 import incidents_pb2 as ipb
from detector.api._gen.streetwatch.v1 import ingest_pb2 as pb
from detector.api.client import timestamp
from detector.api.convert import telemetry_from_proto, telemetry_to_proto
from detector.store.model import EventFilter, IncidentRecord, IncidentState
from detector.types import (
    CaseState,
    EventType,
    Evidence,
    EvidenceKind,
    GeoPoint,
    IncidentEvent,
    LocationMethod,
    Severity,
)

_T = TypeVar("_T")
_EVENT_TYPES = {
    EventType.OPENED: ipb.OPENED,
    EventType.UPDATED: ipb.UPDATED,
    EventType.CLEARED: ipb.CLEARED,
    EventType.FEEDBACK: ipb.FEEDBACK,
    EventType.SOURCE_DOWN: ipb.SOURCE_DOWN,
    EventType.SOURCE_UP: ipb.SOURCE_UP,
    EventType.SOURCE_DEGRADED: ipb.SOURCE_DEGRADED,
}
_CASE_STATES = {
    CaseState.FILED: ipb.FILED,
    CaseState.ACCEPTED: ipb.ACCEPTED,
    CaseState.DISPATCHED: ipb.DISPATCHED,
    CaseState.RESOLVED: ipb.RESOLVED,
    CaseState.REJECTED: ipb.REJECTED,
}
_METHODS = {
    LocationMethod.HOMOGRAPHY: ipb.HOMOGRAPHY,
    LocationMethod.DRONE_PROJECTION: ipb.DRONE_PROJECTION,
    LocationMethod.SOURCE_FIXED: ipb.SOURCE_FIXED,
}
_STATES = {IncidentState.OPEN: ipb.OPEN, IncidentState.CLEARED: ipb.CLEARED_STATE}
_EVENT_TYPES_BACK: dict[int, EventType] = {int(v): k for k, v in _EVENT_TYPES.items()}
_METHODS_BACK: dict[int, LocationMethod] = {int(v): k for k, v in _METHODS.items()}
_STATES_BACK: dict[int, IncidentState] = {int(v): k for k, v in _STATES.items()}
_CASE_STATES_BACK: dict[int, CaseState] = {int(v): k for k, v in _CASE_STATES.items()}


def case_state_to_proto(state: CaseState | None) -> ipb.CaseState:
    return ipb.CASE_STATE_UNSPECIFIED if state is None else _CASE_STATES[CaseState(state)]


def case_state_from_proto(value: int) -> CaseState | None:
    """None for unspecified; ValueError for a number this version does not know."""
    if value == ipb.CASE_STATE_UNSPECIFIED:
        return None
    return _back(_CASE_STATES_BACK, value, "case state")


def event_to_proto(event: IncidentEvent) -> ipb.IncidentEvent:
    x1, y1, x2, y2 = event.box_xyxy
    msg = ipb.IncidentEvent(
        event_id=event.event_id,
        sequence=event.sequence,
        incident_id=event.incident_id,
        type=_EVENT_TYPES[event.type],
        category=event.category,
        case_code=event.case_code,
        label=event.label,
        severity=Severity(event.severity).value,
        confidence=event.confidence,
        source_id=event.source_id,
        first_seen=timestamp(event.first_seen_ts),
        last_seen=timestamp(event.last_seen_ts),
        duration_s=event.duration_s,
        box=pb.Box(x1=x1, y1=y1, x2=x2, y2=y2),
        zone_id=event.zone_id,
        model_version=event.model_version,
        rule=event.rule,
        evidence=[ipb.EvidenceRef(kind=EvidenceKind(e.kind).value, sha256=e.sha256, uri=e.uri) for e in event.evidence],
        location_note=event.location_note,
        case_state=case_state_to_proto(event.case_state),
        case_id=event.case_id,
        note=event.note,
    )
    if event.source_pose is not None:
        msg.source_pose.CopyFrom(telemetry_to_proto(event.source_pose))
    if event.location is not None:
        loc = event.location
        method = _METHODS[LocationMethod(loc.method)]
        msg.location.CopyFrom(ipb.Location(lat=loc.lat, lon=loc.lon, accuracy_m=loc.accuracy_m, method=method))
    return msg


def event_from_proto(msg: ipb.IncidentEvent) -> IncidentEvent:
    """The internal event the message carries. ``duration_s`` is not read: it is last seen minus first seen.

    Raises ValueError on a message no service of this version sends (an unspecified event type or location
    method, an unknown severity or evidence kind).
    """
    location = None
    if msg.HasField("location"):
        loc = msg.location
        location = GeoPoint(loc.lat, loc.lon, loc.accuracy_m, _back(_METHODS_BACK, loc.method, "location method"))
    box = msg.box
    return IncidentEvent(
        event_id=msg.event_id,
        incident_id=msg.incident_id,
        type=_back(_EVENT_TYPES_BACK, msg.type, "event type"),
        category=msg.category,
        case_code=msg.case_code,
        label=msg.label,
        severity=Severity(msg.severity),
        confidence=msg.confidence,
        source_id=msg.source_id,
        first_seen_ts=seconds(msg.first_seen),
        last_seen_ts=seconds(msg.last_seen),
        box_xyxy=(box.x1, box.y1, box.x2, box.y2),
        zone_id=msg.zone_id,
        rule=msg.rule,
        model_version=msg.model_version,
        location=location,
        evidence=tuple(Evidence(EvidenceKind(e.kind), e.sha256, e.uri) for e in msg.evidence),
        sequence=msg.sequence,
        source_pose=telemetry_from_proto(msg.source_pose) if msg.HasField("source_pose") else None,
        location_note=msg.location_note,
        case_state=case_state_from_proto(msg.case_state),
        case_id=msg.case_id,
        note=msg.note,
    )


def seconds(t: Timestamp) -> float:
    """A Timestamp as seconds since the epoch (``timestamp`` turns it back into the same Timestamp)."""
    return t.seconds + t.nanos / 1e9


def record_to_proto(record: IncidentRecord) -> ipb.Incident:
    return ipb.Incident(
        incident_id=record.incident_id,
        state=_STATES[record.state],
        opened_count=record.opened_count,
        last_event=event_to_proto(record.last_event),
        case_state=case_state_to_proto(record.case_state),
        case_id=record.case_id,
    )


def record_from_proto(msg: ipb.Incident) -> IncidentRecord:
    """Raises ValueError on an unspecified state, or an event ``event_from_proto`` refuses."""
    return IncidentRecord(
        incident_id=msg.incident_id,
        state=_back(_STATES_BACK, msg.state, "incident state"),
        opened_count=msg.opened_count,
        last_event=event_from_proto(msg.last_event),
        case_state=case_state_from_proto(msg.case_state),
        case_id=msg.case_id,
    )


def event_filter(categories: list[str], source_ids: list[str], min_severity: str) -> EventFilter:
    """Raises ValueError naming an unknown severity."""
    return EventFilter(categories=categories, source_ids=source_ids, min_severity=min_severity or None)


def incident_state(value: int) -> IncidentState | None:
    """The state a ListIncidents request asks for; None (unspecified) for both."""
    return _STATES_BACK.get(value)


def incident_state_to_proto(state: IncidentState | None) -> ipb.IncidentState:
    return ipb.INCIDENT_STATE_UNSPECIFIED if state is None else _STATES[state]


def _back(table: dict[int, _T], value: int, what: str) -> _T:
    try:
        return table[value]
    except KeyError:
        raise ValueError(f"the service sent {what} {value}, which this client does not know") from None
