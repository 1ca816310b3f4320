"""`detector subscribe` and `detector incidents` as a case system runs them: real processes, real service."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from detector.api.client import IngestClient
from detector.config import load_config
from detector.server import start_service
from tests.api.scripted import scripted_overrides, stall_frames, write_spec
from tests.api.serving import frames_of


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "detector.cli", *args], capture_output=True, text=True, timeout=120)


def test_subscribe_prints_json_lines_acks_and_incidents_lists_and_shows(tmp_path: Path, loop_thread):
    spec = write_spec(tmp_path / "blobs.yaml")
    config = load_config(None, environ={}, overrides=["server.port=0", *scripted_overrides(spec, tmp_path / "d")])
    service = loop_thread.run(start_service(config))
    target = f"127.0.0.1:{service.port}"
    try:
        frames = stall_frames("cam-7", seconds=200, fps=1, present=[(0, 130)])

        async def send() -> None:
            async with IngestClient(target) as client:
                _ = [r async for r in client.stream(frames_of(frames))]

        loop_thread.run(send())

        first = _cli("subscribe", "--target", target, "--consumer", "cases", "--json", "--ack", "--max-events", "1")
        rest = _cli("subscribe", "--target", target, "--consumer", "cases", "--json", "--ack", "--idle-timeout", "2")
        again = _cli("subscribe", "--target", target, "--consumer", "cases", "--idle-timeout", "1")
        replayed = _cli("subscribe", "--target", target, "--consumer", "cases", "--after", "0", "--max-events", "2")
        listed = _cli("incidents", "list", "--target", target, "--state", "cleared")
        open_only = _cli("incidents", "list", "--target", target, "--state", "open")
        missing = _cli("incidents", "show", "nope", "--target", target)
        bad_target = _cli("subscribe", "--target", "127.0.0.1:1", "--idle-timeout", "1")
        opened = json.loads(first.stdout)
        shown = _cli("incidents", "show", opened["incident_id"], "--target", target)
    finally:
        loop_thread.run(service.stop(1))

    assert first.returncode == rest.returncode == 0, first.stderr + rest.stderr
    cleared = [json.loads(line) for line in rest.stdout.splitlines()]
    assert [opened["type"], *[e["type"] for e in cleared]] == ["OPENED", "CLEARED"]
    assert opened["case_code"] == "200501" and opened["label"] == "无照经营游商"
    assert opened["source_id"] == "cam-7" and opened["sequence"] == "1" and cleared[0]["sequence"] == "2"
    assert cleared[0]["incident_id"] == opened["incident_id"]
    assert {e["kind"] for e in opened["evidence"]} == {"frame_jpeg", "crop_jpeg"}
    assert again.returncode == 0 and again.stdout == "", "acked events are not delivered again to the consumer"
    assert replayed.stdout.count("\n") == 2 and "#1 OPENED" in replayed.stdout and "#2 CLEARED" in replayed.stdout

    assert listed.returncode == 0 and opened["incident_id"] in listed.stdout and "opened×1" in listed.stdout
    assert open_only.returncode == 0 and open_only.stdout == "no incidents\n"
    incident = json.loads(shown.stdout)
    assert incident["incident_id"] == opened["incident_id"] and incident["state"] == "CLEARED_STATE"
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
    assert bad_target.returncode == 1 and "UNAVAILABLE" in bad_target.stderr
