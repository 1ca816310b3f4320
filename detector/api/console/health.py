"""Stream health and the latest frame of each source, as a frame-pipeline observer.

``SourceHealth.observe`` is called by the pipeline for every frame (see ``FramePipeline`` observers): it counts
and keeps a reference to the newest decoded frame and its detections, nothing more. The annotated JPEG is drawn
only when someone asks for it (``annotated_jpeg``, run in a thread), and kept until a newer frame arrives.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2

from detector.annotate import annotate
from detector.api.console.settings import ConsoleSettings
from detector.pipeline.pipeline import FrameOutcome
from detector.rules.config import FixedCamera, RulesConfig
from detector.types import Detections, Frame

Polygon = Sequence[tuple[float, float]]


@dataclass
class _Latest:
    frame: Frame
    detections: Detections
    jpeg: bytes | None = None  # drawn on first request


@dataclass
class _Source:
    received: int = 0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    dropped: int = 0
    gaps: int = 0
    gap_seconds: float = 0.0
    last_capture_ts: float | None = None
    last_seen_wall: float | None = None
    frame_size: tuple[int, int] | None = None
    detections: int = 0
    captures: deque[float] = field(default_factory=deque)


class SourceHealth:
    """Per-source counters (frames received, ok, errors by code, LIVE drops, gaps), the capture time of the
    newest frame, frames per second over the last ``health_window_s`` of capture time, and the newest frame."""

    def __init__(self, settings: ConsoleSettings, rules: RulesConfig, class_names: Sequence[str]) -> None:
        self._settings = settings
        self._rules = rules
        self._class_names = list(class_names)
        self._sources: dict[str, _Source] = {}
        self._latest: dict[str, _Latest] = {}

    def observe(self, frame: Frame | None, outcome: FrameOutcome) -> None:
        """The pipeline observer: cheap, on the pipeline's task."""
        s = self._sources.setdefault(outcome.source_id, _Source())
        s.received += 1
        s.last_seen_wall = time.time()
        s.dropped = max(s.dropped, outcome.frames_dropped_total)
        if outcome.error is not None:
            s.errors[outcome.error.code.value] += 1
            return
        s.ok += 1
        if frame is None:
            return
        ts = frame.capture_ts
        if s.last_capture_ts is not None and ts - s.last_capture_ts > self._settings.gap_s:
            s.gaps += 1
            s.gap_seconds += ts - s.last_capture_ts
        if s.last_capture_ts is None or ts >= s.last_capture_ts:
            s.last_capture_ts = ts
            s.captures.append(ts)
            while s.captures and s.captures[0] < ts - self._settings.health_window_s:
                s.captures.popleft()
            s.frame_size = (frame.width, frame.height)
            detections = outcome.detections if outcome.detections is not None else Detections()
            s.detections = len(detections)
            self._latest[outcome.source_id] = _Latest(frame, detections)

    def snapshot(self) -> list[dict[str, Any]]:
        """Every source seen, as JSON-ready dicts, sorted by id."""
        now = time.time()
        return [self._describe(source_id, s, now) for source_id, s in sorted(self._sources.items())]

    def _describe(self, source_id: str, s: _Source, now: float) -> dict[str, Any]:
        window = list(s.captures)
        span = window[-1] - window[0] if len(window) > 1 else 0.0
        return {
            "source_id": source_id,
            "frames_received": s.received,
            "frames_ok": s.ok,
            "frames_dropped": s.dropped,
            "errors": dict(sorted(s.errors.items())),
            "gaps": s.gaps,
            "gap_seconds": round(s.gap_seconds, 3),
            "last_capture_ts": s.last_capture_ts,
            "seen_ago_s": None if s.last_seen_wall is None else round(max(0.0, now - s.last_seen_wall), 3),
            "fps": round((len(window) - 1) / span, 3) if span > 0 else None,
            "frame_size": list(s.frame_size) if s.frame_size else None,
            "detections": s.detections,
            "has_frame": source_id in self._latest,
        }

    def latest(self, source_id: str) -> _Latest | None:
        return self._latest.get(source_id)

    def annotated_jpeg(self, latest: _Latest) -> bytes:
        """The frame with its boxes, labels, track ids and (fixed cameras) zones, as JPEG. Run it in a thread."""
        if latest.jpeg is not None:
            return latest.jpeg
        frame = latest.frame
        image = annotate(frame.full_image(), latest.detections, self._class_names, self._zones(frame))
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        latest.jpeg = encoded.tobytes()
        return latest.jpeg

    def _zones(self, frame: Frame) -> list[tuple[str, Polygon]]:
        rules = self._rules.for_source(frame.source_id)
        if not isinstance(rules, FixedCamera):
            return []
        sx = sy = 1.0
        if rules.zones_frame_size_px is not None:
            sx = frame.width / rules.zones_frame_size_px[0]
            sy = frame.height / rules.zones_frame_size_px[1]
        return [(zone.id, [(x * sx, y * sy) for x, y in zone.polygon_px]) for zone in rules.zones]
