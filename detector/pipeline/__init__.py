"""The frame pipeline: frames in, detections and incident events out, the same for every way in."""

from __future__ import annotations

from detector.pipeline.pipeline import FrameError, FrameOutcome, FramePipeline, FrameTimings

__all__ = ["FrameError", "FrameOutcome", "FramePipeline", "FrameTimings"]
