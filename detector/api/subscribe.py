"""`detector subscribe` and `detector incidents`: the case system's side of the Incidents service."""

from __future__ import annotations

import json
from collections.abc import Callable

from google.protobuf.json_format import MessageToDict

from detector.api._gen.streetwatch.v1 import incidents_pb2 as ipb
from detector.api._gen.streetwatch.v1 import incidents_pb2_grpc
from detector.api.client import NO_CREDENTIALS, ChannelSecurity, open_channel


def event_json(event: ipb.IncidentEvent) -> str:
    """One JSON line per event; enum names, proto field names, timestamps as RFC 3339."""
    data = MessageToDict(event, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    return json.dumps(data, ensure_ascii=False, sort_keys=False)


def event_line(event: ipb.IncidentEvent) -> str:
    loc = event.location
    where = f" at {loc.lat:.6f},{loc.lon:.6f} ±{loc.accuracy_m:.1f} m" if event.HasField("location") else ""
    return (
        f"#{event.sequence} {ipb.EventType.Name(event.type)} {event.incident_id[:8]} {event.case_code} "
        f"{event.label} [{event.category}] source={event.source_id} conf={event.confidence:.2f} "
        f"duration={event.duration_s:.1f}s{where}"
    )


async def subscribe(
    target: str,
    consumer: str,
    after: int | None,
    ack: bool,
    emit: Callable[[ipb.IncidentEvent], None],
    max_events: int | None = None,
    idle_timeout_s: float | None = None,
    security: ChannelSecurity = NO_CREDENTIALS,
) -> int:
    """Print events as they come; with ``ack`` commit each one after it is printed. Returns events seen."""
    import asyncio

    request = ipb.SubscribeRequest(consumer=consumer)
    if after is not None:
        request.after_sequence = after
    seen = 0
    async with open_channel(target, security) as channel:
        stub = incidents_pb2_grpc.IncidentsStub(channel)
        call = stub.Subscribe(request)
        iterator = call.__aiter__()
        while max_events is None or seen < max_events:
            try:
                event = await asyncio.wait_for(iterator.__anext__(), idle_timeout_s)
            except (StopAsyncIteration, TimeoutError):
                break
            emit(event)
            seen += 1
            if ack:
                await stub.Ack(ipb.AckRequest(consumer=consumer, sequence=event.sequence))
        call.cancel()
    return seen


async def list_incidents(
    target: str, state: str | None, page_size: int, security: ChannelSecurity = NO_CREDENTIALS
) -> list[ipb.Incident]:
    states = {"open": ipb.OPEN, "cleared": ipb.CLEARED_STATE, None: ipb.INCIDENT_STATE_UNSPECIFIED}
    out: list[ipb.Incident] = []
    token = ""
    async with open_channel(target, security) as channel:
        stub = incidents_pb2_grpc.IncidentsStub(channel)
        while True:
            page = await stub.ListIncidents(
                ipb.ListIncidentsRequest(state=states[state], page_size=page_size, page_token=token)
            )
            out.extend(page.incidents)
            token = page.next_page_token
            if not token:
                return out


async def get_incident(target: str, incident_id: str, security: ChannelSecurity = NO_CREDENTIALS) -> ipb.Incident:
    async with open_channel(target, security) as channel:
        result: ipb.Incident = await incidents_pb2_grpc.IncidentsStub(channel).GetIncident(
            ipb.GetIncidentRequest(incident_id=incident_id)
        )
        return result


def incident_json(incident: ipb.Incident) -> str:
    data = MessageToDict(incident, preserving_proto_field_name=True)
    return json.dumps(data, ensure_ascii=False)
