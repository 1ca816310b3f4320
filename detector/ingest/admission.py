"""Which frames the pipeline admits: a well-formed source id, a source the settings allow, within its rate.

Refusals are per frame (:class:`FrameRejected` with UNKNOWN_SOURCE, INVALID_FRAME or RATE_LIMITED); the stream
they came on stays open.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from detector.ingest.config import IngestSettings
from detector.ingest.decode import FrameRejected, RejectCode

MAX_SOURCE_ID_LEN = 128


def check_source_id(source_id: str) -> None:
    if not source_id:
        raise FrameRejected(RejectCode.INVALID_FRAME, "source_id is required")
    if len(source_id) > MAX_SOURCE_ID_LEN or not source_id.isprintable():
        raise FrameRejected(
            RejectCode.INVALID_FRAME,
            f"source_id must be printable and at most {MAX_SOURCE_ID_LEN} characters",
        )


class Admission:
    """The ingest section's source allow-list (empty: any) and per-source frame-rate cap (None: none)."""

    def __init__(self, settings: IngestSettings) -> None:
        self.settings = settings
        self._allowed = frozenset(settings.sources)
        fps = settings.max_fps_per_source
        self._rate = None if fps is None else SourceRateLimit(fps)

    def rate(self, source_id: str) -> None:
        """Count the frame against its source's rate; RATE_LIMITED when over it."""
        if self._rate is not None and (refusal := self._rate.admit(source_id)) is not None:
            raise FrameRejected(RejectCode.RATE_LIMITED, refusal)

    def source(self, source_id: str) -> None:
        """A well-formed id of a configured source; INVALID_FRAME or UNKNOWN_SOURCE otherwise."""
        check_source_id(source_id)
        if self._allowed and source_id not in self._allowed:
            raise FrameRejected(RejectCode.UNKNOWN_SOURCE, f"source {source_id!r} is not configured")


@dataclass
class _Bucket:
    tokens: float
    updated_s: float


class SourceRateLimit:
    """A token bucket per source: ``fps`` frames per second of wall time, bursts of up to ``max(1, fps)``.

    The bucket is per source across all streams, so a second gateway sending the same source cannot double the
    rate. Buckets of sources idle long enough to be full again are forgotten, so the table stays small.
    """

    def __init__(self, fps: float, clock: Callable[[], float] = time.monotonic, max_sources: int = 10_000) -> None:
        self._fps = fps
        self._burst = max(1.0, fps)
        self._clock = clock
        self._max_sources = max_sources
        self._buckets: dict[str, _Bucket] = {}

    def admit(self, source_id: str) -> str | None:
        """None when the frame is within the rate (and is counted); otherwise the refusal message."""
        now = self._clock()
        bucket = self._buckets.get(source_id)
        if bucket is None:
            if len(self._buckets) >= self._max_sources:
                self._forget_full(now)
            bucket = self._buckets[source_id] = _Bucket(self._burst, now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated_s) * self._fps)
        bucket.updated_s = now
        if bucket.tokens < 1.0:
            return (
                f"source {source_id!r} sends more than {self._fps:g} frames per second "
                "(ingest.max_fps_per_source); lower the camera's frame rate"
            )
        bucket.tokens -= 1.0
        return None

    def _forget_full(self, now: float) -> None:
        refill_s = self._burst / self._fps
        for source_id in [s for s, b in self._buckets.items() if now - b.updated_s >= refill_s]:
            del self._buckets[source_id]
