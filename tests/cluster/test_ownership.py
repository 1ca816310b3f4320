"""Two replicas (in-process services, cluster enabled) on one PostgreSQL schema, with the colour-blob engine
(tests/api/scripted.py): a source is processed by the replica holding its lease; the other refuses its frames
with FAILED_PRECONDITION and the owner's address, which IngestClient(follow_owner=True) follows; a replica that
dies (gRPC gone, leases neither renewed nor released) has its source taken over after lease_s, its open incident
continued on the same id; the delivery connectors run on one replica at a time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from detector.api._gen.streetwatch.v1 import ingest_pb2 as pb
from detector.api.client import OWNER_METADATA_KEY, FollowSettings, IngestClient, owner_address
from detector.api.incidents_client import IncidentsClient
from detector.config import ServiceConfig, load_config
from detector.delivery.settings import DeliverySettings
from detector.inference.engine import build_engine
from detector.server import Service, start_service
from detector.types import EventType, IncidentEvent
from tests.api.scripted import scripted_overrides, stall_frames, write_spec
from tests.api.serving import frames_of
from tests.delivery.test_webhook_delivery import SECRET, Receiver, wait_until
from tests.store.factories import make_event, postgres_url

LEASE_S = 1.5
FPS = 2


def _config(tmp_path: Path, name: str, **extra: str) -> ServiceConfig:
    spec = write_spec(tmp_path / "blobs.yaml")
    sets = [
        "server.port=0",
        *scripted_overrides(spec, tmp_path / name),
        "store.backend=postgres",
        f"store.url={postgres_url(tmp_path / 'shared-db')}",
        "cluster.enabled=true",
        f"cluster.replica_id={name}",
        f"cluster.lease_s={LEASE_S}",
        # Short enough for a test: a stall opens after 4 s in the zone and clears 4 s after it left.
        "rules.default_source.dwell_s=4",
        "rules.default_source.occlusion_s=2",
        "rules.default_source.clear_after_s=4",
        "rules.default_source.heartbeat_s=3",
        "rules.default_source.min_update_interval_s=1",
        *(f"{key}={value}" for key, value in extra.items()),
    ]
    return load_config(None, environ={}, overrides=sets)


async def _start(config: ServiceConfig) -> tuple[Service, str]:
    service = await start_service(config, engine=build_engine("colour-blobs", config.model))
    return service, f"127.0.0.1:{service.port}"


async def _results(client: IngestClient, frames: list[pb.Frame]) -> list[pb.FrameResult]:
    return [result async for result in client.stream(frames_of(frames))]


async def _events(target: str, count: int, source_id: str) -> list[IncidentEvent]:
    async with IncidentsClient(target) as client, client.subscribe("test", 0, idle_timeout_s=20) as events:
        out: list[IncidentEvent] = []
        async for event in events:
            if event.source_id == source_id:
                out.append(event)
            if len(out) == count:
                break
        return out


def test_a_replica_refuses_a_source_another_owns_naming_it_and_the_client_follows_to_the_owner(
    tmp_path: Path,
) -> None:
    frames = stall_frames("cam-1", seconds=10, fps=FPS, present=[(0, 10)])

    async def go() -> None:
        a, target_a = await _start(_config(tmp_path, "a"))
        b, target_b = await _start(_config(tmp_path, "b"))
        try:
            async with IngestClient(target_a) as client:
                first = await _results(client, frames[:4])
            assert [r.seq for r in first] == [1, 2, 3, 4] and not any(r.HasField("error") for r in first)

            async with IngestClient(target_b) as client:  # not following: the refusal reaches the caller
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await _results(client, frames[4:5])
                with pytest.raises(grpc.aio.AioRpcError) as refused_detect:
                    await client.detect(frames[4])
            assert owner_address(refused_detect.value) == target_a
            assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
            assert "replica a" in (refused.value.details() or "")
            assert (OWNER_METADATA_KEY, target_a) in tuple(refused.value.trailing_metadata() or ())
            assert owner_address(refused.value) == target_a

            async with IngestClient([target_b], follow_owner=True) as client:
                rest = await _results(client, frames[4:])
                assert client.target == target_a
            assert [r.seq for r in rest] == list(range(5, len(frames) + 1))
            assert not any(r.HasField("error") for r in rest)
            assert a.replica is not None and a.replica.held == ["source:cam-1"]
            assert b.replica is not None and b.replica.held == []

            # Every replica answers the case system: B's Subscribe sees what A appended (LISTEN/NOTIFY).
            opened = await _events(target_b, 1, "cam-1")
            assert opened[0].type is EventType.OPENED
        finally:
            await b.stop(grace_s=2)
            await a.stop(grace_s=2)

    asyncio.run(asyncio.wait_for(go(), 120))


def test_a_dead_replicas_source_is_taken_over_after_its_lease_and_its_open_incident_goes_on(tmp_path: Path) -> None:
    # The stall stands for 14 s, then leaves: OPENED on A (at ~4 s), A dies at 7 s, B goes on: UPDATED, CLEARED.
    frames = stall_frames("cam-1", seconds=24, fps=FPS, present=[(0, 14)])
    died_at = 7 * FPS

    async def go() -> None:
        a, target_a = await _start(_config(tmp_path, "a"))
        b, target_b = await _start(_config(tmp_path, "b"))
        answered = asyncio.Event()
        a_dead = asyncio.Event()

        async def sent() -> AsyncIterator[pb.Frame]:
            for frame in frames:
                if frame.seq == died_at + 1:
                    await answered.wait()
                    await a_dead.wait()
                yield frame

        try:
            results: list[pb.FrameResult] = []
            follow = FollowSettings(give_up_after_s=LEASE_S * 10)
            async with IngestClient([target_a, target_b], follow_owner=True, follow=follow) as client:
                async for result in client.stream(sent()):
                    results.append(result)
                    if result.seq == died_at:
                        answered.set()
                        # Killed: the port stops answering, its leases are neither renewed nor released.
                        assert a.replica is not None
                        await a.replica.close(release=False)
                        await a.grpc.server.stop(0)
                        a_dead.set()
                assert client.target == target_b
            assert [r.seq for r in results] == [f.seq for f in frames]
            assert not any(r.HasField("error") for r in results)
            assert b.replica is not None and b.replica.held == ["source:cam-1"]

            events = await _events(target_b, 3, "cam-1")
            events += await _more_until_cleared(target_b, events)
            types = [e.type for e in events]
            assert types.count(EventType.OPENED) == 1, types
            assert types[-1] is EventType.CLEARED
            assert {e.incident_id for e in events} == {events[0].incident_id}
            assert EventType.UPDATED in types
        finally:
            await b.stop(grace_s=2)
            await a.stop(grace_s=2)

    asyncio.run(asyncio.wait_for(go(), 120))


async def _more_until_cleared(target: str, seen: list[IncidentEvent]) -> list[IncidentEvent]:
    """The source's events after ``seen``, up to its CLEARED (none if ``seen`` ends with it)."""
    if seen and seen[-1].type is EventType.CLEARED:
        return []
    after = seen[-1].sequence if seen else 0
    async with IncidentsClient(target) as client, client.subscribe("test-more", after, idle_timeout_s=20) as events:
        out: list[IncidentEvent] = []
        async for event in events:
            out.append(event)
            if event.type is EventType.CLEARED:
                break
        return out


