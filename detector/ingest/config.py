"""The ``ingest`` section: which sources may send, how frames are decoded and which are too large, and when a
source counts as down or degraded (stream health, :mod:`detector.ingest.health`).

The service config embeds it as it is; the frame pipeline's admission, decode and stream-health stages take it
directly. Example of stream health::

    ingest:
      stale_after_s: 30               # no frame for 30 s (service wall time): SOURCE_DOWN
      default_stream: {}              # no frame-rate expectation for sources not listed
      streams:
        cam-7: {expected_fps: 10, degraded_below_fraction: 0.5}   # under 5 fps: SOURCE_DEGRADED
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from detector.ingest.decode import ImageLimits


class StreamExpectation(BaseModel):
    """What frame rate a source is expected to keep; below ``degraded_below_fraction`` of it, it is degraded."""

    model_config = ConfigDict(extra="forbid")

    expected_fps: float | None = Field(
        None,
        gt=0,
        description="Frames per second the source should deliver (capture time); None: no expectation, never "
        "SOURCE_DEGRADED.",
    )
    degraded_below_fraction: float = Field(
        0.5,
        gt=0,
        le=1,
        description="SOURCE_DEGRADED when the measured rate falls below expected_fps times this.",
    )
    recovers_at_fraction: float = Field(
        0.8,
        gt=0,
        le=1,
        description="SOURCE_UP (of a degraded source) once the measured rate is back at expected_fps times this; "
        "at least degraded_below_fraction, so that a rate near the threshold does not flap.",
    )

    @model_validator(mode="after")
    def _verify(self) -> StreamExpectation:
        verify_recovery_above_degradation(self)
        return self


class IngestSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reduced_decode: bool = Field(
        True,
        description="Decode a JPEG at least twice the size the model needs reduced in the DCT domain (1/2, 1/4, "
        "1/8; tiled sources at the scale their tiles need); boxes are mapped back to full-frame pixels and "
        "evidence is cut from the full-resolution JPEG. False: decode every frame whole. Decode threads: the "
        "threads section.",
    )
    decode_device: Literal["cpu", "auto"] = Field(
        "cpu",
        description="Where JPEGs are decoded: auto = on the GPU (nvJPEG, full resolution) when the model runs on "
        "CUDA, else on the CPU; cpu = always on the CPU. PNGs and raw pixels are always decoded on the CPU. "
        "Default cpu until the GPU path has been measured on a GPU (benchmarks/gpu/run.sh compares both).",
    )
    max_pixels: int = Field(
        4096 * 4096, ge=1, description="Largest image accepted (width x height); larger gets IMAGE_TOO_LARGE."
    )
    max_side_px: int = Field(8192, ge=1, description="Largest width or height accepted.")
    max_fps_per_source: float | None = Field(
        None,
        gt=0,
        description="Frames per second accepted per source (wall time); more get RATE_LIMITED. None: no cap.",
    )
    sources: list[str] = Field(
        default_factory=list, description="Allowed source ids; empty allows any (the embedded default)."
    )
    max_video_bytes: int = Field(
        4 * 1024**3, ge=1, description="Largest recorded-flight video SubmitVideo accepts, in bytes."
    )
    max_srt_bytes: int = Field(64 * 1024**2, ge=1, description="Largest .SRT SubmitVideo accepts, in bytes.")
    upload_dir: Path | None = Field(
        None, description="Where SubmitVideo spools uploaded videos while it runs them; None: the system temp dir."
    )

    stale_after_s: float | None = Field(
        30.0,
        ge=0,
        description="A source seen since the start (or down before a restart) that sends no frame for this long, "
        "in the service's wall time, gets a SOURCE_DOWN event; 0 or None: never.",
    )
    health_check_interval_s: float = Field(
        1.0, gt=0, le=60, description="How often stream health is checked, in seconds of wall time."
    )
    fps_window_s: float = Field(
        20.0,
        gt=0,
        le=600,
        description="Capture time over which a source's frame rate is measured against its expected_fps.",
    )
    default_stream: StreamExpectation = Field(
        default_factory=StreamExpectation, description="Frame-rate expectation of sources not listed in 'streams'."
    )
    streams: dict[str, StreamExpectation] = Field(
        default_factory=dict, description="Frame-rate expectation per source_id."
    )

    @model_validator(mode="after")
    def _verify(self) -> IngestSettings:
        verify_streams_allowed(self)
        verify_fps_window(self)
        return self

    @property
    def limits(self) -> ImageLimits:
        return ImageLimits(self.max_pixels, self.max_side_px)

    def stream(self, source_id: str) -> StreamExpectation:
        return self.streams.get(source_id, self.default_stream)


def verify_recovery_above_degradation(expectation: StreamExpectation) -> None:
    if expectation.recovers_at_fraction < expectation.degraded_below_fraction:
        raise ValueError(
            f"recovers_at_fraction {expectation.recovers_at_fraction} is below degraded_below_fraction "
            f"{expectation.degraded_below_fraction}; a source would recover while still degraded"
        )


def verify_streams_allowed(settings: IngestSettings) -> None:
    unknown = sorted(set(settings.streams) - set(settings.sources)) if settings.sources else []
    if unknown:
        raise ValueError(
            f"ingest.streams names {', '.join(unknown)}, not in ingest.sources; add them there or drop them"
        )


def verify_fps_window(settings: IngestSettings) -> None:
    """The window must hold at least two frames at the degraded rate, or every frame would look degraded."""
    for name, expectation in [("default_stream", settings.default_stream), *settings.streams.items()]:
        if expectation.expected_fps is None:
            continue
        threshold_fps = expectation.expected_fps * expectation.degraded_below_fraction
        if settings.fps_window_s * threshold_fps < 2:
            raise ValueError(
                f"ingest.fps_window_s {settings.fps_window_s} s holds fewer than 2 frames at {name}'s degraded "
                f"rate ({threshold_fps:g} fps); make fps_window_s at least {2 / threshold_fps:g} s"
            )
