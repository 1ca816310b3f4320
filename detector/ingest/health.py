"""Stream health as incident events: a source that stops sending is down, one that sends too slowly is degraded.

:class:`StreamHealth` is a frame-pipeline observer (it sees every answered live frame: its source, its capture
time and the service's wall time when it came) with a :meth:`StreamHealth.check` that the service runs every
``ingest.health_check_interval_s`` (``FramePipeline.check_streams``). Two clocks, on purpose:

- *Down* is "no frame for ``ingest.stale_after_s``": a silent source has no capture time, so this is the
  service's own wall time (a monotonic clock, injected for tests), from the moment its last frame was answered.
- *Degraded* is the frame rate measured on capture timestamps: the frames of the last ``ingest.fps_window_s`` of
  capture time (ending at the newest), divided by the window, below ``expected_fps * degraded_below_fraction``.
  It is judged only once a full window of capture time has passed since the source was first seen (or came
  back), and recovers at ``expected_fps * recovers_at_fraction``.

Every outage is an incident of category ``STREAM_HEALTH`` with a fresh ``incident_id``:

- ``SOURCE_DOWN`` (severity medium: the camera is blind, so street incidents go unseen, but nothing on the street
  is known to be wrong): ``first_seen_ts`` and ``last_seen_ts`` are both the capture time of the last frame
  before the silence (the outage began after it; its wall-clock start is no capture time). ``SOURCE_UP`` on the
  same incident clears it when frames are back: ``last_seen_ts`` is the capture time of the first frame back.
- ``SOURCE_DEGRADED`` (severity low: the source still sees, only less often): ``first_seen_ts`` and
  ``last_seen_ts`` are the capture time of the newest frame when the rate was judged too low; ``SOURCE_UP`` on it
  when the rate has recovered (``last_seen_ts``: the newest frame then).

``rule`` says which it is (``stale>=30s``, ``fps<5``) so that an outage resumed after a restart is recognised
whatever its last event was (:meth:`StreamHealth.restore`). Sources never seen since the start are never
reported down; frames of recorded flights (``SubmitVideo``) are not live and are ignored.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from detector.ingest.config import IngestSettings
from detector.types import STREAM_HEALTH, EventType, IncidentEvent, Severity

if TYPE_CHECKING:
    from detector.pipeline.pipeline import FrameOutcome
    from detector.types import Frame

log = logging.getLogger(__name__)

DOWN_LABEL = "视频信号中断"  # stream down
DEGRADED_LABEL = "视频帧率过低"  # frame rate too low
DOWN_SEVERITY = Severity.MEDIUM
DEGRADED_SEVERITY = Severity.LOW
_DOWN_RULE = "stale"
_DEGRADED_RULE = "fps"


def is_outage(event: IncidentEvent) -> bool:
    """Whether ``event`` belongs to a source-down incident (not a degraded one)."""
    return event.category == STREAM_HEALTH and event.rule.startswith(_DOWN_RULE)


@dataclass
class _Outage:
    """An open STREAM_HEALTH incident: what its SOURCE_UP repeats."""

    incident_id: str
    first_seen_ts: float
    label: str
    severity: Severity
    rule: str


@dataclass
class _Stream:
    last_capture_ts: float | None = None
    last_wall_s: float | None = None  # None: not seen since the service started
    run_start_ts: float | None = None  # capture time of the first frame since first seen or back
    captures: deque[float] = field(default_factory=deque)
    down: _Outage | None = None
    back_ts: float | None = None  # capture time of the first frame after an outage, until SOURCE_UP is sent
    degraded: _Outage | None = None


class StreamHealth:
    """Which sources are down or degraded; ``observe`` feeds it, ``check`` says what changed, as events."""

    def __init__(self, settings: IngestSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._streams: dict[str, _Stream] = {}

    def observe(self, frame: Frame | None, outcome: FrameOutcome) -> None:
        """The pipeline observer: remember the frame's capture time and the wall time now. Cheap."""
        if frame is None or not outcome.ok or outcome.recorded:
            return
        s = self._streams.setdefault(frame.source_id, _Stream())
        s.last_wall_s = self._clock()
        ts = frame.capture_ts
        if s.down is not None and s.back_ts is None:
            s.back_ts = ts  # a new run: the rate is measured afresh, whatever the clock did meanwhile
            s.last_capture_ts = s.run_start_ts = None
            s.captures.clear()
        if s.last_capture_ts is not None and ts < s.last_capture_ts:
            return  # a late frame adds nothing to the rate
        s.last_capture_ts = ts
        if s.run_start_ts is None:
            s.run_start_ts = ts
        s.captures.append(ts)
        while s.captures[0] <= ts - self.settings.fps_window_s:
            s.captures.popleft()

    def restore(self, open_incidents: Iterable[IncidentEvent]) -> None:
        """Resume the outages open before a restart (the last event of each STREAM_HEALTH incident): a source
        still down gets SOURCE_UP on the same incident when its frames return, and no second SOURCE_DOWN."""
        for event in open_incidents:
            if event.category != STREAM_HEALTH:
                continue
            s = self._streams.setdefault(event.source_id, _Stream())
            outage = _Outage(event.incident_id, event.first_seen_ts, event.label, event.severity, event.rule)
            if is_outage(event):
                s.down = outage
            elif event.rule.startswith(_DEGRADED_RULE):
                s.degraded = outage
            else:
                log.warning("stream-health incident %s has an unknown rule %r", event.incident_id, event.rule)

    def forget(self, source_id: str) -> None:
        """Stop watching a source (another replica of a cluster took it over): no SOURCE_DOWN for it from here."""
        self._streams.pop(source_id, None)

    def check(self) -> list[IncidentEvent]:
        """The events due now: SOURCE_UP for outages whose frames came back, SOURCE_DOWN for sources silent for
        ``stale_after_s`` of wall time, SOURCE_DEGRADED / SOURCE_UP for frame rates that crossed their bounds."""
        now_s = self._clock()
        events: list[IncidentEvent] = []
        for source_id, s in self._streams.items():
            if s.down is not None and s.back_ts is not None:
                gap_s = s.back_ts - s.down.first_seen_ts
                note = f"frames are back after {gap_s:.0f} s of capture time"
                events.append(self._event(EventType.SOURCE_UP, source_id, s.down, s.back_ts, note))
                s.down, s.back_ts = None, None
            if s.down is not None:
                continue
            if self._stale(s, now_s):
                assert s.last_capture_ts is not None
                s.down = self._open(DOWN_LABEL, DOWN_SEVERITY, f"{_DOWN_RULE}>={self.settings.stale_after_s:g}s", s)
                note = f"no frame for {self.settings.stale_after_s:g} s"
                events.append(self._event(EventType.SOURCE_DOWN, source_id, s.down, s.last_capture_ts, note))
                continue
            events.extend(self._judge_rate(source_id, s))
        return events

    @property
    def sources_down(self) -> list[str]:
        return sorted(source_id for source_id, s in self._streams.items() if s.down is not None)

    @property
    def sources_degraded(self) -> list[str]:
        return sorted(source_id for source_id, s in self._streams.items() if s.degraded is not None)

    def _stale(self, s: _Stream, now_s: float) -> bool:
        stale_after_s = self.settings.stale_after_s
        if not stale_after_s or s.last_wall_s is None:
            return False
        return now_s - s.last_wall_s >= stale_after_s

    def _judge_rate(self, source_id: str, s: _Stream) -> list[IncidentEvent]:
        expected = self.settings.stream(source_id)
        window_s = self.settings.fps_window_s
        if s.last_capture_ts is None or s.run_start_ts is None:
            return []
        if expected.expected_fps is None:  # e.g. the setting was removed while a source was degraded
            if s.degraded is None:
                return []
            event = self._event(EventType.SOURCE_UP, source_id, s.degraded, s.last_capture_ts, "no expected_fps now")
            s.degraded = None
            return [event]
        if s.last_capture_ts - s.run_start_ts < window_s:
            return []  # not a full window of capture time yet
        fps = len(s.captures) / window_s
        measured = f"{fps:.3g} fps over the last {window_s:g} s, expected {expected.expected_fps:g} fps"
        if s.degraded is None and fps < expected.expected_fps * expected.degraded_below_fraction:
            rule = f"{_DEGRADED_RULE}<{expected.expected_fps * expected.degraded_below_fraction:g}"
            s.degraded = self._open(DEGRADED_LABEL, DEGRADED_SEVERITY, rule, s)
            return [self._event(EventType.SOURCE_DEGRADED, source_id, s.degraded, s.last_capture_ts, measured)]
        if s.degraded is not None and fps >= expected.expected_fps * expected.recovers_at_fraction:
            event = self._event(EventType.SOURCE_UP, source_id, s.degraded, s.last_capture_ts, measured)
            s.degraded = None
            return [event]
        return []

    @staticmethod
    def _open(label: str, severity: Severity, rule: str, s: _Stream) -> _Outage:
        assert s.last_capture_ts is not None
        return _Outage(str(uuid.uuid4()), s.last_capture_ts, label, severity, rule)

    @staticmethod
    def _event(kind: EventType, source_id: str, outage: _Outage, last_seen_ts: float, note: str) -> IncidentEvent:
        return IncidentEvent(
            event_id=str(uuid.uuid4()),
            incident_id=outage.incident_id,
            type=kind,
            category=STREAM_HEALTH,
            case_code="",
            label=outage.label,
            severity=outage.severity,
            confidence=1.0,
            source_id=source_id,
            first_seen_ts=outage.first_seen_ts,
            last_seen_ts=last_seen_ts,
            box_xyxy=(0.0, 0.0, 0.0, 0.0),
            zone_id="",
            rule=outage.rule,
            note=note,
        )
