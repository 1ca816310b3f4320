"""Prometheus metrics of one service instance, on a registry of its own (no globals)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from detector.pipeline.pipeline import FrameOutcome
    from detector.types import Frame

_LATENCY_BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServiceMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.frames_received = Counter(
            "streetwatch_frames_received", "Frames received, by source.", ["source"], registry=r
        )
        self.frames_decoded = Counter(
            "streetwatch_frames_decoded",
            "Frames decoded and queued for the model, by source.",
            ["source"],
            registry=r,
        )
        self.frames_processed = Counter(
            "streetwatch_frames_processed", "Frames run through the model, by source.", ["source"], registry=r
        )
        self.frames_dropped = Counter(
            "streetwatch_frames_dropped",
            "LIVE frames dropped because the source was behind.",
            ["source"],
            registry=r,
        )
        self.frame_errors = Counter("streetwatch_frame_errors", "Frames rejected, by error code.", ["code"], registry=r)
        self.batch_size = Histogram(
            "streetwatch_batch_size", "Frames per executed batch.", buckets=_BATCH_BUCKETS, registry=r
        )
        self.batch_sources = Histogram(
            "streetwatch_batch_sources",
            "Distinct sources per executed batch.",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.stage_ms = Histogram(
            "streetwatch_stage_ms",
            "Milliseconds per stage (decode, queue, preprocess, forward, postprocess).",
            ["stage"],
            buckets=_LATENCY_BUCKETS_MS,
            registry=r,
        )
        self.queue_depth = Gauge("streetwatch_queue_depth", "Frames waiting in the inference queues.", registry=r)
        self.active_streams = Gauge("streetwatch_active_streams", "Open StreamFrames calls.", registry=r)
        self.device_memory = Gauge(
            "streetwatch_device_memory_bytes",
            "Memory the model holds on its GPU (absent on the CPU).",
            registry=r,
        )
        self.serving = Gauge("streetwatch_serving", "1 when the health status is SERVING.", registry=r)
        self.store_writable = Gauge(
            "streetwatch_store_writable", "1 while the event log takes appends (0: disk full or damaged).", registry=r
        )
        self.store_backlog = Gauge(
            "streetwatch_store_backlog_events", "Incident events waiting in memory for the store.", registry=r
        )
        self.events_lost = Gauge(
            "streetwatch_events_lost", "Incident events dropped because the in-memory backlog was full.", registry=r
        )
        self.store_problems = Gauge(
            "streetwatch_store_integrity_problems", "Problems the last store integrity check found.", registry=r
        )
        self.source_gaps = Counter(
            "streetwatch_source_gaps",
            "Frames that came after a gap in their source (the camera reconnected at its gateway).",
            ["source_id"],
            registry=r,
        )
        self.source_gap_seconds = Counter(
            "streetwatch_source_gap_seconds", "Capture time lost to source gaps, in seconds.", ["source_id"], registry=r
        )
        self.sources_down = Gauge(
            "streetwatch_sources_down",
            "Sources with an open SOURCE_DOWN incident (no frame for ingest.stale_after_s).",
            registry=r,
        )
        self.sources_degraded = Gauge(
            "streetwatch_sources_degraded",
            "Sources with an open SOURCE_DEGRADED incident (frame rate below their expected_fps).",
            registry=r,
        )
        self.candidates_suppressed = Counter(
            "streetwatch_candidates_suppressed",
            "Sightings kept from opening a candidate because they stand where the case system rejected an incident "
            "of their category (rules.rejected_suppress_s), by category.",
            ["category"],
            registry=r,
        )
        self.calls_refused = Counter(
            "streetwatch_calls_refused", "Calls refused by authentication, by status code.", ["code"], registry=r
        )
        self.incidents_opened = Counter(
            "streetwatch_incidents_opened",
            "Incidents opened (or reopened), by category and source, as written to the event log.",
            ["category", "source"],
            registry=r,
        )
        self.incidents_cleared = Counter(
            "streetwatch_incidents_cleared",
            "Incidents cleared, by category and source, as written to the event log.",
            ["category", "source"],
            registry=r,
        )
        self.detections = Counter(
            "streetwatch_detections",
            "Objects the model found in answered frames, by class.",
            ["class_name"],
            registry=r,
        )
        self.model_info = Gauge(
            "streetwatch_model_info",
            "The loaded model (value 1): name, version, backend, device and input size as labels.",
            ["name", "version", "backend", "device", "imgsz"],
            registry=r,
        )
        # Delivery (detector/delivery/): per connector.
        self.delivery_delivered = Counter(
            "streetwatch_delivery_delivered", "Events delivered, by connector.", ["connector"], registry=r
        )
        self.delivery_failed = Counter(
            "streetwatch_delivery_failed", "Failed delivery attempts, by connector.", ["connector"], registry=r
        )
        self.delivery_retries = Counter(
            "streetwatch_delivery_retries", "Deliveries tried again, by connector.", ["connector"], registry=r
        )
        self.delivery_dead_letters = Counter(
            "streetwatch_delivery_dead_letters", "Events dead-lettered, by connector.", ["connector"], registry=r
        )
        self.delivery_lag_events = Gauge(
            "streetwatch_delivery_lag_events",
            "Events in the log not yet delivered, by connector.",
            ["connector"],
            registry=r,
        )
        self.delivery_lag_seconds = Gauge(
            "streetwatch_delivery_lag_seconds",
            "Age of the oldest undelivered event (now minus its last_seen_ts), by connector.",
            ["connector"],
            registry=r,
        )

    def set_model(self, name: str, version: str, backend: str, device: str, imgsz: int) -> None:
        self.model_info.clear()
        self.model_info.labels(name, version, backend, device, str(imgsz)).set(1)

    def frame_observer(self, class_names: Sequence[str]) -> Callable[[Frame | None, FrameOutcome], None]:
        """A pipeline observer counting each answered frame's detections by class and its incident events."""

        def observe(frame: Frame | None, outcome: FrameOutcome) -> None:
            if outcome.detections is not None and len(outcome.detections):
                for class_id in outcome.detections.class_id.tolist():
                    name = class_names[class_id] if 0 <= class_id < len(class_names) else str(class_id)
                    self.detections.labels(name).inc()
            for event in outcome.events:
                if event.type.value == "OPENED":
                    self.incidents_opened.labels(event.category, event.source_id[:64]).inc()
                elif event.type.value == "CLEARED":
                    self.incidents_cleared.labels(event.category, event.source_id[:64]).inc()

        return observe
