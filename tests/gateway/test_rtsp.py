"""The gateway against a real RTSP server on loopback (GStreamer's, serving a rendered H.264 clip) and the real
in-process service: the camera server is restarted mid-stream (a reconnect, counted, and the gap reaches the
service in ``Frame.gap_before_s``), then the service is restarted on its port (the gateway reconnects; every
frame read ends in exactly one bucket)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from detector.config import ServiceConfig
from detector.gateway.config import GatewayConfig
from detector.gateway.gateway import Gateway
from detector.gateway.summary import GatewaySummary
from detector.server import start_service
from tests.conftest import run
from tests.gateway.conftest import Received, first_copies, max_per_second, until
from tests.gateway.media import RtspServer, free_port, rtsp_server_missing

CAM = "cam-rtsp"


@pytest.fixture
def rtsp_server(clip: Path) -> Iterator[RtspServer]:
    if (reason := rtsp_server_missing()) is not None:
        pytest.skip(reason)
    server = RtspServer(clip, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_a_camera_server_restart_and_a_service_restart_mid_stream(
    rtsp_server: RtspServer, blob_service_config: Callable[[int], ServiceConfig], received: list[Received]
) -> None:
    began = time.time()

    def of_service(n: int) -> list[Received]:
        return [f for f in received if f.source_id == CAM and f.service == n]

    async def go() -> tuple[GatewaySummary, CollectorRegistry, float | None]:
        first = await start_service(blob_service_config(0))
        port = first.port
        config = GatewayConfig.model_validate(
            {
                "target": f"127.0.0.1:{port}",
                "fps": 5,
                "cameras": [{"id": CAM, "url": rtsp_server.url}],
                "camera_reconnect": {"initial_s": 0.2, "max_s": 1.0},
                "service_reconnect": {"initial_s": 0.1, "max_s": 0.5},
                "open_timeout_s": 5,
                "read_timeout_s": 3,
            }
        )
        gateway = Gateway(config)
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop))
        second = None
        try:
            await until(lambda: len(of_service(1)) >= 10, "10 frames from the RTSP camera at the service")
            # The camera's server goes away and comes back on the same port.
            await asyncio.to_thread(rtsp_server.stop)
            await until(lambda: gateway.summary().cameras[0].disconnects >= 1, "the gateway to see the drop")
            await asyncio.to_thread(rtsp_server.start)
            await until(lambda: any(f.gap_before_s > 0 for f in received), "a frame with gap_before_s")
            resumed_at = max(f.seq for f in received if f.gap_before_s > 0)
            await until(lambda: max(f.seq for f in received) >= resumed_at + 5, "5 frames after the gap")
            # The service goes away and a new one starts on the same port.
            await first.stop(grace_s=0.5)
            second = await start_service(blob_service_config(port))
            await until(lambda: len(of_service(2)) >= 10, "10 frames at the restarted service")
            stop.set()
            service_gaps = first.metrics.registry.get_sample_value("streetwatch_source_gaps_total", {"source_id": CAM})
            return await asyncio.wait_for(task, 30), gateway.metrics.registry, service_gaps
        finally:
            stop.set()
            await asyncio.gather(task, return_exceptions=True)
            await first.stop(0)
            if second is not None:
                await second.stop(1)

    summary, registry, service_gaps = run(go())
    print(summary.text())
    cam = summary.cameras[0]

    # Every frame read is in exactly one bucket; every frame sent was answered, given up or left at exit.
    assert cam.frames_read == sum(cam.bucket_counts().values()), cam.bucket_counts()
    assert cam.frames_sent == cam.answered_ok + cam.answered_error + cam.dropped_unanswered + cam.unanswered_at_exit
    assert summary.balanced() and summary.error is None
    assert cam.answered_ok > 0 and "OUT_OF_ORDER" not in cam.answered_errors

    # The camera restart: one drop, one reconnect, and the service saw the gap once, on the first frame after it.
    assert (cam.disconnects, cam.reconnects) == (1, 1)
    gapped = {f.seq: f.gap_before_s for f in received if f.gap_before_s > 0}
    assert len(gapped) == 1, gapped
    ((seq, gap),) = gapped.items()
    assert gap == pytest.approx(cam.gap_s, abs=1e-6) and gap > 0
    assert service_gaps == 1, "the service counted the gap (streetwatch_source_gaps)"
    frames = first_copies(received, CAM)
    before = [f for f in frames if f.seq < seq]
    after = next(f for f in frames if f.seq == seq)
    assert after.capture_ts - before[-1].capture_ts >= gap - 1e-6, "the gap is capture time between two frames"
    metric = registry.get_sample_value
    assert metric("streetwatch_gateway_camera_reconnects_total", {"camera": CAM}) == 1
    assert metric("streetwatch_gateway_camera_disconnects_total", {"camera": CAM}) == 1
    assert metric("streetwatch_gateway_camera_gap_seconds_total", {"camera": CAM}) == pytest.approx(gap)
    assert metric("streetwatch_gateway_camera_up", {"camera": CAM}) == 0, "down once the gateway stopped"

    # The service restart: a new call to the new service, the stream went on.
    assert summary.service_reconnects >= 1 and summary.service_calls >= 2
    assert of_service(2), "the restarted service got frames"
    for code, n in summary.service_failures.items():
        assert metric("streetwatch_gateway_service_reconnects_total", {"code": code}) == n
    for bucket, count in cam.bucket_counts().items():
        assert (metric("streetwatch_gateway_frames_total", {"camera": CAM, "outcome": bucket}) or 0) == count, bucket

    # Capture times: seconds on the wall clock (not frame counts), increasing, at most 5 a second of capture time.
    times = [f.capture_ts for f in frames]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert began - 5 < times[0] and times[-1] < time.time() + 5
    assert max_per_second(times) <= 6
