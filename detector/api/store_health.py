"""What health and metrics say about the incident store.

``streetwatch.v1.Incidents`` is SERVING only while the service serves, the event log takes appends, and the last
integrity check found the database sound. A damaged evidence file is reported (log, metric) but leaves it
SERVING: the events stand, one photo is lost. Ingest is never held by the store: frames keep their answers while
events wait in memory (see ``detector.incidents.writer``).
"""

from __future__ import annotations

import logging

from grpc_health.v1 import health, health_pb2

from detector.api._gen.streetwatch.v1 import incidents_pb2
from detector.metrics import ServiceMetrics

log = logging.getLogger(__name__)

INCIDENTS_SERVICE = incidents_pb2.DESCRIPTOR.services_by_name["Incidents"].full_name
_EVIDENCE = "evidence:"


class StoreHealth:
    def __init__(self, servicer: health.aio.HealthServicer, metrics: ServiceMetrics) -> None:
        self._servicer = servicer
        self._metrics = metrics
        self._serving = False
        self.writable = True
        self.problems: list[str] = []
        metrics.store_writable.set(1)

    @property
    def sound(self) -> bool:
        """The log takes appends and no problem outside evidence files is known."""
        return self.writable and all(p.startswith(_EVIDENCE) for p in self.problems)

    async def set_serving(self, serving: bool) -> None:
        self._serving = serving
        await self._publish()

    async def set_writable(self, writable: bool) -> None:
        """Called by the incident stage when appends start failing or succeed again."""
        self.writable = writable
        self._metrics.store_writable.set(1 if writable else 0)
        await self._publish()

    async def set_problems(self, problems: list[str]) -> None:
        """The result of an integrity check: logged as an error each time it is not empty."""
        self.problems = list(problems)
        self._metrics.store_problems.set(len(problems))
        if problems:
            log.error(
                "store integrity check found %d problems: %s",
                len(problems),
                "; ".join(problems[:10]),
                extra={"problems": problems},
            )
        await self._publish()

    async def _publish(self) -> None:
        ok = self._serving and self.sound
        status = health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
        await self._servicer.set(INCIDENTS_SERVICE, status)
