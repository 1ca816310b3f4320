"""The gateway against the real in-process service, with file cameras (no RTSP server needed): capture times from
the stream's timestamps, the fps cap, a service restart mid-stream, and `detector gateway --json`."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import signal
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from detector.cli import main
from detector.config import ServiceConfig
from detector.gateway.config import GatewayConfig
from detector.gateway.gateway import Gateway
from detector.gateway.summary import GatewaySummary
from detector.server import start_service
from tests.conftest import LoopThread, run
from tests.gateway.conftest import Received, first_copies, gateway_process, max_per_second, until
from tests.gateway.media import free_port


def _config(target: str, cameras: list[dict[str, object]], **settings: object) -> GatewayConfig:
    return GatewayConfig.model_validate(
        {
            "target": target,
            "cameras": cameras,
            "service_reconnect": {"initial_s": 0.05, "max_s": 0.5},
            "camera_reconnect": {"initial_s": 0.1, "max_s": 1.0},
            **settings,
        }
    )


def _assert_balanced(summary: GatewaySummary) -> None:
    for c in summary.cameras:
        buckets = c.bucket_counts()
        assert c.frames_read == sum(buckets.values()), f"{c.camera_id}: a frame in no bucket: {buckets}"
        assert c.frames_sent == c.answered_ok + c.answered_error + c.dropped_unanswered + c.unanswered_at_exit
    assert summary.balanced()


def test_file_cameras_stream_with_capture_times_from_the_video_clock_and_the_fps_cap(
    short_clip: Path, blob_service_config: Callable[[int], ServiceConfig], received: list[Received]
) -> None:
    cameras = [{"id": "cam-capped", "url": str(short_clip), "fps": 4}, {"id": "cam-all", "url": str(short_clip)}]

    async def go() -> GatewaySummary:
        service = await start_service(blob_service_config(0))
        try:
            config = _config(f"127.0.0.1:{service.port}", cameras, fps=0)
            # Both files end after 2 s of video: the gateway stops by itself, after the last answers.
            return await asyncio.wait_for(Gateway(config).run(asyncio.Event()), 60)
        finally:
            await service.stop(1)

    summary = run(go())
    print(summary.text())
    _assert_balanced(summary)
    capped, every = summary.cameras
    for c in (capped, every):
        assert c.frames_read == 20, "every frame of the 2 s clip at 10 frames/s is read"
        assert c.dropped_backlog == c.dropped_unanswered == c.unsent_at_exit == c.unanswered_at_exit == 0
        assert (c.reconnects, c.disconnects, c.state) == (0, 0, "finished")
    assert every.frames_sent == 20 and every.dropped_fps_cap == 0
    assert 8 <= capped.frames_sent <= 9 and capped.dropped_fps_cap == 20 - capped.frames_sent
    assert every.answered_ok > 0 and every.detections > 0, "the red square is a stall to the colour-blob engine"

    all_frames = first_copies(received, "cam-all")
    assert [f.seq for f in all_frames] == list(range(1, 21))
    steps = [b.capture_ts - a.capture_ts for a, b in itertools.pairwise(all_frames)]
    assert steps == pytest.approx([0.1] * 19, abs=1e-3), "capture time follows the video's timestamps"
    capped_times = [f.capture_ts for f in first_copies(received, "cam-capped")]
    assert capped_times == sorted(capped_times) and len(set(capped_times)) == len(capped_times)
    assert max_per_second(capped_times) <= 5, "at most 4 a second of capture time (+1 at a window's edge)"
    assert all(f.gap_before_s == 0 for f in received)


def test_a_service_restart_mid_stream_is_survived_and_every_frame_is_accounted_for(
    clip: Path, blob_service_config: Callable[[int], ServiceConfig], received: list[Received]
) -> None:
    async def go() -> GatewaySummary:
        first = await start_service(blob_service_config(0))
        port = first.port
        config = _config(f"127.0.0.1:{port}", [{"id": "cam-1", "url": str(clip), "loop": True}], fps=5)
        gateway = Gateway(config)
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop))
        second = None
        try:
            await until(lambda: len([f for f in received if f.service == 1]) >= 8, "8 frames at the first service")
            await first.stop(grace_s=0.5)
            calls_before = gateway.summary().service_calls
            second = await start_service(blob_service_config(port))
            await until(lambda: gateway.summary().service_calls > calls_before, "a new call after the restart")
            await until(lambda: len([f for f in received if f.service == 2]) >= 8, "8 frames at the new service")
            stop.set()
            return await asyncio.wait_for(task, 30)
        finally:
            stop.set()
            await asyncio.gather(task, return_exceptions=True)
            await first.stop(0)
            if second is not None:
                await second.stop(1)

    summary = run(go())
    print(summary.text())
    _assert_balanced(summary)
    cam = summary.cameras[0]
    assert summary.service_reconnects >= 1 and summary.service_calls >= 2
    assert cam.answered_ok > 0 and "OUT_OF_ORDER" not in cam.answered_errors
    # Frames sent and not answered when the first service went away were resent (same seq) or counted dropped.
    per_call: dict[int, list[int]] = {}
    for f in received:
        per_call.setdefault(f.call, []).append(f.seq)
    for seqs in per_call.values():
        assert seqs == sorted(set(seqs)), "seqs strictly increase on each call"
    resent = sum(len(set(a) & set(b)) for a in per_call.values() for b in per_call.values() if a is not b) // 2
    assert resent <= cam.resends, "a seq read by two services was resent by the gateway"
    times = [f.capture_ts for f in first_copies(received, "cam-1")]
    assert times == sorted(times) and max_per_second(times) <= 6


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def test_the_cli_streams_a_file_and_prints_a_json_summary(
    short_clip: Path,
    blob_service_config: Callable[[int], ServiceConfig],
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> None:
    loop = LoopThread()
    try:
        service = loop.run(start_service(blob_service_config(0)))
        try:
            argv = ["gateway", "--camera", f"cam-cli={short_clip}", "--target", f"127.0.0.1:{service.port}"]
            code = main([*argv, "--fps", "5", "--json", "--log-level", "WARNING"])
        finally:
            loop.run(service.stop(1))
    finally:
        loop.close()
    out = capsys.readouterr().out
    assert code == 0, out
    data = json.loads(out)
    assert data["balanced"] is True and data["error"] is None
    totals = data["totals"]
    assert totals["frames_read"] == 20 and totals["frames_sent"] == totals["answered_ok"] + totals["answered_error"]
    assert totals["frames_sent"] + totals["dropped_fps_cap"] == 20
    assert data["cameras"][0]["camera_id"] == "cam-cli" and data["cameras"][0]["url"] == str(short_clip)


def test_sigterm_stops_the_gateway_process_with_a_summary_and_the_metrics_port_serves(
    clip: Path, blob_service_config: Callable[[int], ServiceConfig], received: list[Received], tmp_path: Path
) -> None:
    metrics_port = free_port()
    config = tmp_path / "gw.yaml"
    config.write_text(f"cameras: [{{id: cam-proc, url: '{clip}', loop: true}}]\nmetrics_port: {metrics_port}\n")
    argv = ["gateway", "--config", str(config), "--json"]
    with gateway_process(blob_service_config(0), argv, "WARNING") as (loop, proc):
        loop.run(until(lambda: len(received) >= 5, "5 frames from the gateway process", 60))
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
            exposition = response.read().decode()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert 'streetwatch_gateway_frames_read_total{camera="cam-proc"}' in exposition
    data = json.loads(out)
    assert data["balanced"] is True and data["error"] is None
    assert data["totals"]["answered_ok"] + data["totals"]["answered_error"] >= 5, "answered while draining"


def test_the_cli_rejects_bad_settings_with_a_message_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gw.yaml"
    path.write_text("cameras: [{id: a, url: x.mp4, loop: yes, speed: 2}]\n")
    assert main(["gateway", "--config", str(path)]) == 2
    assert "cameras.0.speed" in capsys.readouterr().err
    assert main(["gateway", "--camera", "no-equals-sign"]) == 2
    assert "ID=URL" in capsys.readouterr().err
