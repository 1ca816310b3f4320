"""Tracker settings. Lifetimes are seconds of capture time, never frames."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TrackerConfig(BaseModel):
    """ByteTrack thresholds plus our time-based lifetimes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    track_high_thresh: float = Field(
        default=0.25,
        gt=0.0,
        le=1.0,
        description="Detections at or above this score join the first association.",
    )
    track_low_thresh: float = Field(
        default=0.1,
        ge=0.0,
        lt=1.0,
        description="Detections above this (and below track_high_thresh) only extend existing tracks.",
    )
    new_track_thresh: float = Field(
        default=0.25,
        gt=0.0,
        le=1.0,
        description="An unmatched detection starts a track at this score or more.",
    )
    match_thresh: float = Field(
        default=0.8,
        gt=0.0,
        le=1.0,
        description="Highest IoU distance (1 - IoU) accepted in the first association.",
    )
    fuse_score: bool = Field(default=True, description="Weigh IoU by detection score in the first association.")
    track_buffer_s: float = Field(
        default=2.0, gt=0.0, description="Seconds a lost track is kept, to be found again under the same id."
    )
    idle_source_evict_s: float = Field(
        default=600.0,
        gt=0.0,
        description="TrackerPool drops a source's tracker after this long without frames.",
    )

    @model_validator(mode="after")
    def _verify(self) -> Self:
        verify_thresholds(self)
        return self


def verify_thresholds(config: TrackerConfig) -> None:
    if config.track_low_thresh >= config.track_high_thresh:
        raise ValueError(
            f"track_low_thresh ({config.track_low_thresh}) must be below track_high_thresh ({config.track_high_thresh})"
        )
