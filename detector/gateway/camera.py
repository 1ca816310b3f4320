"""One camera: a thread that opens its URL with PyAV, decodes the video, stamps each frame with a capture time,
applies the frame-rate cap, encodes what passes as JPEG, and reconnects with backoff when the stream fails.

Capture time is a wall-clock anchor taken when the connection opens plus the stream's own timestamps (PTS
seconds since its first frame), so that a stream that arrives in bursts (or after a slow probe) still carries the
times its frames were taken, and the cap counts seconds of capture time, never frames. The thread reports what
happens as events (:data:`CameraEvent`) through ``post``, which must be thread-safe.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit, urlunsplit

import av

from detector.api.client import encode_jpeg
from detector.gateway.backoff import Backoff
from detector.gateway.config import CameraConfig, GatewayConfig, is_file_url
from detector.types import ImageArray

log = logging.getLogger("detector.gateway")

DEFAULT_STEP_S = 1 / 25  # frame interval assumed when a stream gives neither timestamps nor a rate


@dataclass(frozen=True)
class Captured:
    """A frame that passed the cap, as JPEG. ``gap_before_s``: capture time lost to a reconnect just before it."""

    camera_id: str
    capture_ts: float
    jpeg: bytes
    gap_before_s: float = 0.0


@dataclass(frozen=True)
class Skipped:
    """A frame read and left out by the frame-rate cap."""

    camera_id: str
    capture_ts: float


@dataclass(frozen=True)
class Connected:
    """The stream opened (``attempt`` 1 is the first try since the camera was last up)."""

    camera_id: str
    attempt: int


@dataclass(frozen=True)
class Lost:
    """The stream failed or ended, or could not be opened; the next try is in ``retry_in_s``. ``was_up``: it had
    delivered frames on this connection (a drop), rather than failing to come up."""

    camera_id: str
    reason: str
    retry_in_s: float
    was_up: bool


@dataclass(frozen=True)
class Resumed:
    """The first frame after a drop: ``gap_s`` seconds of capture time since the last frame before it."""

    camera_id: str
    gap_s: float


@dataclass(frozen=True)
class Finished:
    """The camera will send no more: a file ended (without ``loop``) or could not be read, or it was stopped."""

    camera_id: str
    reason: str


CameraEvent = Captured | Skipped | Connected | Lost | Resumed | Finished


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (for logs and summaries)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


class FpsCap:
    """At most one frame per slot of ``1/fps`` seconds of capture time (slots are fixed on the epoch, so the cap
    needs no reset across reconnects and keeps ``fps`` exactly on average, without aliasing: 25 fps capped to 10
    keeps 10 a second, not 8.3). ``fps`` 0 keeps every frame."""

    def __init__(self, fps: float) -> None:
        self._fps = fps
        self._slot: int | None = None

    def admit(self, capture_ts: float) -> bool:
        if self._fps <= 0:
            return True
        slot = math.floor(capture_ts * self._fps)
        if self._slot is not None and slot <= self._slot:
            return False
        self._slot = slot
        return True


class StreamClock:
    """Seconds since a connection's first frame, from the stream's timestamps.

    A frame without a timestamp is placed one frame interval (``step_s``) after the previous one. A timestamp that
    goes back, or jumps ahead by more than ``max_jump_s`` (a stream discontinuity), is re-referenced so that the
    time goes on one interval after the previous frame.
    """

    def __init__(self, step_s: float, max_jump_s: float = 10.0) -> None:
        self._step = step_s
        self._max_jump = max_jump_s
        self._ref: float | None = None
        self._last: float | None = None

    def seconds(self, pts_s: float | None) -> float:
        expected = 0.0 if self._last is None else self._last + self._step
        if pts_s is None:
            rel = expected
        else:
            if self._ref is None:
                self._ref = pts_s - expected
            rel = pts_s - self._ref
            if self._last is not None and not (self._last < rel <= self._last + self._max_jump):
                log.debug("stream timestamps jumped; re-referenced", extra={"from_s": self._last, "to_s": rel})
                self._ref = pts_s - expected
                rel = expected
        self._last = rel
        return rel


class CameraReader:
    """Pulls one camera in a thread of its own until ``stop()``; see the module docstring."""

    def __init__(self, camera: CameraConfig, config: GatewayConfig, post: Callable[[CameraEvent], None]) -> None:
        self.camera = camera
        self._config = config
        self._post = post
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"camera-{camera.id}", daemon=True)
        self._is_file = is_file_url(camera.url)
        self._pace = self._is_file if camera.pace is None else camera.pace
        self._options = dict(camera.options)
        if camera.url.startswith(("rtsp://", "rtsps://")):
            self._options.setdefault("rtsp_transport", "tcp")
        self._cap = FpsCap(config.camera_fps(camera))
        self._last_ts: float | None = None
        self._dropped = False  # a drop happened since the last frame read
        self._pending_gap = 0.0  # gap not yet carried by a frame (its frame was left out by the cap)
        self._delivered = False  # the current connection gave a frame

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end; it does within ``read_timeout_s`` even when the stream hangs."""
        self._stop.set()

    def join(self, timeout_s: float) -> bool:
        """Wait for the thread; False when it is still running after ``timeout_s``."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        cam = self.camera.id
        backoff = Backoff(self._config.camera_reconnect)
        try:
            while not self._stop.is_set():
                self._delivered = False
                try:
                    self._connection(backoff.failures + 1)
                    reason = "end of file" if self._is_file else "the stream ended"
                except Exception as exc:  # any failure of one connection: report it and try again
                    reason = f"{type(exc).__name__}: {exc}"
                if self._stop.is_set():
                    break
                if self._is_file:
                    if not self._delivered:
                        self._post(Finished(cam, f"cannot read the file: {reason}"))
                        return
                    if not self.camera.loop:
                        self._post(Finished(cam, reason))
                        return
                    continue  # start the file again: not a drop
                if self._delivered:
                    backoff.reset()
                    self._dropped = True
                delay = backoff.next_delay()
                self._post(Lost(cam, reason, delay, self._delivered))
                self._stop.wait(delay)
            self._post(Finished(cam, "stopped"))
        except Exception as exc:  # a bug: end this camera loudly rather than silently
            log.exception("camera thread failed", extra={"camera": cam})
            self._post(Finished(cam, f"camera thread failed: {exc}"))

    def _connection(self, attempt: int) -> None:
        """Open the stream and read it until it ends or fails (raises); ``_delivered`` tells whether it gave a
        frame."""
        cam = self.camera.id
        c = self._config
        anchor_wall, anchor_mono = time.time(), time.monotonic()
        container = av.open(self.camera.url, options=self._options, timeout=(c.open_timeout_s, c.read_timeout_s))
        with container:
            if not container.streams.video:
                raise ValueError("the stream has no video")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            clock = StreamClock(1.0 / float(rate) if rate else DEFAULT_STEP_S)
            self._post(Connected(cam, attempt))
            for frame in container.decode(stream):
                if self._stop.is_set():
                    break
                rel = clock.seconds(frame.time)
                if self._pace and (delay := anchor_mono + rel - time.monotonic()) > 0 and self._stop.wait(delay):
                    break
                ts = anchor_wall + rel
                if self._last_ts is not None and ts <= self._last_ts:
                    ts = self._last_ts + 1e-3  # capture times of one camera always increase
                if self._dropped and self._last_ts is not None:
                    gap = ts - self._last_ts
                    self._pending_gap += gap
                    self._post(Resumed(cam, gap))
                self._dropped = False
                self._last_ts = ts
                self._delivered = True
                if not self._cap.admit(ts):
                    self._post(Skipped(cam, ts))
                    continue
                jpeg = encode_jpeg(cast(ImageArray, frame.to_ndarray(format="bgr24")), c.jpeg_quality)
                self._post(Captured(cam, ts, jpeg, self._pending_gap))
                self._pending_gap = 0.0
