"""Per-caller limits of the gRPC edge: open calls per client, and frames per second per source.

Both answer with a message that names the setting to change; the servicers turn it into RESOURCE_EXHAUSTED
(a whole call) or a RATE_LIMITED frame error (one frame).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from detector.api.auth import ANONYMOUS_ADMIN, current_principal


def client_key(peer: str) -> str:
    """Who a call counts against: the token's name, or the peer's address (without the port) when auth is off.

    Example: ``client_key("ipv4:10.0.0.7:51234") == "ipv4:10.0.0.7"`` while auth is off.
    """
    principal = current_principal()
    if principal is not ANONYMOUS_ADMIN:
        return f"token:{principal.name}"
    kind, _, address = peer.partition(":")
    if kind in ("ipv4", "ipv6") and ":" in address:
        return f"{kind}:{address.rsplit(':', 1)[0]}"
    return peer


class CallSlots:
    """At most ``limit`` open calls of one kind per client."""

    def __init__(self, limit: int, what: str, setting: str) -> None:
        self._limit = limit
        self._what = what
        self._setting = setting
        self._open: Counter[str] = Counter()

    def acquire(self, client: str) -> str | None:
        """None when the call may go on (call ``release`` when it ends); otherwise the refusal message."""
        if self._open[client] >= self._limit:
            return (
                f"{client} already has {self._open[client]} open {self._what}, the most allowed "
                f"({self._setting}); close one or raise the limit"
            )
        self._open[client] += 1
        return None

    def release(self, client: str) -> None:
        self._open[client] -= 1
        if self._open[client] <= 0:
            del self._open[client]

    def open_calls(self, client: str) -> int:
        return self._open[client]


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
