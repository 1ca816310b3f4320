"""One incident per stall across replicas: a drone's new incident joins one already open at the same place.

Each replica's rules associate sightings with the incidents of their own sources, in memory. Two drones (or two
replicas, each with its drone) over one stall would each open an incident; so, before an OPENED of a moving
camera goes to the log, the shared store is asked for an open incident of the same category within the source's
association radius (``geo.dedup_radius_m``). When another source opened one, the new incident becomes an
UPDATED of that one (``RulesEngine.adopt``) and the drone's later events continue it.

The query runs in a thread, so the event loop never waits on the database. It narrows the race, it does not
close it: two replicas opening the same stall within one query's time of each other still open two.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from detector.rules import RulesEngine
from detector.store.base import IncidentStore
from detector.store.errors import StoreError
from detector.types import EventType, IncidentEvent

log = logging.getLogger(__name__)


class SharedIncidents:
    """The pipeline stage between the rules and evidence; ``join`` is its one verb."""

    def __init__(self, store: IncidentStore, rules: RulesEngine) -> None:
        self._store = store
        self._rules = rules
        self.joined = 0  # OPENED events turned into an UPDATED of another source's incident

    async def join(self, source_id: str, events: Sequence[IncidentEvent]) -> list[IncidentEvent]:
        """``events`` (one frame's, from ``RulesEngine.update``) with each OPENED of a moving camera that stands
        on another source's open incident replaced by an UPDATED of that incident."""
        radius_m = self._rules.association_radius_m(source_id)
        if radius_m is None:
            return list(events)
        joined: list[IncidentEvent] = []
        for event in events:
            shared = await self._open_elsewhere(event, radius_m) if event.type is EventType.OPENED else None
            adopted = None if shared is None else self._rules.adopt(source_id, event.incident_id, shared)
            if adopted is not None:
                self.joined += 1
            joined.append(adopted or event)
        return joined

    async def _open_elsewhere(self, event: IncidentEvent, radius_m: float) -> IncidentEvent | None:
        location = event.location
        if location is None:
            return None
        try:
            near = await asyncio.to_thread(
                self._store.open_incidents_near, event.category, location.lat, location.lon, radius_m
            )
        except StoreError as exc:
            # The store is down: the event goes as it is (and waits in the writer's backlog); never lose it.
            log.warning("could not look for a shared incident: %s", exc, extra={"incident_id": event.incident_id})
            return None
        return next((r.last_event for r in near if r.incident_id != event.incident_id), None)
