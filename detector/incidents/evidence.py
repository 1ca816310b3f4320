"""The evidence stage: a photo of each OPENED and UPDATED event's box on the frame that raised it, stored by
content hash. A CLEARED event shows an empty place, so it takes no new photo: it carries the evidence refs of
the incident's last event with evidence, so that a cleared incident (``GetIncident``, ``ListIncidents``, whose
record is its last event) still has its photo. Those refs are remembered here per incident, and looked up in the
store for an incident opened before a restart. An event raised with no frame at all (an UPDATED noting that the
source is down) carries them the same way (:meth:`EvidenceStage.carry`).

The event matters more than its photo: when rendering or storing fails, the event goes on without evidence.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from detector.store.base import IncidentStore
from detector.store.errors import StoreError
from detector.store.evidence import EvidenceRenderer, store_evidence
from detector.types import EventType, Evidence, Frame, ImageArray, IncidentEvent

log = logging.getLogger(__name__)


class EvidenceStage:
    def __init__(self, store: IncidentStore, renderer: EvidenceRenderer | None = None) -> None:
        self._store = store
        self._renderer = renderer or EvidenceRenderer()
        self.failures = 0
        # incident id -> the evidence of its last event that had some (dropped when the incident clears)
        self._last: dict[str, tuple[Evidence, ...]] = {}

    async def attach(self, frame: Frame, events: list[IncidentEvent]) -> list[IncidentEvent]:
        """The events with their evidence refs, rendered and stored off the event loop."""
        if all(event.type is EventType.CLEARED and event.incident_id in self._last for event in events):
            return [self._cleared(event) for event in events]
        return await asyncio.to_thread(self._attach, frame, events)

    async def carry(self, events: list[IncidentEvent]) -> list[IncidentEvent]:
        """Events raised without a frame, each with the evidence of its incident's last event that had some."""
        return await asyncio.to_thread(lambda: [self._with_last(event) for event in events])

    def _cleared(self, event: IncidentEvent) -> IncidentEvent:
        """A CLEARED event with the evidence of the incident's last event that had some (none if never any)."""
        carried = self._with_last(event)
        self._last.pop(event.incident_id, None)
        return carried

    def _with_last(self, event: IncidentEvent) -> IncidentEvent:
        evidence = self._last.get(event.incident_id)
        if evidence is None:  # opened before a restart: its last stored event has it
            try:
                record = self._store.get_incident(event.incident_id)
            except StoreError as exc:
                log.warning("evidence of incident %s not found: %s", event.incident_id, exc)
                record = None
            evidence = () if record is None else record.last_event.evidence
        return event if event.evidence or not evidence else dataclasses.replace(event, evidence=evidence)

    def _attach(self, frame: Frame, events: list[IncidentEvent]) -> list[IncidentEvent]:
        out = []
        full: ImageArray | None = None  # a frame decoded reduced is decoded whole once, for its first evidence
        for event in events:
            if event.type is EventType.CLEARED:
                out.append(self._cleared(event))
                continue
            caption = f"{event.case_code} {event.category} {event.confidence:.2f}"
            try:
                full = frame.full_image() if full is None else full
                images = self._renderer.render(full, event.box_xyxy, caption)
                evidence = store_evidence(self._store, images)
            except (StoreError, ValueError, OSError) as exc:
                self.failures += 1
                log.warning("evidence not stored: %s", exc, extra={"incident_id": event.incident_id})
                out.append(event)
                continue
            self._last[event.incident_id] = evidence
            out.append(dataclasses.replace(event, evidence=evidence))
        return out
