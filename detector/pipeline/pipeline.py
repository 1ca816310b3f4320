"""The frame pipeline: every way in (a gRPC stream, a recorded flight, an edge gateway) runs frames through it.

One frame's path, stage by stage, each a constructor argument with one job and one typed value::

    FrameInput --admission--> (allowed, within rate) --decoder--> Frame --core (ingest queues, batcher,
    engine)--> Detections --tracker--> tracked Detections --geo--> GroundFixes --rules--> [IncidentEvent]
    --shared (drones: join another source's incident at the place)--> --evidence--> events with photos
    --writer--> durable event log            => FrameOutcome

``process`` is the one entry point per frame; it returns a :class:`FrameOutcome` (detections, timings, the
error if any, the source's drop count, the events it raised) and never raises for a bad frame; only
``CoreStopped`` (the service is draining) and, in a cluster, ``SourceOwnedElsewhere`` (another replica holds the
source's lease; ``ownership``) escape. Frames of one source may be decoded and inferred
concurrently, so that they share batches; the stages after the model see them in the order ``process`` was
called for that source (:class:`SourceTurns`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from detector.cluster.ownership import SourceOwnership
from detector.geo.stage import GeoStage
from detector.incidents import EventWriter, EvidenceStage, SharedIncidents
from detector.inference.batcher import CoreStopped, FrameDropped, InferenceCore
from detector.ingest.admission import Admission
from detector.ingest.decode import FrameRejected, RejectCode
from detector.ingest.decoder import FrameDecoder
from detector.ingest.frames import FrameInput, Unreadable
from detector.ingest.health import StreamHealth, is_outage
from detector.metrics import ServiceMetrics
from detector.pipeline.order import SourceTurns, in_order
from detector.rules import RulesEngine
from detector.store.errors import StoreError
from detector.tracking import TrackerPool
from detector.types import STREAM_HEALTH, Detections, EventType, Frame, GroundFixes, IncidentEvent

T = TypeVar("T")
log = logging.getLogger(__name__)

Observer = Callable[["Frame | None", "FrameOutcome"], None]
"""Called with every frame's outcome (and the decoded frame, None when it never decoded), in the pipeline's
task, after the later stages ran: keep it cheap (copy a reference, count), hand heavy work to a thread."""


@dataclass(frozen=True)
class FrameTimings:
    """Milliseconds in each part of one frame's trip, and the size of the batch it ran in."""

    decode_ms: float
    queued_ms: float
    inference_ms: float
    batch_size: int
    after_model_ms: float  # tracking, geo, rules, evidence and the event log


@dataclass(frozen=True)
class FrameError:
    code: RejectCode
    message: str


@dataclass
class FrameOutcome:
    """What became of one frame: either ``error`` is set, or ``detections`` (tracked) and ``timings`` are."""

    source_id: str
    seq: int
    frames_dropped_total: int = 0  # LIVE frames of this source dropped so far
    error: FrameError | None = None
    detections: Detections | None = None
    fixes: GroundFixes | None = None
    image_size: tuple[int, int] | None = None  # (width, height)
    timings: FrameTimings | None = None
    events: list[IncidentEvent] = field(default_factory=list)
    recorded: bool = False  # a recorded flight's frame (SubmitVideo), not a live one

    @property
    def ok(self) -> bool:
        return self.error is None


