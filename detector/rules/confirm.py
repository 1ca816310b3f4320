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