def test_only_the_replica_holding_the_delivery_lease_delivers_and_the_other_takes_over_when_it_stops(
    tmp_path: Path,
) -> None:
    async def go() -> None:
        receiver = Receiver()
        await receiver.start()
        hook = {"name": "city", "kind": "webhook", "url": receiver.url, "secret": SECRET}
        delivery = DeliverySettings.model_validate({"connectors": [hook], "backoff": {"initial_s": 0.01}})
        a, _ = await _start(_config(tmp_path, "a").model_copy(update={"delivery": delivery}))
        b, _ = await _start(_config(tmp_path, "b").model_copy(update={"delivery": delivery}))
        try:
            await wait_until(lambda: (a.delivery is None) != (b.delivery is None))
            first, second = (a, b) if a.delivery is not None else (b, a)
            one = await asyncio.to_thread(first.store.append, [make_event(incident_id="inc-1")])
            await wait_until(lambda: receiver.keys == [one[0].event_id])
            assert second.delivery is None
            await first.stop(grace_s=2)  # a clean stop releases the lease: the other takes it on its next try
            two = await asyncio.to_thread(second.store.append, [make_event(incident_id="inc-2")])
            await wait_until(lambda: receiver.keys[-1:] == [two[0].event_id], timeout_s=LEASE_S * 10)
            assert second.delivery is not None
            assert receiver.keys.count(one[0].event_id) == 1  # committed before the handover: not sent again
        finally:
            await b.stop(grace_s=2)
            await a.stop(grace_s=2)
            await receiver.stop()

    asyncio.run(asyncio.wait_for(go(), 120))
