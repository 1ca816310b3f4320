"""Dwell: how long an object has stood still, in seconds of capture time."""

from __future__ import annotations

import math

# Capture timestamps are floats: reaching 120 s at 119.99999999999999 rather than 120.0 must not lose a case.
_EPS_S = 1e-6


class DwellClock:
    """Seconds since an object came to rest; moving farther than ``tolerance_px`` from there restarts it.

    >>> clock = DwellClock(dwell_s=120.0, tolerance_px=40.0)
    >>> clock.observe((100.0, 500.0), 0.0); clock.observe((110.0, 505.0), 120.0)
    >>> clock.is_due(120.0)
    True
    """

    def __init__(self, dwell_s: float, tolerance_px: float) -> None:
        self.dwell_s = dwell_s
        self.tolerance_px = tolerance_px
        self._anchor: tuple[float, float] | None = None
        self._since_ts = 0.0

    @property
    def name(self) -> str:
        return f"dwell>={self.dwell_s:g}s"

    def observe(self, point: tuple[float, float], ts: float) -> None:
        """Record where the object's bottom-centre is at ``ts``."""
        if self._anchor is None or math.dist(point, self._anchor) > self.tolerance_px:
            self._anchor = point
            self._since_ts = ts

    def elapsed_s(self, now: float) -> float:
        return 0.0 if self._anchor is None else now - self._since_ts

    def is_due(self, now: float) -> bool:
        return self._anchor is not None and self.elapsed_s(now) >= self.dwell_s - _EPS_S
