"""kill -9 of a real `detector serve` in the middle of delivering to a webhook, then a restart: every event
arrives, in log order of first arrival, none lost; a duplicate carries the event_id of one already received.

The service runs the colour-blob engine (no model to load); its store is a real SQLite data folder that outlives
the process, and this test appends the events to it, as the service's own rules would. The receiver holds the
answer to one event (after it has taken it) so the kill lands while that delivery is in flight: that event
must come again after the restart, with the same event_id.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from aiohttp import web

from detector.store import SqliteStore
from tests.api.scripted import scripted_overrides, write_spec
from tests.api.test_crash_safety import Server
from tests.api.test_serve_process import free_port
from tests.delivery.test_webhook_delivery import SECRET, Receiver, wait_until
from tests.store.factories import make_event

BEFORE = 120  # events in the log when the service starts
HELD = 40  # the receiver takes this many, then holds its answer to the next one: the kill comes meanwhile
AFTER = 20  # events appended while the service is down


class HoldingReceiver(Receiver):
    """Records every event as it arrives (duplicates too); holds the answer to arrival number HELD + 1."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[str] = []
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        event = json.loads(await request.read())
        assert request.headers["Idempotency-Key"] == event["event_id"]
        self.arrivals.append(event["event_id"])
        if len(self.arrivals) == HELD + 1:
            self.holding.set()
            await self.release.wait()  # until the sender is dead: this answer never reaches it
            return web.Response(status=503)
        return web.Response(status=204)


def test_kill_9_mid_delivery_then_restart_loses_nothing_and_keeps_order(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with SqliteStore(data) as store:
        ids = [e.event_id for e in store.append([make_event(incident_id=f"inc-{i}") for i in range(BEFORE)])]

    async def scenario() -> None:
        receiver = HoldingReceiver()
        await receiver.start()
        hook = {"name": "city", "kind": "webhook", "url": receiver.url, "secret": SECRET, "timeout_s": 30}
        delivery = {"connectors": [hook], "backoff": {"initial_s": 0.05, "max_s": 0.5}}
        settings = [
            *scripted_overrides(write_spec(tmp_path / "blobs.yaml"), data),
            f"delivery={json.dumps(delivery)}",
        ]
        log = tmp_path / "serve.log"
        first = await asyncio.to_thread(Server, free_port(), settings, log)
        try:
            await asyncio.wait_for(receiver.holding.wait(), 60)
            first.kill9()  # while the answer to arrival HELD + 1 is held: delivered, but never acknowledged
        finally:
            first.close()
        receiver.release.set()
        with SqliteStore(data) as store:
            ids.extend(e.event_id for e in store.append([make_event(incident_id=f"late-{i}") for i in range(AFTER)]))
        second = await asyncio.to_thread(Server, free_port(), settings, log)
        try:
            await wait_until(lambda: set(ids) <= set(receiver.arrivals), 60)
        finally:
            second.close()
            await receiver.stop()

        first_arrivals = list(dict.fromkeys(receiver.arrivals))
        assert first_arrivals == ids  # every event, in log order
        # Offsets are committed after each delivery, so only the event in flight at the kill comes again, once.
        assert _duplicates(receiver.arrivals) == [ids[HELD]]

    asyncio.run(asyncio.wait_for(scenario(), 240))


def _duplicates(arrivals: list[str]) -> list[str]:
    """The arrivals of an event_id already received before."""
    seen: set[str] = set()
    repeated = []
    for event_id in arrivals:
        if event_id in seen:
            repeated.append(event_id)
        seen.add(event_id)
    return repeated
