"""The per-frame split of the service's time, and which stage the suite names as the bottleneck."""

from __future__ import annotations

import pytest

from detector.bench.breakdown import breakdown, find_bottleneck
from detector.bench.service_load import StageTotals
from detector.bench.stats import Completion


def make_totals(window_s: float, pre: float, forward: float, post: float, batches: int, frames: int) -> StageTotals:
    sums = {"preprocess": pre, "forward": forward, "postprocess": post}
    return StageTotals(window_s, sums, dict.fromkeys(sums, batches), batches, frames)


def test_breakdown_splits_each_frames_latency_into_stages():
    # 10 frames of 100 ms: 5 decode, 20 queue, 60 inference (batch of 2), hence 15 gRPC + other.
    frames = [Completion(0.0, 0.1, 2, decode_ms=5.0, queued_ms=20.0, inference_ms=60.0)] * 10
    # The worker spent 1/6 of its time pre-processing, 2/3 forward, 1/6 post-processing.
    b = breakdown(frames, make_totals(1.0, 50.0, 200.0, 50.0, batches=5, frames=10))
    assert (b.decode_ms, b.queue_ms) == (5.0, 20.0)
    assert (b.preprocess_ms, b.forward_ms, b.postprocess_ms) == pytest.approx((10.0, 40.0, 10.0))
    assert b.grpc_other_ms == pytest.approx(15.0)
    assert b.latency_ms == pytest.approx(100.0)
    assert b.worker_busy == pytest.approx(0.3)
    assert b.worker_ms_per_frame == pytest.approx(30.0)
    assert b.mean_batch == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("busy_ms", "decode_ms", "grpc_ms", "cpu_share", "stage", "words"),
    [
        (950.0, 5.0, 5.0, None, "forward", "busy 95%"),  # saturated worker: its biggest step
        (300.0, 40.0, 5.0, None, "decode", "idle 70%"),  # starved worker: the biggest upstream stage
        (300.0, 5.0, 40.0, None, "grpc+other", "too slowly"),
        (950.0, 5.0, 5.0, 0.97, "forward", "CPU is saturated"),
    ],
)
def test_bottleneck(busy_ms, decode_ms, grpc_ms, cpu_share, stage, words):
    latency_s = (decode_ms + grpc_ms + 30.0) / 1e3
    frames = [Completion(0.0, latency_s, 4, decode_ms=decode_ms, queued_ms=0.0, inference_ms=30.0)] * 4
    totals = make_totals(1.0, busy_ms * 0.1, busy_ms * 0.8, busy_ms * 0.1, batches=1, frames=4)
    found = find_bottleneck(breakdown(frames, totals, cpu_share))
    assert found.stage == stage
    assert words in found.reason
