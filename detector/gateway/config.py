"""Gateway settings: a YAML file (optional), then flags. One pydantic model with ``extra="forbid"``, so an unknown
or invalid key is rejected with a message that names it.

```yaml
target: 10.0.0.2:50051        # the StreetWatch service
fps: 5                        # default cap per camera, frames per second of capture time (0 = every frame)
cameras:
  - id: market-north
    url: rtsp://user:secret@10.1.0.7:554/stream1
  - id: gate-2
    url: http://10.1.0.8/video.mjpg
    fps: 2
  - id: test-loop
    url: /srv/clips/market.mp4  # a file is paced to its own clock, as a camera would send it
    loop: true
```
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from detector.api.flags import split_targets
from detector.gateway.backoff import BackoffSettings
from detector.settings_text import ConfigError, describe_invalid, read_yaml_mapping

MAX_CAMERA_ID_LEN = 128  # the service's limit on a source id


class GatewayConfigError(ConfigError):
    """The settings are missing, unknown or invalid; the message names the key and where it came from."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CameraConfig(_Section):
    id: str = Field(description="Source id at the service (printable, at most 128 characters).")
    url: str = Field(description="Anything PyAV opens: rtsp://, http(s)://, a file path or file: URL.")
    fps: float | None = Field(None, ge=0, description="Frame-rate cap for this camera; default: the gateway's fps.")
    options: dict[str, str] = Field(
        default_factory=dict,
        description="FFmpeg options for this camera (e.g. rtsp_transport: udp); rtsp:// uses TCP unless set here.",
    )
    pace: bool | None = Field(
        None, description="Send frames at the stream's own clock (default: yes for files, no for live streams)."
    )
    loop: bool = Field(False, description="A file starts again at its end instead of ending the camera.")

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        if not value or len(value) > MAX_CAMERA_ID_LEN or not value.isprintable():
            raise ValueError(f"a camera id must be printable and 1 to {MAX_CAMERA_ID_LEN} characters, got {value!r}")
        return value

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a camera url must not be empty")
        return value


def is_file_url(url: str) -> bool:
    """A path or ``file:`` URL (ends; may be paced or looped), as opposed to a live stream (reconnects)."""
    return "://" not in url or url.startswith("file:")


class GatewayConfig(_Section):
    target: str = Field(
        "127.0.0.1:50051",
        description="The service's address, host:port; several, comma-separated, are replicas of a cluster: the "
        "gateway follows a source's owner and fails over to the next when one is unavailable.",
    )
    fps: float = Field(5.0, ge=0, description="Default frame-rate cap per camera, per second of capture time; 0 = all.")
    jpeg_quality: int = Field(85, ge=1, le=100, description="JPEG quality of the frames sent.")
    queue_frames: int = Field(
        8, ge=1, description="Frames per camera waiting for the service; past this the oldest is dropped (LIVE)."
    )
    max_in_flight: int = Field(32, ge=1, description="Frames sent and not yet answered, all cameras together.")
    max_age_s: float = Field(
        5.0, gt=0, description="A frame read longer ago than this is not sent, nor resent after a service restart."
    )
    answer_timeout_s: float = Field(
        15.0, gt=0, description="With frames in flight and no answer for this long, the call is dropped and redone."
    )
    drain_s: float = Field(5.0, ge=0, description="On exit, how long the frames still queued may take to be answered.")
    open_timeout_s: float = Field(10.0, gt=0, description="Seconds to open a camera before it counts as failed.")
    read_timeout_s: float = Field(5.0, gt=0, description="Seconds without data before a camera counts as dropped.")
    camera_reconnect: BackoffSettings = Field(
        default_factory=BackoffSettings, description="Backoff between tries to reopen a camera."
    )
    service_reconnect: BackoffSettings = Field(
        default_factory=lambda: BackoffSettings(initial_s=0.2, max_s=10.0),
        description="Backoff between tries to reach the service again.",
    )
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus /metrics HTTP port; 0 = off.")
    metrics_host: str = Field("127.0.0.1", description="Address the metrics port listens on.")
    cameras: list[CameraConfig] = Field(default_factory=list, description="The cameras to pull.")

    @field_validator("target")
    @classmethod
    def _some_target(cls, value: str) -> str:
        if not split_targets([value]):
            raise ValueError("target names no address: give host:port (several comma-separated for a cluster)")
        return value

    @model_validator(mode="after")
    def _unique_ids(self) -> GatewayConfig:
        ids = [c.id for c in self.cameras]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"camera ids must be unique, repeated: {duplicates}")
        return self

    @property
    def targets(self) -> list[str]:
        """``target`` as a list of addresses."""
        return split_targets([self.target])

    def camera_fps(self, camera: CameraConfig) -> float:
        return self.fps if camera.fps is None else camera.fps


def parse_camera_flag(text: str) -> CameraConfig:
    """``ID=URL`` (the URL may hold more ``=``) as a camera; ``GatewayConfigError`` naming the flag otherwise."""
    camera_id, sep, url = text.partition("=")
    if not sep:
        raise GatewayConfigError(f"--camera expects ID=URL, got {text!r}")
    try:
        return CameraConfig(id=camera_id.strip(), url=url.strip())
    except ValidationError as exc:
        raise GatewayConfigError(f"--camera {text!r}: {describe_invalid(exc, CameraConfig)}") from None


def load_gateway_config(
    path: Path | None = None,
    cameras: Sequence[str] = (),
    overrides: dict[str, Any] | None = None,
) -> GatewayConfig:
    """The YAML file (if any), plus ``--camera`` flags (appended), plus top-level ``overrides`` (flags that were
    given, e.g. ``{"target": ...}``); validated."""
    data: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}
    if path is not None:
        try:
            data = read_yaml_mapping(path, "gateway config")
        except ConfigError as exc:
            raise GatewayConfigError(str(exc)) from exc.__cause__
        origins.update({(str(key),): f"gateway config {path}" for key in data})
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    data.update(given)
    origins.update({(key,): f"--{key.replace('_', '-')}" for key in given})
    flagged = [parse_camera_flag(c).model_dump(exclude_defaults=True) for c in cameras]
    if flagged:
        listed = data.get("cameras") or []
        if not isinstance(listed, list):
            raise GatewayConfigError("cameras: expected a list of {id, url, ...}")
        data["cameras"] = [*listed, *flagged]
        origins.update({("cameras", str(len(listed) + i)): f"--camera {c}" for i, c in enumerate(cameras)})
    try:
        config = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        raise GatewayConfigError(describe_invalid(exc, GatewayConfig, origins)) from None
    if not config.cameras:
        raise GatewayConfigError("no camera: give --camera ID=URL (repeatable) or a config file with cameras")
    return config
