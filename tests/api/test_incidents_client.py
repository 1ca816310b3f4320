"""The typed clients against the real service (colour-blob engine, real rules, store and gRPC on loopback):
``IncidentsClient`` gives internal events and records with enum fields, equal to what the store holds, and
the JSON line of an event it received is the proto JSON of the message on the wire; ``IngestClient.send``
answers with internal values; ``HealthProbe`` sees SERVING."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import replace
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest
from google.protobuf.json_format import MessageToDict

from detector.api._gen.streetwatch.v1 import incidents_pb2 as ipb
from detector.api._gen.streetwatch.v1 import incidents_pb2_grpc
from detector.api.client import FrameAnswer, IngestClient, OutgoingFrame, encode_jpeg
from detector.api.health_probe import HealthProbe
from detector.api.incidents_client import IncidentsClient
from detector.api.subscribe import event_json, incident_json
from detector.config import ServiceConfig, load_config
from detector.ingest.decode import RejectCode
from detector.server import start_service
from detector.store.model import IncidentRecord, IncidentState
from detector.types import (
    DeliveryMode,
    EventType,
    EvidenceKind,
    IncidentEvent,
    LocationMethod,
    Severity,
    Telemetry,
)
from tests.api.scripted import RED, T0, H, W, scene, stall_frames, write_spec
from tests.api.serving import frames_of
from tests.conftest import run

CAMERA = {"lat": 39.9042, "lon": 116.4074, "height_m": 8.0}


def _config(tmp_path: Path) -> ServiceConfig:
    """cam-1 as in tests/api/scripted.py (a no-vending zone over the lower half, dwell 120 s), its stall
    category rated high, and the camera's position configured: its events are located (SOURCE_FIXED)."""
    stall = {"classes": ["stall"], "case_code": "200501", "label": "无照经营游商", "severity": "high", "rule": "dwell"}
    zone = {"id": "no-vending", "polygon_px": [[0, 120], [W, 120], [W, H], [0, H]], "prohibited_classes": ["stall"]}
    rules = {
        "categories": {"ROAD_OCCUPYING_STALL": stall},
        "default_source": {"confirm": {}},
        "sources": {"cam-1": {"zones": [zone], "geo": {"position": CAMERA}}},
    }
    spec = write_spec(tmp_path / "blobs.yaml")
    overrides = [
        "server.port=0",
        "model.backend=colour-blobs",
        f"model.weights={spec}",
        f"store.data_dir={tmp_path / 'data'}",
        "model.warmup_batch_sizes=[1]",
        f"rules={json.dumps(rules, ensure_ascii=False)}",
    ]
    return load_config(None, environ={}, overrides=overrides)


async def _collect(client: IncidentsClient, consumer: str, after: int | None = None, **filters) -> list[IncidentEvent]:
    """Every event the subscription gives until it is idle for a second."""
    async with client.subscribe(consumer, after, idle_timeout_s=1.0, **filters) as events:
        return [event async for event in events]


