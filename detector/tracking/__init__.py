"""Per-source multi-object tracking driven by capture timestamps."""

from __future__ import annotations

from detector.tracking.config import TrackerConfig
from detector.tracking.tracker import SourceTracker, TrackerPool

__all__ = ["SourceTracker", "TrackerConfig", "TrackerPool"]
