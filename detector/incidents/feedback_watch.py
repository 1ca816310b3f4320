"""The feedback watcher: the case system's verdicts, read from the event log, taught to the rules.

Every verdict, whoever gave it (``Incidents.UpdateCase``, a connector polling a case system), is a FEEDBACK event
in the log (:func:`detector.incidents.feedback.record_case_update`); the watcher follows the log from its end at
start and hands each FEEDBACK event to :meth:`RulesEngine.apply_verdict` and, when REJECTED, its crop to the
hard-negative folder. At start it first rebuilds the suppressions still in force from the store (the incidents
REJECTED less than ``rules.rejected_suppress_s`` ago, by the wall clock the store recorded each verdict at).

The rules engine is not thread-safe and is stepped by the pipeline on the event loop: the watcher reads the store
in threads but calls ``apply_verdict`` on the loop, with no ``await`` inside it, so a verdict lands between two
frames' rule steps. Verdicts apply a moment after they are logged; an UPDATED the rules raise in that moment is
logged but does not reopen the incident in the store (the store keeps an incident with a closing verdict cleared).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace

from detector.incidents.hard_negatives import HardNegatives
from detector.rules import RulesEngine
from detector.store.base import IncidentStore
from detector.store.errors import StoreClosed, StoreError
from detector.store.follow import follow_events
from detector.types import STREAM_HEALTH, CaseState, EventType, IncidentEvent

log = logging.getLogger(__name__)


class FeedbackWatcher:
    """Started and stopped by the service (``start`` before frames flow, ``stop`` before the store closes)."""

    def __init__(
        self,
        store: IncidentStore,
        rules: RulesEngine,
        hard_negatives: HardNegatives | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._rules = rules
        self._hard_negatives = hard_negatives
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.after_sequence = 0  # every event up to this sequence is handled
        self._progress = asyncio.Condition()
        self._stopping = asyncio.Event()

    async def start(self) -> int:
        """Rebuild the suppressions in force, then follow the log from its current end; returns how many
        REJECTED incidents were rebuilt."""
        since_ts = self._clock() - self._rules.config.rejected_suppress_s
        try:
            self.after_sequence = await asyncio.to_thread(self._store.last_sequence)
            rejected = await asyncio.to_thread(self._store.incidents_with_case_state, CaseState.REJECTED, since_ts)
        except StoreError as exc:  # a damaged store is reported by its health check; the service still serves
            log.error("rejected places not rebuilt: %s", exc)
            rejected = []
        rejected = [record for record in rejected if record.last_event.category != STREAM_HEALTH]
        for record in rejected:
            # The record's last event is its verdict's FEEDBACK event (or one the rules raised just after it).
            verdict = replace(record.last_event, case_state=CaseState.REJECTED)
            self._rules.apply_verdict(verdict, record.case_updated_ts)
            await self._save_hard_negative(verdict, record.case_updated_ts or self._clock())
        log.info("rejected places rebuilt", extra={"rejected": len(rejected), "since_ts": round(since_ts, 3)})
        self._task = asyncio.create_task(self._follow(), name="feedback-watcher")
        return len(rejected)

    async def handled(self, sequence: int) -> None:
        """Return once every event up to ``sequence`` is handled (its verdict, if any, is in the rules)."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.after_sequence >= sequence)

    async def stop(self) -> None:
        """Stop following, after the read in progress (never cancelled while a thread reads the store)."""
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _follow(self) -> None:
        try:
            async for event in follow_events(self._store, self.after_sequence, until=self._stopping):
                if event.type is EventType.FEEDBACK and event.category != STREAM_HEALTH:  # outages are not rules'
                    await self._apply(event)
                async with self._progress:
                    self.after_sequence = event.sequence
                    self._progress.notify_all()
        except StoreClosed:
            return
        except Exception:  # StoreError, or a bug: logged, and the service goes on without learning verdicts
            log.exception("the feedback watcher stopped: verdicts no longer reach the rules until a restart")

    async def _apply(self, event: IncidentEvent) -> None:
        verdict_ts = self._clock()
        self._rules.apply_verdict(event, verdict_ts)  # on the loop, no await: between two frames' rule steps
        log.info(
            "verdict applied",
            extra={"incident_id": event.incident_id, "case_state": str(event.case_state), "sequence": event.sequence},
        )
        if event.case_state is CaseState.REJECTED:
            await self._save_hard_negative(event, verdict_ts)

    async def _save_hard_negative(self, event: IncidentEvent, verdict_ts: float) -> None:
        if self._hard_negatives is None:
            return
        try:
            await asyncio.to_thread(self._hard_negatives.save, event, verdict_ts)
        except (StoreError, OSError, ValueError) as exc:  # the verdict stands; only its training image is lost
            log.warning("hard negative not saved: %s", exc, extra={"incident_id": event.incident_id})
