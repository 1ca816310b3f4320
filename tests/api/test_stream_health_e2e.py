"""Stream health through the real service: frames over gRPC, then silence; a subscriber gets SOURCE_DOWN, and
SOURCE_UP on the same incident once frames come back. The service's own check task runs on wall time, so the
test sets a short ``stale_after_s`` and waits on the subscription (with a timeout), not on a sleep."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc

from detector.api._gen.streetwatch.v1 import incidents_pb2 as ipb
from detector.api._gen.streetwatch.v1 import incidents_pb2_grpc
from detector.api.client import IngestClient
from detector.config import load_config
from detector.server import start_service
from tests.api.scripted import T0, scripted_overrides, stall_frames, write_spec
from tests.api.serving import frames_of
from tests.conftest import run


async def _next_event(events: grpc.aio.UnaryStreamCall, timeout_s: float = 20.0) -> ipb.IncidentEvent:
    event: ipb.IncidentEvent = await asyncio.wait_for(events.read(), timeout_s)
    return event


def test_a_subscriber_sees_a_silent_source_go_down_and_come_back(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "blobs.yaml")
    overrides = [
        "server.port=0",
        *scripted_overrides(spec, tmp_path / "data"),
        "ingest.stale_after_s=0.5",
        "ingest.health_check_interval_s=0.05",
    ]
    config = load_config(None, environ={}, overrides=overrides)
    first = stall_frames("cam-1", seconds=2, fps=2, present=[])
    again = stall_frames("cam-1", seconds=1, fps=2, present=[], seq0=100, t0=60.0)

    async def go() -> tuple[ipb.IncidentEvent, ipb.IncidentEvent, float | None]:
        service = await start_service(config)
        target = f"127.0.0.1:{service.port}"
        try:
            async with grpc.aio.insecure_channel(target) as channel:
                stub = incidents_pb2_grpc.IncidentsStub(channel)
                events = stub.Subscribe(ipb.SubscribeRequest(consumer="ops", after_sequence=0))
                async with IngestClient(target) as client:
                    answered = [r async for r in client.stream(frames_of(first))]
                    down = await _next_event(events)
                    sources_down = service.metrics.registry.get_sample_value("streetwatch_sources_down")
                    answered += [r async for r in client.stream(frames_of(again))]
                    up = await _next_event(events)
                events.cancel()
        finally:
            await service.stop(1)
        assert len(answered) == len(first) + len(again)
        return down, up, sources_down

    down, up, sources_down = run(go())
    assert (ipb.EventType.Name(down.type), down.category, down.source_id) == ("SOURCE_DOWN", "STREAM_HEALTH", "cam-1")
    assert down.last_seen.ToSeconds() == int(T0 + 1.5) and down.note == "no frame for 0.5 s"
    assert (ipb.EventType.Name(up.type), up.incident_id) == ("SOURCE_UP", down.incident_id)
    assert up.last_seen.ToSeconds() == int(T0 + 60.0)
    assert sources_down == 1.0, "the streetwatch_sources_down gauge counts it"
