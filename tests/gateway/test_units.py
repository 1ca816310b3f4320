"""The gateway's pieces on their own: the fps cap, the stream clock, backoff, settings, the summary's buckets,
and the rule that only detector/api knows gRPC."""

from __future__ import annotations

import ast
import json
import random
from pathlib import Path

import pytest

from detector.gateway.backoff import Backoff, BackoffSettings
from detector.gateway.camera import FpsCap, StreamClock, redact_url
from detector.gateway.config import GatewayConfigError, is_file_url, load_gateway_config, parse_camera_flag
from detector.gateway.summary import BUCKETS, CameraSummary, GatewaySummary
from tests.gateway.conftest import max_per_second

T0 = 1.76e9


def test_the_fps_cap_counts_capture_seconds_and_keeps_the_rate_without_aliasing() -> None:
    cap = FpsCap(10)
    times = [T0 + i / 25 for i in range(25 * 20)]  # 20 s at 25 frames/s
    kept = [t for t in times if cap.admit(t)]
    assert len(kept) == 200, "25 fps capped to 10 keeps 10 a second, not every third frame (8.3)"
    assert max_per_second(kept) <= 11
    slow = FpsCap(2)
    irregular = [T0 + s for s in (0.0, 0.1, 0.45, 0.5, 0.52, 0.9, 1.0, 1.49, 1.5, 3.7)]
    assert [t - T0 for t in irregular if slow.admit(t)] == pytest.approx([0.0, 0.5, 1.0, 1.5, 3.7])
    assert all(FpsCap(0).admit(t) for t in times[:10]), "0 keeps every frame"


def test_the_stream_clock_follows_timestamps_fills_gaps_and_survives_jumps() -> None:
    clock = StreamClock(step_s=0.1, max_jump_s=10)
    # An RTSP stream whose first frame has no timestamp, then 90 kHz PTS from an arbitrary origin.
    got = [clock.seconds(t) for t in (None, 1000.1, 1000.2, 1000.35)]
    assert got == pytest.approx([0.0, 0.1, 0.2, 0.35])
    assert clock.seconds(None) == pytest.approx(0.45), "a frame without a timestamp is one interval later"
    assert clock.seconds(500.0) == pytest.approx(0.55), "a timestamp going back is re-referenced"
    assert clock.seconds(500.2) == pytest.approx(0.75)
    assert clock.seconds(9999.0) == pytest.approx(0.85), "a jump past max_jump_s is a discontinuity"


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap_and_resets() -> None:
    settings = BackoffSettings(initial_s=0.5, max_s=4.0, multiplier=2.0, jitter=0.5)
    backoff = Backoff(settings, random.Random(7))
    delays = [backoff.next_delay() for _ in range(7)]
    bases = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert all(b * 0.5 <= d <= b for d, b in zip(delays, bases, strict=True)), delays
    assert len(set(delays)) == len(delays), "jittered"
    assert backoff.failures == 7
    backoff.reset()
    assert 0.25 <= backoff.next_delay() <= 0.5
    exact = Backoff(BackoffSettings(initial_s=1, max_s=3, jitter=0))
    assert [exact.next_delay() for _ in range(4)] == [1, 2, 3, 3]
    with pytest.raises(ValueError, match="max_s"):
        BackoffSettings(initial_s=5, max_s=1)


def test_settings_from_yaml_and_flags_reject_unknown_keys_and_duplicate_ids(tmp_path: Path) -> None:
    path = tmp_path / "gw.yaml"
    path.write_text(
        "target: 10.0.0.2:50051\nfps: 2\ncameras:\n"
        "  - {id: market-north, url: 'rtsp://u:secret@10.1.0.7/s1', fps: 1, options: {rtsp_transport: udp}}\n"
        "service_reconnect: {initial_s: 0.1, max_s: 1}\n"
    )
    config = load_gateway_config(path, ["gate-2=http://10.1.0.8/video.mjpg?a=1&b=2"], {"target": None, "fps": 4})
    assert config.target == "10.0.0.2:50051" and config.fps == 4
    assert [(c.id, c.url) for c in config.cameras] == [
        ("market-north", "rtsp://u:secret@10.1.0.7/s1"),
        ("gate-2", "http://10.1.0.8/video.mjpg?a=1&b=2"),
    ]
    assert [config.camera_fps(c) for c in config.cameras] == [1, 4]
    assert config.service_reconnect.max_s == 1 and config.camera_reconnect.max_s == 30
    path.write_text("cameras: [{id: a, url: x.mp4, fsp: 3}]\n")
    with pytest.raises(
        GatewayConfigError, match=r"cameras\.0\.fsp: unknown setting; did you mean 'fps'\? \[from gateway config "
    ):
        load_gateway_config(path)
    path.write_text("cameras: [{id: a, url: x.mp4}]\nreconect: {}\n")
    with pytest.raises(GatewayConfigError, match="reconect"):
        load_gateway_config(path)
    with pytest.raises(GatewayConfigError, match="unique"):
        load_gateway_config(None, ["a=x.mp4", "a=y.mp4"])
    with pytest.raises(GatewayConfigError, match="ID=URL"):
        parse_camera_flag("just-a-url.mp4")
    with pytest.raises(GatewayConfigError, match="no camera"):
        load_gateway_config(None, [])
    assert is_file_url("/srv/a.mp4") and is_file_url("file:/srv/a.mp4") and not is_file_url("rtsp://h/s")


def test_urls_in_logs_and_summaries_hide_passwords() -> None:
    assert redact_url("rtsp://admin:hunter2@10.0.0.7:554/s1") == "rtsp://admin:***@10.0.0.7:554/s1"
    assert redact_url("http://10.0.0.8/video.mjpg") == "http://10.0.0.8/video.mjpg"
    assert redact_url("/srv/clip.mp4") == "/srv/clip.mp4"


def test_the_summary_puts_every_frame_in_one_bucket_and_says_when_one_is_missing() -> None:
    cam = CameraSummary(
        "cam-1",
        "rtsp://h/s",
        frames_read=20,
        answered_ok=9,
        answered_errors={"DROPPED": 2},
        dropped_fps_cap=5,
        dropped_backlog=1,
        dropped_unanswered=1,
        unsent_at_exit=1,
        unanswered_at_exit=1,
        frames_sent=13,
        resends=3,
    )
    assert cam.balanced() and cam.unaccounted() == 0
    other = CameraSummary("cam-2", "x.mp4", frames_read=3, answered_ok=2, frames_sent=2)
    summary = GatewaySummary("127.0.0.1:50051", [cam, other], service_calls=2, service_reconnects=1)
    assert not summary.balanced() and other.unaccounted() == 1
    assert "UNACCOUNTED 1" in summary.text()
    data = json.loads(json.dumps(summary.as_dict()))
    assert data["totals"]["frames_read"] == 23 and data["totals"]["answered_errors"] == {"DROPPED": 2}
    assert data["totals"]["answered_error"] == 2 and data["balanced"] is False
    assert set(BUCKETS) <= set(data["cameras"][0])


def test_no_gateway_module_imports_grpc_or_the_generated_proto() -> None:
    package = Path(__file__).resolve().parents[2] / "detector" / "gateway"
    offenders = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "grpc" or "._gen" in n]
    assert not offenders, offenders
