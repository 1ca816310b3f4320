"""The ``ingest`` section: which sources may send, how frames are decoded and which are too large.

The service config embeds it as it is; the frame pipeline's admission and decode stages take it directly.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from detector.ingest.decode import ImageLimits


class IngestSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decode_threads: int = Field(2, ge=1, le=64, description="Threads decoding JPEG/PNG frames.")
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

    @property
    def limits(self) -> ImageLimits:
        return ImageLimits(self.max_pixels, self.max_side_px)
