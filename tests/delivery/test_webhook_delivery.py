"""The delivery runner with the webhook connector against a real aiohttp receiver on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from detector.delivery.runner import DeliveryRunner, consumer_name
from detector.delivery.settings import DeliverySettings
from detector.delivery.webhook import retry_after_s
from detector.store import SqliteStore
from tests.delivery.loopback import HANG, ScriptedPeer
from tests.store.factories import make_event

SECRET = "s3cret-s3cret-s3cret"


class Receiver(ScriptedPeer):
    """A webhook peer: checks the signature, records what it took; ``script`` answers the next calls."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[dict[str, Any]] = []
        self.keys: list[str] = []
        self.calls = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        body = await request.read()
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        if request.headers.get("X-StreetWatch-Signature") != expected:
            return web.Response(status=401, text="bad signature")
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["X-StreetWatch-Schema"] == "streetwatch.v1.IncidentEvent"
        failure = await self.scripted_failure(self.next_action(), lambda status: web.Response(status=status))
        if failure is not None:
            return failure
        event = json.loads(body)
        assert request.headers["Idempotency-Key"] == event["event_id"]
        self.keys.append(request.headers["Idempotency-Key"])
        self.received.append(event)
        return web.Response(status=204)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/hook", self.handle)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


async def wait_until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout_s)


def settings(url: str, **overrides: Any) -> DeliverySettings:
    connector = {"name": "city", "kind": "webhook", "url": url, "secret": SECRET, "timeout_s": 0.5}
    connector.update(overrides.pop("connector", {}))
    return DeliverySettings.model_validate(
        {
            "connectors": [connector],
            "max_attempts": 2,
            "backoff": {"initial_s": 0.01, "max_s": 0.05, "jitter": 1.0},
            **overrides,
        }
    )


def append(store: SqliteStore, first: int, count: int, **fields: Any) -> list[str]:
    events = store.append([make_event(incident_id=f"inc-{i}", **fields) for i in range(first, first + count)])
    return [e.event_id for e in events]


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 60))


def test_failures_are_retried_and_a_refused_event_is_dead_lettered(tmp_path: Path) -> None:
    async def scenario() -> None:
        receiver = Receiver()
        await receiver.start()
        receiver.script = [500, 500, HANG, 429, 200, 400, 400, 200]
        with SqliteStore(tmp_path / "data") as store:
            ids = append(store, 1, 3)
            runner = DeliveryRunner(store, settings(receiver.url))
            await runner.start()
            try:
                await wait_until(lambda: len(receiver.received) == 2 and runner.status()[0].offset == 3)
            finally:
                await runner.stop()
                await receiver.stop()
            assert [e["event_id"] for e in receiver.received] == [ids[0], ids[2]]
            letters = store.dead_letters(consumer_name("city"))
            assert [(d.event_id, d.reason, d.event_sequence) for d in letters] == [(ids[1], "HTTP 400", 2)]
            status = runner.status()[0]
            assert letters[0].attempts == 2
            assert status.dead_letters == 1
            assert status.delivered == 2
            assert store.get_offset(consumer_name("city")) == 3

    run(scenario)


def test_an_outage_loses_nothing_and_keeps_order(tmp_path: Path) -> None:
    async def scenario() -> None:
        receiver = Receiver()
        await receiver.start()
        health: list[bool] = []

        async def on_health(name: str, serving: bool) -> None:
            assert name == "city"
            health.append(serving)

        with SqliteStore(tmp_path / "data") as store:
            cfg = settings(receiver.url, unhealthy_after_s=0.05)
            runner = DeliveryRunner(store, cfg, on_health=on_health)
            await runner.start()
            try:
                ids = append(store, 1, 3)
                await wait_until(lambda: len(receiver.received) == 3)
                await receiver.stop()
                ids += await asyncio.to_thread(append, store, 4, 5)
                await wait_until(lambda: health == [False])
                assert runner.status()[0].last_error.startswith("connection")
                assert runner.status()[0].lag_events > 0
                await receiver.start()
                await wait_until(lambda: len(receiver.received) == 8 and runner.status()[0].offset == 8)
            finally:
                await runner.stop()
                await receiver.stop()
            assert [e["event_id"] for e in receiver.received] == ids
            assert [int(e["sequence"]) for e in receiver.received] == list(range(1, 9))
            assert health == [False, True]
            assert runner.status()[0].lag_events == 0

    run(scenario)


def test_a_restarted_runner_resumes_after_the_last_delivered_event(tmp_path: Path) -> None:
    async def scenario() -> None:
        receiver = Receiver()
        await receiver.start()
        with SqliteStore(tmp_path / "data") as store:
            ids = append(store, 1, 3)
            first = DeliveryRunner(store, settings(receiver.url))
            await first.start()
            await wait_until(lambda: first.status()[0].offset == 3)
            await first.stop()
            ids += append(store, 4, 2)
            second = DeliveryRunner(store, settings(receiver.url))
            await second.start()
            try:
                await wait_until(lambda: second.status()[0].offset == 5)
            finally:
                await second.stop()
                await receiver.stop()
            assert receiver.keys == ids  # each once, in order: nothing committed was sent again

    run(scenario)


def test_filtered_out_events_are_skipped_but_the_offset_moves_on(tmp_path: Path) -> None:
    async def scenario() -> None:
        receiver = Receiver()
        await receiver.start()
        with SqliteStore(tmp_path / "data") as store:
            wanted = append(store, 1, 1, source_id="cam-1")
            append(store, 2, 2, source_id="cam-2")
            cfg = settings(receiver.url, connector={"filter": {"source_ids": ["cam-1"], "types": ["OPENED"]}})
            runner = DeliveryRunner(store, cfg)
            await runner.start()
            try:
                await wait_until(lambda: store.get_offset(consumer_name("city")) == 3)
            finally:
                await runner.stop()
                await receiver.stop()
            assert receiver.keys == wanted

    run(scenario)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_s("7") == 7.0
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after_s("soon") is None
    assert retry_after_s(None) is None


def test_the_section_validates_each_connector_by_its_kind() -> None:
    assert DeliverySettings().connectors == []
    with pytest.raises(ValueError, match="unknown"):
        DeliverySettings.model_validate({"connectors": [{"name": "a", "kind": "carrier-pigeon"}]})
    with pytest.raises(ValueError, match="url"):
        DeliverySettings.model_validate({"connectors": [{"name": "a", "kind": "webhook", "secret": SECRET}]})
    hook = {"name": "a", "kind": "webhook", "url": "http://x/", "secret": SECRET}
    with pytest.raises(ValueError, match="twice"):
        DeliverySettings.model_validate({"connectors": [hook, hook]})
    with pytest.raises(ValueError, match="severity"):
        DeliverySettings.model_validate({"connectors": [{**hook, "filter": {"min_severity": "urgent"}}]})
