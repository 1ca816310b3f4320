"""The delivery runner: one asyncio task per connector, each a durable consumer (``delivery:<name>``) of the
event log.

A task follows the log from its committed offset (``follow_events``: reads in threads, wakes on appends, never
holds up ingest), skips the events its filter does not want (the offset still moves past them), and delivers the
rest in log order, one at a time, committing the offset after each success. A retryable failure is retried
forever with exponential backoff and full jitter (at least the peer's Retry-After); the event is never skipped.
A permanent failure is tried ``max_attempts`` times, then the event goes to the dead letters with its reason and
the task moves on. A connector failing for longer than ``unhealthy_after_s`` reports itself unhealthy.
Lag: ``lag_events`` is the log's end minus the committed offset; ``lag_s`` is now minus ``last_seen_ts`` of the
oldest matching event not yet delivered (the one being retried), 0 when caught up.

Each connector is bound to the store (``Connector.bind``) when the runner is built; its ``background()`` (e.g.
Open311 status polling) runs beside its task once it started, and is cancelled on stop.

Dead letters are kept in the store (``IncidentStore.add_dead_letter``), under the connector's consumer name.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from detector.delivery.base import (
    Connector,
    ConnectorContext,
    EvidenceUrl,
    PermanentError,
    RetryableError,
    build_connector,
)
from detector.delivery.settings import DeliveryFilter, DeliverySettings, validate_connector
from detector.gateway.backoff import Backoff
from detector.store.base import IncidentStore
from detector.store.errors import StoreClosed, StoreError
from detector.store.follow import follow_events
from detector.types import IncidentEvent

if TYPE_CHECKING:
    from detector.metrics import ServiceMetrics

log = logging.getLogger(__name__)

HealthCallback = Callable[[str, bool], Awaitable[None]]
MAX_RETRY_AFTER_S = 3600.0


def consumer_name(connector: str) -> str:
    return f"delivery:{connector}"


@dataclass
class ConnectorStatus:
    name: str
    kind: str
    offset: int = 0
    lag_events: int = 0
    lag_s: float = 0.0
    last_error: str = ""
    attempts: int = 0
    delivered: int = 0
    dead_letters: int = 0
    healthy: bool = True
    failing_since: float | None = None


class _Task:
    def __init__(self, connector: Connector, event_filter: DeliveryFilter) -> None:
        self.connector = connector
        self.filter = event_filter
        self.status = ConnectorStatus(connector.name, connector.kind)
        # last_seen_ts of the oldest matching event not yet delivered (the one in hand, being retried), None when
        # not known yet; lag_s is measured from it.
        self.oldest_ts: float | None = None
        self.background: asyncio.Task[None] | None = None  # connector.background(), once it started


class DeliveryRunner:
    """Runs the connectors of a ``delivery`` section against ``store``; ``start()`` then ``stop()``."""

    def __init__(
        self,
        store: IncidentStore,
        settings: DeliverySettings,
        metrics: ServiceMetrics | None = None,
        on_health: HealthCallback | None = None,
        connectors: Sequence[tuple[Connector, DeliveryFilter]] | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        evidence_url: EvidenceUrl | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._metrics = metrics
        self._on_health = on_health
        self._clock = clock
        self._rng = rng or random.Random()
        if connectors is None:
            connectors = [(build_connector(entry), validate_connector(entry).filter) for entry in settings.connectors]
        self._tasks = [_Task(connector, event_filter) for connector, event_filter in connectors]
        for task in self._tasks:
            task.connector.bind(ConnectorContext(store, evidence_url))
        self._running: list[asyncio.Task[None]] = []
        self._log_end = 0
        self._unsubscribe: Callable[[], None] | None = None

    def status(self) -> list[ConnectorStatus]:
        now = self._clock()
        for task in self._tasks:
            s = task.status
            s.lag_events = max(0, self._log_end - s.offset)
            if s.lag_events == 0:
                task.oldest_ts = None  # caught up
            s.lag_s = max(0.0, now - task.oldest_ts) if task.oldest_ts is not None else 0.0
        return [task.status for task in self._tasks]

    async def start(self) -> None:
        self._log_end = await asyncio.to_thread(self._store.last_sequence)
        self._unsubscribe = self._store.subscribe_appends(self._appended)
        for task in self._tasks:
            task.status.offset = await asyncio.to_thread(self._store.get_offset, consumer_name(task.connector.name))
            consumer = consumer_name(task.connector.name)
            task.status.dead_letters = len(await asyncio.to_thread(self._store.dead_letters, consumer))
            self._gauges(task)
            self._running.append(asyncio.create_task(self._run(task), name=f"delivery:{task.connector.name}"))

    async def stop(self) -> None:
        """Cancel the tasks (an event being delivered is delivered again after the restart) and close."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        running, self._running = self._running, []
        running += [task.background for task in self._tasks if task.background is not None]
        for t in running:
            t.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        for task in self._tasks:
            try:
                await asyncio.wait_for(task.connector.close(), 5.0)
            except Exception:  # closing is best effort
                log.warning("closing delivery connector %s failed", task.connector.name, exc_info=True)

    def _appended(self, last_sequence: int) -> None:
        self._log_end = max(self._log_end, last_sequence)

    def _gauges(self, task: _Task) -> None:
        if self._metrics is None:
            return
        s = self.status()[self._tasks.index(task)]
        self._metrics.delivery_lag_events.labels(s.name).set(s.lag_events)
        self._metrics.delivery_lag_seconds.labels(s.name).set(s.lag_s)

    async def _run(self, task: _Task) -> None:
        name = task.connector.name
        backoff = Backoff(self._settings.backoff, self._rng)
        try:
            await self._start_connector(task)
            task.background = asyncio.create_task(self._background(task), name=f"delivery:{name}:background")
            while True:
                try:
                    await self._follow(task)
                except StoreClosed:
                    raise
                except StoreError as exc:  # e.g. the disk full on a commit: resume from the committed offset
                    await self._failing(task, f"store: {exc}")
                    await self._sleep(task, backoff.next_delay())
                    consumer = consumer_name(name)
                    task.status.offset = await asyncio.to_thread(self._store.get_offset, consumer)
        except StoreClosed:
            log.info("delivery %s stopped: the store is closed", name)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivery %s failed and stopped", name)
            await self._failing(task, "runner stopped: internal error")
            raise

    async def _background(self, task: _Task) -> None:
        try:
            await task.connector.background()
        except asyncio.CancelledError:
            raise
        except Exception:  # a connector's own loop should not raise; if it does, deliveries go on
            log.exception("delivery %s: background work failed and stopped", task.connector.name)

    async def _follow(self, task: _Task) -> None:
        consumer = consumer_name(task.connector.name)
        events = follow_events(self._store, task.status.offset, batch_size=self._settings.batch_size)
        async for event in events:
            self._log_end = max(self._log_end, event.sequence)  # also appends this process was not told of
            if task.filter.matches(event):
                # Kept after the delivery until the next matching event replaces it or the task catches up.
                task.oldest_ts = event.last_seen_ts
                await self._deliver(task, event)
                task.status.offset = await asyncio.to_thread(self._store.commit_offset, consumer, event.sequence)
            else:
                task.status.offset = event.sequence
                # Skipped events are committed lazily: at the end of what is in the log now.
                if event.sequence >= self._log_end:
                    await asyncio.to_thread(self._store.commit_offset, consumer, event.sequence)
            self._gauges(task)

    async def _start_connector(self, task: _Task) -> None:
        backoff = Backoff(self._settings.backoff, self._rng)
        while True:
            try:
                await task.connector.start()
                return
            except Exception as exc:  # a broker down at start is retried like a failed delivery
                reason = exc.reason if isinstance(exc, RetryableError) else f"start: {type(exc).__name__}: {exc}"
                await self._failing(task, reason)
                if task.oldest_ts is None:
                    task.oldest_ts = await self._oldest_waiting_ts(task)
                await self._sleep(task, backoff.next_delay())

    async def _oldest_waiting_ts(self, task: _Task) -> float | None:
        """last_seen_ts of the first matching event after the offset (within one batch), for lag_s while no
        event is in hand (the connector cannot start)."""
        try:
            batch = await asyncio.to_thread(self._store.read_events, task.status.offset, self._settings.batch_size)
        except StoreError:
            return None
        return next((event.last_seen_ts for event in batch if task.filter.matches(event)), None)

    async def _deliver(self, task: _Task, event: IncidentEvent) -> None:
        name = task.connector.name
        backoff = Backoff(self._settings.backoff, self._rng)
        permanent = 0
        task.status.attempts = 0
        while True:
            task.status.attempts += 1
            try:
                await task.connector.deliver(event)
            except RetryableError as exc:
                await self._failing(task, exc.reason)
                delay = backoff.next_delay()
                if exc.retry_after_s is not None:
                    delay = max(delay, min(exc.retry_after_s, MAX_RETRY_AFTER_S))
                self._count_retry(name, exc.reason)
                await self._sleep(task, delay)
                continue
            except PermanentError as exc:
                permanent += 1
                await self._failing(task, exc.reason)
                if permanent >= self._settings.max_attempts:
                    await self._dead_letter(task, event, exc.reason)
                    await self._recovered(task)
                    return
                self._count_retry(name, exc.reason)
                await self._sleep(task, backoff.next_delay())
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a connector bug must not lose the event: retried
                log.exception("delivery connector %s raised unexpectedly", name)
                await self._failing(task, f"{type(exc).__name__}: {exc}")
                self._count_retry(name, type(exc).__name__)
                await self._sleep(task, backoff.next_delay())
                continue
            task.status.delivered += 1
            if self._metrics is not None:
                self._metrics.delivery_delivered.labels(name).inc()
            await self._recovered(task)
            return

    def _count_retry(self, name: str, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.delivery_retries.labels(name).inc()

    async def _dead_letter(self, task: _Task, event: IncidentEvent, reason: str) -> None:
        attempts = task.status.attempts
        consumer = consumer_name(task.connector.name)
        await asyncio.to_thread(self._store.add_dead_letter, consumer, event.sequence, event.event_id, reason, attempts)
        task.status.dead_letters += 1
        log.error(
            "delivery %s dead-lettered event #%d: %s",
            task.connector.name,
            event.sequence,
            reason,
            extra={"event_id": event.event_id, "attempts": attempts},
        )
        if self._metrics is not None:
            self._metrics.delivery_dead_letters.labels(task.connector.name).inc()

    async def _failing(self, task: _Task, reason: str) -> None:
        s = task.status
        s.last_error = reason
        if s.failing_since is None:
            s.failing_since = self._clock()
        log.warning("delivery %s failed: %s", s.name, reason, extra={"attempts": s.attempts})
        if self._metrics is not None:
            self._metrics.delivery_failed.labels(s.name).inc()
        await self._check_health(task)

    async def _recovered(self, task: _Task) -> None:
        s = task.status
        s.failing_since = None
        if not s.healthy:
            s.healthy = True
            log.info("delivery %s recovered", s.name)
            if self._on_health is not None:
                await self._on_health(s.name, True)

    async def _check_health(self, task: _Task) -> None:
        s = task.status
        failing_for = 0.0 if s.failing_since is None else self._clock() - s.failing_since
        if s.healthy and failing_for > self._settings.unhealthy_after_s:
            s.healthy = False
            log.error("delivery %s unhealthy: failing for %.0f s: %s", s.name, failing_for, s.last_error)
            if self._on_health is not None:
                await self._on_health(s.name, False)

    async def _sleep(self, task: _Task, delay: float) -> None:
        """Wait ``delay`` seconds, turning unhealthy on time if the threshold passes meanwhile."""
        s = task.status
        end = time.monotonic() + delay
        if s.healthy and s.failing_since is not None:
            to_threshold = s.failing_since + self._settings.unhealthy_after_s - self._clock()
            if 0 <= to_threshold < delay:
                await asyncio.sleep(to_threshold + 0.001)
                await self._check_health(task)
        remaining = end - time.monotonic()
        if remaining > 0:
            await asyncio.sleep(remaining)
        self._gauges(task)
