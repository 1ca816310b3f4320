"""One multi-object tracker per source, driven by capture timestamps.

Why ultralytics' ByteTrack: ultralytics is already our detector dependency and ``lap`` is installed, so it
adds nothing to the lock file. ByteTrack's second association keeps low-score boxes on their tracks (a stall
half hidden by a passer-by), and it needs no appearance model; BoT-SORT's ReID would add a network per source,
and supervision or boxmot would add a dependency for the same algorithm. The rules do not rely on ids alone:
they associate by place, so an id switch costs nothing there.

Time, not frames: ByteTrack ages a lost track in frames (``frame_id - end_frame > track_buffer``). We drive
its ``frame_id`` from the capture timestamp in millisecond ticks and set ``track_buffer`` to
``track_buffer_s`` in ticks, so a lost track lives the same seconds at 5 fps and at 30 fps, and through
dropped frames (LIVE sources drop frames when the service lags), where an EMA of frame intervals would lag
after every change of rate. A tracker's first frame is tick 1, which ByteTrack needs to confirm first-frame
tracks at once; a timestamp at or before the previous one re-anchors one tick later. The Kalman filter still
steps once per update; that only matters for fast movers, not for stalls and potholes.

Cost: importing ``ultralytics.trackers`` imports torch (through ``ultralytics.utils``), a few seconds on first
use. It is imported when the first tracker is built, so importing this package stays light; the tracker itself
never touches torch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import numpy.typing as npt

from detector.tracking.config import TrackerConfig
from detector.types import Detections, FloatArray

_TICK_S = 0.001


class _ByteInput:
    """The part of ultralytics' ``Boxes`` that BYTETracker reads: conf, cls, xywh, len, boolean indexing."""

    def __init__(self, xywh: FloatArray, conf: FloatArray, cls: FloatArray) -> None:
        self.xywh = xywh
        self.conf = conf
        self.cls = cls

    @classmethod
    def from_detections(cls, dets: Detections) -> _ByteInput:
        xyxy = dets.xyxy
        xywh = np.concatenate([(xyxy[:, :2] + xyxy[:, 2:]) / 2.0, xyxy[:, 2:] - xyxy[:, :2]], axis=1)
        return cls(xywh, dets.confidence, dets.class_id.astype(np.float32))

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, keep: npt.NDArray[np.bool_]) -> _ByteInput:
        return _ByteInput(self.xywh[keep], self.conf[keep], self.cls[keep])


def _new_byte_tracker(config: TrackerConfig) -> Any:
    from detector import yolo_env

    yolo_env.prepare()
    from ultralytics.trackers.byte_tracker import BYTETracker

    return BYTETracker(  # type: ignore[no-untyped-call]
        SimpleNamespace(
            track_high_thresh=config.track_high_thresh,
            track_low_thresh=config.track_low_thresh,
            new_track_thresh=config.new_track_thresh,
            track_buffer=round(config.track_buffer_s / _TICK_S),
            match_thresh=config.match_thresh,
            fuse_score=config.fuse_score,
        )
    )


class SourceTracker:
    """Tracks the objects of one source; ids count up from 1 and are not reused while it lives.

    >>> tracker = SourceTracker(TrackerConfig())
    >>> tracked = tracker.update(detections, capture_ts=frame.capture_ts)  # doctest: +SKIP
    """

    def __init__(self, config: TrackerConfig) -> None:
        self.config = config
        self._byte = _new_byte_tracker(config)
        self._anchor: tuple[float, int] | None = None  # (capture_ts, tick) that later ticks count from
        self._last: tuple[float, int] = (float("-inf"), 0)

    def update(self, dets: Detections, capture_ts: float) -> Detections:
        """The same detections, in the same order, with ``track_id`` set (-1: not on a confirmed track)."""
        tick = self._tick(capture_ts)
        self._byte.frame_id = tick - 1  # BYTETracker.update adds one
        rows = np.asarray(self._byte.update(_ByteInput.from_detections(dets)), dtype=np.float64).reshape(-1, 8)
        track_id = np.full(len(dets), -1, dtype=np.int64)
        track_id[rows[:, 7].astype(np.int64)] = rows[:, 4].astype(np.int64)
        return Detections(dets.xyxy, dets.confidence, dets.class_id, track_id)

    def _tick(self, capture_ts: float) -> int:
        last_ts, last_tick = self._last
        if self._anchor is None or capture_ts <= last_ts:
            self._anchor = (capture_ts, last_tick + 1)
        anchor_ts, anchor_tick = self._anchor
        tick = anchor_tick + round((capture_ts - anchor_ts) / _TICK_S)
        self._last = (capture_ts, tick)
        return tick


class TrackerPool:
    """A :class:`SourceTracker` per source_id, made on first use and dropped after ``idle_source_evict_s``.

    Idleness is wall-clock (``clock``), since sources' capture clocks are not comparable with each other.
    """

    def __init__(self, config: TrackerConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._trackers: dict[str, SourceTracker] = {}
        self._last_used: dict[str, float] = {}

    def update(self, source_id: str, dets: Detections, capture_ts: float) -> Detections:
        now = self._clock()
        self._evict_idle(now)
        tracker = self._trackers.get(source_id)
        if tracker is None:
            tracker = self._trackers[source_id] = SourceTracker(self.config)
        self._last_used[source_id] = now
        return tracker.update(dets, capture_ts)

    def drop(self, source_id: str) -> None:
        """Forget a source (e.g. its stream ended); its next frame starts a fresh tracker."""
        self._trackers.pop(source_id, None)
        self._last_used.pop(source_id, None)

    @property
    def source_ids(self) -> list[str]:
        return list(self._trackers)

    def _evict_idle(self, now: float) -> None:
        for source_id, used in list(self._last_used.items()):
            if now - used > self.config.idle_source_evict_s:
                self.drop(source_id)