def test_subscribe_ack_get_list_and_evidence_speak_internal_types(tmp_path: Path) -> None:
    frames = stall_frames("cam-1", seconds=200, fps=1, present=[(0, 130)])  # OPENED at 120 s, CLEARED later

    async def go() -> dict[str, object]:
        service = await start_service(_config(tmp_path))
        target = f"127.0.0.1:{service.port}"
        out: dict[str, object] = {}
        try:
            async with IngestClient(target) as ingest:
                _ = [r async for r in ingest.stream(frames_of(frames))]
            await service.writer.flush()
            out["stored"] = service.store.read_events(0, 10)
            async with IncidentsClient(target) as client:
                async with client.subscribe("case") as events:
                    first = await anext(events)
                out["first"] = first
                out["committed"] = await client.ack("case", first.sequence)
                out["rest"] = await _collect(client, "case")  # resumes after the committed offset
                out["older_ack"] = await client.ack("case", 0)
                out["replayed"] = await _collect(client, "audit", after=0)
                out["high"] = await _collect(client, "f1", 0, min_severity=Severity.HIGH)
                out["critical"] = await _collect(client, "f2", 0, min_severity=Severity.CRITICAL)
                out["other_source"] = await _collect(client, "f3", 0, source_ids=["cam-9"])
                out["record"] = await client.get(first.incident_id)
                out["cleared"] = await client.list(IncidentState.CLEARED)
                out["open"] = await client.list(IncidentState.OPEN)
                out["all"] = await client.list_all(page_size=1)
                out["photos"] = {e.kind: await client.evidence(e.sha256) for e in first.evidence}
                with pytest.raises(grpc.aio.AioRpcError) as missing:
                    await client.get("nope")
                out["missing"] = missing.value.code()
                with pytest.raises(grpc.aio.AioRpcError) as gone:
                    await client.evidence("0" * 64)
                out["gone"] = gone.value.code()
        finally:
            await service.stop(1)
        return out

    out = run(go())
    stored: list[IncidentEvent] = out["stored"]  # type: ignore[assignment]
    first: IncidentEvent = out["first"]  # type: ignore[assignment]
    rest: list[IncidentEvent] = out["rest"]  # type: ignore[assignment]
    assert [e.type for e in stored] == [EventType.OPENED, EventType.CLEARED]

    # What the client reads is what the store holds, field for field (confidence travels as a float32).
    received = [first, *rest]
    assert len(received) == 2
    for got, want in zip(received, stored, strict=True):
        assert got.confidence == pytest.approx(want.confidence, rel=1e-6)
        assert replace(got, confidence=want.confidence) == want
    assert out["replayed"] == received and out["high"] == received

    assert out["committed"] == 1 and out["older_ack"] == 1, "offsets never move backwards"
    assert [e.sequence for e in rest] == [2], "resumed after the acked event, without a gap or a repeat"
    assert out["critical"] == [] and out["other_source"] == [], "filters apply"

    # Enums, not strings, in every field that has one.
    assert type(first.severity) is Severity and first.severity is Severity.HIGH
    assert first.type is EventType.OPENED and rest[0].type is EventType.CLEARED
    assert first.location is not None and first.location.method is LocationMethod.SOURCE_FIXED
    assert (first.location.lat, first.location.lon) == (CAMERA["lat"], CAMERA["lon"])
    assert {type(e.kind) for e in first.evidence} == {EvidenceKind}
    assert {e.kind for e in first.evidence} == {EvidenceKind.FRAME_JPEG, EvidenceKind.CROP_JPEG}
    assert isinstance(first.source_pose, Telemetry) and first.source_pose.lat == CAMERA["lat"]
    assert first.first_seen_ts == T0 and 119.5 <= first.duration_s <= 121

    record: IncidentRecord = out["record"]  # type: ignore[assignment]
    assert record.incident_id == first.incident_id and record.state is IncidentState.CLEARED
    assert record.opened_count == 1 and record.last_event.sequence == 2
    assert out["cleared"].items == [record] and out["cleared"].next_page_token == ""  # type: ignore[attr-defined]
    assert out["open"].items == []  # type: ignore[attr-defined]
    assert out["all"] == [record]

    photos: dict[EvidenceKind, bytes] = out["photos"]  # type: ignore[assignment]
    for ref in first.evidence:
        assert hashlib.sha256(photos[ref.kind]).hexdigest() == ref.sha256
    frame = cv2.imdecode(np.frombuffer(photos[EvidenceKind.FRAME_JPEG], np.uint8), cv2.IMREAD_COLOR)
    assert frame.shape == (H, W, 3)
    assert out["missing"] == grpc.StatusCode.NOT_FOUND and out["gone"] == grpc.StatusCode.NOT_FOUND


