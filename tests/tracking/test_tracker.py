from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from pydantic import ValidationError

from detector.tracking import SourceTracker, TrackerConfig, TrackerPool
from detector.types import Detections


def dets(*boxes: tuple[float, float, float, float], conf: float = 0.9) -> Detections:
    return Detections(
        np.array(boxes, dtype=np.float32).reshape(-1, 4),
        np.full(len(boxes), conf, dtype=np.float32),
        np.zeros(len(boxes), dtype=np.int64),
    )


def test_importing_the_package_does_not_import_torch() -> None:
    # ultralytics (which imports torch) is loaded when the first tracker is built, not on import.
    code = "import sys, detector.tracking; assert 'torch' not in sys.modules and 'ultralytics' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("fps", [5.0, 30.0])
def test_steadily_moving_box_keeps_one_id(fps: float) -> None:
    tracker = SourceTracker(TrackerConfig())
    ids = set()
    for i in range(int(10 * fps)):
        x = 100.0 + 60.0 * i / fps  # 60 px/s
        ids.add(int(tracker.update(dets((x, 200.0, x + 80.0, 360.0)), i / fps).track_id[0]))  # type: ignore[index]
    assert ids == {1}


def test_output_keeps_order_and_marks_unmatched_low_scores() -> None:
    tracker = SourceTracker(TrackerConfig())
    first = tracker.update(dets((0, 0, 50, 50), (200, 0, 250, 50)), 0.0)
    assert first.track_id is not None and first.track_id.tolist() == [1, 2]
    low = dets((500, 500, 550, 550), (0, 0, 50, 50))
    low.confidence[0] = 0.15
    out = tracker.update(low, 0.2)
    assert out.track_id is not None and out.track_id.tolist() == [-1, 1]
    np.testing.assert_array_equal(out.xyxy, low.xyxy)
    empty = tracker.update(Detections(), 0.4)
    assert empty.track_id is not None and len(empty.track_id) == 0


@pytest.mark.parametrize("fps", [5.0, 30.0])
@pytest.mark.parametrize(("gap_factor", "same_id"), [(0.5, True), (2.0, False)])
def test_lost_track_lifetime_is_seconds_at_any_fps(fps: float, gap_factor: float, same_id: bool) -> None:
    config = TrackerConfig(track_buffer_s=2.0)
    tracker = SourceTracker(config)
    box = dets((300.0, 300.0, 400.0, 500.0))
    ts = 0.0
    for i in range(int(3 * fps)):
        ts = i / fps
        before = tracker.update(box, ts)
    for i in range(1, int(gap_factor * config.track_buffer_s * fps) + 1):
        tracker.update(Detections(), ts + i / fps)
    back_ts = ts + gap_factor * config.track_buffer_s + 1.0 / fps
    after = [tracker.update(box, back_ts + i / fps) for i in range(2)]
    assert before.track_id is not None and after[-1].track_id is not None
    assert bool(after[-1].track_id[0] == before.track_id[0]) is same_id


def test_dropped_frames_do_not_shorten_lifetimes() -> None:
    # 30 fps, then nothing for 1.5 s (frames dropped, not empty): still within track_buffer_s=2.
    tracker = SourceTracker(TrackerConfig(track_buffer_s=2.0))
    box = dets((300.0, 300.0, 400.0, 500.0))
    for i in range(30):
        tracker.update(box, i / 30)
    tracker.update(Detections(), 1.0)
    out = tracker.update(box, 2.5)
    assert out.track_id is not None and out.track_id.tolist() == [1]


def test_timestamps_going_backwards_do_not_break_tracking() -> None:
    tracker = SourceTracker(TrackerConfig())
    box = dets((300.0, 300.0, 400.0, 500.0))
    ids = [int(tracker.update(box, ts).track_id[0]) for ts in (10.0, 10.2, 10.2, 3.0, 3.2)]  # type: ignore[index]
    assert ids == [1, 1, 1, 1, 1]


def test_two_sources_do_not_interfere() -> None:
    pool = TrackerPool(TrackerConfig())
    a_ids, b_ids = [], []
    for i in range(50):
        ts = i * 0.2
        a = pool.update("a", dets((100.0, 100.0, 200.0, 200.0)), ts)
        b_boxes = [(100.0 + 5 * i, 100.0, 200.0 + 5 * i, 200.0)] + ([(600.0, 100.0, 700.0, 200.0)] if i > 10 else [])
        b = pool.update("b", dets(*b_boxes), 1000.0 + ts * 2)  # its own clock
        assert a.track_id is not None and b.track_id is not None
        a_ids.append(int(a.track_id[0]))
        b_ids.extend(b.track_id.tolist())
    assert set(a_ids) == {1}
    assert set(b_ids) == {1, 2, -1} or set(b_ids) == {1, 2}
    assert sorted(pool.source_ids) == ["a", "b"]


def test_idle_sources_are_evicted_by_wall_clock() -> None:
    now = [0.0]
    pool = TrackerPool(TrackerConfig(idle_source_evict_s=60.0), clock=lambda: now[0])
    pool.update("a", dets((0, 0, 10, 10)), 0.0)
    now[0] = 30.0
    pool.update("b", dets((0, 0, 10, 10)), 0.0)
    now[0] = 61.0
    pool.update("b", dets((0, 0, 10, 10)), 0.2)
    assert pool.source_ids == ["b"]
    pool.drop("b")
    assert pool.source_ids == []


def test_config_rejects_low_above_high() -> None:
    with pytest.raises(ValidationError, match=r"track_low_thresh \(0.5\) must be below track_high_thresh"):
        TrackerConfig(track_low_thresh=0.5, track_high_thresh=0.4)
