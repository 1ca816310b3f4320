"""Replay-then-follow over the event log, for the Subscribe servicer.

Every event is read from the store, whether the follower is replaying history or keeping up live; the only
live signal is a wake-up. A slow consumer therefore just reads further behind, with at most one batch in
memory, and never holds up appends or other followers. A database that cannot be reached for a while (a
PostgreSQL restart or failover) only pauses a follower: it reads again every ``retry_wait_s`` until it can, and
goes on from where it was, so subscribers, deliveries and the feedback watcher outlive the outage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from detector.store.base import IncidentStore
from detector.store.errors import InvalidQuery, StoreClosed, StoreCorrupt, StoreError
from detector.store.model import ANY_EVENT, EventFilter
from detector.types import IncidentEvent

log = logging.getLogger(__name__)


async def follow_events(
    store: IncidentStore,
    after_sequence: int,
    event_filter: EventFilter = ANY_EVENT,
    batch_size: int = 256,
    idle_wait_s: float = 5.0,
    until: asyncio.Event | None = None,
    retry_wait_s: float = 1.0,
) -> AsyncIterator[IncidentEvent]:
    """Yield matching events with sequence > ``after_sequence`` forever: the backlog first, then live ones.

    Example::

        async for event in follow_events(store, store.get_offset("dispatch")):
            await stream.write(to_proto(event))

    The iterator ends when the store is closed (it then raises ``StoreClosed``) or damaged (``StoreCorrupt``),
    the caller stops, or ``until`` is set; any other store error (the database unreachable) pauses it, and it
    reads again every ``retry_wait_s`` until it can. Set ``until`` rather than cancel a follower to stop it
    before the store closes: it then ends between two reads, never while a thread still reads (cancelling
    leaves that thread reading a store being closed).
    """
    after = after_sequence
    unreachable = False
    while until is None or not until.is_set():
        try:
            # Read the log's end before the batch: if the batch comes back short, every event up to that end was
            # seen, including the ones the filter skipped, so the next wait does not spin on them.
            log_end = await asyncio.to_thread(store.last_sequence)
            batch = await asyncio.to_thread(store.read_events, after, batch_size, event_filter)
        except (StoreClosed, StoreCorrupt, InvalidQuery):
            raise
        except StoreError as exc:
            if not unreachable:
                log.warning("cannot read the event log (%s); retrying every %.1f s", exc, retry_wait_s)
            unreachable = True
            wait = asyncio.sleep(retry_wait_s)  # a retry interval: nothing will tell us the database is back
            await (wait if until is None else _first_of(wait, until.wait()))
            continue
        if unreachable:
            log.warning("reading the event log again after sequence %d", after)
            unreachable = False
        for event in batch:
            yield event
            after = event.sequence
        if len(batch) == batch_size:
            continue
        after = max(after, log_end)
        if until is None:
            await store.wait_for_async(after, idle_wait_s)
        else:
            await _first_of(store.wait_for_async(after, idle_wait_s), until.wait())


async def _first_of(*waits: Coroutine[Any, Any, object]) -> None:
    """Wait until one of ``waits`` is done; cancel the others (waits that hold no thread)."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