def test_the_json_of_a_received_event_is_the_proto_json_on_the_wire(tmp_path: Path) -> None:
    """`detector subscribe --json` prints ``event_json`` of the internal event: it must be what the service
    sent, as proto JSON, to the last field (the case system's contract)."""
    frames = stall_frames("cam-1", seconds=200, fps=1, present=[(0, 130)])

    async def go() -> tuple[list[ipb.IncidentEvent], list[IncidentEvent], ipb.Incident, IncidentRecord]:
        service = await start_service(_config(tmp_path))
        target = f"127.0.0.1:{service.port}"
        try:
            async with IngestClient(target) as ingest:
                _ = [r async for r in ingest.stream(frames_of(frames))]
            await service.writer.flush()
            async with grpc.aio.insecure_channel(target) as channel:
                stub = incidents_pb2_grpc.IncidentsStub(channel)
                call = stub.Subscribe(ipb.SubscribeRequest(consumer="wire", after_sequence=0))
                wire = [await call.read(), await call.read()]
                call.cancel()
                wire_incident = await stub.GetIncident(ipb.GetIncidentRequest(incident_id=wire[0].incident_id))
            async with IncidentsClient(target) as client:
                internal = await _collect(client, "typed", 0)
                record = await client.get(wire[0].incident_id)
        finally:
            await service.stop(1)
        return wire, internal, wire_incident, record

    wire, internal, wire_incident, record = run(go())
    assert len(internal) == len(wire) == 2
    for message, event in zip(wire, internal, strict=True):
        expected = MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
        assert json.loads(event_json(event)) == expected
        assert expected["location"]["method"] == "SOURCE_FIXED" and expected["severity"] == "high"
    assert json.loads(incident_json(record)) == MessageToDict(wire_incident, preserving_proto_field_name=True)


def test_send_answers_each_frame_with_internal_values_and_the_probe_sees_serving(tmp_path: Path) -> None:
    image = scene([(RED, (100, 150, 140, 190))])

    async def frames() -> object:
        for seq in (1, 2, 2):  # the third repeats a seq: OUT_OF_ORDER
            yield OutgoingFrame("cam-1", seq, T0 + seq, jpeg=encode_jpeg(image), mode=DeliveryMode.LOSSLESS)

    async def go() -> tuple[list[FrameAnswer], bool, bool]:
        service = await start_service(_config(tmp_path))
        target = f"127.0.0.1:{service.port}"
        try:
            with HealthProbe(target) as probe:
                serving = await asyncio.to_thread(probe.serving)
            async with IngestClient(target) as client:
                answers = [a async for a in client.send(frames())]  # type: ignore[arg-type]
        finally:
            await service.stop(1)
        with HealthProbe(target) as probe:
            after_stop = await asyncio.to_thread(probe.serving, 0.5)
        return answers, serving, after_stop

    answers, serving, after_stop = run(go())
    assert serving and not after_stop
    assert [(a.source_id, a.seq) for a in answers] == [("cam-1", 1), ("cam-1", 2), ("cam-1", 2)]
    ok, _, refused = answers
    assert ok.error is None and ok.labels == ("stall",) and ok.batch_size >= 1 and ok.model.startswith("colour")
    assert refused.error is RejectCode.OUT_OF_ORDER and refused.error_message and refused.labels == ()


def test_cancelling_a_subscription_ends_its_iteration_quietly(tmp_path: Path) -> None:
    async def go() -> tuple[list[IncidentEvent], bool]:
        service = await start_service(_config(tmp_path))
        try:
            async with IncidentsClient(f"127.0.0.1:{service.port}") as client:
                subscription = client.subscribe("idle")  # an empty log: nothing comes
                reader = asyncio.create_task(_read_all(subscription))
                await asyncio.sleep(0.3)
                subscription.cancel()
                got = await asyncio.wait_for(reader, 5)
                return got, reader.cancelled()
        finally:
            await service.stop(1)

    assert run(go()) == ([], False)


async def _read_all(events: object) -> list[IncidentEvent]:
    return [event async for event in events]  # type: ignore[attr-defined]
