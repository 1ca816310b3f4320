"""The event writer: appends incident events to the durable log, in order, and never loses one silently.

Events the store cannot take right now (disk full, locked) wait in a bounded backlog (``store.max_backlog_events``)
and are appended, in order, before any later event, so a store hiccup neither loses nor reorders them. When the
backlog is full the oldest waiting events are dropped, counted in ``events_lost`` (the ``streetwatch_events_lost``
metric) and logged with their incident ids. Whoever cares (the health service) is told when the store stops and
starts taking events again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from detector.store.base import IncidentStore
from detector.store.errors import StoreError
from detector.types import IncidentEvent

log = logging.getLogger(__name__)


class EventWriter:
    OnWritable = Callable[[bool], Awaitable[None]]
    """Told True/False when the store starts/stops taking events (the health service listens)."""

    def __init__(self, store: IncidentStore, max_backlog: int, on_writable: OnWritable | None = None) -> None:
        if max_backlog < 1:
            raise ValueError(f"max_backlog must be at least 1, got {max_backlog}")
        self.store = store
        self._backlog: deque[IncidentEvent] = deque()
        self.max_backlog = max_backlog
        self._lock = asyncio.Lock()
        self._on_writable = on_writable
        self.events_appended = 0
        self.events_lost = 0
        self.store_failures = 0
        self.writable = True

    @property
    def backlog(self) -> int:
        return len(self._backlog)

    async def append(self, events: Sequence[IncidentEvent]) -> None:
        """Append after whatever waits; on a store failure, keep them waiting (up to the limit)."""
        async with self._lock:
            self._backlog.extend(events)
            if not self._backlog:
                return
            pending = list(self._backlog)
            try:
                await asyncio.to_thread(self.store.append, pending)
            except StoreError as exc:
                self.store_failures += 1
                log.error("event log append failed; %d events wait: %s", len(self._backlog), exc)
                self._drop_overflow()
                await self._set_writable(False, str(exc))
                return
            self._backlog.clear()
            self.events_appended += len(pending)
            await self._set_writable(True, f"{len(pending)} events appended")
            for event in pending:
                log.info(
                    "incident %s",
                    event.type.value,
                    extra={
                        "incident_id": event.incident_id,
                        "category": event.category,
                        "case_code": event.case_code,
                        "source_id": event.source_id,
                    },
                )

    async def flush(self) -> None:
        """Retry the backlog (called on shutdown and periodically)."""
        await self.append([])

    def _drop_overflow(self) -> None:
        lost = []
        while len(self._backlog) > self.max_backlog:
            lost.append(self._backlog.popleft())
        if lost:
            self.events_lost += len(lost)
            log.error(
                "event backlog full (store.max_backlog_events=%d): %d oldest events dropped",
                self.max_backlog,
                len(lost),
                extra={"incident_ids": sorted({event.incident_id for event in lost}), "events_lost": self.events_lost},
            )

    async def _set_writable(self, writable: bool, reason: str) -> None:
        if writable == self.writable:
            return
        self.writable = writable
        if writable:
            log.warning("event log writable again: %s", reason)
        else:
            log.error("event log not writable; events wait in memory (at most %d): %s", self.max_backlog, reason)
        if self._on_writable is not None:
            await self._on_writable(writable)
