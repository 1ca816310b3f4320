"""Windowed frames/s, latency percentiles and batch counts: the arithmetic every contender is measured with."""

from __future__ import annotations

import math

import pytest

from detector.bench.stats import Completion, Latency, Window, batch_histogram, frames_per_s, in_window, steady_window


def make_completions(*spans: tuple[float, float], batch: int = 1) -> list[Completion]:
    return [Completion(sent, done, batch) for sent, done in spans]


@pytest.mark.parametrize(
    ("spans", "window", "expected_fps"),
    [
        ([(0.0, 1.5), (1.0, 2.0), (2.0, 3.0), (3.0, 4.5)], Window(1.0, 3.0), 1.5),  # 3 answers in 2 s
        ([(0.0, 0.5)], Window(1.0, 3.0), 0.0),  # answered before the window
        ([(0.0, 2.0)] * 10, Window(1.0, 3.0), 5.0),  # in flight when the window opened: still counted
        ([(0.0, 2.0)], Window(2.0, 2.0), 0.0),  # empty window
    ],
)
def test_frames_per_s_counts_answers_inside_the_window(spans, window, expected_fps):
    assert frames_per_s(make_completions(*spans), window) == pytest.approx(expected_fps)


def test_latency_describes_the_frames_answered_inside_the_window():
    completions = make_completions((0.0, 0.1), (1.0, 1.2), (2.0, 2.4), (2.9, 3.5))
    kept = in_window(completions, Window(1.0, 3.0))
    assert [c.sent_s for c in kept] == [1.0, 2.0]
    latency = Latency.of([c.latency_ms for c in kept])
    assert latency.p50_ms == pytest.approx(300.0)
    assert latency.mean_ms == pytest.approx(300.0)
    assert latency.p50_ms <= latency.p95_ms <= latency.p99_ms <= 400.0


def test_latency_of_nothing_is_nan_not_an_error():
    assert math.isnan(Latency.of([]).p95_ms)


@pytest.mark.parametrize(
    ("started", "warmup", "stopped", "last_answer", "expected"),
    [
        (0.0, 2.0, 10.0, 12.0, (2.0, 10.0)),  # normal: warm-up to stop
        (0.0, 2.0, 10.0, 8.0, (2.0, 8.0)),  # frame-capped streams finished early
        (0.0, 5.0, 10.0, 4.0, (0.0, 4.0)),  # ended within its warm-up: the whole run
    ],
)
def test_steady_window(started, warmup, stopped, last_answer, expected):
    window = steady_window(make_completions((started, last_answer)), started, warmup, stopped)
    assert (window.start_s, window.end_s) == pytest.approx(expected)


def test_batch_histogram_counts_batches_not_frames():
    frames = make_completions(*[(0.0, 1.0)] * 8, batch=4) + make_completions(*[(0.0, 1.0)] * 3, batch=1)
    assert batch_histogram(frames) == {1: 3, 4: 2}
