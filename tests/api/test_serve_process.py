"""`detector serve` as a real process: health through its life, reflection, graceful SIGTERM, and replay."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from detector.api._gen.streetwatch.v1 import ingest_pb2 as pb
from detector.api._gen.streetwatch.v1 import ingest_pb2_grpc
from detector.api.client import make_frame
from detector.config import DEFAULT_WEIGHTS
from detector.types import DeliveryMode
from tests.conftest import jpeg

NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVING = health_pb2.HealthCheckResponse.SERVING


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    def __init__(self, port: int, *extra: str) -> None:
        self.port = port
        self.target = f"127.0.0.1:{port}"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "detector.cli", "serve", "--port", str(port), "--device", "cpu", *extra],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    def log(self) -> str:
        return self.proc.stderr.read() if self.proc.stderr else ""


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[ServeProcess]:
    proc = ServeProcess(free_port(), "--set", "server.grace_s=20", "--set", f"store.data_dir={tmp_path / 'data'}")
    yield proc
    if proc.proc.poll() is None:
        proc.proc.kill()
        proc.proc.wait(10)


def _health_statuses(target: str, until: int, timeout_s: float) -> list[int]:
    """Poll Check from process start until ``until`` is seen; returns the distinct statuses in order."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(service="streetwatch.v1.Ingest"), timeout=1).status
            except grpc.RpcError:
                time.sleep(0.02)
                continue
            if not seen or seen[-1] != status:
                seen.append(status)
            if status == until:
                return seen
            time.sleep(0.02)
    raise AssertionError(f"health never reached {until}; saw {seen}")


def test_health_goes_not_serving_then_serving_then_not_serving_while_draining(serve_process, street_photos):
    statuses = _health_statuses(serve_process.target, SERVING, timeout_s=90)
    assert statuses == [NOT_SERVING, SERVING], "NOT_SERVING until the model is loaded and warmed, then SERVING"

    with grpc.insecure_channel(serve_process.target) as channel:
        names = _reflected_services(channel)
        assert {"streetwatch.v1.Ingest", "grpc.health.v1.Health"} <= names

        # A LOSSLESS stream with frames in flight when SIGTERM arrives: every sent frame is still answered.
        stub = ingest_pb2_grpc.IngestStub(channel)
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        assert next(watch).status == SERVING
        good = jpeg(street_photos[0])
        frames = [make_frame("cam", i + 1, 1.7e9 + i, jpeg=good, mode=DeliveryMode.LOSSLESS) for i in range(30)]

        first_answered = threading.Event()

        def requests() -> Iterator[pb.Frame]:
            for i, f in enumerate(frames):
                if i == 10:
                    assert first_answered.wait(60)
                    serve_process.proc.send_signal(signal.SIGTERM)
                yield f

        results = []
        ended = grpc.StatusCode.OK
        try:
            for result in stub.StreamFrames(requests()):
                results.append(result)
                first_answered.set()
        except grpc.RpcError as exc:
            ended = exc.code()
            assert "shutting down" in exc.details()
        after = next(watch).status
    assert after == NOT_SERVING, "health must say NOT_SERVING while draining"
    # Frames accepted before the drain are all answered, in order; later ones are refused with UNAVAILABLE so
    # that the gateway knows to resend them elsewhere.
    answered = [r.seq for r in results]
    assert answered == list(range(1, len(answered) + 1)) and len(answered) >= 1
    assert all(not r.HasField("error") for r in results)
    assert ended in (grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE)
    assert serve_process.proc.wait(60) == 0
    log = serve_process.log()
    assert '"status": "draining"' in log and '"msg": "stopped"' in log


def _reflected_services(channel: grpc.Channel) -> set[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    return {s.name for s in next(responses).list_services_response.service}


def test_serve_refuses_bad_settings_naming_the_key():
    proc = subprocess.run(
        [sys.executable, "-m", "detector.cli", "serve", "--set", "batching.max_bacth=4"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "batching.max_bacth: unknown setting" in proc.stderr


def test_serve_with_missing_weights_exits_with_a_clear_error(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "detector.cli",
            "serve",
            "--port",
            str(free_port()),
            "--weights",
            "/nope.pt",
            "--set",
            f"store.data_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "weights file not found: /nope.pt" in proc.stderr


def _write_video(path: Path, images: list[np.ndarray], fps: int, seconds: float) -> int:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        n = int(fps * seconds)
        for i in range(n):
            image = cv2.resize(images[(i // fps) % len(images)], (640, 480))
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return n


def test_replay_streams_a_video_file_and_prints_a_summary(serve_process, street_photos, tmp_path):
    video = tmp_path / "street.mp4"
    n = _write_video(video, street_photos, fps=10, seconds=3)
    _health_statuses(serve_process.target, SERVING, timeout_s=90)
    cmd = [sys.executable, "-m", "detector.cli", "replay", str(video), "--target", serve_process.target]
    everything = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=120)
    assert everything.returncode == 0, everything.stderr
    summary = json.loads(everything.stdout)
    assert summary["frames_sent"] == n == summary["results"] == summary["frames_ok"]
    assert summary["detections"] > 0 and summary["model"].startswith(f"{DEFAULT_WEIGHTS.stem}@")

    sampled = subprocess.run([*cmd, "--fps", "2", "--source-id", "cam-2"], capture_output=True, text=True, timeout=120)
    assert sampled.returncode == 0, sampled.stderr
    assert "as 'cam-2'" in sampled.stdout and "frames sent 6," in sampled.stdout

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 1000)
    failed = subprocess.run([*cmd[:4], str(broken), *cmd[5:]], capture_output=True, text=True, timeout=60)
    assert failed.returncode == 2 and "cannot open video" in failed.stderr
