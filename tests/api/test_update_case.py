"""Incidents.UpdateCase over real gRPC on loopback: who may give a verdict, what is refused, and what a case system
relies on afterwards (the FEEDBACK event in the log and on Subscribe, the incident's case fields, a REJECTED place
that stays quiet while another place still opens, the hard negative on disk).

The colour-blob engine stands in for the model: a green patch is "garbage" (confirmation: 3 of 5 seconds).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from detector.api._gen.streetwatch.v1 import incidents_pb2 as ipb
from detector.api._gen.streetwatch.v1 import incidents_pb2_grpc
from detector.api._gen.streetwatch.v1 import ingest_pb2 as pb
from detector.api.auth import hash_token
from detector.api.client import ChannelSecurity, IngestClient, make_frame, open_channel
from detector.api.incidents_client import IncidentsClient
from detector.cli import main
from detector.config import load_config
from detector.store.model import IncidentState
from detector.types import CaseState, DeliveryMode, EventType, IncidentEvent
from tests.api.scripted import GREEN, T0, scene, scripted_overrides, write_spec
from tests.api.serving import serving
from tests.conftest import run

INGEST, READER, CASES = "ingest-secret-1", "reader-secret-2", "cases-secret-3"
TOKENS = (
    "{enabled: true, tokens: ["
    f"{{name: gate, sha256: '{hash_token(INGEST)}', roles: [ingest], sources: ['*']}}, "
    f"{{name: reader, sha256: '{hash_token(READER)}', roles: [subscribe]}}, "
    f"{{name: city-cases, sha256: '{hash_token(CASES)}', roles: [case]}}]}}"
)
HERE, THERE = (40, 150, 80, 190), (220, 150, 260, 190)


def _frames(boxes: list[tuple[int, int, int, int]], start_s: float, seconds: float, seq0: int) -> list[pb.Frame]:
    """Garbage at ``boxes``, 2 frames per second of capture time from ``start_s``."""
    return [
        make_frame(
            "cam-1",
            seq0 + i,
            T0 + start_s + i / 2,
            image=scene([(GREEN, box) for box in boxes]),
            mode=DeliveryMode.LOSSLESS,
        )
        for i in range(int(seconds * 2))
    ]


async def _send(target: str, frames: list[pb.Frame]) -> None:
    async def items() -> AsyncIterator[pb.Frame]:
        for frame in frames:
            yield frame

    async with IngestClient(target, security=ChannelSecurity(token=INGEST)) as client:
        results = [r async for r in client.stream(items())]
    assert len(results) == len(frames) and not any(r.HasField("error") for r in results)


async def _update(target: str, token: str | None, request: ipb.UpdateCaseRequest) -> tuple[str, ipb.Incident | None]:
    async with open_channel(target, ChannelSecurity(token=token)) as channel:
        try:
            incident = await incidents_pb2_grpc.IncidentsStub(channel).UpdateCase(request, timeout=10)
        except grpc.aio.AioRpcError as exc:
            return f"{exc.code().name}: {exc.details()}", None
    return "OK", incident


def test_update_case_roles_refusals_feedback_event_suppression_and_hard_negative(tmp_path: Path, capsys) -> None:
    spec = write_spec(tmp_path / "blobs.yaml")
    overrides = ["server.port=0", *scripted_overrides(spec, tmp_path / "data"), f"auth={TOKENS}"]
    config = load_config(None, environ={}, overrides=overrides)

    async def go() -> None:
        async with serving(config, engine=None) as (service, target):
            await _send(target, _frames([HERE], 0.0, 4.0, seq0=1))
            async with IncidentsClient(target, ChannelSecurity(token=READER)) as reader:
                [opened] = (await reader.list(IncidentState.OPEN)).items
                incident_id = opened.incident_id
                subscription = reader.subscribe("reader", after_sequence=0, idle_timeout_s=10)
                seen: list[IncidentEvent] = []

                async def consume() -> None:
                    async for event in subscription:
                        seen.append(event)
                        if event.type is EventType.FEEDBACK:
                            return

                consumer = asyncio.create_task(consume())
                log_before = service.store.last_sequence()

                rejected = ipb.UpdateCaseRequest(
                    incident_id=incident_id, state=ipb.REJECTED, case_id="SR-1041", note="a green bin lid, not litter"
                )
                refusals = {
                    "reader": await _update(target, READER, rejected),
                    "no token": await _update(target, None, rejected),
                    "unknown": await _update(target, CASES, ipb.UpdateCaseRequest(incident_id="nope", state=ipb.FILED)),
                    "no state": await _update(target, CASES, ipb.UpdateCaseRequest(incident_id=incident_id)),
                    "long note": await _update(
                        target,
                        CASES,
                        ipb.UpdateCaseRequest(incident_id=incident_id, state=ipb.FILED, note="x" * 2001),
                    ),
                }
                assert refusals["reader"][0].startswith("PERMISSION_DENIED") and "'case' role" in refusals["reader"][0]
                assert refusals["no token"][0].startswith("UNAUTHENTICATED")
                assert refusals["unknown"][0] == "NOT_FOUND: no incident 'nope'"
                assert refusals["no state"][0].startswith("INVALID_ARGUMENT: state is required")
                assert refusals["long note"][0].startswith("INVALID_ARGUMENT: note is 2001 characters")
                assert service.store.last_sequence() == log_before, "a refused verdict appends nothing"
                # The case role gives verdicts only: reading the incidents is the subscribe role's.
                async with IncidentsClient(target, ChannelSecurity(token=CASES)) as cases:
                    with pytest.raises(grpc.aio.AioRpcError) as denied:
                        await cases.get(incident_id)
                assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED

                status, answered = await _update(target, CASES, rejected)
                assert status == "OK" and answered is not None
                assert answered.incident_id == incident_id and answered.state == ipb.CLEARED_STATE
                assert answered.case_state == ipb.REJECTED and answered.case_id == "SR-1041"
                feedback_sequence = answered.last_event.sequence
                assert feedback_sequence == log_before + 1
                assert answered.last_event.type == ipb.FEEDBACK and answered.last_event.note == rejected.note

                await asyncio.wait_for(consumer, 15)
                assert [e.type for e in seen] == [EventType.OPENED, EventType.FEEDBACK]
                feedback = seen[-1]
                assert (feedback.incident_id, feedback.sequence) == (incident_id, feedback_sequence)
                assert (feedback.case_state, feedback.case_id) == (CaseState.REJECTED, "SR-1041")
                assert feedback.box_xyxy == seen[0].box_xyxy, "the verdict carries the incident's place"

                stored = await reader.get(incident_id)
                assert (stored.state, stored.case_state, stored.case_id) == (
                    IncidentState.CLEARED,
                    CaseState.REJECTED,
                    "SR-1041",
                )

                assert service.feedback is not None
                await asyncio.wait_for(service.feedback.handled(feedback_sequence), 10)
                # The rejected garbage stays where it was; new garbage appears elsewhere in the same view.
                await _send(target, _frames([HERE, THERE], 4.0, 12.0, seq0=100))
                after = service.store.read_events(feedback_sequence, 100)
                assert [e.type for e in after] == [EventType.OPENED], "only the other place opens"
                assert after[0].incident_id != incident_id and after[0].box_xyxy[0] > 200
                suppressed = service.metrics.registry.get_sample_value(
                    "streetwatch_candidates_suppressed_total", {"category": "EXPOSED_GARBAGE"}
                )
                assert suppressed is not None and suppressed >= 20, "each frame's rejected garbage is counted"

                # The typed client and the CLI give verdicts too (the CLI by an id prefix).
                async with IncidentsClient(target, ChannelSecurity(token=CASES)) as cases:
                    filed = await cases.update_case(after[0].incident_id, CaseState.FILED, case_id="SR-1042")
                assert (filed.case_state, filed.case_id, filed.state) == (
                    CaseState.FILED,
                    "SR-1042",
                    IncidentState.OPEN,
                )
                capsys.readouterr()
                argv = ["incidents", "update-case", after[0].incident_id[:13], "--state", "RESOLVED"]
                argv += ["--note", "swept", "--target", target, "--token", CASES]
                # The CLI looks the prefix up with ListIncidents: a token with both roles, as a case system holds.
                code = await asyncio.to_thread(main, argv)
                printed = capsys.readouterr()
                assert code == 1 and "PERMISSION_DENIED" in printed.err, "a case-only token cannot list to resolve"
                argv[2] = after[0].incident_id
                code = await asyncio.to_thread(main, argv)
                shown = json.loads(capsys.readouterr().out)
                assert code == 0 and shown["case_state"] == "RESOLVED" and shown["case_id"] == "SR-1042"
                assert shown["state"] == "CLEARED_STATE"

        folder = tmp_path / "data" / "hard_negatives"
        assert (folder / "images" / f"{incident_id}.jpg").stat().st_size > 0
        assert (folder / "labels" / f"{incident_id}.txt").read_text() == ""
        [entry] = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
        assert (entry["incident_id"], entry["category"], entry["note"]) == (
            incident_id,
            "EXPOSED_GARBAGE",
            "a green bin lid, not litter",
        )
        assert not (folder / "images" / f"{after[0].incident_id}.jpg").exists(), "RESOLVED is no false alarm"

    run(go())
