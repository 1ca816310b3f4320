"""Frames/s over a measurement window and latency percentiles, the same way for every contender."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Completion:
    """One frame that came back: when it was sent and answered (perf_counter seconds), its batch size, and the
    stage times its answer reported (the service's own timings; the baseline measures its decode and predict)."""

    sent_s: float
    done_s: float
    batch_size: int = 1
    decode_ms: float = 0.0
    queued_ms: float = 0.0
    inference_ms: float = 0.0  # of the whole batch this frame was in

    @property
    def latency_ms(self) -> float:
        return (self.done_s - self.sent_s) * 1e3


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float

    @classmethod
    def of(cls, values_ms: Sequence[float]) -> Latency:
        if not values_ms:
            return cls(float("nan"), float("nan"), float("nan"), float("nan"))
        arr = np.asarray(values_ms, dtype=np.float64)
        p50, p95, p99 = np.percentile(arr, [50, 95, 99])
        return cls(float(p50), float(p95), float(p99), float(arr.mean()))


@dataclass(frozen=True)
class Window:
    """The steady-state part of a run: from the end of the warm-up to the end of the load."""

    start_s: float
    end_s: float

    @property
    def length_s(self) -> float:
        return max(self.end_s - self.start_s, 0.0)


def in_window(completions: Sequence[Completion], window: Window) -> list[Completion]:
    """Frames answered inside the window: the ones its frames/s counts and its latencies describe."""
    return [c for c in completions if window.start_s <= c.done_s <= window.end_s]


def frames_per_s(completions: Sequence[Completion], window: Window) -> float:
    """Frames answered inside the window per second of window.

    Counted by answer time, so frames that were in flight when the window opened count too: under steady load
    that is what the service delivers per second, whatever its queue depth.
    """
    return len(in_window(completions, window)) / window.length_s if window.length_s > 0 else 0.0


def steady_window(completions: Sequence[Completion], started_s: float, warmup_s: float, stopped_s: float) -> Window:
    """From ``warmup_s`` after the start to when the load stopped (or the last answer, if that came first).

    A run that ended within its warm-up (a frame-capped tiny run) is measured whole, so that it still reports
    numbers.
    """
    end = min(stopped_s, max((c.done_s for c in completions), default=stopped_s))
    start = started_s + warmup_s
    return Window(start if start < end else started_s, end)


def batch_histogram(completions: Sequence[Completion]) -> dict[int, int]:
    """Executed batches by size. Each frame reports its batch's size, so a batch of b shows up b times."""
    frames_by_size: dict[int, int] = {}
    for c in completions:
        frames_by_size[c.batch_size] = frames_by_size.get(c.batch_size, 0) + 1
    return {size: max(round(n / size), 1) for size, n in sorted(frames_by_size.items())}
