"""Replay, then follow live, always reading from the store."""

from __future__ import annotations

import asyncio
import threading

import pytest

from detector.store import EventFilter, IncidentStore, StoreClosed, follow_events
from detector.types import IncidentEvent
from tests.store.factories import make_event


async def take(store: IncidentStore, after: int, count: int, event_filter: EventFilter) -> list[IncidentEvent]:
    taken: list[IncidentEvent] = []
    async for event in follow_events(store, after, event_filter, batch_size=2, idle_wait_s=0.2):
        taken.append(event)
        if len(taken) == count:
            break
    return taken


def test_follow_replays_the_backlog_then_gets_live_events(store: IncidentStore) -> None:
    store.append([make_event() for _ in range(5)])
    threading.Timer(0.1, lambda: store.append([make_event() for _ in range(2)])).start()

    events = asyncio.run(asyncio.wait_for(take(store, 1, 6, EventFilter()), timeout=10))

    assert [e.sequence for e in events] == [2, 3, 4, 5, 6, 7]


def test_follow_skips_unmatched_events_and_waits_for_a_match(store: IncidentStore) -> None:
    store.append([make_event(source_id="cam-2") for _ in range(5)])

    def later() -> None:
        store.append([make_event(source_id="cam-2")])
        store.append([make_event(source_id="cam-1")])

    threading.Timer(0.1, later).start()
    events = asyncio.run(asyncio.wait_for(take(store, 0, 1, EventFilter(source_ids={"cam-1"})), timeout=10))

    assert [e.sequence for e in events] == [7]


def test_follow_ends_when_the_store_closes(store: IncidentStore) -> None:
    threading.Timer(0.1, store.close).start()
    with pytest.raises(StoreClosed):
        asyncio.run(asyncio.wait_for(take(store, 0, 1, EventFilter()), timeout=10))


def test_follow_ends_when_until_is_set_while_it_waits_for_appends(store: IncidentStore) -> None:
    store.append([make_event() for _ in range(3)])

    async def go() -> list[int]:
        until = asyncio.Event()
        seen: list[int] = []
        async for event in follow_events(store, 0, until=until, idle_wait_s=60.0):
            seen.append(event.sequence)
            if event.sequence == 3:
                until.set()  # the follower is about to wait up to 60 s for an append: it ends instead
        return seen

    assert asyncio.run(asyncio.wait_for(go(), timeout=10)) == [1, 2, 3]