class FramePipeline:
    def __init__(
        self,
        *,
        admission: Admission,
        decoder: FrameDecoder,
        core: InferenceCore,
        tracker: TrackerPool,
        geo: GeoStage,
        rules: RulesEngine,
        evidence: EvidenceStage,
        writer: EventWriter,
        metrics: ServiceMetrics | None = None,
        observers: Sequence[Observer] = (),
        stream_health: StreamHealth | None = None,
        ownership: SourceOwnership | None = None,
        shared: SharedIncidents | None = None,
    ) -> None:
        self.admission = admission
        self.decoder = decoder
        self.core = core
        self.tracker = tracker
        self.geo = geo
        self.rules = rules
        self.evidence = evidence
        self.writer = writer
        self.shared = shared  # None: a drone's new incident is not checked against other sources' ones
        self.metrics = metrics or ServiceMetrics()
        self.stream_health = stream_health  # observes every frame; check_streams turns it into events
        self.observers = [*([stream_health.observe] if stream_health is not None else []), *observers]
        self.ownership = ownership  # None: a single service, every source is its own
        self._turns = SourceTurns()

    @property
    def class_names(self) -> list[str]:
        return self.core.engine.class_names

    async def process(self, item: FrameInput | Unreadable) -> FrameOutcome:
        """Run one frame through every stage. Raises only ``CoreStopped`` (draining or stopped) and
        ``SourceOwnedElsewhere`` (a cluster: another replica holds the source)."""
        source_id = item.source_id
        m = self.metrics
        m.frames_received.labels(source_id[:64]).inc()
        if isinstance(item, Unreadable):
            return self._rejected(item.source_id, item.seq, item.error)
        ticket = self._turns.ticket(source_id)
        try:
            try:
                if not (isinstance(item, FrameInput) and item.recorded):
                    self.admission.rate(source_id)
                self.admission.source(source_id)
                await self.claim(source_id)
                frame, decode_ms = await self.decoder.decode(item)
            except FrameRejected as exc:
                return self._rejected(source_id, item.seq, exc)
            m.frames_decoded.labels(source_id[:64]).inc()
            if item.gap_before_s > 0:
                self._gap(source_id, item)
            try:
                inference = await self.core.submit(frame, item.mode)
            except FrameDropped as exc:
                return self._rejected(source_id, item.seq, FrameRejected(RejectCode.DROPPED, str(exc)))
            except CoreStopped:
                raise
            except Exception as exc:  # the model failing on one batch must not end the stream
                log.exception("inference failed", extra={"source_id": source_id, "seq": item.seq})
                error = FrameRejected(RejectCode.INTERNAL, f"inference failed: {exc}")
                return self._rejected(source_id, item.seq, error)
            m.frames_processed.labels(source_id[:64]).inc()
            m.stage_ms.labels("decode").observe(decode_ms)
            m.stage_ms.labels("queue").observe(inference.queued_ms)
            await self._turns.wait(source_id, ticket)
            if self.ownership is not None and self.ownership.take_resume(source_id):
                await self._resume(source_id)
            started = time.perf_counter()
            tracked, fixes, events = await _uncancelled(self._after_model(frame, inference.detections))
            timings = FrameTimings(
                decode_ms,
                inference.queued_ms,
                inference.timings.total_ms,
                inference.batch_size,
                (time.perf_counter() - started) * 1e3,
            )
            outcome = FrameOutcome(
                source_id,
                item.seq,
                self.core.dropped_total(source_id),
                detections=tracked,
                fixes=fixes,
                image_size=(frame.width, frame.height),
                timings=timings,
                events=events,
                recorded=item.recorded,
            )
            self._observe(frame, outcome)
            return outcome
        finally:
            self._turns.done(source_id, ticket)

    async def stream(
        self, items: AsyncIterator[FrameInput | Unreadable], max_inflight: int
    ) -> AsyncIterator[FrameOutcome]:
        """Outcomes of a stream's frames, in the order they came, up to ``max_inflight`` in the pipeline at once.

        A frame whose ``seq`` is not after the last one of its source on this stream is refused (OUT_OF_ORDER).
        """
        last_seq: dict[str, int] = {}

        async def one(item: FrameInput | Unreadable) -> FrameOutcome:
            previous = last_seq.get(item.source_id)
            if previous is not None and item.seq <= previous:
                error = FrameRejected(
                    RejectCode.OUT_OF_ORDER,
                    f"seq {item.seq} is not after {previous}, the last frame of {item.source_id!r} on this stream",
                )
                return self._rejected(item.source_id, item.seq, error)
            last_seq[item.source_id] = item.seq
            return await self.process(item)

        async for outcome in in_order(items, one, max_inflight):
            # Read as it is answered, so that the count a stream sees never goes down.
            outcome.frames_dropped_total = self.core.dropped_total(outcome.source_id)
            yield outcome

    def restore(self) -> int:
        """Continue the incidents that were open when the service last stopped; returns how many. The rules take
        theirs; the stream-health monitor takes the STREAM_HEALTH ones (sources down or degraded)."""
        open_incidents = [record.last_event for record in self.writer.store.open_incidents()]
        self._continue(open_incidents)
        return len(open_incidents)

    async def claim(self, source_id: str) -> None:
        """In a cluster, take (or check) this replica's lease on the source; ``SourceOwnedElsewhere`` when another
        replica holds it. Nothing without ``ownership``."""
        if self.ownership is not None:
            await self.ownership.claim(source_id)

    def forget(self, source_id: str) -> None:
        """Drop what this replica knew of a source (its lease was lost: another replica goes on with it)."""
        self.rules.forget(source_id)
        self.tracker.drop(source_id)
        if self.stream_health is not None:
            self.stream_health.forget(source_id)

    async def _resume(self, source_id: str) -> None:
        """The source's lease was just taken: continue its open incidents as the store has them now (written by
        whichever replica held it before), in place of anything this replica knew of it."""
        try:
            records = await asyncio.to_thread(self.writer.store.open_incidents)
        except StoreError as exc:  # as at start-up: incidents not resumed are opened afresh when seen again
            log.error("cannot resume the source's open incidents: %s", exc, extra={"source_id": source_id})
            return
        open_incidents = [record.last_event for record in records if record.last_event.source_id == source_id]
        self.forget(source_id)
        self._continue(open_incidents)
        log.info("source taken over", extra={"source_id": source_id, "open_incidents": len(open_incidents)})

    def _continue(self, open_incidents: list[IncidentEvent]) -> None:
        self.rules.restore(open_incidents)
        if self.stream_health is not None:
            self.stream_health.restore(e for e in open_incidents if e.category == STREAM_HEALTH)

    async def check_streams(self) -> list[IncidentEvent]:
        """Stream health now (the service calls it every ``ingest.health_check_interval_s``): SOURCE_DOWN,
        SOURCE_DEGRADED and SOURCE_UP events, each SOURCE_DOWN followed by an UPDATED for every open incident of
        that source ("source down since ..."), and a SOURCE_UP of an outage by one for those still open ("source
        back at ..."); all appended to the event log like the rules' own. Returns them."""
        if self.stream_health is None:
            return []
        events: list[IncidentEvent] = []
        for change in self.stream_health.check():
            events.append(change)
            if change.type is EventType.SOURCE_DOWN:
                events.extend(await self.evidence.carry(self.rules.source_down(change.source_id, change.last_seen_ts)))
            elif change.type is EventType.SOURCE_UP and is_outage(change):
                events.extend(await self.evidence.carry(self.rules.source_back(change.source_id, change.last_seen_ts)))
        if events:
            await self.writer.append(events)
        return events

    async def _after_model(
        self, frame: Frame, detections: Detections
    ) -> tuple[Detections, GroundFixes, list[IncidentEvent]]:
        """Tracker, geo, rules, evidence and the event log, in the source's capture order."""
        tracked = self.tracker.update(frame.source_id, detections, frame.capture_ts)
        fixes = self.geo.locate(frame, tracked)
        events = self.rules.update(frame.source_id, frame.capture_ts, tracked, (frame.width, frame.height), fixes)
        if events and self.shared is not None:
            events = await self.shared.join(frame.source_id, events)
        if events:
            events = await self.evidence.attach(frame, events)
            await self.writer.append(events)
        return tracked, fixes, events

    def _gap(self, source_id: str, item: FrameInput) -> None:
        self.metrics.source_gaps.labels(source_id[:64]).inc()
        self.metrics.source_gap_seconds.labels(source_id[:64]).inc(item.gap_before_s)
        log.warning(
            "source gap: %.1f s of capture time lost before this frame (the source reconnected)",
            item.gap_before_s,
            extra={"source_id": source_id, "seq": item.seq, "gap_s": round(item.gap_before_s, 3)},
        )

    def _observe(self, frame: Frame | None, outcome: FrameOutcome) -> None:
        """Tell the observers (stream health, the console's latest frame); one failing never fails the frame."""
        for observer in self.observers:
            try:
                observer(frame, outcome)
            except Exception:
                log.exception("pipeline observer failed", extra={"source_id": outcome.source_id})

    def _rejected(self, source_id: str, seq: int, exc: FrameRejected) -> FrameOutcome:
        self.metrics.frame_errors.labels(exc.code.value).inc()
        if exc.code is RejectCode.DROPPED:
            self.metrics.frames_dropped.labels(source_id[:64]).inc()
        log.debug("frame rejected", extra={"source_id": source_id, "seq": seq, "code": exc.code.value})
        outcome = FrameOutcome(source_id, seq, self.core.dropped_total(source_id), FrameError(exc.code, exc.message))
        self._observe(None, outcome)
        return outcome


async def _uncancelled(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` to its end even when the caller is cancelled meanwhile (a gateway that drops its stream), then
    let the cancel through. The after-model stage changes the rules' state before it writes the events that
    state produced: cut between the two, an OPENED would be lost and a later CLEARED left without its opening."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
            break
        except asyncio.CancelledError:
            if task.done():  # the work itself was cancelled (the loop is closing): nothing left to finish
                raise
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return result
