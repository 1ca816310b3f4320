"""Settings of the operator console (``console`` section); the console listens on ``server.http_port``."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator


class BasemapBounds(BaseModel):
    """The lat/lon a basemap image spans: its top edge is ``north``, its left edge ``west``."""

    model_config = ConfigDict(extra="forbid")

    south: float = Field(ge=-90, le=90, description="Latitude of the image's bottom edge.")
    west: float = Field(ge=-180, le=180, description="Longitude of the image's left edge.")
    north: float = Field(ge=-90, le=90, description="Latitude of the image's top edge.")
    east: float = Field(ge=-180, le=180, description="Longitude of the image's right edge.")

    @model_validator(mode="after")
    def _ordered(self) -> BasemapBounds:
        if not (self.south < self.north and self.west < self.east):
            raise ValueError("basemap bounds need south < north and west < east")
        return self


class ConsoleSettings(BaseModel):
    """The read-only operator console: live incidents, evidence, a map, stream health, latest frames."""

    model_config = ConfigDict(extra="forbid")

    poll_interval_s: float = Field(2.0, gt=0, le=60, description="How often the page refreshes, in seconds.")
    basemap_image: Path | None = Field(
        None,
        description="A map image (PNG/JPEG) drawn under the incidents, spanning basemap_bounds "
        "(plain equirectangular). None with no tile_url: a plain vector map.",
    )
    basemap_bounds: BasemapBounds | None = Field(None, description="{south, west, north, east} of basemap_image.")
    tile_url: str | None = Field(
        None,
        description="Web-Mercator tiles from the city's own tile server, e.g. "
        "'http://tiles.city.lan/{z}/{x}/{y}.png' (fetched by the browser; nothing from the internet by default).",
    )
    tile_attribution: str = Field("", description="Text shown under a tiled map.")
    gap_s: float = Field(5.0, gt=0, description="Capture time between two frames of a source counted as a gap.")
    health_window_s: float = Field(10.0, gt=0, description="Capture time over which a source's frames/s is taken.")

    @model_validator(mode="after")
    def _basemap(self) -> ConsoleSettings:
        if self.basemap_image is not None and self.tile_url is not None:
            raise ValueError("set basemap_image or tile_url, not both")
        if self.basemap_image is not None:
            if self.basemap_bounds is None:
                raise ValueError("basemap_image needs basemap_bounds {south, west, north, east}")
            if not self.basemap_image.is_file():
                raise ValueError(f"basemap_image {self.basemap_image} is not a file")
        if self.tile_url is not None and not all(k in self.tile_url for k in ("{z}", "{x}", "{y}")):
            raise ValueError("tile_url must contain {z}, {x} and {y}")
        return self

    @property
    def basemap_kind(self) -> str:
        if self.basemap_image is not None:
            return "image"
        return "tiles" if self.tile_url is not None else "vector"
