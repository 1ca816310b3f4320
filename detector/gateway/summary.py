"""What a gateway did, per camera and in total: every frame read from a camera ends in exactly one bucket.

Buckets: ``answered_ok``, ``answered_errors`` (by the service's error code, e.g. ``DROPPED`` when the service
was behind), ``dropped_fps_cap``, ``dropped_backlog`` (never sent: the service was unreachable or slow and the
camera's queue was full, or the frame grew older than ``max_age_s``), ``dropped_unanswered`` (sent, the call
failed before an answer, and too old to send again), ``unsent_at_exit`` and ``unanswered_at_exit``. So
``frames_read`` is their sum, and ``frames_sent`` (each frame once, however often it was resent) is
``answered_ok + answered_error + dropped_unanswered + unanswered_at_exit``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields

from detector.gateway.metrics import GatewayMetrics

BUCKETS = (
    "answered_ok",
    "answered_error",
    "dropped_fps_cap",
    "dropped_backlog",
    "dropped_unanswered",
    "unsent_at_exit",
    "unanswered_at_exit",
)


@dataclass
class CameraSummary:
    camera_id: str
    url: str  # with any password redacted
    frames_read: int = 0
    answered_ok: int = 0
    answered_errors: dict[str, int] = field(default_factory=dict)
    dropped_fps_cap: int = 0
    dropped_backlog: int = 0
    dropped_unanswered: int = 0
    unsent_at_exit: int = 0
    unanswered_at_exit: int = 0
    frames_sent: int = 0
    resends: int = 0
    detections: int = 0
    disconnects: int = 0
    reconnects: int = 0
    gap_s: float = 0.0
    first_capture_ts: float | None = None
    last_capture_ts: float | None = None
    state: str = "starting"  # up, down, finished
    last_error: str = ""

    @property
    def answered_error(self) -> int:
        return sum(self.answered_errors.values())

    def bucket_counts(self) -> dict[str, int]:
        return {name: int(getattr(self, name)) for name in BUCKETS}

    def unaccounted(self) -> int:
        """Frames read that are in no bucket (0 once the gateway has stopped; frames still queued or in flight
        count here while it runs)."""
        return self.frames_read - sum(self.bucket_counts().values())

    def balanced(self) -> bool:
        sent = self.answered_ok + self.answered_error + self.dropped_unanswered + self.unanswered_at_exit
        return self.unaccounted() == 0 and sent == self.frames_sent

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["answered_error"] = self.answered_error
        return out


_SUMMED = [f.name for f in fields(CameraSummary) if f.type in ("int", "float")]


@dataclass
class GatewaySummary:
    target: str
    cameras: list[CameraSummary]
    service_calls: int = 0
    service_reconnects: int = 0
    service_failures: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    error: str | None = None
    stopped_by: str | None = None  # "SIGINT", "SIGTERM", "duration"; None: every camera ended, or an error

    def totals(self) -> CameraSummary:
        return _total(self.cameras)

    def balanced(self) -> bool:
        return all(c.balanced() for c in self.cameras)

    def as_dict(self) -> dict[str, object]:
        total = self.totals().as_dict()
        for key in ("camera_id", "url", "state", "last_error"):
            del total[key]
        return {
            "target": self.target,
            "balanced": self.balanced(),
            "totals": total,
            "cameras": [c.as_dict() for c in self.cameras],
            "service_calls": self.service_calls,
            "service_reconnects": self.service_reconnects,
            "service_failures": dict(self.service_failures),
            "wall_s": self.wall_s,
            "error": self.error,
            "stopped_by": self.stopped_by,
        }

    def text(self) -> str:
        t = self.totals()
        lines = [
            f"gateway to {self.target}: {len(self.cameras)} camera(s) for {self.wall_s:.1f} s"
            + ("" if self.error is None else f"; stopped: {self.error}")
            + ("" if self.stopped_by is None else f"; stopped by {self.stopped_by}"),
            f"  service: {self.service_calls} call(s), {self.service_reconnects} reconnect(s)"
            + (f" ({_counts(self.service_failures)})" if self.service_failures else ""),
        ]
        for c in [*self.cameras, t] if len(self.cameras) > 1 else self.cameras:
            name = "all cameras" if c is t else f"{c.camera_id} ({c.url})"
            lines += [
                f"  {name}: read {c.frames_read}, sent {c.frames_sent} (+{c.resends} resent), "
                f"answered ok {c.answered_ok}, errors: {_counts(c.answered_errors) or 'none'}",
                f"    dropped: fps cap {c.dropped_fps_cap}, backlog {c.dropped_backlog}, unanswered "
                f"{c.dropped_unanswered}; at exit: unsent {c.unsent_at_exit}, unanswered {c.unanswered_at_exit}"
                + ("" if c.balanced() else f"; UNACCOUNTED {c.unaccounted()}"),
                f"    camera: {c.disconnects} drop(s), {c.reconnects} reconnect(s), {c.gap_s:.1f} s lost; "
                f"detections {c.detections}" + (f"; last error: {c.last_error}" if c.last_error else ""),
            ]
        return "\n".join(lines)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def _total(cameras: Iterable[CameraSummary]) -> CameraSummary:
    total = CameraSummary("*", "*")
    errors: dict[str, int] = {}
    for c in cameras:
        for name in _SUMMED:
            setattr(total, name, getattr(total, name) + getattr(c, name))
        for code, n in c.answered_errors.items():
            errors[code] = errors.get(code, 0) + n
        for name, pick in (("first_capture_ts", min), ("last_capture_ts", max)):
            values = [v for v in (getattr(total, name), getattr(c, name)) if v is not None]
            setattr(total, name, pick(values) if values else None)
    total.answered_errors = errors
    return total


class Tally:
    """Counts per camera as frames move through the gateway, and mirrors them into the metrics. Called from the
    gateway's event loop only."""

    def __init__(self, cameras: dict[str, str], metrics: GatewayMetrics) -> None:
        self.cameras = {cid: CameraSummary(cid, url) for cid, url in cameras.items()}
        self._m = metrics

    def _end(self, camera_id: str, bucket: str) -> CameraSummary:
        c = self.cameras[camera_id]
        setattr(c, bucket, getattr(c, bucket) + 1)
        self._m.frames.labels(camera_id, bucket).inc()
        return c

    def read(self, camera_id: str, capture_ts: float) -> None:
        c = self.cameras[camera_id]
        c.frames_read += 1
        if c.first_capture_ts is None:
            c.first_capture_ts = capture_ts
        c.last_capture_ts = capture_ts
        self._m.frames_read.labels(camera_id).inc()

    def fps_capped(self, camera_id: str) -> None:
        self._end(camera_id, "dropped_fps_cap")

    def sent(self, camera_id: str, first: bool) -> None:
        c = self.cameras[camera_id]
        if first:
            c.frames_sent += 1
            self._m.frames_sent.labels(camera_id).inc()
        else:
            c.resends += 1
            self._m.frames_resent.labels(camera_id).inc()

    def answered(self, camera_id: str, error_code: str | None, detections: int) -> None:
        if error_code is None:
            self._end(camera_id, "answered_ok").detections += detections
            return
        c = self.cameras[camera_id]
        c.answered_errors[error_code] = c.answered_errors.get(error_code, 0) + 1
        self._m.frames.labels(camera_id, "answered_error").inc()
        self._m.frame_errors.labels(camera_id, error_code).inc()

    def dropped(self, camera_id: str, was_sent: bool) -> None:
        """A frame given up before an answer: never sent (backlog) or sent and unanswered."""
        self._end(camera_id, "dropped_unanswered" if was_sent else "dropped_backlog")

    def left_at_exit(self, camera_id: str, was_sent: bool) -> None:
        self._end(camera_id, "unanswered_at_exit" if was_sent else "unsent_at_exit")

    def camera_state(self, camera_id: str, state: str, error: str = "") -> None:
        c = self.cameras[camera_id]
        c.state = state
        if error:
            c.last_error = error
        self._m.camera_up.labels(camera_id).set(1 if state == "up" else 0)

    def camera_dropped(self, camera_id: str) -> None:
        self.cameras[camera_id].disconnects += 1
        self._m.camera_disconnects.labels(camera_id).inc()

    def camera_resumed(self, camera_id: str, gap_s: float) -> None:
        c = self.cameras[camera_id]
        c.reconnects += 1
        if math.isfinite(gap_s) and gap_s > 0:
            c.gap_s += gap_s
            self._m.camera_gap_seconds.labels(camera_id).inc(gap_s)
        self._m.camera_reconnects.labels(camera_id).inc()
