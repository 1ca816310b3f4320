"""The stage after the model: track, judge by rules, attach evidence, and append events to the durable log.

It runs once per frame, in capture order for each source (the ingest servicer guarantees the order). Events
the store cannot take right now (disk full, locked) wait in a bounded backlog and are appended, in order,
before any later event, so a store hiccup neither loses nor reorders them. Whoever cares (the health service)
is told when the store stops and starts taking events again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from detector.rules import RulesEngine
from detector.store.base import IncidentStore
from detector.store.errors import StoreError
from detector.store.evidence import EvidenceRenderer, store_evidence
from detector.tracking import TrackerPool
from detector.types import Detections, EventType, Frame, IncidentEvent

log = logging.getLogger(__name__)


class IncidentStage:
    def __init__(
        self,
        trackers: TrackerPool,
        rules: RulesEngine,
        store: IncidentStore,
        renderer: EvidenceRenderer | None = None,
        max_backlog: int = 10_000,
        on_writable: Callable[[bool], Awaitable[None]] | None = None,
    ) -> None:
        self._trackers = trackers
        self._rules = rules
        self._store = store
        self._renderer = renderer or EvidenceRenderer()
        self._backlog: deque[IncidentEvent] = deque()
        self._max_backlog = max_backlog
        self._lock = asyncio.Lock()
        self.events_appended = 0
        self.events_lost = 0
        self.store_failures = 0
        self.writable = True
        self._on_writable = on_writable

    @property
    def backlog(self) -> int:
        return len(self._backlog)

    def restore(self) -> int:
        """Continue the incidents that were open when the service last stopped; returns how many."""
        open_incidents = [record.last_event for record in self._store.open_incidents()]
        self._rules.restore(open_incidents)
        return len(open_incidents)

    async def process(self, frame: Frame, detections: Detections) -> Detections:
        tracked = self._trackers.update(frame.source_id, detections, frame.capture_ts)
        events = self._rules.update(
            frame.source_id, frame.capture_ts, tracked, (frame.width, frame.height), frame=frame
        )
        if events:
            with_evidence = await asyncio.to_thread(self._attach_evidence, frame, events)
            await self._append(with_evidence)
        return tracked

    async def flush(self) -> None:
        """Retry the backlog (called on shutdown and periodically)."""
        await self._append([])

    def _attach_evidence(self, frame: Frame, events: list[IncidentEvent]) -> list[IncidentEvent]:
        out = []
        for event in events:
            if event.type is EventType.CLEARED:
                out.append(event)
                continue
            caption = f"{event.case_code} {event.category} {event.confidence:.2f}"
            try:
                images = self._renderer.render(frame.image, event.box_xyxy, caption)
                evidence = store_evidence(self._store, images)
            except (StoreError, ValueError, OSError) as exc:
                # The event matters more than its photo: send it without evidence rather than not at all.
                log.warning("evidence not stored: %s", exc, extra={"incident_id": event.incident_id})
                out.append(event)
                continue
            out.append(dataclasses.replace(event, evidence=evidence))
        return out

    async def _append(self, events: list[IncidentEvent]) -> None:
        async with self._lock:
            self._backlog.extend(events)
            if not self._backlog:
                return
            pending = list(self._backlog)
            try:
                await asyncio.to_thread(self._store.append, pending)
            except StoreError as exc:
                self.store_failures += 1
                log.error("event log append failed; %d events wait: %s", len(self._backlog), exc)
                while len(self._backlog) > self._max_backlog:
                    self._backlog.popleft()
                    self.events_lost += 1
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

    async def _set_writable(self, writable: bool, reason: str) -> None:
        if writable == self.writable:
            return
        self.writable = writable
        if writable:
            log.warning("event log writable again: %s", reason)
        else:
            log.error("event log not writable; events wait in memory (at most %d): %s", self._max_backlog, reason)
        if self._on_writable is not None:
            await self._on_writable(writable)
