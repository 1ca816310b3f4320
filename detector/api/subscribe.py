"""`detector subscribe` and `detector incidents`: the case system's side of the Incidents service, and the text
it prints. ``event_json`` prints the JSON line of an event (the case system's contract: proto JSON of
``streetwatch.v1.IncidentEvent``, see detector/sim/events.py for a reader), written by
``detector.delivery.payload.event_to_dict``, the one writer of it, which the delivery connectors send too."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import grpc
from google.protobuf.json_format import MessageToDict

from detector.api.client import NO_CREDENTIALS, ChannelSecurity
from detector.api.incident_convert import record_to_proto
from detector.api.incidents_client import IncidentsClient
from detector.delivery.payload import event_to_dict
from detector.gateway.backoff import Backoff, BackoffSettings
from detector.store.model import IncidentRecord
from detector.types import IncidentEvent


def event_json(event: IncidentEvent) -> str:
    """One JSON line per event: ``detector.delivery.payload.event_to_dict``, the one writer of an event's JSON
    (enum names, proto field names, every field also when empty, timestamps as RFC 3339, ``sequence`` as a
    string), which the delivery connectors send too."""
    return json.dumps(event_to_dict(event), ensure_ascii=False)


def event_line(event: IncidentEvent) -> str:
    """One human-readable line per event."""
    loc = event.location
    where = f" at {loc.lat:.6f},{loc.lon:.6f} ±{loc.accuracy_m:.1f} m" if loc is not None else ""
    return (
        f"#{event.sequence} {event.type.value} {event.incident_id} {event.case_code} "
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


# How a call ends when the service goes away: it is down or restarting (UNAVAILABLE), or it cancelled a call
# that arrived while it was shutting down (CANCELLED; a call this client cancels itself never raises).
SERVICE_AWAY = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED})
# Resubscribe after 0.2 s, doubling up to 10 s, with jitter, for as long as the service is away.
RECONNECT = BackoffSettings(initial_s=0.2, max_s=10.0)


async def subscribe(
    target: str,
    consumer: str,
    after: int | None,
    ack: bool,
    emit: Callable[[IncidentEvent], None],
    max_events: int | None = None,
    idle_timeout_s: float | None = None,
    security: ChannelSecurity = NO_CREDENTIALS,
    *,
    reconnect: BackoffSettings | None = RECONNECT,
    on_reconnect: Callable[[grpc.aio.AioRpcError, float], None] | None = None,
) -> int:
    """Hand events to ``emit`` as they come; with ``ack`` commit each one after ``emit`` returned. Stops after
    ``max_events``, or ``idle_timeout_s`` without an event. Returns the number of events seen.

    When the service is away (UNAVAILABLE or CANCELLED: restarting, shutting down, unreachable) it resubscribes
    with ``reconnect``'s backoff (None: the error is raised at once), telling ``on_reconnect`` the error and the
    wait, after the last event it handed on when there was one (no duplicate, nothing lost), else from where it was
    asked to start (``after``, or the consumer's committed offset); an ack the service did not answer is sent
    again first. Time away counts towards
    ``idle_timeout_s``; the error is raised when that runs out while the service is away. Any other error is
    raised at once."""
    seen = 0
    if max_events is not None and max_events <= 0:
        return seen
    loop = asyncio.get_running_loop()
    backoff = None if reconnect is None else Backoff(reconnect)
    last_event_at = loop.time()
    start_after = after
    unacked: int | None = None  # an event handed on whose ack the service did not answer (it went away)
    away: grpc.aio.AioRpcError | None = None  # how the last try ended, while the service is away
    async with IncidentsClient(target, security) as client:
        while True:
            remaining = None if idle_timeout_s is None else idle_timeout_s - (loop.time() - last_event_at)
            if remaining is not None and remaining <= 0:
                if away is not None:
                    raise away  # the service stayed away for all of idle_timeout_s
                return seen
            try:
                if unacked is not None:
                    await client.ack(consumer, unacked)
                    unacked = None
                async with client.subscribe(consumer, start_after, idle_timeout_s=remaining) as events:
                    async for event in events:
                        away = None
                        emit(event)
                        seen += 1
                        start_after = event.sequence
                        last_event_at = loop.time()
                        if backoff is not None:
                            backoff.reset()
                        if ack:
                            unacked = event.sequence
                            await client.ack(consumer, event.sequence)
                            unacked = None
                        if max_events is not None and seen >= max_events:
                            return seen
                if idle_timeout_s is not None:
                    return seen  # the call ended because no event came for idle_timeout_s
                if backoff is None:
                    return seen
                await asyncio.sleep(backoff.next_delay())  # the service ended the call: resubscribe, not in a spin
            except grpc.aio.AioRpcError as exc:
                if backoff is None or exc.code() not in SERVICE_AWAY:
                    raise
                away = exc
                delay = backoff.next_delay()
                if idle_timeout_s is not None:
                    left = idle_timeout_s - (loop.time() - last_event_at)
                    if left <= 0:
                        raise
                    delay = min(delay, left)
                if on_reconnect is not None:
                    on_reconnect(exc, delay)
                await asyncio.sleep(delay)  # the backoff between tries
