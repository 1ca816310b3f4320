"""IncidentEvent and incident records <-> the Incidents proto."""

from __future__ import annotations

from detector.api._gen.streetwatch.v1 import incidents_pb2 as ipb
from detector.api._gen.streetwatch.v1 import ingest_pb2 as pb
from detector.api.client import timestamp
from detector.api.convert import telemetry_to_proto
from detector.store.model import EventFilter, IncidentRecord, IncidentState
from detector.types import EventType, IncidentEvent

_EVENT_TYPES = {EventType.OPENED: ipb.OPENED, EventType.UPDATED: ipb.UPDATED, EventType.CLEARED: ipb.CLEARED}
_METHODS = {"HOMOGRAPHY": ipb.HOMOGRAPHY, "DRONE_PROJECTION": ipb.DRONE_PROJECTION, "SOURCE_FIXED": ipb.SOURCE_FIXED}


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
        severity=event.severity,
        confidence=event.confidence,
        source_id=event.source_id,
        first_seen=timestamp(event.first_seen_ts),
        last_seen=timestamp(event.last_seen_ts),
        duration_s=event.duration_s,
        box=pb.Box(x1=x1, y1=y1, x2=x2, y2=y2),
        zone_id=event.zone_id,
        model_version=event.model_version,
        rule=event.rule,
        evidence=[ipb.EvidenceRef(kind=e.kind, sha256=e.sha256, uri=e.uri) for e in event.evidence],
        location_note=event.location_note,
    )
    if event.source_pose is not None:
        msg.source_pose.CopyFrom(telemetry_to_proto(event.source_pose))
    if event.location is not None:
        loc = event.location
        method = _METHODS.get(loc.method.upper().replace("-", "_"), ipb.LOCATION_METHOD_UNSPECIFIED)
        msg.location.CopyFrom(ipb.Location(lat=loc.lat, lon=loc.lon, accuracy_m=loc.accuracy_m, method=method))
    return msg


def record_to_proto(record: IncidentRecord) -> ipb.Incident:
    state = ipb.OPEN if record.state is IncidentState.OPEN else ipb.CLEARED_STATE
    return ipb.Incident(
        incident_id=record.incident_id,
        state=state,
        opened_count=record.opened_count,
        last_event=event_to_proto(record.last_event),
    )


def event_filter(categories: list[str], source_ids: list[str], min_severity: str) -> EventFilter:
    """Raises ValueError naming an unknown severity."""
    return EventFilter(categories=categories, source_ids=source_ids, min_severity=min_severity or None)


def incident_state(value: int) -> IncidentState | None:
    if value == ipb.OPEN:
        return IncidentState.OPEN
    if value == ipb.CLEARED_STATE:
        return IncidentState.CLEARED
    return None
