"""The evidence stage: a photo of each OPENED and UPDATED event's box on the frame that raised it, stored by
content hash. A CLEARED event shows an empty place and carries no new photo.

The event matters more than its photo: when rendering or storing fails, the event goes on without evidence.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from detector.store.base import IncidentStore
from detector.store.errors import StoreError
from detector.store.evidence import EvidenceRenderer, store_evidence
from detector.types import EventType, Frame, IncidentEvent

log = logging.getLogger(__name__)


class EvidenceStage:
    def __init__(self, store: IncidentStore, renderer: EvidenceRenderer | None = None) -> None:
        self._store = store
        self._renderer = renderer or EvidenceRenderer()
        self.failures = 0

    async def attach(self, frame: Frame, events: list[IncidentEvent]) -> list[IncidentEvent]:
        """The events with their evidence refs, rendered and stored off the event loop."""
        if not any(event.type is not EventType.CLEARED for event in events):
            return events
        return await asyncio.to_thread(self._attach, frame, events)

    def _attach(self, frame: Frame, events: list[IncidentEvent]) -> list[IncidentEvent]:
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
                self.failures += 1
                log.warning("evidence not stored: %s", exc, extra={"incident_id": event.incident_id})
                out.append(event)
                continue
            out.append(dataclasses.replace(event, evidence=evidence))
        return out
