"""Frames into the real service, incident events out of Subscribe; ack and resume; evidence; lookups."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest

from detector.api._gen.streetwatch.v1 import incidents_pb2 as ipb
from detector.api._gen.streetwatch.v1 import incidents_pb2_grpc
from detector.api.client import IngestClient
from detector.config import load_config
from detector.server import start_service
from tests.api.scripted import T0, scripted_overrides, stall_frames, write_spec
from tests.api.serving import frames_of
from tests.conftest import run


async def _events(channel: grpc.aio.Channel, request: ipb.SubscribeRequest, until: int) -> list[ipb.IncidentEvent]:
    stub = incidents_pb2_grpc.IncidentsStub(channel)
    out = []
    call = stub.Subscribe(request)

    async def collect() -> None:
        async for event in call:
            out.append(event)
            if len(out) == until:
                break

    try:
        await asyncio.wait_for(collect(), 30)
    except TimeoutError:
        raise AssertionError(f"only {len(out)} of {until} events arrived: {out}") from None
    finally:
        call.cancel()
    return out


@pytest.fixture
def scripted_config(tmp_path: Path):
    spec = write_spec(tmp_path / "blobs.yaml")
    return load_config(None, environ={}, overrides=["server.port=0", *scripted_overrides(spec, tmp_path / "data")])


def test_a_stall_150s_in_a_zone_with_dwell_120s_and_an_id_switch_and_occlusion_is_one_case(scripted_config):
    # Visible from 10 s to 160 s, hidden by a passing truck from 90 s to 100 s (longer than the tracker's
    # 2 s track buffer, so it comes back under a new track id); 2 frames per second; then 80 s of empty street.
    frames = stall_frames("cam-1", seconds=240, fps=2, present=[(10, 90), (100, 160)])

    async def go() -> tuple[list[ipb.IncidentEvent], list[int], bytes, ipb.Incident]:
        service = await start_service(scripted_config)
        target = f"127.0.0.1:{service.port}"
        try:
            async with IngestClient(target) as client:
                results = [r async for r in client.stream(frames_of(frames))]
            track_ids = sorted({d.track_id for r in results for d in r.detections})
            async with grpc.aio.insecure_channel(target) as channel:
                events = await _events(channel, ipb.SubscribeRequest(consumer="case", after_sequence=0), 2)
                await asyncio.sleep(0.2)
                stub = incidents_pb2_grpc.IncidentsStub(channel)
                opened = events[0]
                photo = b"".join(
                    [c.data async for c in stub.GetEvidence(ipb.GetEvidenceRequest(sha256=opened.evidence[0].sha256))]
                )
                incident = await stub.GetIncident(ipb.GetIncidentRequest(incident_id=opened.incident_id))
                log_end = service.store.last_sequence()
        finally:
            await service.stop(1)
        assert log_end == len([e for e in events]), "no other events (no second incident, no heartbeat storm)"
        return events, track_ids, photo, incident

    events, track_ids, photo, incident = run(go())
    assert len(track_ids) >= 2, f"the occlusion should have switched the track id: {track_ids}"
    types = [ipb.EventType.Name(e.type) for e in events]
    assert types == ["OPENED", "CLEARED"]
    opened, cleared = events
    assert opened.incident_id == cleared.incident_id
    assert [e.sequence for e in events] == [1, 2]
    assert (opened.case_code, opened.category, opened.zone_id) == ("200501", "ROAD_OCCUPYING_STALL", "no-vending")
    assert opened.first_seen.seconds == int(T0 + 10)
    assert 119.5 <= opened.duration_s <= 121, "opened once the dwell of 120 s was reached"
    assert 149 <= cleared.duration_s <= 150.5
    assert {e.kind for e in opened.evidence} == {"frame_jpeg", "crop_jpeg"}
    assert hashlib.sha256(photo).hexdigest() == opened.evidence[0].sha256
    assert cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR).shape == (240, 320, 3)
    assert incident.state == ipb.CLEARED_STATE and incident.opened_count == 1


def test_a_consumer_resumes_after_its_acked_offset_and_filters_apply(scripted_config):
    # Three stalls one after another at different places: three incidents, six events.
    frames = []
    for k, x in enumerate((20, 120, 220)):
        frames += stall_frames(
            "cam-1",
            seconds=200,
            fps=1,
            present=[(k * 200, k * 200 + 130)],
            box=(x, 150, x + 40, 190),
            seq0=k * 1000,
            t0=k * 200,
        )

    async def go() -> tuple[list[int], list[int], int, grpc.StatusCode, list[ipb.IncidentEvent]]:
        service = await start_service(scripted_config)
        target = f"127.0.0.1:{service.port}"
        try:
            async with IngestClient(target) as client:
                _ = [r async for r in client.stream(frames_of(frames))]
            async with grpc.aio.insecure_channel(target) as channel:
                stub = incidents_pb2_grpc.IncidentsStub(channel)
                first = await _events(channel, ipb.SubscribeRequest(consumer="case"), 2)
                ack = await stub.Ack(ipb.AckRequest(consumer="case", sequence=first[-1].sequence))
                await stub.Ack(ipb.AckRequest(consumer="case", sequence=1))  # older ack: offsets never go back
                resumed = await _events(channel, ipb.SubscribeRequest(consumer="case"), 4)
                with pytest.raises(grpc.aio.AioRpcError) as ahead:
                    await stub.Ack(ipb.AckRequest(consumer="case", sequence=99))
                wrong_category = ipb.SubscribeRequest(
                    consumer="other", after_sequence=0, categories=["EXPOSED_GARBAGE"], source_ids=["cam-1"]
                )
                call = stub.Subscribe(wrong_category)
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(call.__aiter__().__anext__(), 0.5)
                call.cancel()
                listed = await stub.ListIncidents(ipb.ListIncidentsRequest(page_size=2))
                second_page = await stub.ListIncidents(
                    ipb.ListIncidentsRequest(page_size=2, page_token=listed.next_page_token)
                )
        finally:
            await service.stop(1)
        ids = [i.incident_id for i in [*listed.incidents, *second_page.incidents]]
        assert len(set(ids)) == 3
        return (
            [e.sequence for e in first],
            [e.sequence for e in resumed],
            ack.committed_sequence,
            ahead.value.code(),
            resumed,
        )

    first, resumed, committed, ahead, events = run(go())
    assert first == [1, 2] and committed == 2
    assert resumed == [3, 4, 5, 6], "resuming from the committed offset continues without gaps or repeats"
    assert ahead == grpc.StatusCode.FAILED_PRECONDITION
    assert len({e.incident_id for e in events}) == 2


def test_subscribe_rejects_bad_requests(scripted_config):
    async def go() -> list[grpc.StatusCode]:
        service = await start_service(scripted_config)
        codes = []
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
                stub = incidents_pb2_grpc.IncidentsStub(channel)
                for request in (ipb.SubscribeRequest(), ipb.SubscribeRequest(consumer="x", min_severity="urgent")):
                    with pytest.raises(grpc.aio.AioRpcError) as err:
                        async for _ in stub.Subscribe(request):
                            pass
                    codes.append(err.value.code())
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.GetIncident(ipb.GetIncidentRequest(incident_id="nope"))
                codes.append(err.value.code())
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    async for _ in stub.GetEvidence(ipb.GetEvidenceRequest(sha256="0" * 64)):
                        pass
                codes.append(err.value.code())
        finally:
            await service.stop(1)
        return codes

    assert run(go()) == [
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.NOT_FOUND,
    ]
