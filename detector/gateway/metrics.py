"""Prometheus metrics of one gateway, on a registry of its own (no globals), served by ``--metrics-port``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.frames_read = Counter(
            "streetwatch_gateway_frames_read", "Frames decoded from each camera.", ["camera"], registry=r
        )
        self.frames = Counter(
            "streetwatch_gateway_frames",
            "Where each frame read ended, by camera and outcome (answered_ok, answered_error, dropped_fps_cap, "
            "dropped_backlog, dropped_unanswered, unsent_at_exit, unanswered_at_exit).",
            ["camera", "outcome"],
            registry=r,
        )
        self.frame_errors = Counter(
            "streetwatch_gateway_frame_errors",
            "Frames the service answered with an error, by camera and error code.",
            ["camera", "code"],
            registry=r,
        )
        self.frames_sent = Counter(
            "streetwatch_gateway_frames_sent", "Frames sent to the service (once each).", ["camera"], registry=r
        )
        self.frames_resent = Counter(
            "streetwatch_gateway_frames_resent",
            "Frames sent again on a new call after the service call failed before answering them.",
            ["camera"],
            registry=r,
        )
        self.camera_up = Gauge(
            "streetwatch_gateway_camera_up", "1 while the camera's stream is open.", ["camera"], registry=r
        )
        self.camera_disconnects = Counter(
            "streetwatch_gateway_camera_disconnects",
            "Times a camera's stream failed or ended after delivering frames.",
            ["camera"],
            registry=r,
        )
        self.camera_reconnects = Counter(
            "streetwatch_gateway_camera_reconnects",
            "Times a camera delivered frames again after a drop.",
            ["camera"],
            registry=r,
        )
        self.camera_gap_seconds = Counter(
            "streetwatch_gateway_camera_gap_seconds",
            "Seconds of capture time lost to camera reconnects.",
            ["camera"],
            registry=r,
        )
        self.service_up = Gauge(
            "streetwatch_gateway_service_up", "1 while the StreamFrames call to the service is open.", registry=r
        )
        self.service_reconnects = Counter(
            "streetwatch_gateway_service_reconnects",
            "StreamFrames calls that failed and were redone, by gRPC status code.",
            ["code"],
            registry=r,
        )
        self.in_flight = Gauge("streetwatch_gateway_frames_in_flight", "Frames sent and not yet answered.", registry=r)
        self.queued = Gauge("streetwatch_gateway_frames_queued", "Frames waiting to be sent (or resent).", registry=r)
