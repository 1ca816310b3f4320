"""Confirmation: seen in at least k distinct seconds of the last n seconds (time bins, never frame counts)."""

from __future__ import annotations

import math
from collections import deque


class KOfNSeconds:
    """Counts the one-second bins of capture time with a confident sighting.

    A 30 fps source and a 5 fps source confirm after the same seconds: many frames in one second count once.

    >>> rule = KOfNSeconds(k=3, n_s=5)
    >>> for ts in (0.1, 0.2, 1.5, 2.9):
    ...     rule.observe((0.0, 0.0), ts)
    >>> rule.is_due(2.9), rule.is_due(5.5)
    (True, False)
    """

    def __init__(self, k: int, n_s: int) -> None:
        if not 1 <= k <= n_s:
            raise ValueError(f"need 1 <= k <= n_s, got k={k}, n_s={n_s}")
        self.k = k
        self.n_s = n_s
        self._bins: deque[int] = deque()

    @property
    def name(self) -> str:
        return f"confirm>={self.k}of{self.n_s}s"

    def observe(self, point: tuple[float, float], ts: float) -> None:
        """Record a confident sighting at ``ts`` (``point`` is unused: hazards confirm where they are)."""
        second = math.floor(ts)
        if not self._bins or second > self._bins[-1]:
            self._bins.append(second)

    def seconds_seen(self, now: float) -> int:
        """Distinct seconds with a sighting in the window (now - n_s, now]."""
        oldest = math.floor(now) - self.n_s
        while self._bins and self._bins[0] <= oldest:
            self._bins.popleft()
        return len(self._bins)

    def is_due(self, now: float) -> bool:
        return self.seconds_seen(now) >= self.k


class KOfNSecondsOrPasses:
    """Moving cameras: confirmed within one pass (k of n seconds), or by being seen on ``passes`` passes.

    A drone may cross a stall in a second; seeing it again on a later pass confirms it as well. A sighting more
    than ``pass_gap_s`` after the previous one starts a new pass.

    >>> rule = KOfNSecondsOrPasses(k=2, n_s=3, passes=2, pass_gap_s=20.0)
    >>> rule.observe((0.0, 0.0), 0.2); rule.is_due(0.2)
    False
    >>> rule.observe((0.0, 0.0), 95.0); rule.is_due(95.0)
    True
    """

    def __init__(self, k: int, n_s: int, passes: int | None, pass_gap_s: float) -> None:
        self._window = KOfNSeconds(k, n_s)
        self.passes_needed = passes
        self.pass_gap_s = pass_gap_s
        self.passes = 0
        self._last_ts = -math.inf

    @property
    def name(self) -> str:
        window = self._window.name
        return window if self.passes_needed is None else f"{window}|{self.passes_needed}passes"

    def observe(self, point: tuple[float, float], ts: float) -> None:
        self._window.observe(point, ts)
        if ts - self._last_ts > self.pass_gap_s:
            self.passes += 1
        self._last_ts = max(self._last_ts, ts)

    def is_due(self, now: float) -> bool:
        by_passes = self.passes_needed is not None and self.passes >= self.passes_needed
        return self._window.is_due(now) or by_passes
