"""`detector subscribe` and `detector incidents`: the case system's side of the Incidents service, and the text
it prints. ``event_json`` is the one place that writes the JSON line of an event (the case system's contract:
proto JSON of ``streetwatch.v1.IncidentEvent``, see detector/sim/events.py for a reader)."""

from __future__ import annotations

import json
from collections.abc import Callable

from google.protobuf.json_format import MessageToDict

from detector.api.client import NO_CREDENTIALS, ChannelSecurity
from detector.api.incident_convert import event_to_proto, record_to_proto
from detector.api.incidents_client import IncidentsClient
from detector.store.model import IncidentRecord
from detector.types import IncidentEvent


def event_json(event: IncidentEvent) -> str:
    """One JSON line per event; enum names, proto field names, every field (also when empty), timestamps as
    RFC 3339, uint64 (``sequence``) as a string."""
    data = MessageToDict(
        event_to_proto(event), preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return json.dumps(data, ensure_ascii=False, sort_keys=False)


def event_line(event: IncidentEvent) -> str:
    """One human-readable line per event."""
    loc = event.location
    where = f" at {loc.lat:.6f},{loc.lon:.6f} ±{loc.accuracy_m:.1f} m" if loc is not None else ""
    return (
        f"#{event.sequence} {event.type.value} {event.incident_id[:8]} {event.case_code} "
        f"{event.label} [{event.category}] source={event.source_id} conf={event.confidence:.2f} "
        f"duration={event.duration_s:.1f}s{where}"
    )


def incident_json(record: IncidentRecord) -> str:
    """An incident as proto JSON of ``streetwatch.v1.Incident`` (state ``OPEN`` or ``CLEARED_STATE``)."""
    data = MessageToDict(record_to_proto(record), preserving_proto_field_name=True)
    return json.dumps(data, ensure_ascii=False)


def incident_line(record: IncidentRecord) -> str:
    """One human-readable line per incident: id, state, how often it opened, and its last event."""
    state = record.state.name
    return f"{record.incident_id} {state:7} opened×{record.opened_count} {event_line(record.last_event)}"


async def subscribe(
    target: str,
    consumer: str,
    after: int | None,
    ack: bool,
    emit: Callable[[IncidentEvent], None],
    max_events: int | None = None,
    idle_timeout_s: float | None = None,
    security: ChannelSecurity = NO_CREDENTIALS,
) -> int:
    """Hand events to ``emit`` as they come; with ``ack`` commit each one after ``emit`` returned. Stops after
    ``max_events``, or ``idle_timeout_s`` without an event. Returns the number of events seen."""
    seen = 0
    if max_events is not None and max_events <= 0:
        return seen
    async with (
        IncidentsClient(target, security) as client,
        client.subscribe(consumer, after, idle_timeout_s=idle_timeout_s) as events,
    ):
        async for event in events:
            emit(event)
            seen += 1
            if ack:
                await client.ack(consumer, event.sequence)
            if max_events is not None and seen >= max_events:
                break
    return seen
